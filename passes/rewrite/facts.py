"""The Shapes facade: shape facts for patterns, checks and the driver, read from the shape
analysis (``value.meta``) so that asking never changes the IR."""

from __future__ import annotations

from typing import Callable, Optional

from ...ir import TensorType, Value, from_np_dtype
from ..base import PassContext
from .constants import array_fact, const_value

# passes.shapes is imported on first use, not here: the plugin API imports this module, and a
# pipeline that asks no shape question (``-p dce``) should not load shape inference.


_infer = None  # passes.shapes.infer, once imported (a function-level import costs per call)


def _infer_module():
    global _infer
    if _infer is None:
        from ..shapes import infer

        _infer = infer
    return _infer


def best_type(v: Value) -> Optional[TensorType]:
    """The analysis' fact for ``v`` where there is one, else its declared type."""
    return (_infer or _infer_module()).best_type(v)


class Shapes:
    """Shape facts for patterns and checks, from symbolic shape inference when it is available
    (``onnxopt.passes.shapes``), else from the declared types. Every answer is a proof: an
    unknown shape or dim never satisfies a constraint.

    Inference runs on the first question (a rule set that never asks costs nothing); its facts
    are kept beside the IR and read through this object, so asking never changes the IR (only
    the ``shapes`` pass writes facts into value types)."""

    def __init__(self, ctx: Optional[PassContext] = None, infer: bool = True):
        self._ctx = ctx if infer else None
        self._ready = self._ctx is None
        self._shape_of: Optional[Callable] = None
        self._dims_equal: Optional[Callable] = None
        self._sym_value: Optional[Callable] = None
        self.memo: dict = {}  # scratch for rules, one run long (see Match.memo)

    def load(self) -> None:
        """Run (or reuse) the shape analysis now rather than at the first question."""
        self._ready = True
        ctx = self._ctx
        from ..shapes import ShapeAnalysis, dims_equal, shape_of, sym_value

        ctx.analysis(ShapeAnalysis)
        self._shape_of, self._dims_equal, self._sym_value = shape_of, dims_equal, sym_value

    def shape(self, v: Optional[Value]):
        """The Shape of ``v`` (dims int/SymDim/None), None when the rank is unknown."""
        if v is None:
            return None
        if not self._ready:
            self.load()
        if self._shape_of is not None:
            return self._shape_of(v)
        return v.shape

    def dtype(self, v: Optional[Value]) -> Optional[int]:
        """The element type of ``v`` (inferred, declared, or from constant data)."""
        if v is None:
            return None
        if self._shape_of is not None:
            t = (_infer or _infer_module()).best_type(v)
            dt = t.dtype if isinstance(t, TensorType) else None
            if dt:
                return dt
        dt = v.dtype
        if dt:
            return dt
        c = const_value(v)
        if c is not None:
            return from_np_dtype(c.dtype)
        if not self._ready:
            self.load()
            if self._shape_of is not None:
                t = best_type(v)
                return (t.dtype or None) if isinstance(t, TensorType) else None
            return v.dtype
        return None

    def rank(self, v: Optional[Value]) -> Optional[int]:
        """The rank of ``v``, None when unknown."""
        s = self.shape(v)
        return None if s is None else len(s)

    def dims_equal(self, a, b) -> bool:
        """True only when two dims are provably equal."""
        if a is None or b is None:
            return False
        if not self._ready:
            self.load()
        if self._dims_equal is not None:
            return bool(self._dims_equal(a, b))
        return type(a) is type(b) and a == b

    def sym_value(self, v: Optional[Value]) -> Optional[list]:
        """The elements of a small int shape tensor (ints/SymDims), when shape inference knows
        them; constants answer even without it."""
        if v is None:
            return None
        c = const_value(v)
        if c is not None and c.dtype.kind in "iu" and c.ndim <= 1:
            return list(array_fact(c, "ints", lambda a: tuple(int(x) for x in a.reshape(-1))))
        if not self._ready:
            self.load()
        if self._sym_value is not None:
            return self._sym_value(v)
        return v.meta.get("symval")


def inherit_fact(old: Value, new: Value) -> None:
    """A new value replacing ``old`` has its type: carry the analysis' fact over (so later
    rules in this pass can ask about it) unless the value already has its own."""
    infer = _infer or _infer_module()
    FACT, HINT = infer.FACT, infer.HINT
    meta = old.meta
    if FACT in meta and FACT not in new.meta:
        new.meta[FACT] = meta[FACT]
        if HINT in meta:
            new.meta[HINT] = meta[HINT]


__all__ = ["Shapes", "best_type", "inherit_fact"]
