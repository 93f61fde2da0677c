"""1-D pooling as 2-D pooling over a unit axis.

TensorRT 10 pools only 2-D and 3-D inputs ("2D or 3D Pooling only" for AveragePool and MaxPool in
onnx-tensorrt docs/operators.md, https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md).
A 1-D pool over ``[N, C, L]`` is the same computation as a 2-D pool over ``[N, C, 1, L]`` whose
window is 1 along the new axis: kernel ``[1, k]``, strides ``[1, s]``, dilations ``[1, d]``, pads
``[0, b, 0, e]``. ``auto_pad`` and ``ceil_mode`` give the unit axis one output and no padding
(ceil((1 - 1) / 1) + 1 = 1 either way), and ``count_include_pad`` sees no pads there.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ...ir import Builder, Value
from ..rewrite import Match, Op, Rule
from ._common import attrs_copy, has_ref_attrs, unsqueeze


class Pool1dTo2d(Rule):
    # long: every 1-D pool attribute (kernel, strides, pads, dilations) gains the unit axis, and the
    #   rewrite wraps the pool in Unsqueeze/Squeeze
    """MaxPool/AveragePool on a rank-3 input -> Unsqueeze, the 2-D pool, Squeeze. A MaxPool whose
    Indices output is read refuses (TensorRT has no Indices either)."""

    name = "pool_1d_to_2d"
    summary = "1-D MaxPool/AveragePool -> 2-D pool over a unit axis (TensorRT pools 2-D/3-D only)"
    opset = 7
    pattern = Op(("MaxPool", "AveragePool"), "x", name="pool")

    def check(self, m: Match) -> Optional[str]:
        node = m.root
        if has_ref_attrs(node):
            return "an attribute refers to a function attribute"
        if m.rank("x") != 3:
            return "the input is not rank 3"
        if any(o.has_uses() for o in node.outputs[1:]):
            return "the Indices output is used"
        k = node.attr("kernel_shape")
        if k is None or len(k) != 1:
            return "kernel_shape is not 1-D"
        pads = node.attr("pads")
        if pads is not None and len(pads) != 2:
            return "pads is not [begin, end]"
        return None

    def rewrite(self, m: Match, b: Builder) -> Sequence[Optional[Value]]:
        node = m.root

        def widen(name: str, fill: int) -> Optional[list[int]]:
            v = node.attr(name)
            if v is None:
                return None
            v = list(v)
            if name == "pads":  # [begin, end] -> [0, begin, 0, end]
                return [0, v[0], 0, v[1]]
            return [fill] + v

        changes = {a: widen(a, 1) for a in ("kernel_shape", "strides", "dilations", "pads")}
        x2 = unsqueeze(b, m["x"], [2], m.opset)
        pooled = b.op(node.op_type, [x2], attrs_copy(node, **changes), name=node.name)
        y = unsqueeze(b, pooled, [2], m.opset, squeeze=True)
        return [y] + [None] * (len(node.outputs) - 1)


RULES: list[Rule] = [Pool1dTo2d()]

__all__ = ["RULES", "Pool1dTo2d"]
