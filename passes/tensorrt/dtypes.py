"""Element types an op does not accept in TensorRT 10, routed through types it does, exactly.

The per-op "Supported Types" column of onnx-tensorrt docs/operators.md (TensorRT 10.15,
https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md) is narrower than ONNX for some
ops: NonZero takes FP32/FP16 only, Equal no BOOL, Clip floats only, Pad no BOOL, and DOUBLE is cast
down to FLOAT everywhere. Each rule here changes types only where no value can change: bool and
integers become floats that are nonzero exactly when they were, bools become 0/1 int32 and back,
integer Clip is Max then Min, and a float detour through double is dropped.

No rule narrows INT64 to INT32: TensorRT has supported INT64 natively since 9.0 (the parser "no
longer automatically casts INT64 to INT32", onnx-tensorrt docs/Changelog.md), and ONNX itself
requires int64 for shape inputs such as Reshape's.
"""

from __future__ import annotations

from typing import Optional

from ...ir import Builder, Value
from ..rewrite import Match, Op, Opt, Rule
from ._common import BFLOAT16, BOOL, DOUBLE, FLOAT, FLOAT16, INT32, INT64, INTS, attrs_copy

# Converting these to float32 maps zero to 0.0 and every nonzero value to a nonzero float
# (the smallest nonzero magnitude, 1, is exact; bfloat16 widens exactly).
_NONZERO_EXACT_TO_FLOAT = frozenset({BOOL, BFLOAT16, *INTS})


class NonZeroViaFloat(Rule):
    """NonZero on bool, integer or bfloat16 data -> NonZero(Cast(x, float)). The indices of the
    nonzero elements are the same because the cast keeps zero and nonzero apart. TensorRT 10's
    NonZero supports FP32 and FP16 only (docs/operators.md)."""

    name = "nonzero_via_float"
    summary = ("NonZero on bool/int data -> NonZero of a float cast (TensorRT's NonZero is "
               "FP32/FP16 only)")
    opset = 9
    pattern = Op("NonZero", "x")

    def check(self, m: Match) -> Optional[str]:
        dt = m.dtype("x")
        if dt not in _NONZERO_EXACT_TO_FLOAT:
            return "the input is not bool, integer or bfloat16"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        xf = b.op("Cast", [m["x"]], {"to": FLOAT})
        return b.op("NonZero", [xf], name=m.root.name)


class BoolEqualToXor(Rule):
    """Equal on two bool tensors -> Not(Xor(a, b)) (same truth table, same broadcasting).
    TensorRT 10's Equal has no BOOL type while Xor and Not do (docs/operators.md)."""

    name = "bool_equal_to_xor"
    summary = "Equal on bools -> Not(Xor) (TensorRT's Equal has no BOOL)"
    opset = 7
    pattern = Op("Equal", "a", "b")

    def check(self, m: Match) -> Optional[str]:
        if m.dtype("a") != BOOL or m.dtype("b") != BOOL:
            return "the inputs are not bool"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        return b.op("Not", [b.op("Xor", [m["a"], m["b"]])], name=m.root.name)


class IntClipToMinMax(Rule):
    """Clip on int32/int64 -> Min(Max(x, min), max) (the definition of Clip; absent bounds are
    skipped, and min > max gives max both ways). TensorRT 10's Clip supports float types only
    while Max and Min take INT32 and INT64 (docs/operators.md)."""

    name = "int_clip_to_min_max"
    summary = "Clip on int32/int64 -> Max then Min (TensorRT's Clip is float-only)"
    opset = 12
    pattern = Op("Clip", "x", Opt("lo"), Opt("hi"))

    def check(self, m: Match) -> Optional[str]:
        if m.dtype("x") not in (INT32, INT64):
            return "the input is not int32 or int64"
        if m.get("lo") is None and m.get("hi") is None:
            return "no bounds (the identity pass removes it)"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        y = m["x"]
        if m.get("lo") is not None:
            y = b.op("Max", [y, m["lo"]])
        if m.get("hi") is not None:
            y = b.op("Min", [y, m["hi"]])
        return y


class PadBoolViaInt32(Rule):
    """Pad on bool data -> Cast to int32, Pad (constant_value cast too), Cast back to bool; 0/1
    survive both casts. TensorRT 10's Pad has no BOOL type (docs/operators.md)."""

    name = "pad_bool_via_int32"
    summary = "Pad on bools -> Pad on int32 between two Casts (TensorRT's Pad has no BOOL)"
    opset = 13
    pattern = Op("Pad", "x", "pads", Opt("value"), Opt("axes"))

    def check(self, m: Match) -> Optional[str]:
        if m.dtype("x") != BOOL:
            return "the input is not bool"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        xi = b.op("Cast", [m["x"]], {"to": INT32})
        value = m.get("value")
        vi = b.op("Cast", [value], {"to": INT32}) if value is not None else None
        ins = [xi, m["pads"], vi, m.get("axes")]
        while ins[-1] is None:
            ins.pop()
        padded = b.op("Pad", ins, attrs_copy(m.root), name=m.root.name)
        return b.op("Cast", [padded], {"to": BOOL})


_EXACT_IN_DOUBLE = frozenset({FLOAT, FLOAT16, BFLOAT16, INT32, BOOL})
_NARROW_FLOATS = frozenset({FLOAT, FLOAT16, BFLOAT16})


class CastDoubleRoundTrip(Rule):
    """Cast(x) to double then to float/float16/bfloat16 -> one Cast (or none). x is float16,
    bfloat16, float, int32 or bool, all exactly representable in double, so the first cast is
    exact and the second rounds the same value the direct cast rounds. TensorRT 10 casts DOUBLE
    down to FLOAT with clamping (docs/operators.md); here no double is left."""

    name = "cast_double_round_trip"
    summary = "Cast to double and back to a float type -> one direct Cast (no DOUBLE left)"
    opset = 1
    pattern = Op("Cast", Op("Cast", "x", name="widen"), name="narrow")

    def check(self, m: Match) -> Optional[str]:
        if m.attr("widen", "to") != DOUBLE:
            return "the inner Cast is not to double"
        if m.attr("narrow", "to") not in _NARROW_FLOATS:
            return "the outer Cast is not to float, float16 or bfloat16"
        if m.dtype("x") not in _EXACT_IN_DOUBLE:
            return "the source type is not exact in double"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        to = int(m.attr("narrow", "to"))
        if m.dtype("x") == to:
            return m["x"]
        return b.op("Cast", [m["x"]], {"to": to}, name=m.root.name)


RULES: list[Rule] = [NonZeroViaFloat(), BoolEqualToXor(), IntClipToMinMax(), PadBoolViaInt32(),
                     CastDoubleRoundTrip()]

__all__ = ["RULES", "NonZeroViaFloat", "BoolEqualToXor", "IntClipToMinMax", "PadBoolViaInt32",
           "CastDoubleRoundTrip"]
