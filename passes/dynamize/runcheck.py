"""Run the repaired model at sizes other than the trace size.

Verification (against the original, which only runs at the trace size) proves the repair did
not change what the model computes there. This check proves the repair did what it is for: at
other sizes the model runs in onnxruntime and every output has the shape that shape inference
predicts. Sizes are picked near the trace size, as multiples of the divisors the repair assumed
(a Reshape into windows of 4), below the bounds it found (positions indexing a 32-row table), and
satisfying the equalities inference recorded between freed sizes.
"""

from __future__ import annotations

import itertools

import numpy as np

from ...ir import Model, TensorType, lower_model
from .algebra import Algebra


def _ladder(t: int, m: int, bound: int | None) -> tuple[list, list]:
    ups = [t + k * m for k in range(1, 9)]
    downs = [t - k * m for k in range(1, 9) if t - k * m >= 1]
    ok = lambda x: bound is None or x <= bound
    return [x for x in ups if ok(x)], [x for x in downs if ok(x)][::-1]


def _holds(alg: Algebra, cons: list, binding: dict) -> bool:
    saved = alg.binding
    alg.binding = {**saved, **binding}
    try:
        for c in cons:
            a, b = alg.evaluate(c.lhs), alg.evaluate(c.rhs)
            if a is None or b is None:
                continue
            if c.kind == "==" and a != b:
                return False
            if c.kind == "== or 1" and a != b and a != 1 and b != 1:
                return False
        return True
    finally:
        alg.binding = saved


def pick_bindings(alg: Algebra, bounds: dict, cons: list) -> list[dict]:
    """Two bindings of the freed symbols, each different from the trace in every symbol that
    may take another size (a symbol the bounds and moduli pin to its trace size keeps it)."""
    syms = sorted(alg.binding)
    ladders = {s: _ladder(alg.binding[s], alg.modulus.get(s, 1), bounds.get(s)) for s in syms}
    out = []
    for which in (0, 1):
        choices = [ladders[s][which] or ladders[s][1 - which] or [alg.binding[s]] for s in syms]
        for combo in itertools.islice(itertools.product(*choices), 2000):
            b = dict(zip(syms, combo))
            if b == alg.binding:
                break
            if _holds(alg, cons, b) and b not in out:
                out.append(b)
                break
    return out


def _feeds(model: Model, alg: Algebra, binding: dict, seed: int) -> dict:
    """Inputs at ``binding``: floats from a seeded normal, integers 0 and bools False. The check
    is about shapes; 0 is a valid index into any table and a valid length or mask, where random
    integers could trip a model's own value assumptions (lengths - 1 as an index)."""
    from ...ir.types import np_dtype

    rng = np.random.default_rng(seed)
    saved = alg.binding
    alg.binding = {**saved, **binding}
    try:
        feeds = {}
        for v in model.graph.inputs:
            t = v.type
            if v.const_value is not None or not isinstance(t, TensorType) or t.shape is None:
                continue
            dims = []
            for d in t.shape:
                x = alg.evaluate(d) if d is not None else None
                dims.append(2 if x is None else x)
            dt = np.dtype(np_dtype(t.dtype))
            if dt.kind == "f":
                feeds[v.name] = rng.standard_normal(dims).astype(dt)
            else:
                feeds[v.name] = np.zeros(dims, dtype=dt)
        return feeds
    finally:
        alg.binding = saved


_INDEXED = "indices that reach past data kept at its trace size (a folded table, mask or canvas)"
_PATTERNS = {
    **dict.fromkeys(("Gather", "GatherElements", "GatherND", "ScatterND", "ScatterElements"),
                    _INDEXED),
    **dict.fromkeys(("Conv", "ConvTranspose", "MaxPool", "AveragePool"),
                    "a window (kernel, pads, strides) that no longer fits the size (pads computed "
                    "for the trace size, e.g. TF-style 'same' padding)"),
    "Reshape": "a Reshape target that does not match the element count at this size",
}


def describe_failure(model: Model, message: str) -> str:
    """The pattern behind an onnxruntime failure at another size, from the node it names: its
    op and the constant operands it read at their trace shape. Empty when no node is named."""
    import re

    m = re.search(r"Name:'([^']*)'", message)
    node = next((n for n in model.graph.nodes if m and n.name == m.group(1)), None)
    if node is None:
        return ""
    from .conflicts import label
    from .provenance import const_array

    baked = [f"{v.name!r} {list(const_array(v).shape)}" for v in node.inputs
             if v is not None and const_array(v) is not None and const_array(v).ndim > 0]
    what = _PATTERNS.get(node.op_type, "operands of which one kept its trace shape (a folded "
                                       "constant)")
    if baked:
        what += "; constant operands: " + ", ".join(baked)
    return f" (pattern at {label(node)}: {what})"


def check_sizes(model: Model, alg: Algebra, bounds: dict, cons: list) -> tuple[list, list]:
    """Run the model at other sizes. Returns (bindings run, problems)."""
    import onnxruntime as ort

    bindings = pick_bindings(alg, bounds, cons)
    if not bindings:
        return [], []
    data = lower_model(model).SerializeToString()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    outs_pred = {v.name: v.type for v in model.graph.outputs}
    problems, ran = [], []
    for k, b in enumerate(bindings):
        fmt = ", ".join(f"{s}={v}" for s, v in sorted(b.items()))
        try:
            results = sess.run(None, _feeds(model, alg, b, k))
        except Exception as e:  # noqa: BLE001 - any runtime failure is the finding
            first = str(e).splitlines()[0]
            problems.append(f"the repaired model does not run at {fmt}: {first}"
                            f"{describe_failure(model, first)}")
            continue
        saved = alg.binding
        alg.binding = {**saved, **b}
        try:
            for o, r in zip(sess.get_outputs(), results):
                t = outs_pred.get(o.name)
                if not isinstance(t, TensorType) or t.shape is None:
                    continue
                want = [alg.evaluate(d) if d is not None else None for d in t.shape]
                got = list(np.shape(r))
                if len(want) != len(got) or any(w is not None and w != g
                                                for w, g in zip(want, got)):
                    problems.append(f"at {fmt} output {o.name!r} has shape {got}, inference "
                                    f"predicted {[str(d) for d in t.shape]} = {want}")
        finally:
            alg.binding = saved
        ran.append(b)
    return ran, problems


__all__ = ["check_sizes", "describe_failure", "pick_bindings"]
