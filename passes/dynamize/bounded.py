"""The bounded repair: a table folded at the trace length, served for lengths up to it.

The dynamo exporter (and constant folding in the tracer) keeps only the first T rows of a
position table, the rotary cos/sin or a relative-position bias: the full table is gone, so a
length above T cannot be served. Every length up to T still can, by slicing the folded rows:
row i of such a table depends on position i only. The file cannot prove that (a table
normalised by T would break it), so the repair runs only when the user allows it with
``--constraint 'seq<=T'`` (see :mod:`.constraints`); the bound is then recorded, checked and
enforced: the run check stays below it and the refusal for larger sizes names the table.
"""

from __future__ import annotations

import itertools

import numpy as np

from ...ir import SymDim
from .emit import Emitter
from .structure import ExpandTo, Recipe, _dims_at, _index


class Sliced(Recipe):
    """``core[:n_k]`` along each sliced axis ``k`` (``n_k`` a freed size), the rest as is."""

    def __init__(self, core: np.ndarray, dims: list, axes: list[int]):
        self.core, self.dims, self.axes = core, list(dims), list(axes)
        self.what = (f"the first rows of the folded table (sliced to {', '.join(str(dims[k]) for k in axes)}"
                     " at run time)")

    def eval(self, at):
        sizes = _dims_at(self.dims, at)
        return self.core[tuple(slice(0, n) for n in sizes)]

    def emit(self, em: Emitter):
        # Gather rows 0..n-1 rather than Slice: the result has exactly n rows (Slice would
        # give Min(rows, n)), and a size above the folded rows is an index error at run time,
        # never a silently shorter table.
        v = em.const(self.core)
        for k in self.axes:
            v = em.op("Gather", [v, _index(em, self.dims[k])], {"axis": k})
        return v


def _lone(d) -> str | None:
    """The one symbol a dim depends on (``seq``; ``floor(height/4 + 3/4)`` for a feature map
    downsampled from the height), or None."""
    if not isinstance(d, SymDim):
        return None
    if d.is_symbol:
        return d.text
    syms = d.expr.free_symbols
    return next(iter(syms)).name if len(syms) == 1 else None


def _fits(d, sym: str, bound: int, rows: int) -> bool:
    """``d`` stays within ``rows`` for every size of ``sym`` up to ``bound``, and grows with it
    (so the rows it gathers are always the first ones)."""
    if d.is_symbol:
        return bound <= rows
    if bound > 4096:
        return False
    e, x = d.expr, next(iter(d.expr.free_symbols))
    vals = [int(e.subs(x, n)) for n in range(1, bound + 1)]
    return all(a <= b for a, b in itertools.pairwise(vals)) and max(vals) <= rows


def _varying(arr: np.ndarray, new_dims: list):
    """The table without the changed dims it is broadcast along, and the changed dims it
    varies along (the ones to slice)."""
    changed = [k for k in range(arr.ndim) if type(new_dims[k]) is not int]
    core = arr
    for k in changed:
        if core.shape[k] > 1 and bool(np.all(core == core.take([0], axis=k))):
            core = core.take([0], axis=k)
    return core, [k for k in changed if core.shape[k] > 1]


def bounded_recipe(arr: np.ndarray, new_dims: list, at, allowed: dict[str, int]):
    """A :class:`Sliced` recipe (broadcast where the table is) when every dim that must change
    and varies is a lone freed symbol the user bounded by at most its folded rows; else None."""
    core, axes = _varying(arr, new_dims)
    if not axes:
        return None
    for k in axes:
        s = _lone(new_dims[k])
        if s is None or s not in allowed or not _fits(new_dims[k], s, allowed[s], core.shape[k]):
            return None
    core_dims = [new_dims[k] if k in axes else core.shape[k] for k in range(arr.ndim)]
    rec: Recipe = Sliced(np.ascontiguousarray(core), core_dims, axes)
    if core_dims != list(new_dims):
        rec = ExpandTo(rec, new_dims)
    got = rec.eval(at)
    return rec if got.shape == arr.shape and np.array_equal(got, arr) else None


def bounded_hint(arr: np.ndarray, new_dims: list, trace: dict) -> str:
    """What to say when a folded table refuses a size: the constraint that would allow the
    bounded repair (each symbol at most its trace size, where the table was folded), when one
    exists."""
    syms: dict = {}
    for k in _varying(arr, new_dims)[1]:
        s = _lone(new_dims[k])
        if s is None or s not in trace:
            return ""
        syms[s] = trace[s]
    if not syms:
        return ""
    cons = " ".join(f"--constraint '{s}<={n}'" for s, n in sorted(syms.items()))
    return (f"; sizes up to the folded rows can be served by slicing them ({cons}: right when "
            "row i depends on position i only)")


__all__ = ["Sliced", "bounded_hint", "bounded_recipe"]
