"""Measure a model in onnxruntime, in a fresh process (a runtime crash must not take run.py down).

    python benchmarks/_eval.py ref  ORIG REFDIR [--spec JSON] [--runs N]
        Make seeded inputs for ORIG, run it with graph optimizations disabled, store inputs and outputs
        in REFDIR, and print ORIG's statistics as JSON.
    python benchmarks/_eval.py eval MODEL REFDIR [--runs N]
        Run MODEL on REFDIR's inputs; print its statistics and the max abs error against REFDIR's
        outputs as JSON.

Statistics: top-level nodes, nodes without Constant nodes, nodes counted inside subgraphs too, nodes
outside the standard domains, size on disk (model plus its external data) and the median latency of
one thread with graph optimizations disabled and with ORT_ENABLE_ALL.

Inputs (see --spec, a JSON object {"dims": {dim_param: size}, "inputs": {name: {...}}}): a symbolic
dim takes its size from "dims", else 1 on axis 0 and 8 elsewhere; an integer input that indexes a
Gather over a constant table gets ids in range of the table, other integers 0..1; floats are normal.
An input's entry may give "shape", "dtype", "value" (a constant), "low"/"high" (uniform, high
exclusive), or "std" (normal). {"npz": path, "prefix": p} takes the inputs from an .npz file instead
(keys p + input name), as golden/models/<name>.io.npz provides them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import helper

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}


def _subgraphs(node: onnx.NodeProto):
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _count(graph: onnx.GraphProto, acc: dict) -> None:
    for n in graph.node:
        acc["nodes_all"] += 1
        if n.domain not in STANDARD_DOMAINS:
            acc["nonstd"] += 1
        for g in _subgraphs(n):
            _count(g, acc)


def model_stats(path: str) -> dict:
    m = onnx.load(path, load_external_data=False)
    acc = {"nodes_all": 0, "nonstd": 0}
    _count(m.graph, acc)
    size = os.path.getsize(path)
    folder = os.path.dirname(os.path.abspath(path))
    locations = set()
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            locations.update(e.value for e in t.external_data if e.key == "location")
    size += sum(os.path.getsize(os.path.join(folder, loc)) for loc in locations)
    return {
        "nodes": len(m.graph.node),
        "nodes_noconst": sum(1 for n in m.graph.node if n.op_type != "Constant"),
        "nodes_all": acc["nodes_all"],
        "nonstd_nodes": acc["nonstd"],
        "size_mb": size / 1e6,
        "external_data": bool(locations),
    }


# ---------------------------------------------------------------- inputs


def _gather_tables(graph: onnx.GraphProto) -> dict[str, int]:
    """Graph input name -> size of the constant table a Gather indexes with it."""
    dims = {t.name: list(t.dims) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR:
            dims[n.output[0]] = list(n.attribute[0].t.dims)
    sizes: dict[str, int] = {}
    for n in graph.node:
        if n.op_type == "Gather" and len(n.input) > 1 and n.input[0] in dims:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
            d = dims[n.input[0]]
            if d and -len(d) <= axis < len(d):
                prev = sizes.get(n.input[1])
                sizes[n.input[1]] = d[axis] if prev is None else min(prev, d[axis])
    return sizes


def make_inputs(path: str, spec: dict, seed: int = 0) -> dict[str, np.ndarray]:
    if "npz" in spec:  # inputs stored beside the model, keys f"{prefix}{input name}"
        prefix = spec.get("prefix", "")
        with np.load(spec["npz"]) as z:
            return {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    tables = _gather_tables(m.graph)
    dim_sizes = spec.get("dims", {})
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        s = spec.get("inputs", {}).get(vi.name, {})
        tt = vi.type.tensor_type
        dtype = np.dtype(s["dtype"]) if "dtype" in s else helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if "shape" in s:
            shape = tuple(s["shape"])
        else:
            shape = []
            for axis, d in enumerate(tt.shape.dim):
                if d.HasField("dim_value") and d.dim_value > 0:
                    shape.append(d.dim_value)
                else:
                    shape.append(dim_sizes.get(d.dim_param, 1 if axis == 0 else 8))
            shape = tuple(shape)
        if "value" in s:
            arr = np.full(shape, s["value"], dtype=dtype)
        elif dtype == np.bool_:
            arr = rng.integers(0, 2, shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            low = s.get("low", 0)
            high = s.get("high", tables.get(vi.name, 2))
            arr = rng.integers(low, high, shape).astype(dtype)
            if "mask" in vi.name.lower() and arr.ndim >= 1 and arr.size:
                arr.reshape(-1, arr.shape[-1])[:, 0] = 1  # no row fully masked
        elif "low" in s:
            arr = rng.uniform(s["low"], s["high"], shape).astype(dtype)
        else:
            arr = (rng.standard_normal(shape) * s.get("std", 1.0)).astype(dtype)
        feeds[vi.name] = arr
    return feeds


# ---------------------------------------------------------------- onnxruntime


def _session(path: str, level: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _latency(sess, feeds: dict, runs: int, budget_s: float = 3.0) -> float:
    """Median ms of up to `runs` runs after one warm-up (at least 3 runs, else stop at budget)."""
    sess.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < runs:
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t)
        if len(times) >= 3 and time.perf_counter() - start > budget_s:
            break
    return statistics.median(times) * 1e3


def _error(expected: list[np.ndarray], got: list[np.ndarray]) -> tuple[float | None, str | None]:
    if len(expected) != len(got):
        return None, f"{len(got)} outputs, expected {len(expected)}"
    worst = 0.0
    for i, (e, g) in enumerate(zip(expected, got)):
        e, g = np.asarray(e), np.asarray(g)
        if e.shape != g.shape:
            return None, f"output {i}: shape {list(g.shape)}, expected {list(e.shape)}"
        if e.size == 0:
            continue
        if e.dtype.kind in "fc":
            both_nan = np.isnan(e) & np.isnan(g)
            diff = np.where(both_nan, 0.0, np.abs(e.astype(np.float64) - g.astype(np.float64)))
        else:
            diff = np.abs(e.astype(np.float64) - g.astype(np.float64))
        d = float(np.max(diff))
        worst = max(worst, d) if not np.isnan(d) else float("nan")
    return worst, None


def _measure(path: str, feeds: dict, runs: int, stats: dict) -> list[np.ndarray]:
    t = time.perf_counter()
    sess = _session(path, "ORT_DISABLE_ALL")
    stats["ort_load_s"] = time.perf_counter() - t
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(None, feeds)
    stats["lat_noopt_ms"] = _latency(sess, feeds, runs)
    del sess
    try:
        t = time.perf_counter()
        sess = _session(path, "ORT_ENABLE_ALL")
        stats["ort_load_all_s"] = time.perf_counter() - t
        stats["lat_all_ms"] = _latency(sess, feeds, runs)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        stats["eval_error"] = "ORT_ENABLE_ALL: " + str(e).strip().splitlines()[0][:200]
    stats["output_names"] = names
    return outs


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ref", "eval"])
    p.add_argument("model")
    p.add_argument("refdir")
    p.add_argument("--spec", default="{}")
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args()
    stats = model_stats(a.model)
    if a.mode == "ref":
        os.makedirs(a.refdir, exist_ok=True)
        feeds = make_inputs(a.model, json.loads(a.spec))
        np.savez(os.path.join(a.refdir, "inputs.npz"), **feeds)
        stats["inputs"] = {k: [list(v.shape), str(v.dtype)] for k, v in feeds.items()}
        outs = _measure(a.model, feeds, a.runs, stats)
        np.savez(os.path.join(a.refdir, "outputs.npz"), *outs)
        stats["max_abs_err"] = 0.0
    else:
        with np.load(os.path.join(a.refdir, "inputs.npz")) as z:
            feeds = {k: z[k] for k in z.files}
        with np.load(os.path.join(a.refdir, "outputs.npz")) as z:
            expected = [z[f"arr_{i}"] for i in range(len(z.files))]
        try:
            outs = _measure(a.model, feeds, a.runs, stats)
        except Exception as e:  # noqa: BLE001
            stats["eval_error"] = "onnxruntime: " + (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            print(json.dumps(stats))
            return 0
        err, why = _error(expected, outs)
        stats["max_abs_err"] = err
        scale = max([1.0] + [float(np.max(np.abs(e))) for e in expected if e.size and e.dtype.kind in "fiu"])
        stats["wrong"] = err is not None and not err <= 1e-3 * scale
        if why:
            stats["eval_error"] = why
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
