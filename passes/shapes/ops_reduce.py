"""Reductions: axes as an attribute (older opsets) or an input, keepdims, noop_with_empty_axes.

ReduceSum/Prod/Max/Min of a small shape tensor also compute its value (``numel`` patterns).
"""

from __future__ import annotations

from . import values as V
from .common import norm_axis
from .context import NodeCtx, obj_array
from .table import shape_fn

REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
_FOLD = {"ReduceSum": V.add, "ReduceProd": V.mul, "ReduceMax": V.dmax, "ReduceMin": V.dmin}


@shape_fn("", *REDUCE)
def _reduce(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    keep = n.attr("keepdims", 1)
    noop = n.attr("noop_with_empty_axes", 0)
    if n.has_attr("axes"):
        axes = list(n.attr("axes"))
    elif n.has(1):
        axes = n.ints(1)
        if axes is None:
            if s is None:
                n.set(0, dt, None)
            elif keep:
                n.set(0, dt, [None] * len(s))
            else:
                k = n.shape(1)
                if k is not None and len(k) == 1 and type(k[0]) is int:
                    n.set(0, dt, [None] * (len(s) - k[0]))
                else:
                    n.set(0, dt, None)
            return
    else:
        axes = []
    if s is None:
        n.set(0, dt, None)
        return
    r = len(s)
    if not axes:
        if noop:
            n.set(0, dt, s, n.vals(0))
            return
        ax = set(range(r))
    else:
        ax = set()
        for a in axes:
            a2 = norm_axis(a, r)
            if a2 is None:
                n.error(f"{n.node.op_type}: axis {a} out of range for rank {r}")
                return
            ax.add(a2)
    out = [(1 if i in ax else d) for i, d in enumerate(s) if keep or i not in ax]
    vals = None
    a = n.vals(0)
    f = _FOLD.get(n.node.op_type)
    if a is not None and f is not None and ax == set(range(r)) and a.size:
        acc = None
        for x in a.flat:
            acc = x if acc is None else f(acc, x, dt)
        vals = obj_array([acc], [1] * len(out))
    n.set(0, dt, out, vals)


__all__ = ["REDUCE"]
