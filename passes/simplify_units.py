"""``simplify`` rules where a node provably does nothing, or undoes or repeats its input's node.

=====================  =========================================================================
``idempotent``         f(f(x)) -> f(x) for Relu, Sign, Floor, Ceil, Round, Abs
``involution``         Neg(Neg(x)) -> x, Not(Not(x)) -> x
``where_not``          Where(Not(c), a, b) -> Where(c, b, a)
``concat_empty``       Concat inputs of provably 0 length on the axis are dropped
``bool_unit``          Or(x, false), Xor(x, false), And(x, true) -> x (and the same for
                       BitwiseOr/BitwiseXor with 0, BitwiseAnd with all ones)
``flatten_same``       Flatten whose output shape is provably its input's
``split_single``       Split into one output that has its input's shape
``reduce_unit``        ReduceSum/Mean/Max/Min/Prod with keepdims=1 over axes of length 1
=====================  =========================================================================

Like the identities in :mod:`.simplify`, a replacement must keep element type and shape (a
constant operand that could broadcast ``x`` larger refuses), and a graph output is only replaced
by a value that can take its name. ``x * 1`` and ``x + 0`` on integers are the identities'
``mul_one``/``add_zero``, which compare values, not float types.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Value
from .fuse._common import attrs_of
from .rewrite import Const, Match, Op, Opt, Rule
from .simplify import _Neutral, _Same, _replaceable
from .simplify_merge import concat_pattern

_IDEMPOTENT = ("Relu", "Sign", "Floor", "Ceil", "Round", "Abs")
_INVOLUTION = ("Neg", "Not")


def _twice(ops: tuple) -> Op:
    """f(f(x)) for f among ``ops`` (the same f twice: :meth:`_Twice.check`)."""
    return Op(ops, Op(ops, "x", name="inner", private=False), name="outer")


class _Twice(Rule):
    """f(f(x)) is ``keeps``: the inner node's output (f is a projection) or x (f undoes
    itself)."""

    keeps = "x"

    def check(self, m: Match) -> Optional[str]:
        if m.node("inner").op_type != m.node("outer").op_type:
            return "two different ops"
        return _replaceable(m, m[self.keeps])

    def rewrite(self, m: Match, b) -> Value:
        return m[self.keeps]


class Idempotent(_Twice):
    """f(f(x)) is f(x) when f is a projection: Relu, Sign, Floor, Ceil, Round (values are
    already integral) and Abs. The inner node stays (it may have other readers)."""

    name = "idempotent"
    summary = "f(f(x)) -> f(x) for Relu, Sign, Floor, Ceil, Round, Abs"
    pattern = _twice(_IDEMPOTENT)
    keeps = "inner"


class Involution(_Twice):
    """Neg(Neg(x)) and Not(Not(x)) are x (exact for every integer too: -(-INT_MIN) wraps back)."""

    name = "involution"
    summary = "Neg(Neg(x)) -> x, Not(Not(x)) -> x"
    pattern = _twice(_INVOLUTION)


class WhereNot(Rule):
    """Where(Not(c), a, b) selects a where c is false: Where(c, b, a). The Not must be read
    only here, else it stays and nothing is saved."""

    name = "where_not"
    summary = "Where(Not(c), a, b) -> Where(c, b, a)"
    opset = 9
    pattern = Op("Where", Op("Not", "c"), "a", "b", name="where")

    def rewrite(self, m: Match, b) -> Value:
        w = m.node("where")
        return b.op("Where", [m["c"], m["b"], m["a"]], attrs_of(w), name=w.name)


class ConcatEmpty(Rule):
    """A Concat input whose length on the axis is provably 0 contributes nothing; it is dropped
    while at least one input is left (the others fix every other dim of the result)."""

    name = "concat_empty"
    summary = "drop Concat inputs of length 0 on the axis"
    pattern = concat_pattern("c")

    def kept(self, m: Match) -> Optional[list[Value]]:
        node = m.node("c")
        rank, axis = m.rank(node.outputs[0]), m.attr(node, "axis")
        if rank is None or axis is None or not -rank <= axis < rank:
            return None
        axis %= rank
        keep = [v for v in node.inputs
                if not ((m.shape(v) or [None] * rank)[axis] == 0)]
        if not keep:
            keep = node.inputs[:1]
        return keep if len(keep) < len(node.inputs) else None

    def check(self, m: Match) -> Optional[str]:
        return None if self.kept(m) is not None else "no input is provably empty on the axis"

    def rewrite(self, m: Match, b) -> Value:
        node = m.node("c")
        return b.op("Concat", self.kept(m), attrs_of(node), name=node.name)


class BoolUnit(_Neutral):
    """``x`` combined with the op's unit: false for Or/Xor, true for And; 0 for BitwiseOr and
    BitwiseXor, every bit set for BitwiseAnd. Same checks as ``x * 1``."""

    name = "bool_unit"
    summary = "Or(x, false), Xor(x, false), And(x, true) -> x (and their bitwise forms)"
    pattern = Op(("Or", "Xor", "And", "BitwiseOr", "BitwiseXor", "BitwiseAnd"), "x", Const("c"),
                 commutative=True)

    def neutral(self, m: Match, c: np.ndarray) -> Optional[str]:
        if c.dtype.kind not in "biu":
            return "the constant is not bool or integer"
        unit = np.invert(np.zeros_like(c)) if m.root.op_type in ("And", "BitwiseAnd") \
            else np.zeros_like(c)
        return None if c.size and np.array_equal(c, unit) else "the constant is not the unit"


class FlattenSame(_Same):
    name = "flatten_same"
    summary = "Flatten whose output has its input's shape -> x"
    pattern = Op("Flatten", "x")


class SplitSingle(_Same):
    """A Split with one output copies its input when that output keeps the input's shape (a
    ``split`` of another length than the axis is invalid; the shape check covers it)."""

    name = "split_single"
    summary = "Split into one output -> x"
    pattern = Op("Split", "x", Opt("s"))

    def check(self, m: Match) -> Optional[str]:
        if len(m.root.outputs) != 1:
            return "more than one output"
        return super().check(m)


class ReduceUnit(_Same):
    """A Reduce over axes of length 1 with keepdims=1 sees one element per output: Max, Min and
    Prod return it, Sum and Mean return it too except that a -0.0 may come back +0.0 (the sum
    starts from +0.0), which ``signed_zeros=true`` refuses, as for ``x + 0``. The shape check
    (output shape = input shape) is what proves every reduced axis has length 1."""

    name = "reduce_unit"
    summary = "Reduce over axes of length 1 (keepdims=1) -> x"
    pattern = Op(("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"), "x",
                 Opt("a"), attrs={"keepdims": 1})
    signed_zeros_option = True

    def __init__(self, signed_zeros: bool = False):
        self.signed_zeros = signed_zeros

    def check(self, m: Match) -> Optional[str]:
        if self.signed_zeros and m.root.op_type in ("ReduceSum", "ReduceMean"):
            return "a sum of one -0.0 is +0.0 (signed_zeros=true)"
        return super().check(m)


RULES = (Idempotent, Involution, WhereNot, ConcatEmpty, BoolUnit, FlattenSame, SplitSingle,
         ReduceUnit)

__all__ = ["RULES", "Idempotent", "Involution", "WhereNot", "ConcatEmpty", "BoolUnit",
           "FlattenSame", "SplitSingle", "ReduceUnit"]
