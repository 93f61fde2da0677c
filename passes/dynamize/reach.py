"""Freed sizes that vanish into a baked flat index.

``x.as_strided(...)`` (and some ``unfold`` exports) become a Reshape of the data to one flat
axis and a Gather with a constant index computed at the trace size. The freed size reaches the
flat axis and stops there: the outputs keep their trace shapes, the model runs at every size,
and at any size but the trace it returns the trace's elements. Shape inference sees nothing
wrong, so the run check would pass it; this check reports it first, naming the node.

A constant index into a plain freed axis (``hidden[:, 0]``, the class token) is fine and not
reported: the flat signature is an axis whose size is a product of a freed size and something
else (a flattened tensor), read by a constant index of more than one element.

The same happens at a Resize to baked sizes: MobileViT rounds a feature map up to whole patches
(``interpolate`` to ``ceil(h/2)*2``); traced where the map is 1x1, the export resizes to a fixed
2x2, whatever the input. Where its output meets a freed size again, the rounds rebuild the sizes
(a U-Net's upsampling to its skip's size); where it never does, the input's freed size is lost
there. That is right only where the input keeps its trace size: reported, with the bound that
guarantees it (``height<=32`` when the moduli already rule out every other size up to it).
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


def baked_resizes(graph, alg) -> list[str]:
    """One problem per Resize whose input has a freed spatial size and whose output there is
    still a constant, unless the bounds keep that input at its trace size."""
    out = []
    for n in graph.nodes:
        if n.op_type != "Resize" or n.domain != "" or not n.outputs:
            continue
        sx, so = shape(n.inputs[0]), shape(n.outputs[0])
        if sx is None or so is None or len(sx) != len(so):
            continue
        lost = [(a, alg.freed_dim(sx[a])) for a in range(2, len(sx)) if type(so[a]) is int]
        lost = [(a, d) for a, d in lost if d is not None and not alg.fixed(d)]
        if not lost:
            continue
        dims = ", ".join(f"dim {a} ({d}, {alg.evaluate(d)} at the trace) to a baked {so[a]}"
                         for a, d in lost)
        hint = _pinning(alg, [d for _, d in lost])
        hint = f" (it is with --constraint '{hint}')" if hint else ""
        out.append(f"{label(n)} resizes its input's freed {dims}: the exporter computed those "
                   "sizes at the trace (an interpolation to a size derived from the input, e.g. "
                   "rounded up to whole patches) and the file does not say how they follow the "
                   f"input; right only where the input keeps its trace size{hint}")
    return out


def _pinning(alg, ds: list) -> str | None:
    """The bounds (each freed symbol of ``ds`` at most its trace size) under which every dim of
    ``ds`` keeps its trace value at every allowed size, as --constraint text; else None."""
    names = sorted({s for d in ds for s in alg.symbols_of(d) & alg.freed})
    saved = dict(alg.upper)
    try:
        for s in names:
            alg.upper[s] = min(alg.upper.get(s, alg.binding[s]), alg.binding[s])
        ok = all(alg.fixed(d) for d in ds)
    finally:
        alg.upper = saved
    return "' --constraint '".join(f"{s}<={alg.binding[s]}" for s in names) if ok else None


__all__ = ["baked_resizes", "flat_index_sinks"]
