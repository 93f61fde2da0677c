"""Layout fusions: Transpose pairs, Transposes moved through elementwise ops where that removes
some, Reshape/Flatten chains, Squeeze/Unsqueeze pairs. All exact (data is only moved)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..rewrite import Const, Match, NotApplicable, Op, Opt, Rule, const_value, has_ref_attrs
from ._common import attrs_of, axes_of

# Elementwise ops (numpy-style broadcasting, no axis attributes) that commute with a Transpose.
UNARY = ("Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "Ceil", "Celu", "Cos",
         "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity",
         "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu",
         "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan",
         "Tanh", "ThresholdedRelu")
BINARY = ("Add", "And", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal", "Greater",
          "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Min", "Mod", "Mul", "Or", "Pow", "Sub",
          "Xor")


def _perm(m: Match, node: str, value: str) -> Optional[tuple[int, ...]]:
    """A Transpose's perm; when absent, reversed dims (needs the input's rank)."""
    p = m.attr(node, "perm")
    if p is not None:
        return tuple(int(i) for i in p)
    r = m.rank(value)
    return None if r is None else tuple(range(r - 1, -1, -1))


def _compose(p1: tuple[int, ...], p2: tuple[int, ...]) -> tuple[int, ...]:
    """Transpose(Transpose(x, p1), p2) == Transpose(x, result)."""
    return tuple(p1[i] for i in p2)


def _transpose(b, x, perm: tuple[int, ...]):
    if perm == tuple(range(len(perm))):
        return x
    return b.op("Transpose", [x], {"perm": list(perm)})


class TransposeTranspose(Rule):
    """Transpose(Transpose(x, p1), p2): cancels to x when p1 then p2 is the identity, else one
    Transpose with the composed perm."""

    name = "transpose_transpose"
    summary = "cancel or merge consecutive Transposes"
    opset = 1
    benefit = 2
    pattern = Op("Transpose", Op("Transpose", "x", name="t1"), name="t2")

    def check(self, m: Match) -> Optional[str]:
        p1, p2 = _perm(m, "t1", "x"), _perm(m, "t2", "t1")
        if p1 is None or p2 is None or len(p1) != len(p2):
            return "a perm is absent and the rank is unknown"
        return None

    def rewrite(self, m: Match, b):
        return _transpose(b, m["x"], _compose(_perm(m, "t1", "x"), _perm(m, "t2", "t1")))


class TransposeBinary(Rule):
    """E(Transpose(a, p), Transpose(b, p)) -> Transpose(E(a, b), p) for an elementwise binary E:
    equal perms mean equal ranks, and broadcasting is per axis, so it commutes."""

    name = "transpose_binary"
    summary = "move two equal Transposes below an elementwise binary op (one Transpose left)"
    opset = 1
    benefit = 2
    pattern = Op(BINARY, Op("Transpose", "a", name="ta"), Op("Transpose", "b", name="tb"),
                 name="op")

    def check(self, m: Match) -> Optional[str]:
        pa, pb = m.attr("ta", "perm"), m.attr("tb", "perm")
        if pa is None or pb is None:
            return "a perm is absent"
        if tuple(pa) != tuple(pb):
            return f"perms differ ({tuple(pa)} vs {tuple(pb)})"
        return None

    def rewrite(self, m: Match, b):
        op = m.node("op")
        y = b.op(op.op_type, [m["a"], m["b"]], attrs_of(op), domain=op.domain)
        return _transpose(b, y, tuple(int(i) for i in m.attr("ta", "perm")))


def _elementwise_chain(y, limit: int = 16):
    """Walk up from ``y`` through single-use elementwise ops (unary, or binary with a constant
    operand) to a Transpose. Returns (the Transpose node, ops top-down) or None. Read-only."""
    chain = []
    v = y
    while len(chain) <= limit:
        n = v.producer
        if n is None or v.is_graph_output() or v.num_uses() != 1 or has_ref_attrs(n):
            return None
        if n.op_type == "Transpose" and not n.domain:
            return (n, list(reversed(chain))) if chain else None
        if n.domain or n.op_type not in UNARY + BINARY or len(n.outputs) != 1:
            return None
        ins = [i for i in n.inputs if i is not None]
        varying = [i for i in ins if const_value(i) is None]
        if len(ins) != (1 if n.op_type in UNARY else 2) or len(varying) != 1:
            return None
        chain.append(n)
        v = varying[0]
    return None


class TransposeSandwich(Rule):
    # long: a chain of elementwise nodes between two Transposes: the check walks the chain, the
    #   rewrite transposes each constant operand
    """Transpose(E_k(...E_1(Transpose(x, p1))...), p2) -> Transpose(E_k(...E_1(x)...), p1 then
    p2), or no Transpose when they cancel. Each E is elementwise (unary, or binary with a
    constant operand, which is transposed by p1's inverse; a scalar stays) and its output has no
    other user. Removes at least one Transpose and never adds one."""

    name = "transpose_elementwise"
    summary = "move Transposes through elementwise ops so they cancel or merge"
    opset = 1
    benefit = 1
    pattern = Op("Transpose", "y", name="t2")

    def check(self, m: Match) -> Optional[str]:
        found = _elementwise_chain(m["y"])
        if found is None:
            return NotApplicable("no Transpose above a chain of single-use elementwise ops")
        t1, chain = found
        p1 = _perm_of(t1, m)
        p2 = _perm(m, "t2", "y")
        if p1 is None or p2 is None or len(p1) != len(p2):
            return "a perm is absent and the rank is unknown"
        for n in chain:
            for i in n.inputs:
                c = const_value(i)
                if c is not None and c.ndim > len(p1):
                    return "a constant has a higher rank (it would broadcast the rank up)"
        return None

    def rewrite(self, m: Match, b):
        t1, chain = _elementwise_chain(m["y"])
        p1, p2 = _perm_of(t1, m), _perm(m, "t2", "y")
        inv = tuple(int(i) for i in np.argsort(p1))
        cur, prev = t1.inputs[0], t1.outputs[0]
        for n in chain:
            ins = []
            for i in n.inputs:
                c = const_value(i)
                if i is prev:
                    ins.append(cur)
                elif c is not None and c.size > 1:
                    full = c.reshape((1,) * (len(p1) - c.ndim) + c.shape)
                    ins.append(b.const(np.ascontiguousarray(full.transpose(inv))))
                else:
                    ins.append(i)
            cur, prev = b.op(n.op_type, ins, attrs_of(n)), n.outputs[0]
        return _transpose(b, cur, _compose(p1, p2))


def _perm_of(t, m: Match) -> Optional[tuple[int, ...]]:
    p = t.attr("perm")
    if p is not None:
        return tuple(int(i) for i in p)
    r = m.rank(t.inputs[0])
    return None if r is None else tuple(range(r - 1, -1, -1))


_SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


class ReshapeChain(Rule):
    """Reshape(R(x), s) -> Reshape(x, s) where R only regroups elements (Reshape, Flatten,
    Squeeze, Unsqueeze) and s is a constant without 0 entries (with allowzero=0 a 0 copies a dim
    of R's output, which x does not have)."""

    name = "reshape_chain"
    summary = "collapse Reshape/Flatten/Squeeze/Unsqueeze followed by a Reshape"
    opset = 5
    benefit = 2
    pattern = Op("Reshape", Op(_SHAPE_OPS, "x", Opt("s1"), name="inner"), Const("s2"),
                 name="outer")

    def check(self, m: Match) -> Optional[str]:
        s2 = m.const("s2")
        if not int(m.attr("outer", "allowzero") or 0) and np.any(s2 == 0):
            return "target shape has a 0 entry (copies a dim of the intermediate)"
        return None

    def rewrite(self, m: Match, b):
        outer = m.node("outer")
        return b.op("Reshape", [m["x"], m["s2"]], attrs_of(outer), name=outer.name)


class FlattenChain(Rule):
    """Flatten(R(x), axis) -> Reshape(x, [P, -1]) where R only regroups elements and P, the
    product of R's output dims before ``axis``, is known (P > 0)."""

    name = "flatten_chain"
    summary = "collapse Reshape/Flatten/Squeeze/Unsqueeze followed by a Flatten"
    opset = 5
    benefit = 2
    pattern = Op("Flatten", Op(_SHAPE_OPS, "x", Opt("s1"), name="inner"), name="outer")

    def lead(self, m: Match) -> Optional[int]:
        axis = int(m.attr("outer", "axis") if m.attr("outer", "axis") is not None else 1)
        inner = m.node("inner")
        dims = None
        s = m.shape("inner")
        if s is not None:
            dims = list(s)
        elif inner.op_type == "Reshape" and m.const("s1") is not None:
            s1 = [int(d) for d in m.const("s1").reshape(-1)]
            dims = [d if d > 0 else None for d in s1]
        if dims is None:
            return None
        if axis < 0:
            axis += len(dims)
        head = dims[:axis]
        if not 0 <= axis <= len(dims) or any(type(d) is not int for d in head):
            return None
        return int(np.prod(head, dtype=np.int64)) if head else 1

    def check(self, m: Match) -> Optional[str]:
        p = self.lead(m)
        if p is None or p <= 0:
            return "the leading dims of the intermediate are not known"
        return None

    def rewrite(self, m: Match, b):
        shape = b.const(np.array([self.lead(m), -1], dtype=np.int64))
        return b.op("Reshape", [m["x"], shape], name=m.node("outer").name)


class SqueezeUnsqueeze(Rule):
    """Squeeze(Unsqueeze(x, A), A) and Unsqueeze(Squeeze(x, A), A) cancel to x (axes compared
    after normalizing negatives; a Squeeze without axes needs x's shape)."""

    name = "squeeze_unsqueeze"
    summary = "cancel Squeeze/Unsqueeze pairs on the same axes"
    opset = 1
    benefit = 2
    pattern = [Op("Squeeze", Op("Unsqueeze", "x", Opt("a1"), name="inner"), Opt("a2"),
                  name="outer"),
               Op("Unsqueeze", Op("Squeeze", "x", Opt("a1"), name="inner"), Opt("a2"),
                  name="outer")]

    def check(self, m: Match) -> Optional[str]:
        a1, a2 = axes_of(m, "inner", "a1"), axes_of(m, "outer", "a2")
        if a1 is None or a2 is None:
            return "axes are not constant"
        x_shape = m.shape("x")
        sq_first = m.node("inner").op_type == "Squeeze"
        if sq_first and not a1:  # squeeze every 1: needs the dims
            if x_shape is None or any(type(d) is not int for d in x_shape):
                return "Squeeze without axes on a value of unknown shape"
            a1 = [i for i, d in enumerate(x_shape) if d == 1]
        if not a1 or not a2:
            return "axes are empty"
        rank = None  # the rank both axis lists refer to
        if x_shape is not None:
            rank = len(x_shape) if sq_first else len(x_shape) + len(a1)
        if any(a < 0 for a in a1 + a2) and rank is None:
            return "negative axes and an unknown rank"
        n1 = sorted(a + rank if a < 0 else a for a in a1) if rank is not None else sorted(a1)
        n2 = sorted(a + rank if a < 0 else a for a in a2) if rank is not None else sorted(a2)
        if n1 != n2:
            return f"axes differ ({n1} vs {n2})"
        return None

    def rewrite(self, m: Match, b):
        return m["x"]


RULES = [TransposeTranspose(), TransposeBinary(), TransposeSandwich(), ReshapeChain(),
         FlattenChain(), SqueezeUnsqueeze()]

__all__ = ["RULES", "TransposeTranspose", "TransposeBinary", "TransposeSandwich", "ReshapeChain",
           "FlattenChain", "SqueezeUnsqueeze"]
