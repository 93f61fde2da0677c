"""Facts from symbolic shape inference, as fold and simplify use them.

Types read from a file are declarations, not facts (a declared output shape can be wrong, and a
rewrite that trusts it breaks the model). These passes therefore take shapes only from the shape
analysis, from constants, or from the model's own inputs (whose shapes the runtime enforces).

Requesting the analysis annotates every value's type in place, which changes the IR as surely as
a rewrite does: :func:`request_shapes` says whether it did, so a pass that rewrote nothing still
reports ``modified`` truthfully (and reports nothing the next time, when the types are the same).
"""

from __future__ import annotations

from typing import Optional

from ...ir import Model, Shape, Value
from ..base import PassContext

SHAPES = "shapes"  # the analysis's cache name


def _types(model: Model) -> list:
    out = []
    for g in model.graphs():
        out.extend(v.type for v in g.inputs)
        for n in g.nodes:
            out.extend(v.type for v in n.outputs)
    return out


def request_shapes(model: Model, ctx: PassContext) -> tuple[bool, bool]:
    """Run (or reuse) the shape analysis: ``(available, annotations_changed)``."""
    try:
        from ..shapes import ShapeAnalysis
    except ImportError:
        return False, False
    before = _types(model)
    try:
        ctx.analysis(ShapeAnalysis)
    except Exception as e:  # a failing analysis must not stop the pass
        ctx.note(f"shape inference failed ({type(e).__name__}: {e}); working without proven "
                 "shapes")
        return False, _types(model) != before
    return True, _types(model) != before


def fact_shape(v: Value, model: Model, inferred: bool) -> Optional[Shape]:
    """``v``'s shape when it is a fact: inferred, a constant's, or a model input's."""
    t = v.const_value
    if t is not None and v.producer is None and not v.is_graph_input():
        return Shape(t.dims)
    if inferred or (v.is_graph_input() and v.graph is model.graph):
        return v.shape
    return None


__all__ = ["request_shapes", "fact_shape", "SHAPES"]
