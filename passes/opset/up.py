"""Up-conversion rules, for where onnx's version converter gives up: attributes that became
inputs (axes, split, pads, Clip's bounds, Slice's ranges) and Softmax & co's 2-D coercion
(before 13), written the way the newer version says them."""

from __future__ import annotations

import numpy as np

from ...ir import Builder, Value, np_dtype
from ..rewrite import Match
from .common import ConversionRule, axes_input_since, reduce, slice_
from .forms import Restate
from .io import REDUCE_OPS
from .versions import since


class Up(ConversionRule):
    """An up-conversion. ``moves``: ``(opset, attribute)``, the attribute that became an input
    at that opset; a target below it, or a node without it, has nothing to move."""

    down = False
    moves: tuple[int, str] | None = None

    def refuse(self, m: Match) -> str | None:
        if self.moves is not None and (self.target < self.moves[0]
                                       or self.moves[1] not in m.root.attributes):
            return "nothing to move"
        return None


class AxesUp(Up):
    """ReduceX / Squeeze / Unsqueeze with an axes attribute -> axes as an input."""

    name = "axes_attribute"
    summary = "ReduceX/Squeeze/Unsqueeze{axes} -> the op with an axes input"
    ops = REDUCE_OPS + ("Squeeze", "Unsqueeze")

    def refuse(self, m: Match) -> str | None:
        if self.target < axes_input_since(m.root.op_type) or "axes" not in m.root.attributes:
            return "no axes attribute to move"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        op = m.root.op_type
        keep = int(self.attr(m, "keepdims")) if op.startswith("Reduce") else 1
        return reduce(b, op, m["i0"], list(self.attr(m, "axes")), keep, self.target)


class SplitUp(Up):
    name = "split_attribute"
    summary = "Split{split} -> Split(x, split) (opset 13)"
    ops = ("Split",)
    moves = (13, "split")

    def rewrite(self, m: Match, b: Builder):
        sizes = b.const(np.array(list(self.attr(m, "split")), dtype=np.int64))
        return b.op("Split", [m["i0"], sizes], {"axis": int(self.attr(m, "axis") or 0)},
                    num_outputs=len(m.root.outputs))


class PadUp(Up):
    name = "pad_attributes"
    summary = "Pad{pads, value} -> Pad(x, pads, value) (opset 11)"
    ops = ("Pad",)
    moves = (11, "pads")

    def rewrite(self, m: Match, b: Builder) -> Value:
        pads = b.const(np.array(list(self.attr(m, "pads")), dtype=np.int64))
        value = b.const(np.array(self.attr(m, "value") or 0.0, dtype=np_dtype(m.dtype("i0"))))
        return b.op("Pad", [m["i0"], pads, value], {"mode": self.attr(m, "mode")})


class ClipUp(Up):
    name = "clip_attributes"
    summary = "Clip{min, max} -> Clip(x, min, max) (opset 11)"
    ops = ("Clip",)
    needs = (11, "nothing to move")

    def refuse(self, m: Match) -> str | None:
        if m.get("i1") is not None:
            return "nothing to move"
        return None if m.dtype("i0") else "the element type is unknown"

    def rewrite(self, m: Match, b: Builder) -> Value:
        dt = np_dtype(m.dtype("i0"))
        lo, hi = self.attr(m, "min"), self.attr(m, "max")
        ins = [m["i0"], b.const(np.array(lo, dtype=dt)) if lo is not None else None,
               b.const(np.array(hi, dtype=dt)) if hi is not None else None]
        while ins[-1] is None:
            ins.pop()
        return b.op("Clip", ins)


class SliceUp(Up):
    name = "slice_attributes"
    summary = "Slice{starts, ends, axes} -> Slice(x, starts, ends, axes) (opset 10)"
    ops = ("Slice",)
    moves = (10, "starts")

    def rewrite(self, m: Match, b: Builder) -> Value:
        starts, ends = list(self.attr(m, "starts")), list(self.attr(m, "ends"))
        axes = self.attr(m, "axes")
        axes = list(axes) if axes is not None else list(range(len(starts)))
        return slice_(b, m["i0"], starts, ends, axes, self.target)


class SoftmaxUp(Up):
    """Softmax & co before 13 coerce the input to 2-D at ``axis``: Flatten, the op over the
    second axis, and a Reshape back say the same at 13."""

    name = "softmax_coerced"
    summary = "Softmax{axis} (2-D coercion) -> Reshape(Softmax(Flatten(x, axis), 1), Shape(x))"
    ops = ("Softmax", "LogSoftmax", "Hardmax")
    needs = (13, "the same meaning at the target")

    def rewrite(self, m: Match, b: Builder) -> Value:
        op, axis, r = m.root.op_type, int(self.attr(m, "axis")), m.rank("i0")
        if r is not None and axis in (-1, r - 1):
            return b.op(op, [m["i0"]], {"axis": -1})
        flat = b.op("Flatten", [m["i0"]], {"axis": axis})
        return b.op("Reshape", [b.op(op, [flat], {"axis": 1}), b.op("Shape", [m["i0"]])])


class ResizeUp(Up):
    """Upsample (7/9) and Resize-10 -> Resize at 11+ with what they compute spelled out:
    asymmetric coordinates, nearest rounding down when enlarging and up when shrinking (what
    onnxruntime does at 10; mixed directions are refused)."""

    name = "resize_asymmetric"
    summary = "Upsample / Resize-10 -> Resize{asymmetric} with the same rounding (opset 11)"
    ops = ("Upsample", "Resize")

    def refuse(self, m: Match) -> str | None:
        if self.target < 11 or (m.root.op_type == "Resize" and since("Resize", self.source) > 10):
            return "not Upsample or Resize-10 going to 11 or later"
        scales = self.scales(m)
        if scales is None:
            return "the scales are not a constant"
        if self.attr(m, "mode") == "nearest" and self.rounding(scales) is None:
            return "nearest with some axes enlarged and others shrunk"
        return None

    def scales(self, m: Match):
        if "scales" in m.root.attributes:
            return np.array(self.attr(m, "scales"), dtype=np.float32)
        c = m.const("i1")
        return None if c is None else c.astype(np.float32).reshape(-1)

    def rounding(self, scales) -> str | None:
        return "floor" if all(scales >= 1) else "ceil" if all(scales <= 1) else None

    def rewrite(self, m: Match, b: Builder) -> Value:
        scales, mode = self.scales(m), self.attr(m, "mode")
        attrs = {"mode": mode, "coordinate_transformation_mode": "asymmetric"}
        if mode == "nearest":
            attrs["nearest_mode"] = self.rounding(scales)
        roi = b.const(np.zeros(0, dtype=np.float32)) if self.target < 13 else None
        return b.op("Resize", [m["i0"], roi, b.const(scales)], attrs)


class RestateUp(Restate):
    """Attributes a newer version removed, at their default, dropped (``restate`` going up)."""

    name = "restate_up"
    summary = "drop attributes a newer version removed, at their default (BatchNorm's spatial...)"
    down = False


RULES = (AxesUp, SplitUp, PadUp, ClipUp, SliceUp, SoftmaxUp, ResizeUp, RestateUp)

__all__ = ["RULES"] + [r.__name__ for r in RULES]
