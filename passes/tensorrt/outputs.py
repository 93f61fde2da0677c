"""Unused extra outputs dropped from ops whose TensorRT importer supports only the first one.

TensorRT 10's parser refuses a MaxPool with an Indices output, a LayerNormalization or
BatchNormalization with Mean/InvStdDev or running statistics outputs, and an Attention with its
cache outputs, even when nothing reads them: its static check rejects any extra output with a
name (``emptyOutputChecker`` in onnx-tensorrt onnxOpCheckers.cpp,
https://github.com/onnx/onnx-tensorrt/blob/main/onnxOpCheckers.cpp; docs/operators.md lists the
same restrictions). Optional ONNX outputs that nobody reads can be omitted without changing the
first output, so the node is rebuilt with one output.
"""

from __future__ import annotations

from typing import Optional, Sequence

from ...ir import Builder, Value
from ..rewrite import Match, Op, Opt, Rule
from ._common import has_ref_attrs

# op -> how many leading outputs TensorRT supports.
KEEP = {"MaxPool": 1, "LayerNormalization": 1, "BatchNormalization": 1, "Attention": 1,
        "Dropout": 1}


class DropUnusedOutputs(Rule):
    """Rebuild MaxPool/LayerNormalization/BatchNormalization/Attention/Dropout with only its
    first output when the others exist but nothing reads them."""

    name = "drop_unused_outputs"
    summary = ("drop unread extra outputs of MaxPool/LayerNorm/BatchNorm/Attention/Dropout "
               "(TensorRT supports only the first)")
    opset = 1
    pattern = Op(tuple(KEEP), "x", *(Opt(f"in{i}") for i in range(1, 7)), name="node")

    def check(self, m: Match) -> Optional[str]:
        node = m.root
        keep = KEEP[node.op_type]
        extra = node.outputs[keep:]
        if not extra:
            return "no extra outputs"
        if any(o.has_uses() for o in extra):
            return "an extra output is used"
        if all(o.name == "" for o in extra):
            return "the extra outputs are already omitted"
        if has_ref_attrs(node):
            return "an attribute refers to a function attribute"
        return None

    def rewrite(self, m: Match, b: Builder) -> Sequence[Optional[Value]]:
        node = m.root
        keep = KEEP[node.op_type]
        new = b.node(node.op_type, list(node.inputs), dict(node.attributes), domain=node.domain,
                     num_outputs=keep, name=node.name)
        return list(new.outputs) + [None] * (len(node.outputs) - keep)


RULES: list[Rule] = [DropUnusedOutputs()]

__all__ = ["RULES", "DropUnusedOutputs", "KEEP"]
