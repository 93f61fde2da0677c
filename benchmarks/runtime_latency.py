"""Latency of the original, onnxopt's, onnxsim's and onnxslim's outputs on each runtime.

    python benchmarks/runtime_latency.py [--models tests/models/*.onnx golden/models/*.onnx]
        [--runtimes ort,ort-full,openvino] [--threads 1] [--budget 1.0] [--min-runs 20]
        [--json out.json] [--md out.md]

For every model: each tool's output is made in a fresh process (onnxopt: the default and the
`ort` preset, via the command; onnxsim/onnxslim: benchmarks/_worker.py), each output is checked
against the original on each runtime (onnxopt.runtimes.verify_on) and timed there
(onnxopt.runtimes.bench: warm-up excluded, median of at least --min-runs runs over --budget
seconds). The input is the first set
the verifier generates (its first binding of the symbolic dims). Besides latency it counts the
fused ops onnxruntime forms with ORT_ENABLE_ALL (its optimized model, saved through
``SessionOptions.optimized_model_filepath``): whether an output still lets onnxruntime fuse.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

from _exe import console_script  # a sibling module: benchmarks/ is this script's directory

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# onnxopt-ort: `--preset ort` (opset 23 for the Attention op, the default, then the inferred
# shapes written, which onnxruntime's SkipLayerNormalization fusion needs to see; RESULTS.md).
# ort-transformers: onnxruntime's transformers optimizer (python -m
# onnxruntime.transformers.optimizer), the tool people use for these models; run only where a
# model's name says which of its model types it is (TRANSFORMERS_TYPES).
TOOLS = ("original", "onnxopt", "onnxopt-ort", "onnxsim", "onnxslim", "ort-transformers")
# Model-name prefix: the optimizer's --model_type, --num_heads and --hidden_size (it detects the
# last two only for bert; the golden models have 2 heads of hidden size 32).
TRANSFORMERS_TYPES = {"bert": ("bert", 2, 32), "gpt2": ("gpt2", 2, 32), "vit": ("vit", 2, 32)}
# The input each model is exported for, where the generated one is refused by a runtime.
SHAPES = {"ppocr_mobile_v2_cls": {"x": [1, 3, 48, 192]}}


def make_output(tool: str, src: str, out: str) -> str | None:
    """Write ``tool``'s output of ``src`` to ``out``; None, or the one-line reason it failed."""
    if tool.startswith("onnxopt"):
        cmd = [console_script("onnxopt") or "onnxopt", src, "-o", out, "--no-verify", "-q"]
        if tool == "onnxopt-ort":
            cmd += ["--preset", "ort"]
    elif tool == "ort-transformers":
        stem = os.path.basename(src).split("_")[0].split(".")[0]
        if stem not in TRANSFORMERS_TYPES:
            return "no model type for this model"
        return transformers_optimizer(src, out, *TRANSFORMERS_TYPES[stem])
    else:
        cmd = [sys.executable, os.path.join(HERE, "_worker.py"), tool, src, out]
    return _run_tool(cmd, out)


def transformers_optimizer(src: str, out: str, model_type: str, heads: int, hidden: int,
                           external: bool = False) -> str | None:
    """onnxruntime's transformers optimizer on ``src``, as its command runs it (its default
    opt_level, fusions only, no float16); None, or the one-line reason it failed."""
    cmd = [sys.executable, "-m", "onnxruntime.transformers.optimizer", "--input", src,
           "--output", out, "--model_type", model_type, "--num_heads", str(heads),
           "--hidden_size", str(hidden)] + (["--use_external_data_format"] if external else [])
    return _run_tool(cmd, out)


def _run_tool(cmd: list, out: str) -> str | None:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if p.returncode != 0 or not os.path.exists(out):
        lines = (p.stderr or p.stdout or f"exit {p.returncode}").strip().splitlines()
        return lines[-1] if lines else f"exit {p.returncode}"
    return None


def ort_fused_ops(path: str) -> dict:
    """Counts of the fused ops in onnxruntime's ORT_ENABLE_ALL optimized model of ``path``."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = os.path.join(d, "opt.onnx")
        so.log_severity_level = 4
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return fused_counts(onnx.load(so.optimized_model_filepath, load_external_data=False))


def fused_counts(model) -> dict:
    """Counts of the ops of onnxruntime's own domains in ``model`` (a ModelProto onnxruntime
    optimized), and its node count."""
    # Every op of onnxruntime's own domains is one of its fusions or layouts (nchwc.Conv is a
    # Conv with its activation, in the blocked layout).
    ops = Counter(n.op_type if n.domain == "com.microsoft" else f"{n.domain}.{n.op_type}"
                  for n in model.graph.node if n.domain not in ("", "ai.onnx"))
    return dict(sorted(ops.items())) | {"nodes": len(model.graph.node)}


def measure_model(src: str, runtimes: list, threads: list[int], budget: float, min_runs: int,
                  workdir: str) -> dict:
    """One model: per tool, its fused-op counts and per runtime its verdict and latencies (the
    tools' outputs timed interleaved, so they share the machine's load)."""
    from onnxopt.verify import Verifier, VerifyOptions

    stem = os.path.splitext(os.path.basename(src))[0]
    vopts = VerifyOptions(input_shapes=SHAPES.get(stem, {}))
    feeds = Verifier(src, vopts).feeds()
    row: dict = {"model": os.path.relpath(src, ROOT), "tools": {}}
    if not feeds:
        row["error"] = "onnxruntime cannot run the original on generated inputs"
        return row
    row["binding"] = feeds[0][0]
    paths = {}
    for tool in TOOLS:
        path = src if tool == "original" else os.path.join(workdir, f"{stem}.{tool}.onnx")
        why = None if tool == "original" else make_output(tool, src, path)
        row["tools"][tool] = {"error": why} if why else {"ort_fused": ort_fused_ops(path),
                                                         "runtimes": {}}
        if why is None:
            paths[tool] = path
    for rt in runtimes:
        _measure_runtime(row, src, rt, paths, feeds[0][1], threads, (budget, min_runs), vopts)
    print(f"{stem}: {json.dumps(row, default=str)[:400]}", file=sys.stderr, flush=True)
    return row


def _measure_runtime(row, src, rt, paths: dict, feed, threads, timing, vopts) -> None:
    from onnxopt.runtimes import bench_many, first_line, verify_on

    tools = [t for t in paths if t != "original"]
    checks = {t: r for t, r in zip(tools, (verify_on(src, paths[t], [rt], vopts)[0]
                                           for t in tools))}
    runnable = {}
    for tool, path in paths.items():
        res = row["tools"][tool]["runtimes"].setdefault(rt.spec, {})
        if tool in checks:
            res["verify"] = checks[tool].status
        try:
            rt.load(path, 1)
            runnable[tool] = path
        except Exception as e:  # noqa: BLE001 - the runtime's reason is the result
            res["error"] = first_line(e, 160)
    for t in threads:
        try:
            got = bench_many(rt, list(runnable.values()), feed, t, *timing)
        except Exception as e:  # noqa: BLE001
            for tool in runnable:
                row["tools"][tool]["runtimes"][rt.spec]["error"] = first_line(e, 160)
            return
        for tool, timing_ in zip(runnable, got):
            row["tools"][tool]["runtimes"][rt.spec][f"ms@{t}"] = timing_.as_dict()


def markdown(rows: list[dict], runtimes: list[str], threads: int) -> str:
    """Median ms at ``threads`` thread(s): one row per model and runtime, one column per tool."""
    head = "| model | runtime | " + " | ".join(TOOLS) + " | onnxopt / original |"
    out = [head, "|" + "---|" * (len(TOOLS) + 3)]
    for row in rows:
        for rt in runtimes:
            cells, ms = [], {}
            for tool in TOOLS:
                e = row["tools"].get(tool, {})
                r = e.get("runtimes", {}).get(rt, {})
                t = r.get(f"ms@{threads}")
                if t:
                    ms[tool] = t["median_ms"]
                    bad = "" if r.get("verify", "ok") == "ok" else f" ({r['verify']})"
                    cells.append(f"{t['median_ms']:.3f}{bad}")
                else:
                    cells.append("n/a: " + (r.get("error") or e.get("error") or "-")[:60])
            ratio = (f"{ms['onnxopt'] / ms['original']:.2f}" if "onnxopt" in ms
                     and "original" in ms else "-")
            out.append(f"| `{os.path.basename(row['model'])}` | {rt} | " + " | ".join(cells)
                       + f" | {ratio} |")
    return "\n".join(out) + "\n"


def fused_markdown(rows: list[dict]) -> str:
    """onnxruntime's fused ops (ORT_ENABLE_ALL) per model and tool."""
    out = ["| model | " + " | ".join(TOOLS) + " |", "|" + "---|" * (len(TOOLS) + 1)]
    for row in rows:
        cells = []
        for tool in TOOLS:
            f = row["tools"].get(tool, {}).get("ort_fused")
            cells.append("-" if f is None else ", ".join(f"{k} {v}" for k, v in f.items()))
        out.append(f"| `{os.path.basename(row['model'])}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=sorted(
        glob.glob(os.path.join(ROOT, "tests/models/*.onnx"))
        + glob.glob(os.path.join(ROOT, "golden/models/*.onnx"))))
    p.add_argument("--runtimes", default="ort,ort-full,openvino")
    p.add_argument("--threads", default="1", help="comma-separated thread counts (0: all)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per timing")
    p.add_argument("--min-runs", type=int, default=20)
    p.add_argument("--json")
    p.add_argument("--md")
    args = p.parse_args(argv)
    from onnxopt.runtimes import parse_runtimes

    runtimes = parse_runtimes(args.runtimes)
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="runtime-latency-") as work:
        for m in args.models:
            rows.append(measure_model(m, runtimes, threads, args.budget, args.min_runs, work))
    load = os.getloadavg()
    doc = {"command": " ".join(sys.argv), "loadavg": load, "threads": threads, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
    text = "".join(f"\n{t} thread(s), median ms:\n\n" + markdown(rows, [r.spec for r in runtimes], t)
                   for t in threads) + "\nonnxruntime's fusions (ORT_ENABLE_ALL):\n\n" + \
        fused_markdown(rows)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
