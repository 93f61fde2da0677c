"""The ``shapes`` pass: write inferred shapes into the model, or strip them (``strip=true``)."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from ...ir.errors import ShapeError
from ...ir import Model
from ..base import ALL, Pass, PassContext, PassResult
from ..registry import register
from .analysis import ShapeAnalysis
from .infer import materialize, run_inference


@register
class ShapesPass(Pass):
    """Infer dtypes and symbolic shapes of every value (written as value_info dim_params)."""

    name = "shapes"
    summary = ("infer dtypes and symbolic shapes of every value, written back as value_info "
               "(strip=true removes inferred types from intermediate values)")
    options: ClassVar[dict] = {"strip": False}

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        if self.opts["strip"]:
            return self._strip(model)
        notes: list = []
        # Always a whole run (not an update of the context's analysis): what the pass writes
        # does not depend on the passes before it. The context keeps the result.
        info = run_inference(model, verbose=ctx.verbose, notes=notes)
        ctx.set_analysis(ShapeAnalysis, info)
        if info.errors:
            # Facts are not the IR: the model is unchanged.
            first = str(info.errors[0])
            more = f" (and {len(info.errors) - 1} more)" if len(info.errors) > 1 else ""
            raise ShapeError(f"shapes contradict: {first}{more}")
        if ctx.verbose:
            for msg in notes:
                ctx.note(msg)
        # Types are the IR (lowering writes them); symvals are derived metadata, never saved.
        modified = bool(materialize(model))
        stats = Counter({k: v for k, v in info.stats.items() if isinstance(v, int)})
        stats["constraints"] = len(info.constraints)
        if info.hint_conflicts:
            stats["declared_shape_conflicts"] = len(info.hint_conflicts)
            if ctx.verbose:
                for c in info.hint_conflicts:
                    ctx.note(f"shapes: {c} (the declaration is left as a hint, not acted on)")
        return PassResult(modified=modified, stats=stats, preserved=ALL)

    @staticmethod
    def _strip(model: Model) -> PassResult:
        stats: Counter = Counter()
        for g in model.graphs():
            for n in g.nodes:
                for v in n.outputs:
                    if "symval" in v.meta:
                        del v.meta["symval"]
                    if v.type is not None and not v.is_graph_output():
                        v.type = None
                        stats["stripped"] += 1
        for v in model.graph.inputs:
            if "shapes_declared_type" in v.meta:
                v.type = v.meta.pop("shapes_declared_type")
                stats["inputs_restored"] += 1
        modified = bool(stats)
        return PassResult(modified=modified, stats=stats,
                          preserved=ALL if not modified else frozenset())


__all__ = ["ShapesPass"]
