"""``upgrade{opset=N}``: the old name of ``opset{target=N}`` for raising the opset, kept so
pipelines written with it still run. It is the ``opset`` pass (onnx's version converter where
it works, the conversion rules where it gives up); asking it to lower the opset is a usage error
that points at ``opset``, the one pass for both directions."""

from __future__ import annotations

from typing import ClassVar

from ..ir.errors import UsageError
from ..ir import Model
from .base import PassContext, PassResult
from .opset import Opset, source_opset
from .registry import register


@register
class Upgrade(Opset):
    """``opset{target=N}`` for N at or above the model's opset (deprecated name)."""

    name = "upgrade"
    summary = "old name of opset{target=N} for raising the opset"
    options: ClassVar[dict] = {"opset": 0}

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        target = int(self.opts["opset"])
        if target <= 0:
            raise UsageError("upgrade needs a target: upgrade{opset=N} (or opset{target=N})")
        current = source_opset(model)
        if target < current:
            raise UsageError(f"upgrade: the model is at opset {current}; upgrade only raises "
                             f"the opset (asked for {target}); opset{{target={target}}} lowers it")
        self.opts = {**self.opts, "target": target}
        return super().run(model, ctx)


__all__ = ["Upgrade"]
