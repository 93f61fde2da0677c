"""Resize forms TensorRT 10 refuses, rewritten into exactly equivalent forms it accepts.

TensorRT's ONNX parser supports the coordinate transformations half_pixel, pytorch_half_pixel,
tf_half_pixel_for_nn, asymmetric and align_corners, only the ``stretch`` aspect-ratio policy, no
antialiasing, and, when scales come as a tensor, only an ``axes`` attribute covering every axis
in order (onnx-tensorrt docs/operators.md, TensorRT 10.15, and the Resize check in
onnxOpCheckers.cpp: https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md). Each rule
below rewrites one refused form when the ONNX Resize definition
(https://onnx.ai/onnx/operators/onnx__Resize.html) makes the two forms compute the same
coordinates; anything it cannot prove from constants and static shapes is left alone.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

import numpy as np

from ...ir import Builder, Node, Value
from ..rewrite import Match, Op, Opt, Rule, const_value
from ._common import attrs_copy, axes_list, has_ref_attrs, present, static_dims

_RESIZE = Op("Resize", "x", Opt("roi"), Opt("scales"), Opt("sizes"), name="resize")


def _parts(m: Match) -> tuple[Optional[Value], Optional[Value], Optional[Value], Optional[Value]]:
    """(x, roi, scales, sizes) of the matched Resize; absent or empty inputs are None."""
    ins = list(m.root.inputs) + [None] * 4
    if m.opset < 11:
        return ins[0], None, present(ins[1]), None
    return ins[0], present(ins[1]), present(ins[2]), present(ins[3])


def _plan(m: Match) -> tuple[Optional[dict], str]:
    """Static facts of the matched Resize: input dims, resized axes, scale (float32) and output
    size of each resized axis. Needs a static input shape and constant scales or sizes."""
    node = m.root
    x, _roi, scales, sizes = _parts(m)
    dims = static_dims(m, x)
    if dims is None:
        return None, "the input shape is not static"
    axes = axes_list(m, node, len(dims)) if m.opset >= 18 else list(range(len(dims)))
    if axes is None:
        return None, "invalid axes"
    if sizes is not None:
        if (m.attr(node, "keep_aspect_ratio_policy") or "stretch") != "stretch":
            return None, "keep_aspect_ratio_policy is not stretch"
        c = _const(sizes)
        if c is None or c.size != len(axes):
            return None, "sizes is not a constant of one element per axis"
        outs = [int(v) for v in c.reshape(-1)]
        scl = [np.float32(o) / np.float32(dims[a]) if dims[a] else None
               for o, a in zip(outs, axes)]
        return {"dims": dims, "axes": axes, "scales": scl, "outs": outs, "sizes": True}, ""
    if scales is None:
        return None, "neither scales nor sizes is given"
    c = _const(scales)
    if c is None or c.size != len(axes):
        return None, "scales is not a constant of one element per axis"
    scl = [np.float32(v) for v in c.reshape(-1)]
    outs = [int(np.floor(np.float64(dims[a]) * np.float64(s))) for a, s in zip(axes, scl)]
    return {"dims": dims, "axes": axes, "scales": scl, "outs": outs, "sizes": False}, ""


def _const(v: Optional[Value]) -> Optional[np.ndarray]:
    return const_value(v)


def _replace(m: Match, b: Builder, inputs: list, **changes) -> Value:
    """A new Resize with the matched node's attributes changed by ``changes``."""
    node = m.root
    return b.op("Resize", inputs, attrs_copy(node, **changes), name=node.name)


class _ResizeRule(Rule):
    """A rule on one Resize: the check every one of them makes (no attribute refers to a
    function attribute), then the rule's own :meth:`qualifies`."""

    pattern = _RESIZE

    def check(self, m: Match) -> Optional[str]:
        if has_ref_attrs(m.root):
            return "an attribute refers to a function attribute"
        return self.qualifies(m)

    def qualifies(self, m: Match) -> Optional[str]:
        """A reason to refuse this Resize, or None to accept (the rule's own conditions)."""
        return None


class ResizeCropToAlignCorners(_ResizeRule):
    # long: most of it is the docstring: the ONNX coordinate formulas that make the two modes equal
    """``tf_crop_and_resize`` with the whole input as its region of interest (every roi start 0
    and end 1) -> ``align_corners``. Per the ONNX definition the source coordinate is
    ``start*(in-1) + x*(end-start)*(in-1)/(out-1)`` for out > 1, which with start 0 and end 1 is
    align_corners' ``x*(in-1)/(out-1)``; both give 0 when in = 1. An axis with out = 1 < in
    (crop-and-resize samples the centre there, align_corners the first pixel) refuses, and
    extrapolation_value is never used since every coordinate stays inside the input.
    TensorRT 10 does not support tf_crop_and_resize (onnx-tensorrt docs/operators.md)."""

    name = "resize_crop_to_align_corners"
    summary = ("Resize tf_crop_and_resize over the full image -> align_corners (TensorRT has no "
               "crop mode)")
    opset = 11

    def qualifies(self, m: Match) -> Optional[str]:
        if m.attr(m.root, "coordinate_transformation_mode") != "tf_crop_and_resize":
            return "not tf_crop_and_resize"
        _x, roi, _s, _z = _parts(m)
        plan, why = _plan(m)
        if plan is None:
            return why
        r = _const(roi) if roi is not None else None
        n = len(plan["axes"])
        if r is None or r.size != 2 * n:
            return "roi is not a constant of two elements per resized axis"
        r = r.reshape(-1).astype(np.float64)
        if any(v != 0.0 for v in r[:n]) or any(v != 1.0 for v in r[n:]):
            return "the region of interest is not the whole input"
        for a, out in zip(plan["axes"], plan["outs"]):
            if out <= 1 and plan["dims"][a] != 1:
                return f"axis {a} shrinks to one element (crop samples its centre)"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        ins = list(m.root.inputs)
        if m.opset >= 13:
            ins[1] = None
        else:  # roi is a required input before opset 13: give it an empty one
            ins[1] = b.const(np.zeros(0, dtype=np.float32))
        return _replace(m, b, ins, coordinate_transformation_mode="align_corners",
                        extrapolation_value=None)


def _exact_width(scale: np.float32, in_dim: int, out: int) -> bool:
    """True when ``scale * in_dim`` is exactly the integer ``out`` in float32 and float64, so
    half_pixel_symmetric's adjustment factor is exactly 1."""
    w32 = np.float32(scale) * np.float32(in_dim)
    w64 = np.float64(scale) * np.float64(in_dim)
    return float(w32) == float(out) and float(w64) == float(out)


class ResizeSymmetricToHalfPixel(_ResizeRule):
    """``half_pixel_symmetric`` -> ``half_pixel`` when every resized axis has an exact output
    width. ONNX (opset 19) shifts the source coordinate by ``in/2 * (1 - adjustment)`` with
    ``adjustment = floor(scale*in) / (scale*in)``; when ``scale*in`` is an integer exactly (in
    float32 and float64) the shift is exactly 0 and the formula is half_pixel's. TensorRT 10 does
    not list half_pixel_symmetric (onnx-tensorrt docs/operators.md)."""

    name = "resize_symmetric_to_half_pixel"
    summary = "Resize half_pixel_symmetric -> half_pixel when every output size is exact"
    opset = 19

    def qualifies(self, m: Match) -> Optional[str]:
        if m.attr(m.root, "coordinate_transformation_mode") != "half_pixel_symmetric":
            return "not half_pixel_symmetric"
        plan, why = _plan(m)
        if plan is None:
            return why
        for a, s, out in zip(plan["axes"], plan["scales"], plan["outs"]):
            if s is None or not _exact_width(s, plan["dims"][a], out):
                return f"axis {a}: scale * input size is not exactly the output size"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        return _replace(m, b, list(m.root.inputs), coordinate_transformation_mode="half_pixel")


class ResizeDropAntialias(_ResizeRule):
    """``antialias=1`` -> 0 when it has no effect: with ``nearest`` (ONNX applies the antialias
    filter to linear and cubic only) or when no axis shrinks (the filter is stretched by
    ``max(1, 1/scale)``, which is 1 for every scale >= 1). TensorRT 10 does not support
    antialiasing (onnx-tensorrt docs/operators.md; onnxOpCheckers.cpp)."""

    name = "resize_drop_antialias"
    summary = "Resize antialias=1 -> 0 for nearest or when upsampling (the filter is then a no-op)"
    opset = 18

    def qualifies(self, m: Match) -> Optional[str]:
        if not m.attr(m.root, "antialias"):
            return "antialias is off"
        if m.attr(m.root, "mode") == "nearest":
            return None
        plan, why = _plan(m)
        if plan is None:
            return why
        for a, s, out in zip(plan["axes"], plan["scales"], plan["outs"]):
            if s is None or s < 1 or out < plan["dims"][a]:
                return f"axis {a} is downsampled (antialiasing changes the result)"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        return _replace(m, b, list(m.root.inputs), antialias=None)


class ResizeStretchPolicy(_ResizeRule):
    """``keep_aspect_ratio_policy`` not_larger/not_smaller -> ``stretch`` when it cannot matter:
    constant sizes whose ratio to the static input dims is the same on every resized axis (then
    min and max of the ratios are that ratio and the policy's output sizes are the given sizes).
    TensorRT 10 supports only stretch (onnx-tensorrt docs/operators.md)."""

    name = "resize_stretch_policy"
    summary = "Resize keep_aspect_ratio_policy -> stretch when the sizes keep the aspect ratio"
    opset = 18

    def qualifies(self, m: Match) -> Optional[str]:
        if (m.attr(m.root, "keep_aspect_ratio_policy") or "stretch") == "stretch":
            return "already stretch"
        x, _roi, scales, sizes = _parts(m)
        if sizes is None:  # with scales the policy is invalid ONNX (shape inference refuses it)
            return "the policy applies to sizes only"
        dims = static_dims(m, x)
        c = _const(sizes)
        if dims is None or c is None:
            return "sizes or the input shape is not static"
        axes = axes_list(m, m.root, len(dims))
        if axes is None or c.size != len(axes) or any(dims[a] == 0 for a in axes):
            return "sizes do not match the axes"
        ratios = {Fraction(int(o), dims[a]) for o, a in zip(c.reshape(-1), axes)}
        if len(ratios) != 1:
            return "sizes change the aspect ratio"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        return _replace(m, b, list(m.root.inputs), keep_aspect_ratio_policy=None)


class ResizeFullRankScales(_ResizeRule):
    # long: scales, and a tf_crop_and_resize roi with them, are widened to every axis; each needs
    #   its own checks of the subset form
    """Constant scales over an ``axes`` subset -> scales for every axis (1 where the node did not
    resize) and no ``axes`` attribute; a tf_crop_and_resize roi is widened the same way (start 0,
    end 1 on the added axes). ONNX defines the axes form as exactly this full form. TensorRT 10
    requires axes to be 0..rank-1 when scales is a tensor (onnx-tensorrt docs/operators.md)."""

    name = "resize_full_rank_scales"
    summary = "Resize scales over an axes subset -> scales for every axis, no axes attribute"
    opset = 18

    def qualifies(self, m: Match) -> Optional[str]:
        if not m.attr(m.root, "axes"):
            return "no axes attribute"
        x, roi, scales, sizes = _parts(m)
        rank = m.rank(x)
        if rank is None:
            return "the input rank is unknown"
        axes = axes_list(m, m.root, rank)
        if axes is None:
            return "invalid axes"
        if axes == list(range(rank)):
            return "axes already cover every axis in order"
        if sizes is not None or scales is None:
            return "the sizes form (TensorRT accepts its axes)"
        c = _const(scales)
        if c is None or c.size != len(axes):
            return "scales is not a constant of one element per axis"
        crop = m.attr(m.root, "coordinate_transformation_mode") == "tf_crop_and_resize"
        if roi is not None and crop:
            r = _const(roi)
            if r is None or r.size != 2 * len(axes):
                return "roi is not a constant of two elements per axis"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        node: Node = m.root
        x, roi, scales, _ = _parts(m)
        rank = m.rank(x)
        axes = axes_list(m, node, rank)
        c = _const(scales).reshape(-1)
        full = np.ones(rank, dtype=c.dtype)
        for a, s in zip(axes, c):
            full[a] = s
        ins = list(node.inputs) + [None] * (4 - len(node.inputs))
        ins[2] = b.const(full)
        crop = m.attr(node, "coordinate_transformation_mode") == "tf_crop_and_resize"
        if roi is not None and crop:
            r = _const(roi).reshape(-1)
            n = len(axes)
            wide = np.concatenate([np.zeros(rank, r.dtype), np.ones(rank, r.dtype)])
            for i, a in enumerate(axes):
                wide[a], wide[rank + a] = r[i], r[n + i]
            ins[1] = b.const(wide)
        while ins and ins[-1] is None:
            ins.pop()
        return _replace(m, b, ins, axes=None)


RULES: list[Rule] = [ResizeFullRankScales(), ResizeStretchPolicy(), ResizeCropToAlignCorners(),
                     ResizeSymmetricToHalfPixel(), ResizeDropAntialias()]

__all__ = ["RULES", "ResizeCropToAlignCorners", "ResizeSymmetricToHalfPixel",
           "ResizeDropAntialias", "ResizeStretchPolicy", "ResizeFullRankScales"]
