"""Shape inference: onnxopt's ``shapes`` vs onnxruntime's symbolic_shape_infer and onnx's
``infer_shapes(data_prop=True)``, per model: coverage, wrong dims, time.

    python benchmarks/shapes_bench.py                 # shared, light and golden models
    python benchmarks/shapes_bench.py --synth 10000   # also a synthetic transformer of N nodes

Coverage is the fraction of the main graph's node outputs whose shape is fully known, each dim an
integer or an expression over the input symbols (a tool's fresh names for unknown dims do not
count). Every tool's dims are evaluated at a runtime binding and compared with what onnxruntime
computes (every intermediate exposed as an output): ``wrong`` counts values with a wrong dim.
Times are the best of ``--repeat`` cold runs (sympy's cache and ours cleared before each run;
sympy already imported, as onnxruntime's tool imports it with itself): ``infer`` is the inference
call alone (onnxopt: on the lifted IR), ``+io`` adds protobuf -> IR -> protobuf for onnxopt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from onnxopt.io import load
from onnxopt.ir import SymDim, lift_type, lower_model
from onnxopt.passes.shapes import dims as D
from onnxopt.passes.shapes import infer_shapes
from onnxopt.passes.shapes.check import compare_types, runtime_shapes
from onnxopt.passes.shapes.infer import proven_type
from test_shapes_runtime import feeds_for, model_paths


def _clear():
    import sympy

    sympy.core.cache.clear_cache()
    D.clear_caches()


def _best(fn, repeat: int):
    best, out, err = None, None, None
    for _ in range(repeat):
        _clear()
        t = time.perf_counter()
        try:
            out = fn()
        except Exception as e:  # a peer failing is a result
            err = f"{type(e).__name__}: {str(e).splitlines()[0][:60] if str(e) else ''}"
            return None, None, err
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, out, err


def _proto_types(proto) -> tuple[list, dict]:
    """(name, type) of every node output of the main graph, and the input dims' symbols."""
    known = {}
    for vi in list(proto.graph.value_info) + list(proto.graph.output):
        known[vi.name] = lift_type(vi.type)
    named = [(o, known.get(o)) for n in proto.graph.node for o in n.output if o]
    inputs = {vi.name: lift_type(vi.type) for vi in proto.graph.input}
    return named, inputs


def _binding(inputs: dict, feeds: dict) -> dict:
    b = {}
    for name, t in inputs.items():
        if name not in feeds or t is None or getattr(t, "shape", None) is None:
            continue
        for d, a in zip(t.shape, np.shape(feeds[name])):
            if isinstance(d, SymDim):
                b.setdefault(d.text if D.is_lone(d) else str(d.expr), int(a))
    return b


def _strict_known(named, actual, binding):
    """Values fully known over input symbols only, and values with a wrong dim."""
    cov = compare_types(named, actual, binding, bind_fresh=False)
    chk = compare_types(named, actual, binding, bind_fresh=True)
    return cov.known, cov.values, len(chk.wrong)


def _generic_feeds(proto) -> list:
    """Inputs for a model without known valid ones: symbolic dims 2 (batch) and 8 (others),
    ints in [0, 2) (valid ids and masks for the synthetic models)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    inits = {t.name for t in proto.graph.initializer}
    feeds = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        tt = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (2 if "batch" in d.dim_param else 8)
                for d in tt.shape.dim]
        dt = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        feeds[i.name] = (rng.integers(0, 2, dims) if dt.kind in "iub"
                         else rng.standard_normal(dims)).astype(dt)
    return [feeds]


def bench_model(path: Path, repeat: int) -> dict:
    proto = onnx.load(str(path))
    feeds = feeds_for(path, proto) or _generic_feeds(proto)
    actual = runtime_shapes(proto, feeds[0]) if feeds else {}
    row = {"model": path.name, "nodes": len(proto.graph.node)}

    # onnxopt
    holder = {}

    def ours():
        m = load(proto)
        holder["m"] = m
        t = time.perf_counter()
        info = infer_shapes(m)
        holder["t"] = time.perf_counter() - t
        return m, info

    best_infer = None
    for _ in range(repeat):
        _clear()
        t0 = time.perf_counter()
        m, _ = ours()
        lower_model(m)
        total = time.perf_counter() - t0
        best_infer = holder["t"] if best_infer is None else min(best_infer, holder["t"])
        row["ours_io"] = total if "ours_io" not in row else min(row["ours_io"], total)
    row["ours_t"] = best_infer
    named = [(v.name, proven_type(v)) for n in m.graph.nodes for v in n.outputs if v.name]
    b = _binding({v.name: v.type for v in m.graph.inputs}, feeds[0] if feeds else {})
    row["ours"] = _strict_known(named, actual, b)

    # onnxruntime's symbolic shape inference
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    def ort():
        p = onnx.ModelProto()
        p.CopyFrom(proto)
        return SymbolicShapeInference.infer_shapes(p, auto_merge=True)

    t, out, err = _best(ort, repeat)
    row["ort_t"], row["ort_err"] = t, err
    if out is not None:
        named, inputs = _proto_types(out)
        row["ort"] = _strict_known(named, actual, _binding(inputs, feeds[0] if feeds else {}))

    # onnx with data propagation
    from onnx import shape_inference

    t, out, err = _best(lambda: shape_inference.infer_shapes(proto, data_prop=True), repeat)
    row["onnx_t"], row["onnx_err"] = t, err
    if out is not None:
        named, inputs = _proto_types(out)
        row["onnx"] = _strict_known(named, actual, _binding(inputs, feeds[0] if feeds else {}))
    return row


def _cov(row, key):
    v = row.get(key)
    if v is None:
        return f"failed ({row.get(key + '_err', '')[:30]})"
    known, total, wrong = v
    return f"{100 * known / max(total, 1):5.1f}%" + (f" ({wrong} wrong)" if wrong else "")


def _ms(t):
    return "-" if t is None else f"{1000 * t:8.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synth", type=int, default=0, help="also a synthetic model of N nodes")
    ap.add_argument("--only", default="", help="substring of the model names to run")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import sympy  # noqa: F401  (imported before timing, as onnxruntime's tool does)
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference  # noqa: F401

    paths = [p for p in model_paths() if args.only in p.name]
    if args.synth:
        out = Path("/tmp") / f"shapes_bench_synth_{args.synth}.onnx"
        if not out.exists():
            os.system(f"{sys.executable} {ROOT / 'benchmarks' / 'synth.py'} --nodes {args.synth} "
                      f"-o {out} > /dev/null")
        paths.append(out)
    print("| model | nodes | onnxopt | ORT symbolic | onnx data_prop | onnxopt infer ms "
          "| +io ms | ORT ms | onnx ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in paths:
        r = bench_model(p, args.repeat if p.stat().st_size < 50_000_000 else 1)
        print(f"| {r['model']} | {r['nodes']} | {_cov(r, 'ours')} | {_cov(r, 'ort')} | "
              f"{_cov(r, 'onnx')} | {_ms(r['ours_t'])} | {_ms(r['ours_io'])} | "
              f"{_ms(r['ort_t'])} | {_ms(r['onnx_t'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
