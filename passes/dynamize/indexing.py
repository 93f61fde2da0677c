"""Index operands and structured index constants.

Exporters turn ``attention_mask[batch_idx, kv_idx]``, ``torch.gather(buffer, 1, position_ids)``
and rotary angle tables into constants computed at the trace size:

- the TorchScript tracer folds ``kv_arange + batch_arange * T`` into Gather indices and
  ``arange(T)`` into GatherElements indices;
- the dynamo exporter bakes a GatherND index ``[B, 1, 1, T, 2]``: two aranges stacked on the
  last axis (a meshgrid);
- a rotary table is ``arange(T) (x) inv_freq``: an arange whose step differs per column.

Two things make them repairable. The walk follows index operands, not only data operands
(:func:`follow_index`): the output dims of GatherElements are its indices' dims, the leading
output dims of GatherND are its indices' leading dims. And :class:`Affine` recognises every such
constant as one structure: ``base[s] + sum_k i_k * step_k[s]`` where ``i_k`` runs along each
dim that becomes symbolic and ``s`` indexes the dims that stay static (the stacked axis, the
columns of a frequency table). The regenerated tensor is proved equal to the constant at the
trace size (exactly, element by element) before it replaces it.
"""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ...ir.types import from_np_dtype
from .conflicts import shape
from .emit import Emitter
from .structure import Recipe, _dims_at, _index

INDEX_OPS = frozenset({"GatherElements", "GatherND", "ScatterND", "ScatterElements"})


def follow_index(p, a: int, f) -> None:
    """Map output dim ``a`` of an index op to the operand dims it comes from (``f(i, b)``)."""
    if p.op_type.startswith("Scatter"):
        f(0, a)  # a scatter's output is its data, updated in place
        return
    if p.op_type == "GatherElements":
        f(1, a)  # the output has exactly the indices' shape
        return
    si, sd = shape(p.inputs[1]), shape(p.inputs[0])
    if si is None or sd is None or type(si[-1]) is not int:
        return
    lead = len(si) - 1
    if a < lead:
        f(1, a)
    else:
        f(0, p.attr("batch_dims", 0) + si[-1] + (a - lead))


def gather_elements_conflicts(node, alg) -> list:
    """GatherElements needs its data at least as large as its indices on every other axis
    (onnxruntime checks it). A data dim baked at the trace size of a freed indices dim (a
    buffer ``expand``-ed to the batch) must follow that dim."""
    from .conflicts import DimConflict

    sd, si = shape(node.inputs[0]), shape(node.inputs[1])
    if sd is None or si is None or len(sd) != len(si):
        return []
    ax = node.attr("axis", 0)
    ax = ax + len(sd) if ax < 0 else ax
    out = []
    for k, (d, i) in enumerate(zip(sd, si)):
        want = alg.freed_dim(i)
        if k != ax and type(d) is int and want is not None and alg.evaluate(want) == d:
            out.append(DimConflict(node, node.inputs[0], (node, 0), k, d, want,
                                   f"GatherElements data along indices of {want}"))
    return out


def scatter_conflicts(node, alg) -> list:
    """A scatter's indices and updates must cover what its data holds: at other sizes, baked
    indices would leave the new rows untouched and the model would run and be wrong. ScatterND:
    ``updates`` is ``indices.shape[:-1] + data.shape[k:]``; ScatterElements: ``indices`` and
    ``updates`` have one shape, and on every axis but ``axis`` they span the data."""
    from .conflicts import _pair

    sd, si, su = (shape(node.inputs[i]) for i in range(3))
    if sd is None or si is None or su is None:
        return []
    out = []
    if node.op_type == "ScatterND":
        k = si[-1]
        if type(k) is not int or len(su) != len(si) - 1 + len(sd) - k:
            return []
        out += canvas_conflicts(node, alg, k)
        for j in range(len(si) - 1):
            out += _pair(node, (1, node.inputs[1], j), (2, node.inputs[2], j), alg, "ScatterND")
        for j in range(len(sd) - k):
            out += _pair(node, (0, node.inputs[0], k + j), (2, node.inputs[2], len(si) - 1 + j),
                         alg, "ScatterND")
        return out
    if len(si) != len(sd) or len(su) != len(si):
        return []
    ax = node.attr("axis", 0)
    ax = ax + len(sd) if ax < 0 else ax
    for j in range(len(si)):
        out += _pair(node, (1, node.inputs[1], j), (2, node.inputs[2], j), alg, node.op_type)
        if j != ax:
            out += _pair(node, (0, node.inputs[0], j), (1, node.inputs[1], j), alg,
                         node.op_type)
    return out


def _input_shaped(node, alg, dims: list) -> list | None:
    """The symbolic shape of the one graph input whose trace shape is ``dims`` and which has a
    freed dim; None when no input or several different ones match."""
    g = node.graph
    found = []
    while g is not None and g.parent is not None:
        g = g.parent
    for v in (g.inputs if g is not None else []):
        s = shape(v)
        if v.const_value is not None or s is None or len(s) != len(dims):
            continue
        if any(alg.freed_dim(d) is not None for d in s) and \
                [alg.evaluate(d) for d in s] == list(dims) and s not in found:
            found.append(s)
    return found[0] if len(found) == 1 else None


def canvas_conflicts(node, alg, k: int) -> list:
    """``x.new_zeros(x.shape)`` written into by index (BART's ``shift_tokens_right``): the
    tracer folds the canvas into a fill constant of the trace shape, while the scatter's indices
    grow with the freed sizes. Indices past the canvas fail at run time; a canvas larger than
    the indices' reach would hold stale zeros. When the canvas is a pure fill whose shape is
    exactly a freed input's trace shape and the indices depend on a freed size, its indexed dims
    follow that input's (the fill is then regenerated with ConstantOfShape)."""
    from .conflicts import DimConflict
    from .provenance import const_array

    data, sd = node.inputs[0], shape(node.inputs[0])
    arr = const_array(data)
    if arr is None or arr.size == 0 or not (arr == arr.reshape(-1)[0]).all():
        return []
    if not any(alg.freed_dim(d) is not None for d in shape(node.inputs[1])[:-1]):
        return []
    like = _input_shaped(node, alg, list(arr.shape))
    if like is None:
        return []
    out = []
    for j in range(k):
        want = alg.freed_dim(like[j])
        if type(sd[j]) is int and want is not None:
            out.append(DimConflict(node, data, (node, 0), j, sd[j], want,
                                   f"ScatterND canvas shaped like an input ({want})"))
    return out


class Affine(Recipe):
    """``base + sum_k i_k * step_k``: ``i_k`` an arange along changed dim ``k``, ``base`` and
    each ``step_k`` constants over the static dims (size 1 along every changed dim)."""

    def __init__(self, base: np.ndarray, steps: dict, dims: list):
        self.base, self.steps, self.dims = base, steps, list(dims)
        self.what = ("an affine index grid (" + " + ".join(
            ["base"] + [f"i{k}*step{k}" for k in sorted(steps)]) + ")")

    def _term_np(self, k, at) -> np.ndarray:
        n = int(at(self.dims[k]))
        shape = [1] * len(self.dims)
        shape[k] = n
        i = np.arange(n, dtype=np.int64).reshape(shape)
        step = self.steps[k]
        if self.base.dtype.kind in "iu":
            return i * step.astype(np.int64)
        return i.astype(self.base.dtype) * step

    def eval(self, at):
        acc = self.base.astype(np.int64) if self.base.dtype.kind in "iu" else self.base
        for k in sorted(self.steps):
            acc = acc + self._term_np(k, at)
        out = np.broadcast_to(acc, _dims_at(self.dims, at))
        return out.astype(self.base.dtype)

    def emit(self, em: Emitter) -> Value:
        ints = self.base.dtype.kind in "iu"
        acc = em.const(self.base.astype(np.int64) if ints else self.base)
        for k in sorted(self.steps):
            shape = [1] * len(self.dims)
            shape[k] = -1
            i = em.op("Reshape", [_index(em, self.dims[k]), em.i64(shape)])
            step = self.steps[k]
            if ints:
                term = em.op("Mul", [i, em.const(step.astype(np.int64))])
            else:
                term = em.op("Mul", [em.op("Cast", [i], {"to": from_np_dtype(step.dtype)}),
                                     em.const(step)])
            acc = em.op("Add", [acc, term])
        acc = em.op("Expand", [acc, em.vector(self.dims)])
        if ints and self.base.dtype != np.int64:
            acc = em.op("Cast", [acc], {"to": from_np_dtype(self.base.dtype)})
        return acc


def factor_of(alg, want, trace: int):
    """The factor of ``want`` (a product such as ``batch*seq``) that is ``trace`` at the trace
    size: what one dim of a merged (flattened) index must become. None when no factor or more
    than one (batch and seq both 7) has that size: the caller reports it."""
    if alg.evaluate(want) == trace:
        return want
    import itertools

    e = alg.expr(want)
    args = list(e.args) if e.is_Mul else [e]
    found = {}
    for r in range(1, len(args)):
        for sub in itertools.combinations(args, r):
            prod = 1
            for x in sub:
                prod = prod * x
            if alg.evaluate(alg.dim(prod)) == trace:
                found[str(prod)] = prod
    if len(found) != 1:
        return None
    return alg.simplify(alg.dim(next(iter(found.values()))))


class Tiled(Recipe):
    """A block repeated along a merged dim ``s*c`` (batch-major): relative-position tables the
    exporter expanded to ``batch * heads`` rows. ``core`` has the ``c`` rows of one block."""

    def __init__(self, core: np.ndarray, k: int, sym, c: int, dims: list):
        self.core, self.k, self.sym, self.c, self.dims = core, k, sym, c, list(dims)
        self.what = f"a block of {c} rows repeated {sym} times"

    def eval(self, at):
        n = int(at(self.sym))
        return np.concatenate([self.core] * n, axis=self.k)

    def emit(self, em: Emitter) -> Value:
        shape = list(self.core.shape)
        blocks = shape[:self.k] + [1] + shape[self.k:]
        v = em.const(self.core.reshape(blocks))
        v = em.op("Expand", [v, em.vector(shape[:self.k] + [self.sym] + shape[self.k:])])
        return em.op("Reshape", [v, em.vector(self.dims)])


def recognise_tiled(arr: np.ndarray, new_dims: list, at) -> Tiled | None:
    """One changed dim ``c*s`` (``s`` a lone freed symbol) along which ``arr`` repeats a block
    of ``c`` rows, proved at the trace size."""
    from ...ir import SymDim

    changed = [k for k in range(arr.ndim) if type(new_dims[k]) is not int]
    if len(changed) != 1:
        return None
    k = changed[0]
    e = new_dims[k].expr if isinstance(new_dims[k], SymDim) else None
    if e is None or not e.is_Mul:
        return None
    c, rest = e.as_coeff_Mul()
    if not (c.is_Integer and int(c) > 1 and rest.is_Symbol):
        return None
    c, sym = int(c), SymDim(rest.name)
    n = at(sym)
    if n is None or n * c != arr.shape[k]:
        return None
    rec = Tiled(np.ascontiguousarray(arr.take(range(c), axis=k)), k, sym, c, new_dims)
    return rec if np.array_equal(rec.eval(at), arr) else None


def _flat_fill(node, alg):
    """``(flatten, fill, like, lead)`` when ``node`` is a Gather (axis 0) from the flattened
    fill of a freed input's trace shape (``ones(x.shape)`` folded, then flattened); else None."""
    from .provenance import const_array

    data = node.inputs[0]
    p, sd = data.producer, shape(data)
    if node.op_type != "Gather" or node.attr("axis", 0) != 0 or sd is None or \
            type(sd[0]) is not int or p is None or p.op_type not in ("Flatten", "Reshape"):
        return None
    arr = const_array(p.inputs[0])
    if arr is None or arr.size == 0 or not (arr == arr.reshape(-1)[0]).all():
        return None
    lead = p.attr("axis", 1) if p.op_type == "Flatten" else arr.ndim
    if p.op_type == "Reshape" and len(sd) != 1:
        return None
    like = _input_shaped(node, alg, list(arr.shape))
    return None if like is None else (p, p.inputs[0], like, lead)


def reads_flat_canvas(node, index: int, alg) -> bool:
    """Whether ``node`` reads its input ``index`` as a flat row-major index into a flattened
    fill shaped like a freed input: only there is ``b*T + t`` known to be a position in a
    ``[B, T]`` layout (anywhere else a step equal to a trace size may be a plain number)."""
    return index == 1 and _flat_fill(node, alg) is not None


def gather_canvas_conflicts(node, alg) -> list:
    """A Gather from a flattened fill shaped like a freed input: with indices that grow with the
    freed sizes, the fill must follow the input's dims (the walk does not split a merged dim
    back apart, so the conflict is on the fill itself)."""
    from .conflicts import DimConflict

    si, found = shape(node.inputs[1]), _flat_fill(node, alg)
    if found is None or si is None or not any(alg.freed_dim(d) is not None for d in si):
        return []
    p, src, like, lead = found
    out = []
    for j, d in enumerate(shape(src)[:lead]):
        want = alg.freed_dim(like[j])
        if type(d) is int and want is not None:
            out.append(DimConflict(p, src, (p, 0), j, d, want,
                                   f"Gather from a flattened fill shaped like an input ({want})"))
    return out


class FlatIndex(Recipe):
    """``c0 + arange(prod(dims))`` in row-major order: the position of each element in the
    flattened tensor. ``attention_mask[batch_idx, kv_idx]`` traced over a flattened mask gives
    ``b*T + t``, whose step along the batch is the size ``T``, which :class:`Affine` cannot
    hold as a number."""

    def __init__(self, c0: int, dtype, dims: list):
        self.c0, self.dtype, self.dims = c0, np.dtype(dtype), list(dims)
        self.what = "a flat row-major index"

    def eval(self, at):
        shape = _dims_at(self.dims, at)
        return (np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
                + self.c0).astype(self.dtype)

    def emit(self, em: Emitter) -> Value:
        shape = em.vector(self.dims)
        n = em.op("ReduceProd", [shape], {"keepdims": 0})
        start = em.scalar(self.c0)
        v = em.op("Range", [start, em.op("Add", [n, start]), em.scalar(1)])
        v = em.op("Reshape", [v, shape])
        to = from_np_dtype(self.dtype)
        return v if self.dtype == np.int64 else em.op("Cast", [v], {"to": to})


def recognise_flat(arr: np.ndarray, new_dims: list, at) -> FlatIndex | None:
    """A :class:`FlatIndex` reproducing ``arr`` at the trace size, or None. At least two dims
    must change and hold 2 or more elements, so the flat order is seen along each of them."""
    changed = [k for k in range(arr.ndim) if type(new_dims[k]) is not int]
    if len(changed) < 2 or any(arr.shape[k] < 2 for k in changed):
        return None
    rec = FlatIndex(int(arr.reshape(-1)[0]), arr.dtype, new_dims)
    try:
        got = rec.eval(at)
    except (ValueError, TypeError):
        return None
    return rec if got.shape == arr.shape and np.array_equal(got, arr) else None


def recognise_affine(arr: np.ndarray, new_dims: list, at) -> Affine | None:
    """An :class:`Affine` reproducing ``arr`` exactly at the trace size, or None. Every changed
    dim needs at least 2 elements at the trace size (a step cannot be read from one)."""
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        return None
    changed = [k for k in range(arr.ndim) if type(new_dims[k]) is not int]
    if not changed or any(arr.shape[k] < 2 for k in changed):
        return None
    origin = tuple(slice(0, 1) if k in changed else slice(None) for k in range(arr.ndim))
    base = arr[origin]
    wide = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr
    steps = {}
    for k in changed:
        one = tuple(slice(1, 2) if j == k else origin[j] for j in range(arr.ndim))
        step = wide[one] - wide[origin]
        if arr.dtype.kind in "iu" or bool(np.any(step != 0)):
            steps[k] = step.astype(arr.dtype) if arr.dtype.kind == "f" else step
    if arr.dtype.kind in "iu":
        # A step equal to a trace size (``b * T`` folded into a flat index) is a size, not a
        # number: regenerating it as a number would be right only at the trace. Refuse it.
        sizes = {int(at(new_dims[k])) for k in changed} - {0, 1}
        if any(abs(int(x)) in sizes for st in steps.values() for x in st.ravel()):
            return None
    rec = Affine(base, steps, new_dims)
    try:
        got = rec.eval(at)
    except (ValueError, TypeError):
        return None
    if got.shape != arr.shape or not np.array_equal(got, arr):
        return None
    return rec


__all__ = [
    "INDEX_OPS",
    "Affine",
    "FlatIndex",
    "canvas_conflicts",
    "factor_of",
    "follow_index",
    "gather_canvas_conflicts",
    "gather_elements_conflicts",
    "reads_flat_canvas",
    "recognise_affine",
    "recognise_flat",
    "recognise_tiled",
    "scatter_conflicts",
]
