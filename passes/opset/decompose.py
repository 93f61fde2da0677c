"""Down-conversion rules for ops newer than the target: each is replaced by the ops it is
defined as (the ONNX spec's function bodies say the same in their own words). Statistics of
the normalizations are computed in float32 for narrower floats, as ``stash_type=1`` says."""

from __future__ import annotations

import math

import numpy as np

from ...ir import Builder, Value, np_dtype
from ..rewrite import Match
from .common import ConversionRule, norm_axes, reduce, scalar
from .versions import since

FLOAT, FLOAT16, BFLOAT16, DOUBLE = 1, 10, 16, 11


class Decomposition(ConversionRule):
    """A decomposition of a float op: ``c(m, v)`` is a constant of the input's element type."""

    def refuse(self, m: Match) -> str | None:
        if m.dtype("i0") not in (FLOAT, FLOAT16, BFLOAT16, DOUBLE):
            return f"element type {m.dtype('i0')} is not a float type"
        return self.refuse_more(m)

    def refuse_more(self, m: Match) -> str | None:
        return None

    def c(self, m: Match, b: Builder, value, dt: int | None = None) -> Value:
        dt = dt or m.dtype("i0")
        if dt == BFLOAT16:  # numpy has no bfloat16: a float constant cast once
            return b.op("Cast", [scalar(b, value, np.float32)], {"to": BFLOAT16})
        return scalar(b, value, np_dtype(dt))


class Normalization(Decomposition):
    """Shared by LayerNormalization and RMSNormalization: axes from ``axis`` to the last,
    statistics in float32 when the input is narrower and stash_type is 1."""

    def refuse_more(self, m: Match) -> str | None:
        if m.rank("i0") is None:
            return "the rank is unknown"
        return None

    def prepare(self, m: Match, b: Builder):
        r = m.rank("i0")
        axes = list(range(norm_axes([int(self.attr(m, "axis"))], r)[0], r))
        wide = m.dtype("i0") in (FLOAT16, BFLOAT16) and int(self.attr(m, "stash_type")) == 1
        x = b.op("Cast", [m["i0"]], {"to": FLOAT}) if wide else m["i0"]
        return x, axes, (FLOAT if wide else m.dtype("i0")), wide

    def finish(self, m: Match, b: Builder, y: Value, wide: bool) -> Value:
        dt = m.dtype("i0")
        scale, bias = m.get("i1"), m.get("i2")
        if wide:
            y = b.op("Cast", [y], {"to": dt})
        y = b.op("Mul", [y, scale])
        return b.op("Add", [y, bias]) if bias is not None else y


class LayerNorm(Normalization):
    name = "layer_normalization"
    summary = "LayerNormalization -> ReduceMean, Sub, Mul, Sqrt, Div (opset 17)"
    ops = ("LayerNormalization",)

    def rewrite(self, m: Match, b: Builder):
        x, axes, dt, wide = self.prepare(m, b)
        mean = reduce(b, "ReduceMean", x, axes, 1, self.target)
        d = b.op("Sub", [x, mean])
        var = reduce(b, "ReduceMean", b.op("Mul", [d, d]), axes, 1, self.target)
        eps = self.c(m, b, float(self.attr(m, "epsilon")), dt)
        inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, eps])])])
        y = self.finish(m, b, b.op("Mul", [d, inv]), wide)
        outs = [y, mean, inv][:len(m.root.outputs)]
        return tuple(outs) if len(outs) > 1 else y


class RMSNorm(Normalization):
    name = "rms_normalization"
    summary = "RMSNormalization -> ReduceMean(x*x), Sqrt, Div, Mul (opset 23)"
    ops = ("RMSNormalization",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        x, axes, dt, wide = self.prepare(m, b)
        ms = reduce(b, "ReduceMean", b.op("Mul", [x, x]), axes, 1, self.target)
        eps = self.c(m, b, float(self.attr(m, "epsilon")), dt)
        rms = b.op("Sqrt", [b.op("Add", [ms, eps])])
        return self.finish(m, b, b.op("Div", [x, rms]), wide)


class GroupNorm(Decomposition):
    """GroupNormalization: (N, C, ...) seen as (N, G, -1); per-group statistics; scale and bias
    per group (18) are applied in that view, per channel (21) after reshaping back."""

    name = "group_normalization"
    summary = "GroupNormalization -> Reshape, ReduceMean, Sqrt, Div, Mul, Add (opset 18/21)"
    ops = ("GroupNormalization",)

    def refuse_more(self, m: Match) -> str | None:
        if m.rank("i0") is None or m.rank("i0") < 2:
            return "the rank is unknown or below 2"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        r, g = m.rank("i0"), int(self.attr(m, "num_groups"))
        per_channel = since("GroupNormalization", self.source) >= 21
        dt = m.dtype("i0")
        wide = dt in (FLOAT16, BFLOAT16) and int(self.attr(m, "stash_type") or 1) == 1
        x = b.op("Cast", [m["i0"]], {"to": FLOAT}) if wide else m["i0"]
        xg = b.op("Reshape", [x, b.const(np.array([0, g, -1], dtype=np.int64))])
        mean = reduce(b, "ReduceMean", xg, [2], 1, self.target)
        d = b.op("Sub", [xg, mean])
        var = reduce(b, "ReduceMean", b.op("Mul", [d, d]), [2], 1, self.target)
        eps = self.c(m, b, float(self.attr(m, "epsilon")), FLOAT if wide else dt)
        y = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, eps])])])
        if wide:
            y = b.op("Cast", [y], {"to": dt})
        shaped = [-1] + [1] * (r - 2)
        if not per_channel:
            y = self.affine(b, y, m, [-1, 1])
        y = b.op("Reshape", [y, b.op("Shape", [m["i0"]])])
        return self.affine(b, y, m, shaped) if per_channel else y

    def affine(self, b: Builder, y: Value, m: Match, shape: list) -> Value:
        s = b.const(np.array(shape, dtype=np.int64))
        y = b.op("Mul", [y, b.op("Reshape", [m["i1"], s])])
        return b.op("Add", [y, b.op("Reshape", [m["i2"], s])])


class Gelu(Decomposition):
    name = "gelu"
    summary = "Gelu -> 0.5 x (1 + erf(x / sqrt 2)) or its tanh form (opset 20)"
    ops = ("Gelu",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        x = m["i0"]
        half, one = self.c(m, b, 0.5), self.c(m, b, 1.0)
        if self.attr(m, "approximate") == "tanh":
            cube = b.op("Mul", [b.op("Mul", [x, x]), x])
            inner = b.op("Add", [x, b.op("Mul", [cube, self.c(m, b, 0.044715)])])
            t = b.op("Tanh", [b.op("Mul", [inner, self.c(m, b, math.sqrt(2 / math.pi))])])
        else:
            t = b.op("Erf", [b.op("Div", [x, self.c(m, b, math.sqrt(2.0))])])
        return b.op("Mul", [b.op("Mul", [x, half]), b.op("Add", [t, one])])


class Mish(Decomposition):
    name = "mish"
    summary = "Mish -> x * tanh(softplus(x)) (opset 18)"
    ops = ("Mish",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        return b.op("Mul", [m["i0"], b.op("Tanh", [b.op("Softplus", [m["i0"]])])])


class HardSwish(Decomposition):
    name = "hard_swish"
    summary = "HardSwish -> x * HardSigmoid(x, 1/6, 1/2) (opset 14)"
    ops = ("HardSwish",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        hs = b.op("HardSigmoid", [m["i0"]], {"alpha": 1.0 / 6, "beta": 0.5})
        return b.op("Mul", [m["i0"], hs])


class Swish(Decomposition):
    name = "swish"
    summary = "Swish -> x * sigmoid(alpha x) (opset 24)"
    ops = ("Swish",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        alpha = float(self.attr(m, "alpha") or 1.0)
        ax = m["i0"] if alpha == 1.0 else b.op("Mul", [m["i0"], self.c(m, b, alpha)])
        return b.op("Mul", [m["i0"], b.op("Sigmoid", [ax])])


class Celu(Decomposition):
    name = "celu"
    summary = "Celu -> max(0, x) + min(0, alpha (exp(x / alpha) - 1)) (opset 12)"
    ops = ("Celu",)

    def rewrite(self, m: Match, b: Builder) -> Value:
        a = self.c(m, b, float(self.attr(m, "alpha")))
        zero, one = self.c(m, b, 0.0), self.c(m, b, 1.0)
        e = b.op("Sub", [b.op("Exp", [b.op("Div", [m["i0"], a])]), one])
        neg = b.op("Min", [zero, b.op("Mul", [a, e])])
        return b.op("Add", [b.op("Max", [zero, m["i0"]]), neg])


class OrEqual(ConversionRule):
    """GreaterOrEqual / LessOrEqual -> Or(Greater|Less, Equal): false on NaN, like the op."""

    name = "or_equal"
    summary = "GreaterOrEqual/LessOrEqual -> Or(Greater/Less, Equal) (opset 12)"
    ops = ("GreaterOrEqual", "LessOrEqual")

    def rewrite(self, m: Match, b: Builder) -> Value:
        strict = "Greater" if m.root.op_type == "GreaterOrEqual" else "Less"
        a, c = m["i0"], m["i1"]
        return b.op("Or", [b.op(strict, [a, c]), b.op("Equal", [a, c])])


class Trilu(ConversionRule):
    """Trilu -> Where(column - row >= k (upper) or <= k (lower), x, 0) with Range indices."""

    name = "trilu"
    summary = "Trilu -> Where over a Range-built mask (opset 14)"
    ops = ("Trilu",)
    needs = (11, "Range is newer than the target (opset 11)")

    def refuse(self, m: Match) -> str | None:
        if m.dtype("i0") is None:
            return "the element type is unknown"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        x, shape = m["i0"], b.op("Shape", [m["i0"]])
        zero, one = scalar(b, 0, np.int64), scalar(b, 1, np.int64)
        h = b.op("Gather", [shape, scalar(b, -2, np.int64)], {"axis": 0})
        w = b.op("Gather", [shape, scalar(b, -1, np.int64)], {"axis": 0})
        rows = b.op("Unsqueeze", [b.op("Range", [zero, h, one])], {"axes": [1]}) \
            if self.target < 13 else b.op("Unsqueeze", [b.op("Range", [zero, h, one]),
                                                        b.const(np.array([1], np.int64))])
        diff = b.op("Sub", [b.op("Range", [zero, w, one]), rows])
        k = m.get("i1") if m.get("i1") is not None else zero
        upper = int(self.attr(m, "upper"))
        drop = b.op("Less" if upper else "Greater", [diff, k])
        dt = m.dtype("i0")
        fill = b.op("Cast", [zero], {"to": dt})
        return b.op("Where", [drop, fill, x])


class CumSum(Decomposition):
    """CumSum (11) along an axis of known length L -> MatMul by an L x L triangle of ones, the
    axis moved last and back (the sums differ from a running sum by rounding order only)."""

    name = "cumsum"
    summary = "CumSum -> MatMul by a triangle of ones over the axis (opset 11)"
    ops = ("CumSum",)

    def refuse_more(self, m: Match) -> str | None:
        if m.const("i1") is None or m.rank("i0") is None:
            return "the axis is not a constant or the rank is unknown"
        if not isinstance(self.length(m), int):
            return "the length of the axis is unknown"
        return None

    def axis(self, m: Match) -> int:
        return norm_axes([int(m.const("i1").reshape(-1)[0])], m.rank("i0"))[0]

    def length(self, m: Match):
        return m.shape("i0")[self.axis(m)]

    def rewrite(self, m: Match, b: Builder) -> Value:
        n, r, axis = self.length(m), m.rank("i0"), self.axis(m)
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        before = i > j if int(self.attr(m, "reverse") or 0) else i < j
        keep = before | ((i == j) & (not int(self.attr(m, "exclusive") or 0)))
        tri = b.const(keep.astype(np_dtype(m.dtype("i0"))))
        perm = list(range(r))
        perm[axis], perm[-1] = perm[-1], perm[axis]  # a swap is its own inverse
        x = b.op("Transpose", [m["i0"]], {"perm": perm}) if axis != r - 1 else m["i0"]
        y = b.op("MatMul", [x, tri])
        return b.op("Transpose", [y], {"perm": perm}) if axis != r - 1 else y


RULES = (LayerNorm, RMSNorm, GroupNorm, Gelu, Mish, HardSwish, Swish, Celu, OrEqual, Trilu,
         CumSum)

__all__ = ["RULES"] + [r.__name__ for r in RULES]
