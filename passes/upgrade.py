"""``upgrade{opset=N}``: convert the model to default-domain opset N with onnx's version converter.

This is the one pass that goes through protobuf: it wraps ``onnx.version_converter``, which only
works on a ModelProto. The model is lowered, converted, checked, and lifted back; the IR objects
of the old model are replaced wholesale (graph, functions, opset imports), so nothing a pass held
from before survives this pass. Weights keep their bytes: the converter copies tensor protos and
external data stays where it was (the model's folder is kept).

Only upgrades are done: asking for an opset lower than the model's is a usage error (the
converter's downgrades are partial), and the current opset is a no-op. This is what the CLI's
``--target-opset N`` runs, so rules whose ops are newer than the original opset can fire.
"""

from __future__ import annotations

from collections import Counter

from ..errors import PassError, UsageError
from ..ir import Model, lift_model, lower_model
from .base import ALL, Pass, PassContext, PassResult
from .registry import register


@register
class Upgrade(Pass):
    """Convert the model to opset ``opset`` with onnx.version_converter (upgrades only)."""

    name = "upgrade"
    summary = "convert the model to default-domain opset N (onnx.version_converter)"
    options = {"opset": 0}

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        target = int(self.opts["opset"])
        current = model.opset("") or 1
        if target <= 0:
            raise UsageError("upgrade needs a target: upgrade{opset=N}")
        if target == current:
            return PassResult(preserved=ALL)
        if target < current:
            raise UsageError(f"upgrade: the model is at opset {current}; upgrade only raises "
                             f"the opset (asked for {target})")
        import onnx
        from onnx import version_converter

        proto = lower_model(model)
        try:
            converted = version_converter.convert_version(proto, target)
            onnx.checker.check_model(converted)
        except Exception as e:  # the converter reports unsupported ops with many exception types
            raise PassError(f"upgrade: onnx.version_converter could not convert opset {current} "
                            f"to {target}: {type(e).__name__}: {str(e).strip()[:300]}") from e
        new = lift_model(converted, model.base_dir)
        model.graph = new.graph
        model.functions = new.functions
        model.opset_imports = dict(new.opset_imports)
        model.ir_version = max(model.ir_version, new.ir_version)
        model.opaque = new.opaque
        ctx.note(f"upgrade: opset {current} -> {target}")
        return PassResult(modified=True, stats=Counter({"opset": target - current}))


__all__ = ["Upgrade"]
