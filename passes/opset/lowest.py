"""The lowest default-domain opset a model can be converted to, by trying conversions on copies
(the rules either reach a target or name the node that stops them, so trying is the answer)."""

from __future__ import annotations

from ...ir.errors import OnnxoptError
from ...ir import Model, lift_model, lower_model
from ..base import PassContext
from .versions import MIN_OPSET


def lowest_opset(model: Model) -> tuple[int | None, str | None]:
    """(lowest opset reached, the refusal one below it) — (None, None) without a default
    domain. The model is not modified. A bisection: every rule works from some opset up, so a
    model that converts to N converts to every opset between N and its own."""
    source = model.opset("")
    if not source:
        return None, None
    proto = lower_model(model)
    good, bad, why = source, MIN_OPSET - 1, None
    while good - bad > 1:
        mid = (good + bad) // 2
        problem = _try(proto, model.base_dir, source, mid)
        if problem is None:
            good = mid
        else:
            bad, why = mid, problem
    return good, why  # ``why`` is the refusal at ``bad``, which ends one below ``good``


def _try(proto, base_dir, source: int, target: int) -> str | None:
    """Why converting a copy to ``target`` fails (None when it works)."""
    from .convert import convert

    copy = lift_model(proto, base_dir)
    try:
        convert(copy, PassContext(copy), source, target)
    except OnnxoptError as e:
        return str(e)
    return None


__all__ = ["lowest_opset"]
