"""Shape-manipulating ops and the ops that compute shapes.

Shape, Size, Constant, ConstantOfShape, Reshape, Flatten, Transpose, Concat, Split, Slice,
Squeeze, Unsqueeze, Expand, Tile, Pad, Gather, GatherElements, GatherND, Range, NonZero, Unique,
TopK, ArgMax/ArgMin, Compress, OneHot, DepthToSpace, SpaceToDepth, CenterCropPad, Einsum,
Identity-like moves. Element values (``vals``) move with the data where the op rearranges them.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import SymDim
from . import dims as D
from . import values as V
from .common import broadcast, ints_arg, norm_axis
from .context import INT64, MAX_VALS, NodeCtx, is_concrete, obj_array, vals_from_numpy
from .table import shape_fn

# Slice starts/ends at or past 10**9 mean "to the end" (INT32_MAX, INT64_MAX, 1e9 sentinels):
# the one assumption here beyond positive dims is that no dim reaches 10**9.
BIG = 10**9


def _static(shape) -> bool:
    return shape is not None and all(type(d) is int for d in shape)


def _rank_of_target(n: NodeCtx, i: int) -> list | None:
    """Unknown dims, as many as input ``i`` (a shape tensor whose values are unknown) has
    elements when its length is static; None when that is unknown too."""
    ts = n.shape(i)
    return [None] * ts[0] if ts is not None and len(ts) == 1 and type(ts[0]) is int else None


def _reshape_vals(a: np.ndarray | None, shape) -> np.ndarray | None:
    if a is None or not _static(shape):
        return None
    n = math.prod(shape)
    if n != a.size:
        return None
    return a.reshape(tuple(shape))


@shape_fn("", "Shape")
def _shape(n: NodeCtx) -> None:
    s = n.shape(0)
    if s is None:
        n.set(0, INT64, [None])
        return
    r = len(s)
    start = n.attr("start", 0)
    end = n.attr("end", None)
    start = max(0, min(r, start + r if start < 0 else start))
    end = r if end is None else max(0, min(r, end + r if end < 0 else end))
    dims = list(s[start:end]) if end > start else []
    n.set(0, INT64, [len(dims)], obj_array(dims, (len(dims),)))


@shape_fn("", "Size")
def _size(n: NodeCtx) -> None:
    s = n.shape(0)
    v = D.prod(s) if s is not None else None
    n.set(0, INT64, [], obj_array([v], ()))


@shape_fn("", "Constant")
def _constant(n: NodeCtx) -> None:
    for name in ("value", "value_float", "value_floats", "value_int", "value_ints",
                 "value_string", "value_strings", "sparse_value"):
        if n.has_attr(name):
            v = n.attr(name)
            break
    else:
        return
    if name == "value":
        arr = None
        if v.dtype != 8 and v.size <= MAX_VALS:
            try:
                arr = vals_from_numpy(v.numpy())
            except Exception:  # an undecodable tensor: type only
                arr = None
        n.set(0, v.dtype, list(v.dims), arr)
    elif name == "value_float":
        n.set(0, 1, [], obj_array([float(v)], ()))
    elif name == "value_floats":
        n.set(0, 1, [len(v)], obj_array([float(x) for x in v], (len(v),))
              if len(v) <= MAX_VALS else None)
    elif name == "value_int":
        n.set(0, INT64, [], obj_array([int(v)], ()))
    elif name == "value_ints":
        n.set(0, INT64, [len(v)], obj_array([int(x) for x in v], (len(v),))
              if len(v) <= MAX_VALS else None)
    elif name == "value_string":
        n.set(0, 8, [])
    elif name == "value_strings":
        n.set(0, 8, [len(v)])
    elif name == "sparse_value":
        n.set(0, v.values.data_type, list(v.dims))


@shape_fn("", "ConstantOfShape")
def _constant_of_shape(n: NodeCtx) -> None:
    t = n.attr("value")
    dtype, fill = 1, 0.0
    if t is not None:
        dtype = t.dtype
        try:
            fill = t.numpy().reshape(-1)[0].item()
        except Exception:  # undecodable fill value: shape only
            fill = None
    dimsl = n.dimlist(0)
    if dimsl is None:
        n.set(0, dtype, _rank_of_target(n, 0))
        return
    for d in dimsl:
        if type(d) is int and d < 0:
            n.error(f"ConstantOfShape: negative dim {d}")
            return
    vals = None
    if _static(dimsl) and fill is not None:
        k = math.prod(dimsl)
        if k <= MAX_VALS:
            vals = obj_array([fill] * k, dimsl)
    n.set(0, dtype, dimsl, vals)


@shape_fn("", "Reshape")
def _reshape(n: NodeCtx) -> None:
    data = n.shape(0)
    dt = n.dtype(0)
    if n.has_attr("shape") and not n.has(1):  # Reshape-1
        target = list(n.attr("shape"))
    else:
        target = n.dimlist(1)
    if target is None:
        n.set(0, dt, _rank_of_target(n, 1))
        return
    allowzero = n.attr("allowzero", 0)
    out: list = []
    minus = None
    for i, t in enumerate(target):
        if type(t) is int:
            if t == -1:
                if minus is not None:
                    n.error("Reshape: more than one -1 in the target shape")
                    return
                minus = i
                out.append(None)
                continue
            if t == 0 and not allowzero:
                if data is not None and i < len(data):
                    out.append(data[i])
                elif data is not None:
                    n.error(f"Reshape: target copies dim {i} of a rank-{len(data)} input")
                    return
                else:
                    out.append(None)
                continue
            if t < -1:
                n.error(f"Reshape: invalid target dim {t}")
                return
        out.append(t)
    total = D.prod(data) if data is not None else None
    if minus is not None:
        rest = D.prod(d for j, d in enumerate(out) if j != minus)
        if total is not None and rest is not None:
            if type(total) is int and type(rest) is int:
                if rest == 0 or total % rest:
                    if not (rest == 0 and total == 0):
                        n.error(f"Reshape: {total} elements do not fit {target}")
                        return
                    out[minus] = None
                else:
                    out[minus] = total // rest
            else:
                out[minus] = D.truediv(total, rest)
    elif total is not None and type(total) is int:
        got = D.prod(out)
        if type(got) is int and got != total:
            n.error(f"Reshape: {total} elements reshaped to {out} ({got} elements)")
            return
    n.set(0, dt, out, _reshape_vals(n.vals(0), out))


@shape_fn("", "Flatten")
def _flatten(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    if s is None:
        n.set(0, dt, [None, None])
        return
    axis = n.attr("axis", 1)
    if axis < 0:
        axis += len(s)
    out = [D.prod(s[:axis]), D.prod(s[axis:])]
    n.set(0, dt, out, _reshape_vals(n.vals(0), out))


@shape_fn("", "Transpose")
def _transpose(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    perm = n.attr("perm")
    if s is None:
        n.set(0, dt, None if perm is None else [None] * len(perm))
        return
    perm = list(perm) if perm is not None else list(range(len(s) - 1, -1, -1))
    if sorted(perm) != list(range(len(s))):
        n.error(f"Transpose: perm {perm} does not fit rank {len(s)}")
        return
    out = [s[p] for p in perm]
    a = n.vals(0)
    n.set(0, dt, out, None if a is None else np.transpose(a, perm))


@shape_fn("", "Concat")
def _concat(n: NodeCtx) -> None:
    idx = [i for i in range(n.n_in) if n.has(i)]
    shapes = [n.shape(i) for i in idx]
    dt = next((n.dtype(i) for i in idx if n.dtype(i)), 0)
    known = [s for s in shapes if s is not None]
    if not known:
        n.set(0, dt, None)
        return
    r = len(known[0])
    if any(len(s) != r for s in known):
        n.error(f"Concat: inputs of ranks {sorted({len(s) for s in known})}")
        return
    axis = norm_axis(n.attr("axis", 0), r)
    if axis is None:
        n.error(f"Concat: axis {n.attr('axis')} out of range for rank {r}")
        return
    out = []
    for k in range(r):
        if k == axis:
            out.append(None if len(known) < len(shapes) else D.fsum(s[k] for s in known))
            continue
        d = None
        for s in known:
            d = n.require_equal(d, s[k], f"Concat input dim {k}") if d is not None else s[k]
        out.append(d)
    vals = None
    arrs = [n.vals(i) for i in idx]
    if all(a is not None for a in arrs) and arrs:
        try:
            vals = np.concatenate(arrs, axis=axis)
        except ValueError:
            vals = None
    n.set(0, dt, out, vals)


@shape_fn("", "Split")
def _split(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    k = n.n_out
    if s is None:
        for i in range(k):
            n.set(i, dt, None)
        return
    axis = norm_axis(n.attr("axis", 0), len(s))
    if axis is None:
        n.error("Split: axis out of range")
        return
    present, sizes = ints_arg(n, "split", 1)
    if present and sizes is None:
        sizes = n.dimlist(1) if n.has(1) else None
    d = s[axis]
    if present and sizes is None:
        outs = [None] * k
    elif present and sizes is not None:
        if len(sizes) != k:
            n.error(f"Split: {len(sizes)} sizes for {k} outputs")
            return
        outs = list(sizes)
        total = D.fsum(outs)
        if type(total) is int and type(d) is int and total != d:
            n.error(f"Split: sizes {sizes} do not add up to {d}")
            return
    elif n.has_attr("num_outputs"):
        chunk = D.ceildiv(d, k)
        outs = [chunk] * (k - 1) + [D.sub(d, D.mul(chunk, k - 1))]
    else:
        if type(d) is int and d % k:
            n.error(f"Split: dim {d} does not split evenly into {k}")
            return
        outs = [D.truediv(d, k)] * k
    a = n.vals(0)
    off = 0
    for i, o in enumerate(outs):
        shape = list(s)
        shape[axis] = o
        vals = None
        if a is not None and type(o) is int and off is not None:
            sl = [slice(None)] * a.ndim
            sl[axis] = slice(off, off + o)
            vals = a[tuple(sl)]
        off = off + o if (off is not None and type(o) is int) else None
        n.set(i, dt, shape, vals)


def _clamp(s, d, step_pos: bool):
    """A start/end clamped to [0, d] (step > 0) or [-1, d - 1] (step < 0)."""
    if s is None or d is None:
        return None
    if type(s) is int:
        if step_pos:
            if s >= BIG:
                return d
            if s < 0:
                return D.dmax(0, D.add(d, s)) if s > -BIG else 0
            return 0 if s == 0 else D.dmin(s, d)
        if s >= BIG:
            return D.sub(d, 1)
        if s < 0:
            return D.dmax(-1, D.add(d, s)) if s > -BIG else -1
        return D.dmin(s, D.sub(d, 1))
    nn = D.nonneg(s)
    if nn is True:
        return D.dmin(s, d) if step_pos else D.dmin(s, D.sub(d, 1))
    if nn is False:
        return D.dmax(0, D.add(d, s)) if step_pos else D.dmax(-1, D.add(d, s))
    return None


def slice_dim(d, start, end, step):
    """Length of ``x[start:end:step]`` along a dim of size ``d`` (ONNX clamping rules).

    ``d`` is a real dim, so d >= 0: clamped bounds lie in [0, d] (or [-1, d - 1]), and a slice
    from the first element, or to the last, has a non-negative length without a ``Max(0, ...)``.
    """
    if step is None or start is None or end is None or type(step) is not int or step == 0:
        return None
    if step > 0:
        to_end = (type(end) is int and end >= BIG) or end == d
        if to_end and type(start) is int and start < 0:
            return D.ceildiv(D.dmin(-start, d), step) if start > -BIG else D.ceildiv(d, step)
        s = _clamp(start, d, True)
        e = _clamp(end, d, True)
        if s is None or e is None:
            return None
        n = D.ceildiv(D.sub(e, s), step)
        return n if (s == 0 or e == d) else D.dmax(0, n)
    s = _clamp(start, d, False)
    e = _clamp(end, d, False)
    if s is None or e is None:
        return None
    n = D.ceildiv(D.sub(s, e), -step)
    return n if (e == -1 or s == D.sub(d, 1)) else D.dmax(0, n)


@shape_fn("", "Slice")
def _slice(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    if n.has_attr("starts"):  # Slice-1
        starts, ends, axes = list(n.attr("starts")), list(n.attr("ends")), n.attr("axes")
        axes = list(axes) if axes is not None else None
        steps = None
    else:
        starts, ends = n.dimlist(1), n.dimlist(2)
        axes = n.ints(3) if n.has(3) else None
        steps = n.ints(4) if n.has(4) else None
        if (n.has(3) and axes is None) or (n.has(4) and steps is None) or starts is None \
                or ends is None:
            if s is None:
                n.set(0, dt, None)
                return
            # Which axes are sliced is unknown: every dim may change.
            if axes is not None:
                out = list(s)
                for a in axes:
                    a2 = norm_axis(a, len(s))
                    if a2 is not None:
                        out[a2] = None
                n.set(0, dt, out)
            else:
                n.set(0, dt, [None] * len(s))
            return
    if s is None:
        n.set(0, dt, None)
        return
    r = len(s)
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)):
        n.error("Slice: starts, ends, axes and steps differ in length")
        return
    out = list(s)
    py: list = [slice(None)] * r
    concrete = True
    for st, en, ax, sp_ in zip(starts, ends, axes, steps):
        a = norm_axis(ax, r)
        if a is None:
            n.error(f"Slice: axis {ax} out of range for rank {r}")
            return
        out[a] = slice_dim(s[a], st, en, sp_)
        if type(st) is int and type(en) is int:
            py[a] = slice(max(min(st, 2**62), -2**62), max(min(en, 2**62), -2**62), sp_)
        else:
            concrete = False
    vals = None
    v = n.vals(0)
    if v is not None and concrete:
        vals = v[tuple(py)]
    n.set(0, dt, out, vals)


@shape_fn("", "Squeeze")
def _squeeze(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    present, axes = ints_arg(n, "axes", 1)
    if present and axes is None:
        if s is not None and n.shape(1) is not None and type(n.shape(1)[0]) is int:
            n.set(0, dt, [None] * (len(s) - n.shape(1)[0]))
        else:
            n.set(0, dt, None)
        return
    if s is None:
        n.set(0, dt, None)
        return
    r = len(s)
    if present:
        ax = set()
        for a in axes:
            a2 = norm_axis(a, r)
            if a2 is None:
                n.error(f"Squeeze: axis {a} out of range for rank {r}")
                return
            if type(s[a2]) is int and s[a2] != 1:
                n.error(f"Squeeze: axis {a} has dim {s[a2]}, not 1")
                return
            if s[a2] is not None and type(s[a2]) is not int:
                n.inf.constraint(s[a2], 1, "==", n.node, "Squeeze")
            ax.add(a2)
    else:
        if any(type(d) is not int for d in s):
            n.set(0, dt, None)
            return
        ax = {i for i, d in enumerate(s) if d == 1}
    out = [d for i, d in enumerate(s) if i not in ax]
    n.set(0, dt, out, _reshape_vals(n.vals(0), out))


@shape_fn("", "Unsqueeze")
def _unsqueeze(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    _, axes = ints_arg(n, "axes", 1)
    if axes is None or s is None:
        if s is not None and n.has(1) and n.shape(1) is not None and type(n.shape(1)[0]) is int:
            n.set(0, dt, [None] * (len(s) + n.shape(1)[0]))
        else:
            n.set(0, dt, None)
        return
    r = len(s) + len(axes)
    ax = set()
    for a in axes:
        a2 = norm_axis(a, r)
        if a2 is None or a2 in ax:
            n.error(f"Unsqueeze: bad axes {axes} for rank {len(s)}")
            return
        ax.add(a2)
    it = iter(s)
    out = [1 if i in ax else next(it) for i in range(r)]
    n.set(0, dt, out, _reshape_vals(n.vals(0), out))


def _grown_vals(out, make):
    """The values of an op that grows its input (Expand, Tile): ``make()`` when ``out`` is
    static with at most MAX_VALS elements, else None. The count is checked before anything is
    allocated: a hostile target shape (1e6 x 1e6 x 1e3) must cost nothing."""
    if not _static(out) or math.prod(out) > MAX_VALS:
        return None
    try:
        return make()
    except ValueError:  # numpy refuses the operands: the values stay unknown
        return None


@shape_fn("", "Expand")
def _expand(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    target = n.dimlist(1)
    if target is None:
        ts = n.shape(1)
        if s is not None and ts is not None and len(ts) == 1 and type(ts[0]) is int:
            r = max(len(s), ts[0])
            pad = [1] * (r - len(s)) + list(s)
            n.set(0, dt, [d if type(d) is int and d > 1 else None for d in pad])
        else:
            n.set(0, dt, None)
        return
    out = broadcast(n, [s, target], "Expand")
    a = n.vals(0)
    vals = None if a is None else _grown_vals(out, lambda: np.broadcast_to(a, tuple(out)).copy())
    n.set(0, dt, out, vals)


@shape_fn("", "Tile")
def _tile(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    reps = n.dimlist(1)
    if s is None:
        n.set(0, dt, None)
        return
    if reps is None:
        n.set(0, dt, [None] * len(s))
        return
    if len(reps) != len(s):
        n.error(f"Tile: {len(reps)} repeats for rank {len(s)}")
        return
    out = [D.mul(d, r) for d, r in zip(s, reps)]
    a = n.vals(0)
    vals = None
    if a is not None and a.ndim and all(type(r) is int for r in reps):
        vals = _grown_vals(out, lambda: np.tile(a, reps))
    n.set(0, dt, out, vals)


@shape_fn("", "Pad")
def _pad(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    if s is None:
        n.set(0, dt, None)
        return
    r = len(s)
    if n.has_attr("pads") and not n.has(1):
        pads = list(n.attr("pads"))
    elif n.has_attr("paddings"):  # Pad-1
        pads = list(n.attr("paddings"))
    else:
        pads = n.dimlist(1)
    axes = list(range(r))
    if n.has(3):
        axes = n.ints(3)
        if axes is None:
            n.set(0, dt, [None] * r)
            return
        axes = [norm_axis(a, r) for a in axes]
    if pads is None:
        n.set(0, dt, [None if i in axes else d for i, d in enumerate(s)])
        return
    k = len(axes)
    if len(pads) != 2 * k:
        n.error(f"Pad: {len(pads)} pads for {k} axes")
        return
    out = list(s)
    for j, a in enumerate(axes):
        if a is None:
            n.error("Pad: axis out of range")
            return
        out[a] = D.add(D.add(s[a], pads[j]), pads[j + k])
        if type(out[a]) is int and out[a] < 0:
            n.error(f"Pad: negative output dim {out[a]}")
            return
    n.set(0, dt, out)


@shape_fn("", "Gather")
def _gather(n: NodeCtx) -> None:
    s, ix = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if s is None or ix is None:
        n.set(0, dt, None)
        return
    axis = norm_axis(n.attr("axis", 0), len(s))
    if axis is None:
        n.error(f"Gather: axis {n.attr('axis', 0)} out of range for rank {len(s)}")
        return
    out = list(s[:axis]) + list(ix) + list(s[axis + 1:])
    vals = None
    a, idx = n.vals(0), n.ints(1)
    if a is not None and idx is not None and a.ndim:
        d = a.shape[axis]
        fixed = []
        for i in idx:
            if not -d <= i < d:
                n.error(f"Gather: index {i} out of range for dim {d}")
                return
            fixed.append(i + d if i < 0 else i)
        ia = np.array(fixed, dtype=np.int64).reshape(tuple(ix))
        vals = np.take(a, ia, axis=axis)
    n.set(0, dt, out, vals)


@shape_fn("", "GatherElements")
def _gather_elements(n: NodeCtx) -> None:
    dt = n.dtype(0)
    s = n.shape(1)
    n.set(0, dt, None if s is None else list(s))


@shape_fn("", "GatherND")
def _gather_nd(n: NodeCtx) -> None:
    s, ix = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if s is None or ix is None or not ix or type(ix[-1]) is not int:
        n.set(0, dt, None)
        return
    b = n.attr("batch_dims", 0)
    k = ix[-1]
    n.set(0, dt, list(ix[:-1]) + list(s[b + k:]))


@shape_fn("", "Range")
def _range(n: NodeCtx) -> None:
    dt = n.dtype(0) or n.dtype(1) or n.dtype(2)
    start, limit, delta = n.scalar(0), n.scalar(1), n.scalar(2)
    count = None
    if start is not None and limit is not None and delta is not None:
        if not isinstance(start, SymDim) and not isinstance(limit, SymDim) \
                and not isinstance(delta, SymDim):
            if delta == 0:
                n.error("Range: delta is 0")
                return
            if dt in (1, 10, 11):  # limit - start in the tensor's float type, as runtimes do
                t = {1: np.float32, 10: np.float16, 11: np.float64}[dt]
                diff = float(t(limit) - t(start))
            else:
                diff = limit - start
            count = max(0, math.ceil(diff / delta))
        elif type(delta) is int or (isinstance(delta, float) and delta == int(delta)):
            dl = int(delta)
            diff = V.sub(limit, start, dt)
            if dt in (6, 7) or dt == 0:
                count = D.dmax(0, D.ceildiv(diff, dl)) if dl else None
            elif isinstance(diff, SymDim) or diff is not None:
                c = V.ceil(V.div(diff, float(dl), dt), dt) if dl else None
                if isinstance(c, float):
                    c = int(c)
                count = D.dmax(0, c) if c is not None else None
    vals = None
    if type(count) is int and count <= MAX_VALS:
        items = []
        cur = start
        for _ in range(count):
            items.append(cur)
            cur = V.add(cur, delta, dt)
        vals = obj_array(items, (count,))
    n.set(0, dt, [count], vals)


@shape_fn("", "RandomNormal", "RandomUniform")
def _random(n: NodeCtx) -> None:
    shape = n.attr("shape")
    n.set(0, n.attr("dtype", 1), None if shape is None else list(shape))


@shape_fn("", "Multinomial")
def _multinomial(n: NodeCtx) -> None:
    s = n.shape(0)
    n.set(0, n.attr("dtype", 6), [s[0] if s is not None else None, n.attr("sample_size", 1)])


@shape_fn("", "NonZero")
def _nonzero(n: NodeCtx) -> None:
    s = n.shape(0)
    r = len(s) if s is not None else None
    a = n.vals(0)
    if a is not None and is_concrete(a):
        k = int(sum(1 for x in a.flat if x))
        vals = None
        if (r or 1) * k <= MAX_VALS:
            nz = np.nonzero(np.array([bool(x) for x in a.flat]).reshape(a.shape))
            vals = obj_array([int(x) for x in np.array(nz).reshape(-1)], (max(r, 1) if r else 1, k)) \
                if r else None
        n.set(0, INT64, [r, k], vals)
        return
    if s is not None and _static(s) and D.prod(s) == 0:
        n.set(0, INT64, [r, 0])
        return
    n.set(0, INT64, [r, n.fresh("nz")])


@shape_fn("", "Unique")
def _unique(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    axis = n.attr("axis")
    a = n.vals(0)
    u = None
    if a is not None and is_concrete(a) and axis is None:
        u = len(set(a.flat))
    elif s is not None and axis is not None:
        ax = norm_axis(axis, len(s))
        if ax is not None and a is not None and is_concrete(a):
            arr = np.array(a.tolist())
            u = np.unique(arr, axis=ax).shape[ax]
    if u is None:
        u = n.fresh("uniq")
    if axis is None:
        n.set(0, dt, [u])
        n.set(2, INT64, [D.prod(s) if s is not None else None])
    else:
        if s is None:
            n.set(0, dt, None)
            n.set(2, INT64, [None])
        else:
            ax = norm_axis(axis, len(s))
            out = list(s)
            out[ax] = u
            n.set(0, dt, out)
            n.set(2, INT64, [s[ax]])
    n.set(1, INT64, [u])
    n.set(3, INT64, [u])


@shape_fn("", "TopK")
def _topk(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    k = n.scalar(1) if n.has(1) else n.attr("k")
    if isinstance(k, float):
        k = int(k)
    if s is None:
        n.set(0, dt, None)
        n.set(1, INT64, None)
        return
    axis = norm_axis(n.attr("axis", -1), len(s))
    if axis is None:
        n.error("TopK: axis out of range")
        return
    if type(k) is int and type(s[axis]) is int and k > s[axis]:
        n.error(f"TopK: k={k} exceeds dim {s[axis]}")
        return
    out = list(s)
    out[axis] = k
    n.set(0, dt, out)
    n.set(1, INT64, out)


@shape_fn("", "ArgMax", "ArgMin")
def _argmax(n: NodeCtx) -> None:
    s = n.shape(0)
    if s is None:
        n.set(0, INT64, None)
        return
    axis = norm_axis(n.attr("axis", 0), len(s))
    if axis is None:
        n.error("axis out of range")
        return
    if n.attr("keepdims", 1):
        out = list(s)
        out[axis] = 1
    else:
        out = [d for i, d in enumerate(s) if i != axis]
    n.set(0, INT64, out)


@shape_fn("", "Compress")
def _compress(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    c = n.vals(1)
    k = None
    if c is not None and is_concrete(c):
        k = sum(1 for x in c.flat if x)
    axis = n.attr("axis")
    if k is None:
        k = n.fresh("compress")
    if axis is None:
        n.set(0, dt, [k])
        return
    if s is None:
        n.set(0, dt, None)
        return
    ax = norm_axis(axis, len(s))
    out = list(s)
    out[ax] = k
    n.set(0, dt, out)


@shape_fn("", "OneHot")
def _onehot(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(2)
    depth = n.scalar(1)
    if isinstance(depth, float):
        depth = int(depth)
    if s is None:
        n.set(0, dt, None)
        return
    r = len(s) + 1
    axis = norm_axis(n.attr("axis", -1), r)
    out = list(s)
    out.insert(axis, depth)
    n.set(0, dt, out)


@shape_fn("", "DepthToSpace", "SpaceToDepth")
def _d2s(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    b = n.attr("blocksize")
    if s is None or len(s) != 4 or not b:
        n.set(0, dt, None if s is None else [None] * len(s))
        return
    N, C, H, W = s
    if n.node.op_type == "DepthToSpace":
        out = [N, D.truediv(C, b * b), D.mul(H, b), D.mul(W, b)]
    else:
        out = [N, D.mul(C, b * b), D.truediv(H, b), D.truediv(W, b)]
    n.set(0, dt, out)


@shape_fn("", "CenterCropPad")
def _center_crop_pad(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    target = n.dimlist(1)
    if s is None:
        n.set(0, dt, None)
        return
    axes = n.attr("axes")
    r = len(s)
    axes = [norm_axis(a, r) for a in axes] if axes is not None else list(range(r))
    out = list(s)
    if target is None:
        for a in axes:
            out[a] = None
    else:
        for a, t in zip(axes, target):
            out[a] = t
    n.set(0, dt, out)


@shape_fn("", "Einsum")
def _einsum(n: NodeCtx) -> None:
    eq = n.attr("equation", "")
    if isinstance(eq, bytes):
        eq = eq.decode()
    eq = eq.replace(" ", "")
    idx = [i for i in range(n.n_in) if n.has(i)]
    dt = n.dtype(idx[0]) if idx else 0
    if "->" in eq:
        lhs, rhs = eq.split("->")
    else:
        lhs, rhs = eq, None
    terms = lhs.split(",")
    if len(terms) != len(idx):
        n.error(f"Einsum: {len(terms)} terms for {len(idx)} inputs")
        return
    letters: dict = {}
    ell = None
    counts: dict = {}
    for term, i in zip(terms, idx):
        s = n.shape(i)
        if s is None:
            n.set(0, dt, None)
            return
        if "..." in term:
            pre, post = term.split("...")
            ne = len(s) - len(pre) - len(post)
            if ne < 0:
                n.error(f"Einsum: term {term!r} does not fit rank {len(s)}")
                return
            edims = list(s[len(pre):len(pre) + ne])
            ell = edims if ell is None else broadcast(n, [ell, edims], "Einsum ellipsis")
            dims = list(s[:len(pre)]) + list(s[len(pre) + ne:])
            chars = pre + post
        else:
            if len(term) != len(s):
                n.error(f"Einsum: term {term!r} does not fit rank {len(s)}")
                return
            dims, chars = list(s), term
        for c, d in zip(chars, dims):
            counts[c] = counts.get(c, 0) + 1
            if c in letters:
                old = letters[c]
                if type(old) is int and old == 1:
                    letters[c] = d
                elif not (type(d) is int and d == 1):
                    letters[c] = n.require_equal(old, d, f"Einsum index {c}")
            else:
                letters[c] = d
    if rhs is None:
        rhs = ("..." if ell else "") + "".join(sorted(c for c, k in counts.items() if k == 1))
    out: list = []
    if "..." in rhs:
        pre, post = rhs.split("...")
        out = [letters.get(c) for c in pre] + list(ell or []) + [letters.get(c) for c in post]
    else:
        out = [letters.get(c) for c in rhs]
    n.set(0, dt, out)


__all__ = ["BIG", "slice_dim"]
