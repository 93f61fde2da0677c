"""Folding benchmark: nodes left and time, onnxopt ``fold,simplify,dce,cse`` against its peers with
their fusions off.

    python benchmarks/fold_bench.py                      # shared + light + synthetic 50k
    python benchmarks/fold_bench.py --models shared --md table.md

Tools (each (model, tool) runs in a fresh process with a time limit):

- ``onnxopt``: ``fold,simplify,dce,cse`` (the pipeline of issue 5);
- ``onnxopt+fix``: ``fixpoint(fold,simplify,identity,dce,cse)``, the default preset's cleanup group;
- ``onnxsim``: ``onnxsim.simplify(m, skip_fuse_bn=True, perform_optimization=False)``: constant
  folding and shape inference, its onnxoptimizer passes (fusions included) skipped;
- ``onnxslim``: ``onnxslim.slim(m, skip_fusion_patterns=[every Fusion* pattern])``: folding and
  its elimination patterns, no fusions;
- ``onnxoptimizer``: every ``eliminate_*`` pass plus ``extract_constant_to_initializer``, no
  ``fuse_*`` pass.

Reported per run: nodes after (subgraphs included), the same without Constant nodes (a tool that
merely moves weights from Constant nodes into initializers gains nothing real), the size of the
saved file, and the seconds for load + optimize + save in the worker (interpreter start and
imports excluded; the import time is a separate column, it is what a user pays on small models).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "models"
TOOLS = ["onnxopt", "onnxopt+fix", "onnxsim", "onnxslim", "onnxoptimizer"]
PIPELINES = {"onnxopt": "fold,simplify,dce,cse",
             "onnxopt+fix": "fixpoint(fold,simplify,identity,dce,cse){max=8}"}


# -- workers (one tool, one model, a fresh process) ------------------------------------------------

def _count(graph) -> tuple[int, int]:
    import onnx

    nodes = consts = 0
    for n in graph.node:
        nodes += 1
        consts += n.op_type == "Constant" and n.domain in ("", "ai.onnx")
        for a in n.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for g in subs:
                sn, sc = _count(g)
                nodes, consts = nodes + sn, consts + sc
    return nodes, consts


def worker(tool: str, src: str, out: str) -> dict:
    t0 = time.perf_counter()
    import onnx

    if tool in PIPELINES:
        import onnxopt
        from onnxopt.passes import PassManager

        t_import = time.perf_counter() - t0
        t = time.perf_counter()
        m = onnxopt.load(src)
        PassManager(PIPELINES[tool]).run(m)
        onnxopt.save(m, out)
    elif tool == "onnxsim":
        import onnxsim

        t_import = time.perf_counter() - t0
        t = time.perf_counter()
        model, _ = onnxsim.simplify(onnx.load(src), skip_fuse_bn=True, perform_optimization=False)
        onnx.save(model, out)
    elif tool == "onnxslim":
        import onnxslim
        from onnxslim.core.pattern.registry import DEFAULT_FUSION_PATTERNS

        t_import = time.perf_counter() - t0
        t = time.perf_counter()
        skip = [p for p in DEFAULT_FUSION_PATTERNS if p.startswith("Fusion")]
        onnx.save(onnxslim.slim(onnx.load(src), skip_fusion_patterns=skip), out)
    elif tool == "onnxoptimizer":
        import onnxoptimizer

        t_import = time.perf_counter() - t0
        t = time.perf_counter()
        passes = [p for p in onnxoptimizer.get_available_passes()
                  if p.startswith("eliminate_") or p == "extract_constant_to_initializer"]
        onnx.save(onnxoptimizer.optimize(onnx.load(src), passes), out)
    else:
        raise SystemExit(f"unknown tool {tool}")
    seconds = time.perf_counter() - t
    nodes, consts = _count(onnx.load(out, load_external_data=False).graph)
    return {"seconds": seconds, "import": t_import, "nodes": nodes, "consts": consts,
            "bytes": os.path.getsize(out)}


# -- driver ----------------------------------------------------------------------------------------

def models(groups: list[str], tmp: Path, synth_nodes: int) -> list[tuple[str, Path]]:
    import onnx

    out: list[tuple[str, Path]] = []
    if "shared" in groups:
        out += [(p.stem, p) for p in sorted(SHARED.glob("*.onnx"))]
    if "light" in groups:
        light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
        out += [(p.stem, p) for p in sorted(light.glob("*.onnx"))]
    if "synth" in groups:
        path = tmp / f"synth_{synth_nodes}.onnx"
        subprocess.run([sys.executable, str(HERE / "synth.py"), "--nodes", str(synth_nodes),
                        "-o", str(path)], check=True, capture_output=True)
        out.append((f"synth_{synth_nodes // 1000}k", path))
    return out


def run_one(tool: str, src: Path, tmp: Path, timeout: float) -> dict:
    out = tmp / f"{src.stem}.{tool}.onnx"
    try:
        p = subprocess.run([sys.executable, __file__, "--worker", tool, str(src), str(out)],
                           capture_output=True, text=True, timeout=timeout, cwd=str(tmp))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout:.0f}s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": last[:80]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def table(rows: list[tuple[str, int, dict]], tools: list[str]) -> str:
    head = "| model | nodes | " + " | ".join(f"{t} nodes (no Constant) / s" for t in tools) + " |"
    lines = [head, "|" + " --- |" * (2 + len(tools))]
    for name, n0, res in rows:
        cells = []
        for t in tools:
            r = res.get(t, {})
            if "error" in r:
                cells.append(r["error"])
            elif r:
                cells.append(f"{r['nodes']} ({r['nodes'] - r['consts']}) / {r['seconds']:.2f}")
            else:
                cells.append("-")
        lines.append(f"| {name} | {n0} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="shared,light,synth")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--synth-nodes", type=int, default=50_000)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per model and tool")
    ap.add_argument("--md", help="also write the table to this file")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    import onnx

    tools = args.tools.split(",")
    rows, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="fold_bench") as d:
        tmp = Path(d)
        for name, path in models(args.models.split(","), tmp, args.synth_nodes):
            n0, _ = _count(onnx.load(str(path), load_external_data=False).graph)
            res = {}
            for t in tools:  # best of --repeat runs (a run over 20 s is not repeated)
                best = run_one(t, path, tmp, args.timeout)
                for _ in range(args.repeat - 1):
                    if "error" in best or best["seconds"] > 20:
                        break
                    again = run_one(t, path, tmp, args.timeout)
                    if "seconds" in again and again["seconds"] < best["seconds"]:
                        best = again
                res[t] = best
            rows.append((name, n0, res))
            raw[name] = {"nodes": n0, **res}
            print(f"{name}: " + ", ".join(
                f"{t} {r.get('nodes', r.get('error'))} {r.get('seconds', 0):.2f}s"
                for t, r in res.items()), file=sys.stderr, flush=True)
    md = table(rows, tools)
    imports = {t: min((r[t].get("import", 1e9) for _, _, r in rows if "import" in r.get(t, {})),
                      default=None) for t in tools}
    md += "\n\nimport time (s): " + ", ".join(f"{t} {v:.2f}" for t, v in imports.items() if v)
    print(md)
    if args.md:
        Path(args.md).write_text(md + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
