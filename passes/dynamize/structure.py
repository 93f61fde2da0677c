"""Structured constants, regenerated at any size.

The exporter folds tensors built from sizes (``torch.arange(T)``, ``torch.ones(T, T).tril()``,
``new_zeros(L, B, H)``, a parameter ``expand``-ed to the batch) into constants of the trace size.
:func:`recognise` finds the structure of such a constant along the dims that must become
symbolic and returns a :class:`Recipe`: a small expression that can be evaluated with numpy at the
trace size (to prove the regeneration reproduces the constant exactly) and emitted as ONNX ops:

- a fill (every element equal): ``ConstantOfShape``;
- equal slices along some dims (a broadcast): the slice, ``Expand``-ed;
- an arange along one dim (``c0 + step * i``): ``Range``;
- on two dims, an affine grid (``c0 + a*i + b*j``, relative distances) or a triangle
  (``j - i <= d`` / ``>= d``, two values, e.g. a causal mask): two ``Range``s compared or added.

Anything else (a table of learned values whose rows differ) is not regenerable: the caller reports
it.
"""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ...ir.types import from_np_dtype
from .emit import INT64, Emitter


class Recipe:
    """How to rebuild a constant: ``eval(dims_at)`` with numpy, ``emit(em)`` as ONNX ops."""

    what = ""

    def eval(self, at) -> np.ndarray:  # pragma: no cover - protocol
        raise NotImplementedError

    def emit(self, em: Emitter) -> Value:  # pragma: no cover - protocol
        raise NotImplementedError


def _dims_at(dims, at) -> tuple | None:
    out = []
    for d in dims:
        v = at(d)
        if v is None:
            return None
        out.append(int(v))
    return tuple(out)


class Fill(Recipe):
    def __init__(self, value, dtype, dims):
        self.value = np.asarray(value, dtype=dtype).reshape(1)
        self.dims = list(dims)
        self.what = f"a fill of {self.value[0].item()!r}"

    def eval(self, at):
        return np.full(_dims_at(self.dims, at), self.value[0], dtype=self.value.dtype)

    def emit(self, em):
        return em.op("ConstantOfShape", [em.vector(self.dims)], {"value": self.value})


class Literal(Recipe):
    def __init__(self, arr: np.ndarray):
        self.arr = arr
        self.what = f"the slice {list(arr.shape)}"

    def eval(self, at):
        return self.arr

    def emit(self, em):
        return em.const(self.arr)


class ExpandTo(Recipe):
    def __init__(self, child: Recipe, dims):
        self.child = child
        self.dims = list(dims)
        self.what = f"{child.what}, broadcast"

    def eval(self, at):
        return np.broadcast_to(self.child.eval(at), _dims_at(self.dims, at)).copy()

    def emit(self, em):
        return em.op("Expand", [self.child.emit(em), em.vector(self.dims)])


def _cast(em: Emitter, v: Value, dtype: np.dtype) -> Value:
    to = from_np_dtype(dtype)
    return v if to == INT64 else em.op("Cast", [v], {"to": to})


def _index(em: Emitter, n) -> Value:
    """int64[n]: 0, 1, ..., n-1."""
    return em._memo(("range", str(n)), lambda: em.op(
        "Range", [em.scalar(0), em.scalar(n), em.scalar(1)]))


def _scaled(em, idx: Value, step, dtype) -> Value:
    """``idx * step`` in dtype (ints computed in int64, floats after a cast)."""
    if dtype.kind in "iu":
        v = idx if step == 1 else em.op("Mul", [idx, em.i64([int(step)])])
        return v
    v = _cast(em, idx, dtype)
    return v if step == 1 else em.op("Mul", [v, em.const(np.asarray([step], dtype=dtype))])


def _scaled_np(idx: np.ndarray, step, dtype) -> np.ndarray:
    if dtype.kind in "iu":
        return idx if step == 1 else idx * np.int64(step)
    v = idx.astype(dtype)
    return v if step == 1 else v * np.asarray(step, dtype=dtype)


def _add_const(em, v: Value, c0, dtype) -> Value:
    if c0 == 0:
        return v
    if dtype.kind in "iu":
        return em.op("Add", [v, em.i64([int(c0)])])
    return em.op("Add", [v, em.const(np.asarray([c0], dtype=dtype))])


def _add_const_np(v, c0, dtype):
    if c0 == 0:
        return v
    if dtype.kind in "iu":
        return v + np.int64(c0)
    return v + np.asarray(c0, dtype=dtype)


class Arange(Recipe):
    """``c0 + step * i`` for i in 0..n-1, laid out along one axis of ``core_dims``."""

    def __init__(self, n, c0, step, dtype, core_dims):
        self.n, self.c0, self.step, self.dtype = n, c0, step, np.dtype(dtype)
        self.core_dims = list(core_dims)
        self.what = f"an arange {c0!r} + {step!r}*i"

    def eval(self, at):
        idx = np.arange(at(self.n), dtype=np.int64)
        v = _add_const_np(_scaled_np(idx, self.step, self.dtype), self.c0, self.dtype)
        return v.astype(self.dtype).reshape(_dims_at(self.core_dims, at))

    def emit(self, em):
        v = _add_const(em, _scaled(em, _index(em, self.n), self.step, self.dtype), self.c0,
                       self.dtype)
        if self.dtype.kind in "iu":
            v = _cast(em, v, self.dtype)
        if len(self.core_dims) != 1:
            shape = [-1 if d is self.n else 1 for d in self.core_dims]
            v = em.op("Reshape", [v, em.i64(shape)])
        return v


class Grid(Recipe):
    """A function of (i, j) on two axes: affine ``c0 + a*i + b*j`` or a triangle."""

    def __init__(self, kind, n1, n2, params, dtype, core_dims):
        self.kind, self.n1, self.n2, self.params = kind, n1, n2, params
        self.dtype = np.dtype(dtype)
        self.core_dims = list(core_dims)
        if kind == "affine":
            c0, a, b = params
            self.what = f"an affine grid {c0!r} + {a!r}*i + {b!r}*j"
        else:
            d, p, q = params
            rel = "<=" if kind == "lower" else ">="
            self.what = f"a triangle (j - i {rel} {d} is {p!r}, else {q!r})"

    def eval(self, at):
        i = np.arange(at(self.n1), dtype=np.int64).reshape(-1, 1)
        j = np.arange(at(self.n2), dtype=np.int64).reshape(1, -1)
        if self.kind == "affine":
            c0, a, b = self.params
            v = _add_const_np(_scaled_np(i, a, self.dtype) + _scaled_np(j, b, self.dtype), c0,
                              self.dtype)
            v = v.astype(self.dtype)
        else:
            d, p, q = self.params
            cond = (j - i) < d + 1 if self.kind == "lower" else (j - i) > d - 1
            v = np.where(cond, np.asarray(p, self.dtype), np.asarray(q, self.dtype))
        return v.reshape(_dims_at(self.core_dims, at))

    def emit(self, em):
        i = em.op("Reshape", [_index(em, self.n1), em.i64([-1, 1])])
        j = em.op("Reshape", [_index(em, self.n2), em.i64([1, -1])])
        if self.kind == "affine":
            c0, a, b = self.params
            v = em.op("Add", [_scaled(em, i, a, self.dtype), _scaled(em, j, b, self.dtype)])
            v = _add_const(em, v, c0, self.dtype)
            if self.dtype.kind in "iu":
                v = _cast(em, v, self.dtype)
        else:
            d, p, q = self.params
            diff = em.op("Sub", [j, i])
            if self.kind == "lower":
                cond = em.op("Less", [diff, em.i64(d + 1)])
            else:
                cond = em.op("Greater", [diff, em.i64(d - 1)])
            if self.dtype == np.bool_ and bool(p) and not bool(q):
                v = cond
            elif self.dtype == np.bool_ and not bool(p) and bool(q):
                v = em.op("Not", [cond])
            else:
                v = em.op("Where", [cond, em.const(np.asarray(p, self.dtype)),
                                    em.const(np.asarray(q, self.dtype))])
        if len(self.core_dims) != 2:
            v = em.op("Reshape", [v, em.vector(self.core_dims)])
        return v


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


def recognise(arr: np.ndarray, new_dims: list, at, flat: bool = False) -> Recipe | None:
    """A recipe regenerating ``arr`` with shape ``new_dims`` (ints stay, symbolic dims change),
    proved to give ``arr`` back at the trace binding (``at`` evaluates a dim there), or None.
    ``flat``: the reader is known to index a row-major layout of ``new_dims`` (a flat index
    ``b*T + t`` is then a position, its step a size)."""
    if arr.size == 0 or arr.dtype.kind not in "biuf":
        return None
    rank = arr.ndim
    changed = [k for k in range(rank) if type(new_dims[k]) is not int]
    flat0 = arr.reshape(-1)[0]
    if bool(np.all(arr == flat0)):
        rec: Recipe = Fill(flat0, arr.dtype, new_dims)
        return rec if _equal(rec.eval(at), arr) else None
    if flat and arr.dtype.kind in "iu" and len(changed) > 1:
        from .indexing import recognise_flat  # b*T + t: a step that is a size

        rec = recognise_flat(arr, new_dims, at)
        if rec is not None:
            return rec
    core = arr
    for k in range(rank):
        if core.shape[k] > 1 and bool(np.all(core == core.take([0], axis=k))):
            core = core.take([0], axis=k)
    varying = [k for k in range(rank) if core.shape[k] > 1]
    vc = [k for k in varying if k in changed]
    vs = [k for k in varying if k not in changed]
    core_dims = [new_dims[k] if core.shape[k] > 1 else 1 for k in range(rank)]
    if not vc:
        rec = Literal(core)
    elif vs or len(vc) > 2 or arr.dtype.kind == "b" and len(vc) == 1:
        from .indexing import recognise_affine, recognise_tiled  # meshgrids, repeated blocks

        if arr.dtype.kind == "b":
            return recognise_tiled(arr, new_dims, at)
        return recognise_affine(arr, new_dims, at) or recognise_tiled(arr, new_dims, at)
    elif len(vc) == 1:
        k = vc[0]
        vec = core.reshape(-1)
        c0 = vec[0].item()
        step = (vec[1] - vec[0]).item()
        rec = Arange(new_dims[k], c0, step, arr.dtype, core_dims)
    else:
        k1, k2 = vc
        m = core.reshape(core.shape[k1], core.shape[k2])
        rec = None
        if arr.dtype.kind != "b":
            c0 = m[0, 0].item()
            a = (m[1, 0] - m[0, 0]).item()
            b = (m[0, 1] - m[0, 0]).item()
            cand = Grid("affine", new_dims[k1], new_dims[k2], (c0, a, b), arr.dtype, core_dims)
            # an integer step equal to a trace size is a folded size (b * T), not a number
            sizes = {at(new_dims[k1]), at(new_dims[k2])} - {0, 1}
            folded_size = arr.dtype.kind in "iu" and (abs(a) in sizes or abs(b) in sizes)
            if not folded_size and _equal(cand.eval(at), core):
                rec = cand
        if rec is None:
            vals = np.unique(m)
            if len(vals) != 2:
                return None
            diff = np.arange(m.shape[1]).reshape(1, -1) - np.arange(m.shape[0]).reshape(-1, 1)
            for p, q in ((vals[1], vals[0]), (vals[0], vals[1])):
                c = m == p
                if not c.any():
                    continue
                for kind, d in (("lower", int(diff[c].max())), ("upper", int(diff[c].min()))):
                    cand = Grid(kind, new_dims[k1], new_dims[k2], (d, p.item(), q.item()),
                                arr.dtype, core_dims)
                    if _equal(cand.eval(at), core):
                        rec = cand
                        break
                if rec is not None:
                    break
            if rec is None:
                return None
    if core_dims != list(new_dims):
        rec = ExpandTo(rec, new_dims)
    return rec if _equal(rec.eval(at), arr) else None


__all__ = ["Recipe", "recognise"]
