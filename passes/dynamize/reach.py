"""Freed sizes that vanish into a baked flat index.

``x.as_strided(...)`` (and some ``unfold`` exports) become a Reshape of the data to one flat
axis and a Gather with a constant index computed at the trace size. The freed size reaches the
flat axis and stops there: the outputs keep their trace shapes, the model runs at every size,
and at any size but the trace it returns the trace's elements. Shape inference sees nothing
wrong, so the run check would pass it; this check reports it first, naming the node.

A constant index into a plain freed axis (``hidden[:, 0]``, the class token) is fine and not
reported: the flat signature is an axis whose size is a product of a freed size and something
else (a flattened tensor), read by a constant index of more than one element.
"""

from __future__ import annotations

from .conflicts import label, shape
from .provenance import const_array

_GATHERS = {"Gather": "axis", "GatherElements": "axis", "GatherND": None}


def flat_index_sinks(graph, alg) -> list[str]:
    """One problem per Gather that reads a flattened freed axis through a baked index."""
    out = []
    for n in graph.nodes:
        if n.op_type not in _GATHERS or n.domain != "" or len(n.inputs) < 2:
            continue
        sd = shape(n.inputs[0])
        idx = const_array(n.inputs[1])
        if sd is None or idx is None or idx.size <= 1:
            continue
        ax = n.attr("axis", 0) if _GATHERS[n.op_type] else n.attr("batch_dims", 0)
        ax = ax + len(sd) if ax < 0 else ax
        d = sd[ax] if 0 <= ax < len(sd) else None
        syms = alg.symbols_of(d) & alg.freed
        if not syms or d is None:
            continue
        e = alg.expr(d)
        if not (e.is_Mul or e.is_Add or len(alg.symbols_of(d)) > 1):
            continue  # a plain freed axis: a constant index (the class token) is right
        out.append(f"{label(n)} reads fixed elements {list(idx.shape)} of a flattened axis of "
                   f"size {d} through a constant index computed at the trace size (an "
                   f"as_strided export): {', '.join(sorted(syms))} would reach no output, and "
                   "other sizes would silently return the trace's elements")
    return out


__all__ = ["flat_index_sinks"]
