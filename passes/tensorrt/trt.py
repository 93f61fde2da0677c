"""The ``trt`` pass: every TensorRT rewrite rule, run to a fixed point by the rewrite driver.

The pass is named ``trt`` because ``tensorrt`` is the preset that runs it with folding, cleanup
and shape inference (a bare preset name in a pipeline expands to the preset). ``trt.RULE`` (or
``trt{only=RULE}``) runs one rule; :data:`RULES` maps each rule name to its summary.
"""

from __future__ import annotations

from ..registry import register
from ..rewrite import RewritePass, Rule
from . import dtypes, outputs, pool, resize

ALL_RULES: list[Rule] = [*resize.RULES, *pool.RULES, *dtypes.RULES, *outputs.RULES]

RULES: dict[str, str] = {r.name: f"{r.summary} (opset >= {r.opset})" for r in ALL_RULES}

RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in ALL_RULES}


@register
class TRT(RewritePass):
    """Rewrite constructs TensorRT 10's ONNX parser refuses into exactly equivalent ones."""

    name = "trt"
    summary = ("rewrite constructs TensorRT 10's ONNX parser refuses into exact equivalents it "
               "accepts")
    rules = ALL_RULES


__all__ = ["TRT", "RULES", "ALL_RULES", "RULES_BY_NAME"]
