"""``simplify``: algebraic identities that need no evaluation.

Each rule removes a node whose output provably equals one of its inputs, element type and shape
included, so nothing downstream can tell the difference:

=====================  =========================================================================
``mul_one``            ``x * 1`` and ``1 * x``
``add_zero``           ``x + 0`` and ``0 + x``
``sub_zero``           ``x - 0``
``div_one``            ``x / 1``
``pow_one``            ``Pow(x, 1)``
``reshape_same``       Reshape to the shape ``x`` already has
``cast_same``          Cast (or CastLike) to the type ``x`` already has
``transpose_identity`` Transpose with the identity permutation
``transpose_pair``     Transpose of a Transpose whose permutations cancel
``unsqueeze_squeeze``  Squeeze of an Unsqueeze over the same axes (and the other way round)
``concat_single``      Concat of one input
``slice_all``          Slice with step 1 covering every element
``expand_same``        Expand to the shape ``x`` already has
``where_const``        Where with a constant, uniform condition
=====================  =========================================================================

More rules of this pass live beside it: :mod:`.simplify_merge` (two nodes of one kind into one:
Squeeze/Unsqueeze chains, Concat of Concat, Reduce + Unsqueeze, Slice of Slice, Transpose around
a view), :mod:`.simplify_units` (idempotent and involutive ops, ``Where(Not(c))``, empty Concat
inputs, bool/bitwise units, no-op Flatten and Split) and :mod:`.simplify_shapes` (a Reshape target
computed from the input's dims becomes a constant).

A constant operand must not broadcast ``x`` to a bigger shape (``x * ones(4)`` with ``x`` of shape
``[1]`` stays) and must have ``x``'s element type; shapes are facts from symbolic shape inference,
never a file's declarations. ``x * 1.0`` and ``x / 1.0`` are exact for every float, NaN and
infinities included; ``Pow(x, 1)`` is exact too.

Signed zeros: ``-0.0 + 0.0`` is ``+0.0``, so removing ``x + 0.0`` keeps a ``-0.0`` the original
turned into ``+0.0``. The two compare equal, and only division by that zero or a sign-bit test can
tell them apart; exporters emit zero adds (a zero bias, a padded offset) that users expect gone, so
by default ``add_zero`` fires. ``simplify{signed_zeros=true}`` keeps IEEE signed-zero semantics
exactly: then ``x + 0.0`` stays, while ``x + (-0.0)`` and ``x - 0.0`` (exact either way) still go.
Integers have no signed zero.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ..ir import Value
from .registry import register
from .rewrite import Const, Match, Op, Opt, Rule, RewritePass
from .rewrite.constants import array_fact

_BIG = 1 << 62  # no dim reaches this: a start/end beyond it means "from the start"/"to the end"
_MAX_CHECK = 1 << 16  # constants above this many elements are not inspected


def _const(m: Match, name: str) -> Optional[np.ndarray]:
    c = m.const(name)
    if c is None or c.size > _MAX_CHECK or c.dtype == object:
        return None
    return c


def _all(c: Optional[np.ndarray], value: float) -> bool:
    """Every element of ``c`` (at least one) equals ``value``; remembered per array, since the
    same initializer is asked at each reader and at every run."""
    if c is None or c.size == 0:
        return False
    return array_fact(c, ("all", type(value), value), lambda a: bool(np.all(a == value)))


def _same_shape(m: Match, a: Value, b: Value) -> bool:
    """True when ``a`` and ``b`` provably have the same shape."""
    sa, sb = m.shape(a), m.shape(b)
    if sa is None or sb is None or len(sa) != len(sb):
        return False
    return all(m.shapes.dims_equal(x, y) for x, y in zip(sa, sb))


def _keeps_shape(m: Match, x: Value, c: np.ndarray, out: Value) -> bool:
    """Broadcasting ``x`` with a constant of ``c``'s shape leaves ``x``'s shape unchanged."""
    if c.ndim == 0:
        return True
    sx = m.shape(x)
    if sx is not None and len(sx) >= c.ndim:
        tail = sx[len(sx) - c.ndim:]
        if all(cd == 1 or (type(xd) is int and xd == cd) for xd, cd in zip(tail, c.shape)):
            return True
    return _same_shape(m, x, out)


def _replaceable(m: Match, x: Value) -> Optional[str]:
    """A reason the root's output cannot be replaced by ``x`` (graph outputs keep their names)."""
    out = m.root.outputs[0]
    if not out.is_graph_output():
        return None
    p = x.producer
    if p is None or p.graph is not m.graph or x.is_graph_output():
        return "the output is a graph output and the input cannot take its name"
    return None


def _same_dtype(m: Match, x: Value, dtype: Optional[int]) -> Optional[str]:
    dx = m.dtype(x)
    if dx is None or dtype is None:
        return "element type unknown"
    if dx != dtype:
        return f"element types differ ({dx} vs {dtype})"
    return None


class _Neutral(Rule):
    """``x op c`` (or ``c op x``) is ``x`` when ``c`` is uniformly the op's neutral element."""

    value: float = 0.0

    def neutral(self, m: Match, c: np.ndarray) -> Optional[str]:
        return None if _all(c, self.value) else f"the constant is not all {self.value:g}"

    def check(self, m: Match) -> Optional[str]:
        c = _const(m, "c")
        if c is None:
            return "the operand is not a small constant"
        why = self.neutral(m, c)
        if why:
            return why
        x, out = m["x"], m.root.outputs[0]
        why = _same_dtype(m, x, m.dtype("c")) if self.name != "pow_one" else \
            (None if m.dtype(x) is not None else "element type unknown")
        if why:
            return why
        if not _keeps_shape(m, x, c, out):
            return "the constant could broadcast x to a bigger shape"
        return _replaceable(m, x)

    def rewrite(self, m: Match, b) -> Value:
        return m["x"]


class MulOne(_Neutral):
    name = "mul_one"
    summary = "x * 1 -> x"
    pattern = Op("Mul", "x", Const("c"), commutative=True)
    value = 1.0


class DivOne(_Neutral):
    name = "div_one"
    summary = "x / 1 -> x"
    pattern = Op("Div", "x", Const("c"))
    value = 1.0


class PowOne(_Neutral):
    name = "pow_one"
    summary = "Pow(x, 1) -> x"
    pattern = Op("Pow", "x", Const("c"))
    value = 1.0


class AddZero(_Neutral):
    name = "add_zero"
    summary = "x + 0 -> x"
    pattern = Op("Add", "x", Const("c"), commutative=True)

    def __init__(self, signed_zeros: bool = False):
        self.signed_zeros = signed_zeros

    def neutral(self, m: Match, c: np.ndarray) -> Optional[str]:
        if not _all(c, 0):
            return "the constant is not all 0"
        if self.signed_zeros and c.dtype.kind == "f" and not np.all(np.signbit(c)):
            return "x + 0.0 turns -0.0 into +0.0 (signed_zeros=true)"
        return None


class SubZero(_Neutral):
    name = "sub_zero"
    summary = "x - 0 -> x"
    pattern = Op("Sub", "x", Const("c"))

    def __init__(self, signed_zeros: bool = False):
        self.signed_zeros = signed_zeros

    def neutral(self, m: Match, c: np.ndarray) -> Optional[str]:
        if not _all(c, 0):
            return "the constant is not all 0"
        if self.signed_zeros and c.dtype.kind == "f" and np.any(np.signbit(c)):
            return "x - (-0.0) turns -0.0 into +0.0 (signed_zeros=true)"
        return None


class _Same(Rule):
    """The root's output is its input ``x``, when shape (and type) provably stay."""

    def same(self, m: Match) -> Optional[str]:
        return None if _same_shape(m, m["x"], m.root.outputs[0]) else "shape may change"

    def check(self, m: Match) -> Optional[str]:
        x, dt = m["x"], m.dtype(m.root.outputs[0])
        why = _same_dtype(m, x, dt) if dt else None
        return why or self.same(m) or _replaceable(m, x)

    def rewrite(self, m: Match, b) -> Value:
        return m["x"]


class ReshapeSame(_Same):
    name = "reshape_same"
    summary = "Reshape(x, shape of x) -> x"
    pattern = Op("Reshape", "x", Opt("s"))

    def same(self, m: Match) -> Optional[str]:
        if _same_shape(m, m["x"], m.root.outputs[0]):
            return None
        sx = m.shape("x")
        target = m.shapes.sym_value(m["s"]) if "s" in m else m.attr(m.root, "shape")
        if sx is None or target is None or len(target) != len(sx):
            return "target shape not provably the input's"
        allowzero = m.opset >= 14 and m.attr(m.root, "allowzero") == 1
        free = 0
        for d, t in zip(sx, target):
            if type(t) is int and t == 0 and not allowzero:
                continue
            if type(t) is int and t == -1:
                free += 1
                continue
            if not m.shapes.dims_equal(d, t):
                return "target shape not provably the input's"
        return None if free <= 1 else "more than one -1"


class CastSame(_Same):
    name = "cast_same"
    summary = "Cast(x, to=type of x) -> x"
    pattern = [Op("Cast", "x"), Op("CastLike", "x", "like")]

    def check(self, m: Match) -> Optional[str]:
        x = m["x"]
        to = m.attr(m.root, "to") if m.root.op_type == "Cast" else m.dtype("like")
        return _same_dtype(m, x, to) or _replaceable(m, x)


def _perm(m: Match, node, rank: Union[int, str, None]) -> Optional[list[int]]:
    """The permutation, the default (reversed axes) from ``rank``: a number, or the name of
    the binding whose rank it is (asked only when the attribute is absent)."""
    p = m.attr(node, "perm")
    if p is not None:
        return list(p)
    if isinstance(rank, str):
        rank = m.rank(rank)
    return None if rank is None else list(range(rank))[::-1]


class TransposeIdentity(_Same):
    name = "transpose_identity"
    summary = "Transpose(x, identity perm) -> x"
    pattern = Op("Transpose", "x")

    def check(self, m: Match) -> Optional[str]:
        perm = _perm(m, m.root, "x")
        if perm is None or perm != list(range(len(perm))):
            return "not the identity permutation"
        return _replaceable(m, m["x"])


class TransposePair(_Same):
    name = "transpose_pair"
    summary = "Transpose(Transpose(x, p), q) -> x when q undoes p"
    pattern = Op("Transpose", Op("Transpose", "x", name="inner", private=False))

    def check(self, m: Match) -> Optional[str]:
        rank = m.rank("x")
        p1 = _perm(m, m.node("inner"), rank)
        p2 = _perm(m, m.root, rank if rank is not None else (len(p1) if p1 else None))
        if p1 is None or p2 is None or len(p1) != len(p2):
            return "permutations unknown"
        if any(p1[p2[i]] != i for i in range(len(p2))):
            return "the permutations do not cancel"
        return _replaceable(m, m["x"])


def _axes(m: Match, node, key: str) -> Optional[list[int]]:
    """Axes of a Squeeze/Unsqueeze: the attribute before opset 13, the input after."""
    if m.opset < 13:
        a = m.attr(node, "axes")
        return None if a is None else list(a)
    c = m.const(key) if key in m else None
    return None if c is None else [int(v) for v in c.reshape(-1)]


def _norm(axes: list[int], rank: int) -> Optional[set]:
    out = {a + rank if a < 0 else a for a in axes}
    return out if len(out) == len(axes) and all(0 <= a < rank for a in out) else None


def _ones_at(shape) -> Optional[list[int]]:
    """Positions of the dims equal to 1, when every dim is a known int."""
    if shape is None or any(type(d) is not int for d in shape):
        return None
    return [i for i, d in enumerate(shape) if d == 1]


class UnsqueezeSqueeze(_Same):
    name = "unsqueeze_squeeze"
    summary = "Squeeze(Unsqueeze(x, a), a) -> x, Unsqueeze(Squeeze(x, a), a) -> x"
    pattern = [
        Op("Squeeze", Op("Unsqueeze", "x", Opt(Const("a1")), name="inner", private=False),
           Opt(Const("a2"))),
        Op("Unsqueeze", Op("Squeeze", "x", Opt(Const("a1")), name="inner", private=False),
           Opt(Const("a2"))),
    ]

    def check(self, m: Match) -> Optional[str]:
        inner = m.node("inner")
        a1, a2 = _axes(m, inner, "a1"), _axes(m, m.root, "a2")
        rank = m.rank("x")
        if inner.op_type == "Unsqueeze":  # both axis lists refer to the unsqueezed rank
            if a1 is None or rank is None:
                return "axes or rank unknown"
            r = rank + len(a1)
            if a2 is None:
                shape = m.shape("x")
                if _ones_at(shape) != []:
                    return "Squeeze without axes may drop other dims of 1"
                a2 = a1
            s1, s2 = _norm(a1, r), _norm(a2, r)
        else:  # both refer to the rank of x
            if a2 is None or rank is None:
                return "axes or rank unknown"
            if a1 is None:
                a1 = _ones_at(m.shape("x"))
                if a1 is None:
                    return "Squeeze without axes on a shape with unknown dims"
            s1, s2 = _norm(a1, rank), _norm(a2, rank)
        if s1 is None or s2 is None or s1 != s2:
            return "axes differ"
        return _replaceable(m, m["x"])


class ConcatSingle(_Same):
    name = "concat_single"
    summary = "Concat(x) -> x"
    pattern = Op("Concat", "x")

    def check(self, m: Match) -> Optional[str]:
        return _replaceable(m, m["x"])


class SliceAll(_Same):
    name = "slice_all"
    summary = "Slice covering every element with step 1 -> x"
    pattern = Op("Slice", "x", Opt(Const("starts")), Opt(Const("ends")), Opt(Const("axes")),
                 Opt(Const("steps")))

    def same(self, m: Match) -> Optional[str]:
        if m.opset < 10:
            starts, ends = m.attr(m.root, "starts"), m.attr(m.root, "ends")
            axes, steps = m.attr(m.root, "axes"), None
        else:
            if "starts" not in m or "ends" not in m:
                return "starts/ends are not constant"
            starts, ends = m.const("starts"), m.const("ends")
            axes = m.const("axes") if "axes" in m else None
            steps = m.const("steps") if "steps" in m else None
        if starts is None or ends is None:
            return "starts/ends unknown"
        starts, ends = [int(v) for v in np.ravel(starts)], [int(v) for v in np.ravel(ends)]
        if steps is not None and any(int(v) != 1 for v in np.ravel(steps)):
            return "a step is not 1"
        if _same_shape(m, m["x"], m.root.outputs[0]):
            return None  # step 1 and the same length on every axis: every element, in order
        shape = m.shape("x")
        if shape is None:
            return "rank unknown"
        axes = list(range(len(starts))) if axes is None else [int(v) for v in np.ravel(axes)]
        for s, e, a in zip(starts, ends, axes):
            if not -len(shape) <= a < len(shape):
                return "axis out of range"
            d = shape[a]
            if not (s == 0 or s <= -_BIG or (type(d) is int and s <= -d)):
                return "a start is not the beginning"
            if not (e >= _BIG or (type(d) is int and e >= d)):
                return "an end is not the end"
        return None


class ExpandSame(_Same):
    name = "expand_same"
    summary = "Expand(x, s) -> x when s does not grow x"
    pattern = Op("Expand", "x", "s")

    def same(self, m: Match) -> Optional[str]:
        if _same_shape(m, m["x"], m.root.outputs[0]):
            return None
        s, sx = m.shapes.sym_value(m["s"]), m.shape("x")
        if s is None or sx is None or len(s) > len(sx):
            return "target shape unknown or of higher rank"
        tail = sx[len(sx) - len(s):]
        if all(t == 1 or m.shapes.dims_equal(d, t) for d, t in zip(tail, s)):
            return None
        return "the target may grow x"


class WhereConst(_Same):
    name = "where_const"
    summary = "Where(all true, x, y) -> x, Where(all false, x, y) -> y"
    pattern = Op("Where", Const("c"), "a", "b")

    def check(self, m: Match) -> Optional[str]:
        c = _const(m, "c")
        if c is None or c.dtype != np.bool_ or c.size == 0:
            return "the condition is not a small bool constant"
        if np.all(c):
            pick = m["a"]
        elif not np.any(c):
            pick = m["b"]
        else:
            return "the condition is not uniform"
        out = m.root.outputs[0]
        if not _same_shape(m, pick, out):
            return "the other operands may broadcast the result"
        return _same_dtype(m, pick, m.dtype(out)) or _replaceable(m, pick)

    def rewrite(self, m: Match, b) -> Value:
        c = _const(m, "c")
        return m["a"] if np.all(c) else m["b"]


RULES = (MulOne, AddZero, SubZero, DivOne, PowOne, ReshapeSame, CastSame, TransposeIdentity,
         TransposePair, UnsqueezeSqueeze, ConcatSingle, SliceAll, ExpandSame, WhereConst)


@register
class Simplify(RewritePass):
    """Algebraic identities that need no evaluation (x*1, x+0, Reshape to the same shape...)."""

    name = "simplify"
    summary = "remove algebraic identities: x*1, x+0, same-shape Reshape/Expand, cancelling pairs"
    options: dict[str, Any] = {**RewritePass.options, "signed_zeros": False}

    @property
    def rules(self):  # per instance: two rules read an option
        from . import simplify_merge, simplify_shapes, simplify_units  # they import this module

        sz = bool(self.opts.get("signed_zeros"))
        return [r(sz) if r in (AddZero, SubZero) or getattr(r, "signed_zeros_option", False)
                else r()
                for r in RULES + simplify_merge.RULES + simplify_units.RULES
                + simplify_shapes.RULES]


__all__ = ["Simplify", "RULES"]
