"""The HTML report's costs: page write time and size on a 50,000-node model, render time in
headless Chromium for the silero and bert reports (issue 22's targets: under 5 s and 20 MB, under
2 s to render).

    python benchmarks/report_bench.py [--nodes 50000] [--repeat 3] [--md out.md]

Rows (median of --repeat runs; CPU seconds beside wall seconds, since other work on a shared
machine inflates wall time):
- ``view N``: ``onnxopt.report.write_view`` on the synthetic N-node model (benchmarks/synth.py),
  load included; the page folds every region (nothing changed) and embeds none past 5,000 nodes.
- ``report N``: CPU seconds the report adds to the default pipeline on that model (snapshot
  before, creation tracking during the passes, diff, page; the passes timed alone on a fresh load
  are subtracted), and the page's size.
- ``render M``: milliseconds from navigation start until the page's script has drawn both graphs
  (its self-check, ``performance.now()``), for the default pipeline's report on model M.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = {"silero_vad_op15_ts": ROOT / "tests" / "models" / "silero_vad_op15_ts.onnx",
          "bert_op17": ROOT / "golden" / "models" / "bert_op17.onnx"}


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def bench_big(nodes: int, repeat: int, tmp: Path) -> list[tuple[str, str]]:
    sys.path.insert(0, str(HERE))
    import synth
    from onnxopt.report import write_view

    model = tmp / f"synth{nodes}.onnx"
    model.write_bytes(synth.build(nodes).SerializeToString())
    page = tmp / "view.html"
    w, c = median_pair([timed(lambda: write_view(str(page), str(model))) for _ in range(repeat)])
    rows = [(f"view {nodes}", f"{w:.2f} s wall, {c:.2f} s CPU, {page.stat().st_size / 1e6:.2f} MB")]
    report = tmp / "report.html"
    report_phases(model, report)  # warm-up: the first pipeline run also pays first imports
    runs = [report_phases(model, report) for _ in range(repeat)]
    own = statistics.median(r[0] for r in runs)
    tracking = statistics.median(r[1] for r in runs)
    passes = statistics.median(r[2] for r in runs)
    rows.append((f"report {nodes}", (f"{own + max(tracking, 0.0):.2f} s CPU for the report: "
                 f"{own:.2f} s snapshot, diff and page (timed), {tracking:+.2f} s creation "
                 f"tracking (two pass runs' difference); passes {passes:.2f} s CPU; "
                 f"{report.stat().st_size / 1e6:.2f} MB")))
    rows += render_row(f"render report {nodes}", report, repeat)
    return rows


def report_phases(model: Path, page: Path) -> tuple[float, float, float]:
    """(CPU seconds of the report's own work: the snapshot before and the diff and page after,
    timed directly; CPU seconds the creation tracking adds to the passes: a run with the hook
    minus one without, on fresh loads, so noisy; CPU seconds of the passes alone)."""
    import onnxopt
    from onnxopt.optimizer import OptimizeResult, model_stats
    from onnxopt.passes import PassManager
    from onnxopt.passes.pipeline import parse_pipeline
    from onnxopt.report import Recorder

    plain = onnxopt.load(str(model))
    _, base = timed(lambda: PassManager(parse_pipeline("default")).run(plain))
    m = onnxopt.load(str(model))
    c = time.process_time()
    rec = Recorder(m)
    own = time.process_time() - c
    c = time.process_time()
    run = PassManager(parse_pipeline("default"), progress=rec.progress).run(m)
    tracked = time.process_time() - c
    result = OptimizeResult(m, run, model_stats(plain), model_stats(m), pipeline="default")
    c = time.process_time()
    rec.write(str(page), result, input_path=str(model))
    own += time.process_time() - c
    return own, tracked - base, base


def render_row(label: str, page: Path, repeat: int) -> list[tuple[str, str]]:
    from onnxopt.report import browser

    if browser.chromium() is None:
        return [(label, "skipped: no chromium")]
    ms = [browser.selftest(str(page))["ms"] for _ in range(repeat)]
    return [(label, f"{statistics.median(ms):.0f} ms (runs: {', '.join(map(str, ms))})")]


def bench_render(repeat: int, tmp: Path) -> list[tuple[str, str]]:
    import onnxopt

    rows = []
    for name, path in MODELS.items():
        page = tmp / f"{name}.html"
        onnxopt.optimize(str(path), "default", report=str(page))
        rows += render_row(f"render {name}", page, repeat)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=50000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--md", help="also write the table here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onnxopt-report-bench-") as d:
        rows = bench_render(args.repeat, Path(d)) + bench_big(args.nodes, args.repeat, Path(d))
    load = os.getloadavg()[0]
    lines = ["| what | result |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    lines.append(f"\nload average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
