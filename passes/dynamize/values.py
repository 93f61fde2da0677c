"""Values that merely equal a freed size: ``y.sum(1) / T`` traced as a division by 7.0.

No shape proves that a scalar 7.0 is the sequence length: it is a number, and numbers coincide
(GELU's ``Pow(x, 3.0)`` with a batch of 3). The evidence used here is narrow on purpose: a
``Div`` by (or ``Mul`` by the reciprocal of) a scalar constant whose other operand sums, through
elementwise ops only, over axes whose product is a freed size equal to that scalar at the trace.
Such a value is reported; it is rewritten into the runtime size only on request
(``--dynamize-values``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import Graph, Node, Value
from .algebra import Algebra
from .conflicts import shape, symval
from .provenance import UNARY_OPS, const_array

_PASS_THROUGH = UNARY_OPS | {"Add", "Sub", "Mul", "Div"}
_SUMS = frozenset({"ReduceSum"})


@dataclass
class SizeValue:
    node: Node
    index: int
    const: Value
    value: float
    size: object  # the dim it equals
    reduce: Node
    reciprocal: bool


def _reduced_size(n: Node, alg: Algebra):
    s = shape(n.inputs[0])
    if s is None:
        return None
    if "axes" in n.attributes:
        axes = list(n.attr("axes"))
    elif len(n.inputs) > 1 and n.inputs[1] is not None:
        axes = symval(n.inputs[1])
        if axes is None:
            arr = const_array(n.inputs[1])
            axes = None if arr is None else [int(x) for x in arr.reshape(-1)]
    else:
        axes = [] if n.attr("noop_with_empty_axes", 0) else list(range(len(s)))
    if axes is None or not axes:
        return None
    dims = [s[a + len(s) if a < 0 else a] for a in axes]
    if any(d is None for d in dims):
        return None
    return alg.prod(dims)


def _find_sum(v: Value, depth: int = 0) -> Node | None:
    p = v.producer
    if p is None or depth > 6:
        return None
    if p.op_type in _SUMS:
        return p
    if p.op_type in _PASS_THROUGH and p.inputs and p.inputs[0] is not None:
        return _find_sum(p.inputs[0], depth + 1)
    return None


def find_size_values(graph: Graph, alg: Algebra) -> list[SizeValue]:
    out = []
    for n in graph.nodes:
        if n.op_type not in ("Div", "Mul") or len(n.inputs) != 2:
            continue
        slots = [1] if n.op_type == "Div" else [0, 1]
        for k in slots:
            c = n.inputs[k]
            arr = const_array(c) if c is not None else None
            if arr is None or arr.size != 1 or arr.dtype.kind not in "fiu":
                continue
            x = float(arr.reshape(-1)[0])
            if x == 0:
                continue
            red = _find_sum(n.inputs[1 - k])
            if red is None:
                continue
            size = _reduced_size(red, alg)
            if size is None or not alg.has_freed(size):
                continue
            t = alg.evaluate(size)
            if t is None:
                continue
            recip = n.op_type == "Mul"
            if (not recip and x == t) or (recip and abs(x * t - 1) < 1e-6):
                out.append(SizeValue(n, k, c, x, size, red, recip))
    return out


def rewrite_size_value(sv: SizeValue, em) -> Value:
    arr = const_array(sv.const)
    from ...ir.types import from_np_dtype

    v = em.scalar(sv.size, from_np_dtype(arr.dtype))
    if sv.reciprocal:
        v = em.op("Reciprocal", [v])
    if arr.ndim:
        v = em.op("Reshape", [v, em.i64(list(arr.shape))])
    return v


__all__ = ["SizeValue", "find_size_values", "np", "rewrite_size_value"]
