"""The lowest default-domain opset a model can be converted to, by trying: a conversion at each
opset below the model's on a copy, stopping at the first refusal (the rules either reach a
target or name the node that stops them, so trying is the exact answer)."""

from __future__ import annotations

from ...errors import OnnxoptError
from ...ir import Model, lift_model, lower_model
from ..base import PassContext
from .versions import MIN_OPSET


def lowest_opset(model: Model) -> tuple[int | None, str | None]:
    """(lowest opset reached, the refusal one below it) — (None, None) without a default
    domain. The model is not modified."""
    from .convert import convert

    source = model.opset("")
    if not source:
        return None, None
    proto = lower_model(model)
    low, why = source, None
    for target in range(source - 1, MIN_OPSET - 1, -1):
        copy = lift_model(proto, model.base_dir)
        try:
            convert(copy, PassContext(copy), source, target)
        except OnnxoptError as e:
            why = str(e)
            break
        low = target
    return low, why


__all__ = ["lowest_opset"]
