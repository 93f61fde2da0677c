"""``fuse``: pattern fusions on the rewrite API (:mod:`onnxopt.passes.rewrite`).

Every rule that is safe for the model's opset runs, to a fixed point; ``fuse.RULE`` (or
``fuse{only=RULE}``) runs one; ``max_rewrites=N`` stops after N rewrites (bisection uses it to
name the first bad rewrite). :data:`RULES` maps each rule name to its summary (``--list-passes``
prints them). One module per family: conv, gemm, layout, arith, norm, activation, attention.
Rules that fold constants into weights or re-associate float arithmetic change rounding by a few
ulp; their modules say so.
"""

from __future__ import annotations

from ..registry import register
from ..rewrite import RewritePass, Rule
from . import activation, arith, attention, conv, gemm, layout, norm

# Order matters only between rules of equal benefit on the same root op.
ALL_RULES: list[Rule] = [
    *attention.RULES, *norm.RULES, *activation.RULES, *conv.RULES, *gemm.RULES, *layout.RULES,
    *arith.RULES,
]

RULES: dict[str, str] = {r.name: f"{r.summary} (opset >= {r.opset})" for r in ALL_RULES}


@register
class Fuse(RewritePass):
    """Run the built-in fusion rules (all, or ``only=RULE``) with the rewrite driver."""

    name = "fuse"
    summary = "fuse op patterns (conv+bn, gemm, transposes, layernorm, gelu, attention...)"
    rules = ALL_RULES


__all__ = ["Fuse", "RULES", "ALL_RULES"]
