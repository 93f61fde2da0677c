"""The public API: the analysis other passes request, and helpers to read its results."""

from __future__ import annotations

from ...ir import Model, Shape, TensorType, Value
from ..base import Analysis, PassContext
from .context import ShapeInfo
from .dims import dims_equal
from .infer import proven_type, run_inference


class ShapeAnalysis(Analysis):
    """Symbolic shape inference over the whole model; the result is a :class:`ShapeInfo`.

    Computing it annotates the IR in place: every value's ``type`` gets its dtype and shape (dims
    int / SymDim / None) and small integer shape tensors get ``value.meta["symval"]``.
    """

    name = "shapes"

    def compute(self, model: Model, ctx: PassContext) -> ShapeInfo:
        notes: list | None = [] if ctx.verbose else None
        info = run_inference(model, verbose=ctx.verbose, notes=notes)
        for msg in notes or ():
            ctx.note(msg)
        return info


def infer_shapes(model: Model, ctx: PassContext | None = None) -> ShapeInfo:
    """Infer shapes over ``model`` in place. With a context, the cached analysis is used."""
    if ctx is not None:
        return ctx.analysis(ShapeAnalysis)
    return run_inference(model)


def shape_of(value: Value) -> Shape | None:
    """The proven shape of a value: dims int / SymDim / None, None when the rank is unknown or it
    is no tensor. Dims that only a declaration (value_info, a graph output) gives are None here,
    though ``value.type`` keeps them (``value.meta["shapes_hint_dims"]`` names them)."""
    t = proven_type(value)
    return t.shape if isinstance(t, TensorType) else None


def sym_value(value: Value) -> tuple | None:
    """The symbolic elements of a small int32/int64 tensor of rank 0 or 1: a tuple of int /
    SymDim / None (unknown element; a scalar gives a 1-tuple), or None when the value is not
    tracked (up to 64 elements are)."""
    return value.meta.get("symval")


__all__ = ["ShapeAnalysis", "ShapeInfo", "dims_equal", "infer_shapes", "shape_of", "sym_value"]
