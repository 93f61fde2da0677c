"""A pass made of rules: built-in fusions (``fuse``, ``trt``) and plugins use it the same way."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from ...ir.errors import UsageError
from ...ir import Model
from ..base import Pass, PassContext, PassResult
from .driver import Rewriter
from .rule import Rule
from .trace import verbose_tracer


class RewritePass(Pass):
    """A pass that applies ``rules`` (a list of :class:`Rule` instances) with the driver.

    Options: ``only`` (a rule name: run just that one), ``disable`` (rule names, comma-separated:
    run all but those), ``max_rewrites`` (stop after N rewrites). New nodes are tagged
    ``<pass name>.<rule name>``.
    """

    rules: ClassVar[Sequence[Rule]] = ()
    options: ClassVar[dict[str, Any]] = {"only": "", "disable": "", "max_rewrites": -1}

    def selected_rules(self, model: Model) -> list[Rule]:
        """The rules this instance runs (``only`` and ``disable`` applied; opset filtering is
        the driver's)."""
        rules = list(self.rules)
        names = {r.name for r in rules}
        only = self.opts.get("only") or ""
        disable = {s.strip() for s in str(self.opts.get("disable") or "").split(",") if s.strip()}
        for name in sorted(disable | ({only} if only else set())):
            if name not in names:
                raise UsageError(f"pass {self.name!r} has no rule {name!r} "
                                 f"(rules: {', '.join(sorted(names))})")
        return [r for r in rules if (not only or r.name == only) and r.name not in disable]

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        limit = self.opts.get("max_rewrites")
        limit = None if limit is None or int(limit) < 0 else int(limit)
        tracer = verbose_tracer(ctx, ctx.verbose)
        rules = self.selected_rules(model)
        opset = model.opset("") or 1
        newer = [f"{r.name} (opset {r.opset})" for r in rules if r.opset > opset]
        if tracer is not None and newer:
            ctx.note(f"{self.name}: rules not run at opset {opset}: {', '.join(newer)}; "
                     "--target-opset upgrades the model")
        key = (self.name, tuple(sorted((k, repr(v)) for k, v in self.opts.items())))
        rw = Rewriter(rules, prefix=f"{self.name}.", max_rewrites=limit, tracer=tracer,
                      memo_key=key)
        result = rw.run(model, ctx)
        if tracer is not None:
            tracer.flush()
        return result


__all__ = ["RewritePass"]
