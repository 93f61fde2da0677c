"""Constant folding (``-p fold``): numpy evaluators, one onnxruntime session per constant region,
a size policy, and inlining of If nodes whose condition is constant. See :mod:`.fold`.

Public names: :class:`Fold` (the pass), :data:`NEVER_FOLD`, :data:`EVALUATORS`,
:func:`register_evaluator`, :class:`Unsupported` (raised by an evaluator that does not cover a case
exactly, so the node goes to onnxruntime).
"""

from .evaluators import EVALUATORS, NeverFold, Unsupported, register_evaluator
from .fold import NEVER_FOLD, Fold

__all__ = ["Fold", "NEVER_FOLD", "EVALUATORS", "register_evaluator", "Unsupported", "NeverFold"]
