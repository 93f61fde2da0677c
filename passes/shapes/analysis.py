"""The public API: the analysis other passes request, and helpers to read its results."""

from __future__ import annotations

from ...ir import Model, Shape, TensorType, Value
from ..base import Analysis, PassContext, _record_kind
from .context import ShapeInfo
from .dims import dims_equal
from .infer import discard_facts, materialize, proven_type, run_inference, update_inference


class ShapeAnalysis(Analysis):
    """Symbolic shape inference over the whole model; the result is a :class:`ShapeInfo`.

    The results are facts kept beside the IR, never the IR itself: ``value.meta["shapes_type"]``
    (read them with :func:`shape_of`, :func:`sym_value` or ``rewrite.Shapes``), and small integer
    shape tensors get ``value.meta["symval"]``. ``value.type`` is left alone (the ``shapes`` pass
    writes the facts as types). A pass that keeps every surviving value's shape declares
    ``preserved={"shapes"}``; the next request then infers only new or rewired nodes
    (:meth:`update`). A pass that does not preserve it drops the facts (:meth:`discard`).
    """

    name = "shapes"

    def compute(self, model: Model, ctx: PassContext) -> ShapeInfo:
        notes: list | None = [] if ctx.verbose else None
        info = run_inference(model, verbose=ctx.verbose, notes=notes, count=False)
        for msg in notes or ():
            ctx.note(msg)
        return info

    def update(self, model: Model, ctx: PassContext, previous: ShapeInfo) -> ShapeInfo:
        notes: list | None = [] if ctx.verbose else None
        info = update_inference(model, previous, verbose=ctx.verbose, notes=notes)
        for msg in notes or ():
            ctx.note(msg)
        return info

    @classmethod
    def discard(cls, model: Model) -> None:
        discard_facts(model)


def infer_shapes(model: Model, ctx: PassContext | None = None) -> ShapeInfo:
    """Infer shapes over ``model``. Without a context the result is written into the IR in place
    (every value's ``type``, as the ``shapes`` pass does); with one, the context's cached analysis
    is used and only facts are recorded (see :class:`ShapeAnalysis`)."""
    if ctx is not None:
        return ctx.analysis(ShapeAnalysis)
    _record_kind(model, ShapeAnalysis)
    info = run_inference(model)
    materialize(model)
    return info


def shape_of(value: Value) -> Shape | None:
    """The proven shape of a value: dims int / SymDim / None, None when the rank is unknown or it
    is no tensor. Reads the analysis' facts, else the declared type. Dims that only a declaration
    (value_info, a graph output) gives are None here, though the recorded type keeps them
    (``value.meta["shapes_hint_dims"]`` names them)."""
    t = proven_type(value)
    return t.shape if isinstance(t, TensorType) else None


def sym_value(value: Value) -> tuple | None:
    """The symbolic elements of a small int32/int64 tensor of rank 0 or 1: a tuple of int /
    SymDim / None (unknown element; a scalar gives a 1-tuple), or None when the value is not
    tracked (up to 64 elements are)."""
    return value.meta.get("symval")


__all__ = ["ShapeAnalysis", "ShapeInfo", "dims_equal", "infer_shapes", "shape_of", "sym_value"]
