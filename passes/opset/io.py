"""Down-conversion rules for inputs that used to be attributes (or attributes that became
inputs, or an op whose signature grew): the node is re-emitted in the form the target takes,
with the moved value read from a constant (a non-constant one cannot become an attribute)."""

from __future__ import annotations

import numpy as np

from ...ir import Builder, Value
from ..rewrite import Match
from .common import ConversionRule, axes_input_since, norm_axes, reduce, slice_
from .versions import since

REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
INT64_MAX = np.iinfo(np.int64).max


class ReduceAxes(ConversionRule):
    """ReduceX / Squeeze / Unsqueeze with constant axes as an input -> axes as an attribute."""

    name = "axes_input"
    summary = "ReduceX/Squeeze/Unsqueeze(x, axes) -> the op with an axes attribute"
    ops = REDUCE_OPS + ("Squeeze", "Unsqueeze")

    def refuse(self, m: Match) -> str | None:
        op = m.root.op_type
        if self.target >= axes_input_since(op) or since(op, self.source) < axes_input_since(op):
            return "the axes are in the same form at both opsets"
        if m.get("i1") is not None and m.const("i1") is None:
            return "the axes input is not a constant"
        if self.axes(m) is False:
            return "negative axes (older than opset 11 takes none) with an unknown rank"
        return None

    def axes(self, m: Match):
        c = m.const("i1")
        if c is None or c.size == 0:
            return None
        rank = m.rank("i0")
        if m.root.op_type == "Unsqueeze" and rank is not None:
            rank += c.size
        if self.target >= 11:
            return [int(a) for a in c.reshape(-1)]
        out = norm_axes(c.reshape(-1), rank)
        return False if out is None else out

    def rewrite(self, m: Match, b: Builder) -> Value:
        op, axes = m.root.op_type, self.axes(m)
        reducing = op.startswith("Reduce")
        if axes is None and reducing and self.attr(m, "noop_with_empty_axes"):
            return b.op("Identity", [m["i0"]])
        keep = int(self.attr(m, "keepdims")) if reducing else 1
        return reduce(b, op, m["i0"], axes, keep, self.target)


class SplitForm(ConversionRule):
    # long: Split's three forms (sizes input, num_outputs, attribute) both ways; sizes() works out
    #   the even split
    """Split with sizes as an input (13) or num_outputs (18) -> the target's form."""

    name = "split_sizes"
    summary = "Split(x, split) / Split{num_outputs} -> the split attribute or an even Split"
    ops = ("Split",)

    def refuse(self, m: Match) -> str | None:
        if m.get("i1") is not None and m.const("i1") is None and self.target < 13:
            return "the split sizes are not a constant"
        if self.sizes(m) is False:
            return "num_outputs on an axis whose size is unknown"
        return None

    def axis(self, m: Match) -> int | None:
        a = int(self.attr(m, "axis") or 0)
        return a + m.rank("i0") if a < 0 and m.rank("i0") is not None else a

    def sizes(self, m: Match):
        c = m.const("i1")
        if c is not None:
            return [int(s) for s in c.reshape(-1)]
        if m.get("i1") is not None:
            return m["i1"]
        n = self.attr(m, "num_outputs")
        if n is None:
            return []
        shape, axis = m.shape("i0"), self.axis(m)
        dim = shape[axis] if shape is not None and 0 <= axis < len(shape) else None
        if not isinstance(dim, int):
            return False
        if dim % n == 0:
            return []
        chunk = -(-dim // n)  # the last chunk takes what is left (opset 18's rule)
        return [chunk] * (n - 1) + [dim - chunk * (n - 1)]

    def rewrite(self, m: Match, b: Builder):
        sizes, axis, n = self.sizes(m), self.axis(m), len(m.root.outputs)
        if isinstance(sizes, Value):
            return b.op("Split", [m["i0"], sizes], {"axis": axis}, num_outputs=n)
        if not sizes:
            return b.op("Split", [m["i0"]], {"axis": axis}, num_outputs=n)
        if self.target >= 13:
            c = b.const(np.array(sizes, dtype=np.int64))
            return b.op("Split", [m["i0"], c], {"axis": axis}, num_outputs=n)
        return b.op("Split", [m["i0"]], {"axis": axis, "split": sizes}, num_outputs=n)


class PadForm(ConversionRule):
    """Pad with an axes input (18) or with pads as inputs below 11 -> the target's form."""

    name = "pad_inputs"
    summary = "Pad(x, pads, value, axes) -> full-rank pads (and attributes below opset 11)"
    ops = ("Pad",)

    def refuse(self, m: Match) -> str | None:
        if self.attr(m, "mode") == "wrap" and self.target < 19:
            return "mode=wrap is newer than the target (opset 19)"
        if m.get("i3") is None and self.target >= 11:
            return "no axes: the generic check keeps the node"
        if m.get("i1") is not None and m.const("i1") is None:
            return "the pads are not a constant"
        if self.target < 11 and m.get("i2") is not None and m.const("i2") is None:
            return "the pad value is not a constant"
        if m.get("i3") is not None and (m.const("i3") is None or m.rank("i0") is None):
            return "the axes are not a constant or the rank is unknown"
        return None

    def pads(self, m: Match) -> list[int]:
        pads = [int(p) for p in m.const("i1").reshape(-1)] if m.get("i1") is not None else []
        if m.get("i3") is None:
            return pads
        r, axes = m.rank("i0"), norm_axes(m.const("i3").reshape(-1), m.rank("i0"))
        full = [0] * (2 * r)
        for k, a in enumerate(axes):
            full[a], full[a + r] = pads[k], pads[k + len(axes)]
        return full

    def rewrite(self, m: Match, b: Builder) -> Value:
        mode, pads = self.attr(m, "mode"), self.pads(m)
        if self.target >= 11:
            ins = [m["i0"], b.const(np.array(pads, dtype=np.int64)), m.get("i2")]
            return b.op("Pad", ins if ins[2] is not None else ins[:2], {"mode": mode})
        value = float(m.const("i2").reshape(-1)[0]) if m.get("i2") is not None else 0.0
        return b.op("Pad", [m["i0"]], {"mode": mode, "pads": pads, "value": value})


class ClipBounds(ConversionRule):
    """Clip(x, min, max) -> Clip with min/max attributes (below opset 11)."""

    name = "clip_inputs"
    summary = "Clip(x, min, max) -> Clip{min, max} below opset 11"
    ops = ("Clip",)
    until = (11, "the bounds are inputs at the target too")

    def refuse(self, m: Match) -> str | None:
        for k in ("i1", "i2"):
            if m.get(k) is not None and m.const(k) is None:
                return "a bound is not a constant"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        attrs = {}
        for k, key in (("i1", "min"), ("i2", "max")):
            if m.get(k) is not None:
                attrs[key] = float(m.const(k).reshape(-1)[0])
        return b.op("Clip", [m["i0"]], attrs)


class SliceInputs(ConversionRule):
    """Slice with constant starts/ends/axes inputs and unit steps -> attributes (below 10)."""

    name = "slice_inputs"
    summary = "Slice(x, starts, ends, axes) -> Slice{starts, ends, axes} below opset 10"
    ops = ("Slice",)
    until = (10, "the target takes inputs too")

    def refuse(self, m: Match) -> str | None:
        if any(m.get(k) is not None and m.const(k) is None for k in ("i1", "i2", "i3", "i4")):
            return "starts/ends/axes/steps are not all constants"
        if m.get("i4") is not None and np.any(m.const("i4") != 1):
            return "steps other than 1 are newer than opset 10"
        if m.get("i3") is not None and norm_axes(m.const("i3").reshape(-1), m.rank("i0")) is None:
            return "negative axes with an unknown rank"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        starts = [int(s) for s in m.const("i1").reshape(-1)]
        ends = [int(e) for e in m.const("i2").reshape(-1)]
        axes = (norm_axes(m.const("i3").reshape(-1), m.rank("i0")) if m.get("i3") is not None
                else list(range(len(starts))))
        return slice_(b, m["i0"], starts, ends, axes, self.target)


class ShapeRange(ConversionRule):
    """Shape{start, end} -> Shape then Slice (start/end are newer than opset 15)."""

    name = "shape_slice"
    summary = "Shape{start, end} -> Slice(Shape(x), start, end)"
    ops = ("Shape",)
    until = (15, "the target has start/end")

    def refuse(self, m: Match) -> str | None:
        if self.target < 10 and (int(self.attr(m, "start") or 0) < 0
                                 or int(self.attr(m, "end") or 0) < 0):
            return "negative start/end below opset 10"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        shape = b.op("Shape", [m["i0"]])
        start = int(self.attr(m, "start") or 0)
        end = self.attr(m, "end")
        if start == 0 and end is None:
            return shape
        end = INT64_MAX if end is None else int(end)
        return slice_(b, shape, [start], [end], [0], self.target)


class ResizeForm(ConversionRule):
    """Resize 13-19 -> 11/13: required roi/scales filled with empty tensors, axes expanded."""

    name = "resize_inputs"
    summary = "Resize with optional roi/scales, axes, antialias=0 -> Resize-11/13"
    ops = ("Resize",)
    needs = (11, "Resize before opset 11 has other coordinate rules")

    def refuse(self, m: Match) -> str | None:
        if self.attr(m, "coordinate_transformation_mode") == "half_pixel_symmetric":
            return "half_pixel_symmetric is newer than the target (opset 19)"
        if int(self.attr(m, "antialias") or 0) or self.attr(m, "keep_aspect_ratio_policy") \
                not in (None, "stretch"):
            return "antialias / keep_aspect_ratio_policy are newer than the target (opset 18)"
        if self.attr(m, "axes") is not None and (m.rank("i0") is None or m.get("i3") is not None):
            return "axes with sizes (or an unknown rank): the full sizes are unknown"
        if self.attr(m, "axes") is not None and m.const("i2") is None:
            return "axes with scales that are not a constant"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        x, roi, scales, sizes = m["i0"], m.get("i1"), m.get("i2"), m.get("i3")
        axes = self.attr(m, "axes")
        if axes is not None:
            full = np.ones(m.rank("i0"), dtype=np.float32)
            full[norm_axes(axes, m.rank("i0"))] = m.const("i2").reshape(-1)
            scales, roi = b.const(full), None
        if roi is None and self.target < 13:
            roi = b.const(np.zeros(0, dtype=np.float32))
        if scales is None and self.target < 13:
            scales = b.const(np.zeros(0, dtype=np.float32))
        attrs = {k: a.value for k, a in m.root.attributes.items()
                 if k not in ("antialias", "axes", "keep_aspect_ratio_policy")}
        ins = [x, roi, scales, sizes]
        while ins[-1] is None:
            ins.pop()
        return b.op("Resize", ins, attrs)


class ResizeTen(ConversionRule):
    """Resize (11+) -> Resize-10(x, scales), where they agree: asymmetric coordinates and
    constant scales; linear always; nearest when its rounding is what 10 does (onnxruntime's
    Resize-10 rounds down when enlarging and up when shrinking)."""

    name = "resize_10"
    summary = "Resize{asymmetric} with constant scales -> Resize-10(x, scales) (below 11)"
    ops = ("Resize",)
    needs = (10, "not a conversion to opset 10")
    until = (11, "not a conversion to opset 10")

    def refuse(self, m: Match) -> str | None:
        if self.attr(m, "coordinate_transformation_mode") != "asymmetric":
            return "only asymmetric coordinates exist at opset 10"
        if m.get("i3") is not None or m.const("i2") is None or self.attr(m, "axes") is not None:
            return "sizes, or scales that are not a constant over every axis"
        scales, mode = m.const("i2").reshape(-1), self.attr(m, "mode")
        if mode == "linear" or (mode == "nearest" and self._rounds(m, scales)):
            return None
        return f"mode {mode} with nearest_mode {self.attr(m, 'nearest_mode')} rounds otherwise"

    def _rounds(self, m: Match, scales) -> bool:
        nearest = self.attr(m, "nearest_mode")
        return (nearest == "floor" and all(scales >= 1)) or \
            (nearest == "ceil" and all(scales <= 1))

    def rewrite(self, m: Match, b: Builder) -> Value:
        scales = b.const(m.const("i2").astype(np.float32).reshape(-1))
        return b.op("Resize", [m["i0"], scales], {"mode": self.attr(m, "mode")})


RULES = (ReduceAxes, SplitForm, PadForm, ClipBounds, SliceInputs, ShapeRange, ResizeForm,
         ResizeTen)

__all__ = ["RULES"] + [r.__name__ for r in RULES]
