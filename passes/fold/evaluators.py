"""numpy evaluators for cheap, common ops: the shape-arithmetic family and its neighbours.

Each evaluator computes exactly what the ONNX spec says for the opset it is given: integer
division truncates toward zero, ``Mod`` follows ``fmod``, broadcasting is numpy's (which is ONNX's
multidirectional broadcasting), negative axes count from the end, and axes move from an attribute
to an input at the opset where the spec moved them. An evaluator that meets a case it does not
handle exactly (a dtype numpy cannot hold, a NaN where runtimes disagree, a legacy broadcast)
raises :class:`Unsupported` and the node goes to onnxruntime instead; any other exception means
the node is invalid for these inputs (division by zero, shape mismatch) and it is left alone.

Every evaluator also has a size function: the element count of each output, computed from the
input shapes (and, for generators, from small input values) *before* evaluating, so the fold
pass can refuse an output that would be too big without materializing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ...ir import Node

Arrays = Sequence[Optional[np.ndarray]]


class Unsupported(Exception):
    """The numpy evaluator does not cover this case exactly; try onnxruntime."""


class NeverFold(Exception):
    """This node must not be folded at all (its result is random at run time)."""


@dataclass(frozen=True)
class Evaluator:
    """How to evaluate one op with numpy, and how big its outputs will be."""

    fn: Callable[[Node, Arrays, int], list[np.ndarray]]
    size: Callable[[Node, Arrays, int], list[int]]


EVALUATORS: dict[tuple[str, str], Evaluator] = {}

# dtypes numpy holds natively (ml_dtypes holders for bfloat16/float8/int4 are left to runtimes).
_NATIVE = frozenset("biuf")
_INT64 = np.dtype(np.int64)


def register_evaluator(*op_types: str, size: Callable, domain: str = ""):
    """Decorator: register ``fn(node, inputs, opset) -> [arrays]`` for ``op_types``."""

    def deco(fn):
        for op in op_types:
            EVALUATORS[(domain, op)] = Evaluator(fn, size)
        return fn

    return deco


# -- helpers ------------------------------------------------------------------------------------

def _native(*arrays: Optional[np.ndarray]) -> None:
    for a in arrays:
        if a is not None and (a.dtype.kind not in _NATIVE or a.dtype.itemsize == 0
                              or type(a.dtype).__module__.startswith("ml_dtypes")):
            raise Unsupported(f"dtype {a.dtype}")


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _ints(a: np.ndarray) -> list[int]:
    if a.dtype.kind not in "iu":
        raise ValueError(f"expected an integer tensor, got {a.dtype}")
    return [int(x) for x in a.reshape(-1)]


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _axes_in(node: Node, inputs: Arrays, opset: int, since: int, index: int = 1):
    """Axes from the attribute (opset < since) or from input ``index``; None when absent."""
    if opset < since:
        a = node.attr("axes")
        return None if a is None else list(a)
    if len(inputs) > index and inputs[index] is not None:
        return _ints(inputs[index])
    return None


def _same_dtype(*arrays: np.ndarray) -> None:
    d = arrays[0].dtype
    for a in arrays[1:]:
        if a.dtype != d:
            raise ValueError(f"inputs have different dtypes ({d} and {a.dtype})")


def _bcast_size(node: Node, inputs: Arrays, opset: int) -> list[int]:
    shapes = [a.shape for a in inputs if a is not None]
    try:
        return [_numel(np.broadcast_shapes(*shapes))]
    except ValueError:
        return [max(_numel(s) for s in shapes)]


def _first_size(node: Node, inputs: Arrays, opset: int) -> list[int]:
    return [inputs[0].size]


def _sum_size(node: Node, inputs: Arrays, opset: int) -> list[int]:
    return [sum(a.size for a in inputs if a is not None)]


def _one(node: Node, inputs: Arrays, opset: int) -> list[int]:
    return [1]


def _legacy_broadcast(node: Node, inputs: Arrays, opset: int) -> None:
    """Before opset 7, binary ops broadcast only with ``broadcast=1`` and their own rules."""
    if opset < 7 and len({a.shape for a in inputs if a is not None}) > 1:
        raise Unsupported("legacy (opset < 7) broadcasting")


# -- constants and shapes -----------------------------------------------------------------------

def constant_value(node: Node) -> np.ndarray:
    """The tensor a Constant node holds (Unsupported for sparse or attribute-referenced values)."""
    for a in node.attributes.values():
        if a.ref_attr_name:
            raise Unsupported("attribute reference")
    attrs = node.attributes
    if "value" in attrs:
        return attrs["value"].value.numpy()
    if "value_float" in attrs:
        return np.array(attrs["value_float"].value, dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"].value, dtype=np.float32).reshape(-1)
    if "value_int" in attrs:
        return np.array(attrs["value_int"].value, dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"].value, dtype=np.int64).reshape(-1)
    if "value_string" in attrs:
        v = attrs["value_string"].value
        return np.array(v.encode() if isinstance(v, str) else v, dtype=object)
    if "value_strings" in attrs:
        vals = [s.encode() if isinstance(s, str) else s for s in attrs["value_strings"].value]
        return np.array(vals, dtype=object).reshape(-1)
    raise Unsupported("sparse or missing Constant value")


def _constant_size(node: Node, inputs: Arrays, opset: int) -> list[int]:
    a = node.attributes.get("value")
    if a is not None and not a.ref_attr_name:
        return [_numel(a.value.dims)]
    return [1]


@register_evaluator("Constant", size=_constant_size)
def _constant(node, inputs, opset):
    return [constant_value(node)]


def shape_slice(rank: int, node: Node, opset: int) -> tuple[int, int]:
    """The ``[start, end)`` range of dims a Shape node returns (opset 15 start/end clamping)."""
    if opset < 15:
        return 0, rank
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, max(start, end)


@register_evaluator("Shape", size=lambda n, i, o: [i[0].ndim])
def _shape(node, inputs, opset):
    x = inputs[0]
    s, e = shape_slice(x.ndim, node, opset)
    return [np.array(x.shape[s:e], dtype=np.int64)]


@register_evaluator("Size", size=_one)
def _size(node, inputs, opset):
    return [np.array(inputs[0].size, dtype=np.int64)]


@register_evaluator("Identity", size=_first_size)
def _identity(node, inputs, opset):
    return [inputs[0]]


# -- data movement ------------------------------------------------------------------------------

def _gather_size(node, inputs, opset):
    data, idx = inputs[0], inputs[1]
    axis = _axis(node.attr("axis", 0), data.ndim)
    return [data.size // max(data.shape[axis], 1) * idx.size if data.shape[axis] else 0]


@register_evaluator("Gather", size=_gather_size)
def _gather(node, inputs, opset):
    data, idx = inputs[0], inputs[1]
    axis = _axis(node.attr("axis", 0), data.ndim)
    n = data.shape[axis]
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise ValueError("Gather indices must be integers")
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"Gather index out of range for dim {n}")
    return [np.take(data, idx.astype(np.int64), axis=axis)]


def _slice_params(node, inputs, opset):
    data = inputs[0]
    if opset < 10:
        starts, ends = list(node.attr("starts")), list(node.attr("ends"))
        axes = node.attr("axes")
        axes = list(axes) if axes is not None else list(range(len(starts)))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None \
            else list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None \
            else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice starts/ends/axes/steps differ in length")
    axes = [_axis(a, data.ndim) for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError("Slice axes repeat")
    index: list = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice_range(s, e, st, data.shape[a])
    return tuple(index)


def slice_range(start: int, end: int, step: int, dim: int) -> slice:
    """The Python slice for one ONNX Slice axis (the spec's clamping, including negative steps)."""
    if step == 0:
        raise ValueError("Slice step 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return slice(start, end, step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, end if end >= 0 else None, step)


def _slice_size(node, inputs, opset):
    return [np.empty(inputs[0].shape, dtype=np.bool_)[_slice_params(node, inputs, opset)].size]


@register_evaluator("Slice", size=_slice_size)
def _slice(node, inputs, opset):
    return [np.array(inputs[0][_slice_params(node, inputs, opset)])]


@register_evaluator("Concat", size=_sum_size)
def _concat(node, inputs, opset):
    arrays = [a for a in inputs if a is not None]
    _same_dtype(*arrays)
    axis = node.attr("axis")
    if axis is None:
        raise ValueError("Concat without axis")
    rank = arrays[0].ndim
    if any(a.ndim != rank for a in arrays) or rank == 0:
        raise ValueError("Concat inputs differ in rank")
    return [np.concatenate(arrays, axis=_axis(axis, rank))]


@register_evaluator("Unsqueeze", size=_first_size)
def _unsqueeze(node, inputs, opset):
    x = inputs[0]
    axes = _axes_in(node, inputs, opset, 13)
    if axes is None:
        raise ValueError("Unsqueeze without axes")
    out_rank = x.ndim + len(axes)
    axes = sorted(_axis(a, out_rank) for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError("Unsqueeze axes repeat")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [x.reshape(shape)]


@register_evaluator("Squeeze", size=_first_size)
def _squeeze(node, inputs, opset):
    x = inputs[0]
    axes = _axes_in(node, inputs, opset, 13)
    if axes is None:
        return [x.reshape([d for d in x.shape if d != 1])]
    axes = {_axis(a, x.ndim) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise ValueError("Squeeze of a dim that is not 1")
    return [x.reshape([d for i, d in enumerate(x.shape) if i not in axes])]


def reshape_target(in_shape: Sequence[int], shape: Sequence[int], allowzero: bool) -> list[int]:
    """The output shape of Reshape (``0`` copies the input dim unless ``allowzero``)."""
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError("Reshape 0 past the input rank")
            d = in_shape[i]
        out.append(int(d))
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise ValueError("Reshape with a bad target shape")
    if -1 in out:
        known = _numel(d for d in out if d != -1)
        total = _numel(in_shape)
        if known == 0 or total % known:
            raise ValueError("Reshape cannot infer the -1 dim")
        out[out.index(-1)] = total // known
    if _numel(out) != _numel(in_shape):
        raise ValueError(f"Reshape {list(in_shape)} to {out}: element counts differ")
    return out


@register_evaluator("Reshape", size=_first_size)
def _reshape(node, inputs, opset):
    x = inputs[0]
    if opset < 5:
        shape = list(node.attr("shape"))
    else:
        shape = _ints(inputs[1])
    allowzero = opset >= 14 and node.attr("allowzero", 0) == 1
    return [x.reshape(reshape_target(x.shape, shape, allowzero))]


@register_evaluator("Flatten", size=_first_size)
def _flatten(node, inputs, opset):
    x = inputs[0]
    axis = node.attr("axis", 1)
    if axis < 0:
        axis += x.ndim
    if not 0 <= axis <= x.ndim:
        raise ValueError("Flatten axis out of range")
    return [x.reshape(_numel(x.shape[:axis]), _numel(x.shape[axis:]))]


@register_evaluator("Transpose", size=_first_size)
def _transpose(node, inputs, opset):
    x = inputs[0]
    perm = node.attr("perm")
    perm = list(range(x.ndim))[::-1] if perm is None else list(perm)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"Transpose perm {perm} is not a permutation of rank {x.ndim}")
    return [np.ascontiguousarray(np.transpose(x, perm))]


def _expand_shape(x, shape):
    return np.broadcast_shapes(x.shape, tuple(_ints(shape)))


@register_evaluator("Expand", size=lambda n, i, o: [_numel(_expand_shape(i[0], i[1]))])
def _expand(node, inputs, opset):
    x = inputs[0]
    return [np.array(np.broadcast_to(x, _expand_shape(x, inputs[1])))]


def _tile_repeats(x, repeats):
    reps = _ints(repeats)
    if len(reps) != x.ndim or any(r < 0 for r in reps):
        raise ValueError("Tile repeats must be non-negative, one per dim")
    return reps


@register_evaluator("Tile", size=lambda n, i, o: [i[0].size * _numel(_tile_repeats(i[0], i[1]))])
def _tile(node, inputs, opset):
    x = inputs[0]
    if opset < 6:
        raise Unsupported("Tile-1")
    return [np.tile(x, _tile_repeats(x, inputs[1]))]


def _cos_shape(shape: np.ndarray) -> list[int]:
    dims = _ints(shape) if shape.size else []
    if shape.ndim != 1 or any(d < 0 for d in dims):
        raise ValueError("ConstantOfShape needs a 1-D shape of non-negative dims")
    return dims


@register_evaluator("ConstantOfShape", size=lambda n, i, o: [_numel(_cos_shape(i[0]))])
def _constant_of_shape(node, inputs, opset):
    dims = _cos_shape(inputs[0])
    a = node.attributes.get("value")
    if a is not None and a.ref_attr_name:
        raise Unsupported("attribute reference")
    value = a.value.numpy() if a is not None else np.zeros(1, np.float32)
    _native(value)
    if value.size != 1:
        raise ValueError("ConstantOfShape value must hold one element")
    return [np.full(dims, value.reshape(-1)[0], dtype=value.dtype)]


def _range_count(start, limit, delta) -> int:
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise ValueError("Range takes scalars")
    start, limit, delta = (x.reshape(-1)[0] for x in (start, limit, delta))
    if start.dtype.kind not in "iu":
        d = float(delta)
        if d == 0 or not np.isfinite([float(start), float(limit), d]).all():
            raise ValueError("Range with a zero or non-finite operand")
        return max(int(np.ceil((float(limit) - float(start)) / d)), 0)
    s, lim, d = int(start), int(limit), int(delta)
    if d == 0:
        raise ValueError("Range delta 0")
    return max(-((s - lim) // d), 0)


@register_evaluator("Range", size=lambda n, i, o: [_range_count(*i[:3])])
def _range(node, inputs, opset):
    start, limit, delta = inputs[:3]
    _same_dtype(start, limit, delta)
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise ValueError("Range takes scalars")
    if start.dtype.kind not in "iu":
        raise Unsupported("floating-point Range (runtimes accumulate differently)")
    n = _range_count(start, limit, delta)
    out = int(start.reshape(-1)[0]) + np.arange(n, dtype=np.int64) * int(delta.reshape(-1)[0])
    return [out.astype(start.dtype)]


# -- casts ---------------------------------------------------------------------------------------

def _cast_to(x: np.ndarray, to) -> np.ndarray:
    _native(x)
    if to.kind not in _NATIVE:
        raise Unsupported(f"cast to {to}")
    if x.dtype.kind == "f" and to.kind in "iu":
        # Out-of-range and non-finite float -> int casts are undefined; runtimes disagree.
        if x.size and (not np.all(np.isfinite(x))
                       or x.min() <= np.iinfo(to).min - 1 or x.max() >= np.iinfo(to).max + 1):
            raise Unsupported("float to int cast out of range")
        return np.trunc(x).astype(to)
    with np.errstate(all="ignore"):
        return x.astype(to)


def _np_dtype(onnx_dtype: int):
    from ...ir import np_dtype

    try:
        return np.dtype(np_dtype(onnx_dtype))
    except Exception as e:
        raise Unsupported(f"dtype {onnx_dtype}") from e


@register_evaluator("Cast", size=_first_size)
def _cast(node, inputs, opset):
    return [_cast_to(inputs[0], _np_dtype(node.attr("to")))]


@register_evaluator("CastLike", size=_first_size)
def _cast_like(node, inputs, opset):
    return [_cast_to(inputs[0], inputs[1].dtype)]


# -- arithmetic ----------------------------------------------------------------------------------

def _binary(fn):
    def run(node, inputs, opset):
        a, b = inputs[0], inputs[1]
        _native(a, b)
        _same_dtype(a, b)
        _legacy_broadcast(node, inputs, opset)
        with np.errstate(all="ignore"):
            out = fn(a, b)
        return [np.asarray(out, dtype=a.dtype)]

    return run


register_evaluator("Add", size=_bcast_size)(_binary(np.add))
register_evaluator("Sub", size=_bcast_size)(_binary(np.subtract))
register_evaluator("Mul", size=_bcast_size)(_binary(np.multiply))


def _check_int_divisor(b: np.ndarray) -> None:
    if b.dtype.kind in "iu" and b.size and np.any(b == 0):
        raise ZeroDivisionError("integer division by zero")


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    _check_int_divisor(b)
    if a.dtype.kind == "i":
        info = np.iinfo(a.dtype)
        if np.any((a == info.min) & (b == -1)):
            raise OverflowError("integer division overflows")
    q = np.floor_divide(a, b)
    r = np.remainder(a, b)
    return q + ((r != 0) & ((a < 0) ^ (b < 0))).astype(q.dtype)


@register_evaluator("Div", size=_bcast_size)
def _div(node, inputs, opset):
    a, b = inputs[0], inputs[1]
    _native(a, b)
    _same_dtype(a, b)
    _legacy_broadcast(node, inputs, opset)
    if a.dtype.kind in "iu":
        return [np.asarray(_trunc_div(a, b), dtype=a.dtype)]
    with np.errstate(all="ignore"):
        return [np.asarray(np.divide(a, b), dtype=a.dtype)]


@register_evaluator("Mod", size=_bcast_size)
def _mod(node, inputs, opset):
    a, b = inputs[0], inputs[1]
    _native(a, b)
    _same_dtype(a, b)
    fmod = node.attr("fmod", 0)
    if a.dtype.kind == "f":
        if fmod != 1 and a.dtype.itemsize < 4:
            raise Unsupported("float16 Mod with fmod=0")
        with np.errstate(all="ignore"):
            return [np.asarray(np.fmod(a, b) if fmod == 1 else np.mod(a, b), dtype=a.dtype)]
    _check_int_divisor(b)
    with np.errstate(all="ignore"):
        out = np.fmod(a, b) if fmod == 1 else np.mod(a, b)
    return [np.asarray(out, dtype=a.dtype)]


def _unary(fn, kinds: str = "iuf"):
    def run(node, inputs, opset):
        x = inputs[0]
        _native(x)
        if x.dtype.kind not in kinds:
            raise ValueError(f"{node.op_type} does not take {x.dtype}")
        with np.errstate(all="ignore"):
            return [np.asarray(fn(x), dtype=x.dtype)]

    return run


register_evaluator("Neg", size=_first_size)(_unary(np.negative, "if"))
register_evaluator("Abs", size=_first_size)(_unary(np.abs))
register_evaluator("Floor", size=_first_size)(_unary(np.floor, "f"))
register_evaluator("Ceil", size=_first_size)(_unary(np.ceil, "f"))
register_evaluator("Sqrt", size=_first_size)(_unary(np.sqrt, "f"))


def _minmax(fn):
    def run(node, inputs, opset):
        arrays = [a for a in inputs if a is not None]
        _native(*arrays)
        _same_dtype(*arrays)
        if arrays[0].dtype.kind == "f" and any(np.isnan(a).any() for a in arrays):
            raise Unsupported("NaN in Min/Max (runtimes differ)")
        if opset < 8 and len({a.shape for a in arrays}) > 1:
            raise Unsupported("Min/Max before opset 8 do not broadcast")
        out = arrays[0]
        for a in arrays[1:]:
            out = fn(out, a)
        return [np.asarray(out, dtype=arrays[0].dtype)]

    return run


register_evaluator("Min", size=_bcast_size)(_minmax(np.minimum))
register_evaluator("Max", size=_bcast_size)(_minmax(np.maximum))


# -- logic ---------------------------------------------------------------------------------------

def _compare(fn):
    def run(node, inputs, opset):
        a, b = inputs[0], inputs[1]
        _same_dtype(a, b)
        if a.dtype.kind not in _NATIVE and not (a.dtype == object and fn is np.equal):
            raise Unsupported(f"compare {a.dtype}")
        _legacy_broadcast(node, inputs, opset)
        return [np.asarray(fn(a, b), dtype=np.bool_)]

    return run


register_evaluator("Equal", size=_bcast_size)(_compare(np.equal))
register_evaluator("Less", size=_bcast_size)(_compare(np.less))
register_evaluator("LessOrEqual", size=_bcast_size)(_compare(np.less_equal))
register_evaluator("Greater", size=_bcast_size)(_compare(np.greater))
register_evaluator("GreaterOrEqual", size=_bcast_size)(_compare(np.greater_equal))


def _logic(fn):
    def run(node, inputs, opset):
        arrays = [a for a in inputs if a is not None]
        if any(a.dtype != np.bool_ for a in arrays):
            raise ValueError(f"{node.op_type} takes bool")
        _legacy_broadcast(node, inputs, opset)
        return [np.asarray(fn(*arrays), dtype=np.bool_)]

    return run


register_evaluator("Not", size=_first_size)(_logic(np.logical_not))
register_evaluator("And", size=_bcast_size)(_logic(np.logical_and))
register_evaluator("Or", size=_bcast_size)(_logic(np.logical_or))
register_evaluator("Xor", size=_bcast_size)(_logic(np.logical_xor))


@register_evaluator("Where", size=_bcast_size)
def _where(node, inputs, opset):
    c, x, y = inputs[0], inputs[1], inputs[2]
    if c.dtype != np.bool_:
        raise ValueError("Where condition must be bool")
    _same_dtype(x, y)
    return [np.array(np.where(c, x, y), dtype=x.dtype)]


# -- reductions ----------------------------------------------------------------------------------

_REDUCE = {"ReduceSum": (np.sum, 13), "ReduceProd": (np.prod, 18), "ReduceMin": (np.min, 18),
           "ReduceMax": (np.max, 18)}


def _reduce_axes(node, inputs, opset, since):
    x = inputs[0]
    axes = _axes_in(node, inputs, opset, since)
    if not axes:
        if opset >= since and node.attr("noop_with_empty_axes", 0) == 1:
            return None
        return tuple(range(x.ndim))
    out = tuple(sorted({_axis(a, x.ndim) for a in axes}))
    if len(out) != len(axes):
        raise ValueError("reduce axes repeat")
    return out


def _reduce(node, inputs, opset):
    fn, since = _REDUCE[node.op_type]
    x = inputs[0]
    _native(x)
    if x.dtype.kind not in "iuf" or x.dtype.itemsize < 4:
        raise Unsupported(f"{node.op_type} of {x.dtype} (accumulation type differs)")
    axes = _reduce_axes(node, inputs, opset, since)
    if axes is None:
        return [x]
    keep = node.attr("keepdims", 1) == 1
    if fn in (np.min, np.max) and any(x.shape[a] == 0 for a in axes):
        raise Unsupported("min/max over an empty set")
    kw = {"dtype": x.dtype} if fn in (np.sum, np.prod) else {}
    with np.errstate(all="ignore"):
        return [np.asarray(fn(x, axis=axes, keepdims=keep, **kw), dtype=x.dtype)]


register_evaluator(*_REDUCE, size=_first_size)(_reduce)


# -- training-only ops, deterministic at inference -----------------------------------------------

@register_evaluator("Dropout", size=lambda n, i, o: [i[0].size, i[0].size])
def _dropout(node, inputs, opset):
    if opset < 7:
        if node.attr("is_test", 0) != 1:
            raise NeverFold("Dropout in training mode")
    elif opset >= 12 and len(inputs) > 2 and inputs[2] is not None \
            and bool(inputs[2].reshape(-1)[0]):
        raise NeverFold("Dropout in training mode")
    x = inputs[0]
    mask_dtype = x.dtype if opset < 10 else np.bool_
    outs = [x]
    if len(node.outputs) > 1:
        outs.append(np.ones(x.shape, dtype=mask_dtype))
    return outs


def evaluate(node: Node, inputs: Arrays, opset: int) -> list[np.ndarray]:
    """Evaluate ``node`` with numpy; Unsupported when no exact evaluator covers it."""
    ev = EVALUATORS.get((node.domain, node.op_type))
    if ev is None:
        raise Unsupported("no numpy evaluator")
    return ev.fn(node, inputs, opset)


def output_sizes(node: Node, inputs: Arrays, opset: int) -> Optional[list[int]]:
    """Element counts of the outputs, before evaluating; None when no evaluator knows."""
    ev = EVALUATORS.get((node.domain, node.op_type))
    if ev is None:
        return None
    return ev.size(node, inputs, opset)


__all__ = ["EVALUATORS", "Evaluator", "Unsupported", "NeverFold", "register_evaluator", "evaluate",
           "output_sizes", "constant_value", "reshape_target", "slice_range", "shape_slice"]
