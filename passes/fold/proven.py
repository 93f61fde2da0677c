"""Facts from symbolic shape inference, as fold uses them.

Types read from a file are declarations, not facts (a declared output shape can be wrong, and a
rewrite that trusts it breaks the model). fold therefore takes shapes only from the shape
analysis, from constants, or from the model's own inputs (whose shapes the runtime enforces).

The analysis records its facts beside the IR (``value.meta``) and fold reads them there
(``_Folder.type_of``, ``sym_value``): asking changes nothing, so there is nothing to undo.
"""

from __future__ import annotations

from ...ir import Model
from ..base import PassContext

SHAPES = "shapes"  # the analysis's cache name


def request_shapes(model: Model, ctx: PassContext):
    """Run (or reuse) the shape analysis: a ``Shapes`` handle, or None when shape inference
    failed."""
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
        return None
    return shapes


__all__ = ["request_shapes", "SHAPES"]
