"""The ``shapes`` pass: write inferred shapes into the model, or strip them (``strip=true``)."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from ...errors import ShapeError
from ...ir import Model
from ..base import ALL, Pass, PassContext, PassResult
from ..registry import register
from .infer import run_inference


def _values(model: Model):
    for g in model.graphs():
        yield from g.inputs
        for n in g.nodes:
            yield from n.outputs


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
        snap = [(v, v.type, dict(v.meta)) for v in _values(model)]
        notes: list = []
        info = run_inference(model, verbose=ctx.verbose, notes=notes)
        if info.errors:
            for v, t, meta in snap:
                v.type = t
                v.meta.clear()
                v.meta.update(meta)
            first = str(info.errors[0])
            more = f" (and {len(info.errors) - 1} more)" if len(info.errors) > 1 else ""
            raise ShapeError(f"shapes contradict: {first}{more}")
        if ctx.verbose:
            for msg in notes:
                ctx.note(msg)
        # Types are the IR (lowering writes them); symvals are derived metadata, never saved.
        modified = any(v.type != t for v, t, _ in snap)
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
