"""Facts from symbolic shape inference, as fold uses them.

Types read from a file are declarations, not facts (a declared output shape can be wrong, and a
rewrite that trusts it breaks the model). fold therefore takes shapes only from the shape
analysis, from constants, or from the model's own inputs (whose shapes the runtime enforces).

The analysis annotates every value's type in place. Like the rewrite driver, fold undoes those
annotations when it rewrites nothing, so a pass that changed nothing leaves the IR exactly as it
came in (:class:`onnxopt.passes.rewrite.Shapes` does the bookkeeping).
"""

from __future__ import annotations

from typing import Optional

from ...ir import Model, Shape, Value
from ..base import PassContext

SHAPES = "shapes"  # the analysis's cache name


def request_shapes(model: Model, ctx: PassContext):
    """Run (or reuse) the shape analysis: a ``Shapes`` handle (``undo()`` restores the declared
    types), or None when shape inference failed."""
    from ..rewrite import Shapes

    shapes = Shapes(ctx)
    probe = next(iter(model.graph.outputs), None) or next(iter(model.graph.inputs), None)
    if probe is None:
        return None
    try:
        shapes.shape(probe)  # runs the analysis
    except Exception as e:  # a failing analysis must not stop folding
        ctx.note(f"fold: shape inference failed ({type(e).__name__}: {e}); folding without "
                 "proven shapes")
        shapes.undo()
        return None
    return shapes


def fact_shape(v: Value, model: Model, inferred: bool) -> Optional[Shape]:
    """``v``'s shape when it is a fact: inferred, a constant's, or a model input's."""
    t = v.const_value
    if t is not None and v.producer is None and not v.is_graph_input():
        return Shape(t.dims)
    if inferred or (v.is_graph_input() and v.graph is model.graph):
        return v.shape
    return None


__all__ = ["request_shapes", "fact_shape", "SHAPES"]
