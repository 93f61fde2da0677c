"""Elementwise ops: unary, broadcasting binary and variadic, comparisons, logic, Where, casts.

Shape tensors flow through the arithmetic ones symbolically (Add/Sub/Mul/Div/Mod/Max/Min/Neg/Abs,
Equal/Less/Greater, Not/And/Or/Xor, Where, Cast, Floor/Ceil on floats).
"""

from __future__ import annotations

from ...ir import TensorType
from . import values as V
from .common import broadcast
from .context import BOOL, NodeCtx
from .table import shape_fn

UNARY = (
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf", "Exp",
    "Floor", "Log", "Neg", "Reciprocal", "Relu", "Round", "Sigmoid", "Sign", "Sin", "Sinh", "Sqrt",
    "Tan", "Tanh", "Softplus", "Softsign", "Elu", "Selu", "Celu", "LeakyRelu", "ThresholdedRelu",
    "HardSigmoid", "HardSwish", "Mish", "Gelu", "Swish", "Shrink", "Identity", "BitwiseNot",
    "CumSum", "CumProd", "Hardmax", "Softmax", "LogSoftmax", "LRN", "LpNormalization",
    "MeanVarianceNormalization", "Trilu", "ReverseSequence", "Scatter", "ScatterElements",
    "ScatterND", "TensorScatter", "Clip", "Not", "IsInf", "IsNaN", "Bernoulli",
    "RandomUniformLike", "RandomNormalLike", "EyeLike", "ImageScaler", "Affine", "ScaledTanh",
    "ParametricSoftplus",
)

_UNARY_VALS = {
    "Identity": lambda a, dt: a,
    "Neg": V.neg,
    "Abs": V.absolute,
    "Floor": V.floor,
    "Ceil": V.ceil,
    "Sqrt": V.sqrt,
    "Relu": lambda a, dt: V.dmax(a, 0, dt),
    "Not": lambda a, dt: V.logical_not(a),
    "Sign": lambda a, dt: (None if a is None else
                           (1 if V.less(0, a) is True else (0 if V.equal(a, 0) is True else
                                                            (-1 if V.less(a, 0) is True else None)))),
}


@shape_fn("", *UNARY)
def _unary(n: NodeCtx) -> None:
    op = n.node.op_type
    if op in ("IsInf", "IsNaN"):
        n.same_as(0, 0, BOOL)
        return
    if op in ("Bernoulli", "RandomUniformLike", "RandomNormalLike", "EyeLike"):
        n.same_as(0, 0, n.attr("dtype") or n.dtype(0))
        return
    t = n.type(0)
    if t is None:
        return
    if not isinstance(t, TensorType):
        n.set_type(0, t)
        return
    dt = n.dtype(0)
    vals = None
    f = _UNARY_VALS.get(op)
    a = n.vals(0)
    if f is not None and a is not None:
        vals = V.elementwise(lambda x: f(x, dt), a)
    elif op == "Clip" and a is not None:
        lo = n.scalar(1) if n.has(1) else n.attr("min")
        hi = n.scalar(2) if n.has(2) else n.attr("max")
        if (n.has(1) and lo is None) or (n.has(2) and hi is None):
            vals = None
        else:
            def clip(x):
                if lo is not None:
                    x = V.dmax(x, lo, dt)
                if hi is not None:
                    x = V.dmin(x, hi, dt)
                return x
            vals = V.elementwise(clip, a)
    n.set(0, dt, n.shape(0), vals)


_BINARY_VALS = {
    "Add": V.add, "Sub": V.sub, "Mul": V.mul, "Div": V.div, "Pow": V.power,
}
_CMP = {
    "Equal": lambda a, b: V.equal(a, b),
    "Less": lambda a, b: V.less(a, b),
    "LessOrEqual": lambda a, b: V.less_equal(a, b),
    "Greater": lambda a, b: V.less(b, a),
    "GreaterOrEqual": lambda a, b: V.less_equal(b, a),
    "And": V.logical_and,
    "Or": V.logical_or,
    "Xor": V.logical_xor,
}


@shape_fn("", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
          "BitwiseXor", "PRelu")
def _binary(n: NodeCtx) -> None:
    op = n.node.op_type
    shape = broadcast(n, [n.shape(0), n.shape(1)], f"{op} broadcast")
    dt = n.dtype(0) or n.dtype(1)
    vals = None
    a, b = n.vals(0), n.vals(1)
    if a is not None and b is not None:
        if op in _BINARY_VALS:
            f = _BINARY_VALS[op]
            vals = V.elementwise(lambda x, y: f(x, y, dt), a, b)
        elif op == "Mod":
            fm = n.attr("fmod", 0)
            vals = V.elementwise(lambda x, y: V.mod(x, y, dt, fm), a, b)
    if op == "PRelu" and shape is None and n.shape(0) is not None:
        shape = list(n.shape(0))
    n.set(0, dt, shape, vals)


@shape_fn("", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor")
def _compare(n: NodeCtx) -> None:
    op = n.node.op_type
    shape = broadcast(n, [n.shape(0), n.shape(1)], f"{op} broadcast")
    f = _CMP[op]
    vals = V.elementwise(f, n.vals(0), n.vals(1))
    n.set(0, BOOL, shape, vals)


@shape_fn("", "Max", "Min", "Sum", "Mean")
def _variadic(n: NodeCtx) -> None:
    op = n.node.op_type
    idx = [i for i in range(n.n_in) if n.has(i)]
    shape = broadcast(n, [n.shape(i) for i in idx], f"{op} broadcast")
    dt = next((n.dtype(i) for i in idx if n.dtype(i)), 0)
    vals = None
    arrs = [n.vals(i) for i in idx]
    if idx and all(a is not None for a in arrs):
        f = {"Max": V.dmax, "Min": V.dmin, "Sum": V.add}.get(op)
        if f is not None:
            vals = arrs[0]
            for a in arrs[1:]:
                vals = V.elementwise(lambda x, y: f(x, y, dt), vals, a)
        elif len(arrs) == 1:
            vals = arrs[0]
    n.set(0, dt, shape, vals)


@shape_fn("", "Where")
def _where(n: NodeCtx) -> None:
    shape = broadcast(n, [n.shape(0), n.shape(1), n.shape(2)], "Where broadcast")
    dt = n.dtype(1) or n.dtype(2)
    n.set(0, dt, shape, V.elementwise(V.where, n.vals(0), n.vals(1), n.vals(2)))


@shape_fn("", "Cast", "CastLike")
def _cast(n: NodeCtx) -> None:
    src = n.dtype(0)
    dst = n.attr("to") if n.node.op_type == "Cast" else n.dtype(1)
    if not dst:
        return
    a = n.vals(0)
    vals = None
    if a is not None and src:
        vals = V.elementwise(lambda x: V.cast(x, src, dst), a)
    n.set(0, dst, n.shape(0), vals)


@shape_fn("", "SwiGLU")
def _swiglu(n: NodeCtx) -> None:
    a, b = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if a is None or b is None:
        n.set(0, dt, a if b is None else b)
        return
    if len(a) != len(b):
        n.error(f"SwiGLU: inputs of ranks {len(a)} and {len(b)}")
        return
    n.set(0, dt, [n.require_equal(x, y, "SwiGLU inputs") for x, y in zip(a, b)])


@shape_fn("ai.onnx.ml", "Binarizer")
def _binarizer(n: NodeCtx) -> None:
    n.same_as(0, 0)


@shape_fn("", "Dropout")
def _dropout(n: NodeCtx) -> None:
    dt = n.dtype(0)
    n.set(0, dt, n.shape(0), n.vals(0))
    if n.has_out(1):
        n.set(1, dt if n.opset < 10 else BOOL, n.shape(0))


@shape_fn("", "BitCast")
def _bitcast(n: NodeCtx) -> None:
    from .context import FLOATS  # noqa: F401

    src, dst = n.dtype(0), n.attr("to")
    s = n.shape(0)
    if not dst or not src or s is None:
        return
    sizes = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1}
    a, b = sizes.get(src), sizes.get(dst)
    if a is None or b is None:
        return
    if a == b:
        n.set(0, dst, s)
    elif a > b:
        n.set(0, dst, list(s) + [a // b])
    elif s and s[-1] == b // a:
        n.set(0, dst, list(s[:-1]))


__all__: list = []
