"""``simplify`` rules that merge two nodes of one kind into one node doing both.

=====================  =========================================================================
``squeeze_squeeze``    Squeeze(Squeeze(x, a), b) -> one Squeeze over both axis sets
``unsqueeze_pair``     Unsqueeze(Unsqueeze(x, a), b) -> one Unsqueeze over both axis sets
``concat_concat``      Concat(.., Concat(p, q), ..) on the same axis -> one Concat
``reduce_unsqueeze``   Unsqueeze(Reduce*(x, A, keepdims=0), A) -> Reduce*(x, A, keepdims=1)
``slice_slice``        Slice(Slice(x)) -> one Slice (disjoint axes, or static dims on shared ones)
``transpose_shared``   Transpose(Transpose(x, p), q) -> Transpose(x, p then q) when the first
                       Transpose has other readers (it goes once none is left), or the two
                       cancel (an Identity where a graph output needs one)
``view_chain``         V2(V1(x)) for views V (Reshape, Flatten, Squeeze, Unsqueeze) whose result has
                       a static shape -> Reshape(x, that shape)
``reshape_around``     Reshape(E(Reshape(x)), shape of x) -> E(x) for a region E of elementwise ops
                       whose other operands are one-element constants
``transpose_view``     Transpose(Unsqueeze|Squeeze(Transpose(x))) -> Unsqueeze|Squeeze(x), and a
                       Transpose only when the dims of x do not come out in order
=====================  =========================================================================

The first node must be read only by the second (otherwise both stay and nothing is saved). Axes
are attributes below opset 13 (Squeeze/Unsqueeze, ReduceSum) or 18 (the other Reduce ops) and
inputs from there on; each rule reads and writes them the way the model's opset says. Negative
axes are normalized with the rank shape inference proves; an unknown rank refuses.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Value
from .fuse._common import attrs_of, axes_of
from .rewrite import Const, Match, Op, Opt, Rule, const_value
from .simplify import _BIG, _norm, _ones_at, _replaceable

_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
# A pattern lists its inputs; a Concat wider than this is left as it is.
_MAX_CONCAT = 64


def concat_pattern(name: str) -> Op:
    """A Concat of any number of inputs (up to _MAX_CONCAT), bound as ``name``."""
    return Op("Concat", *[Opt(f"{name}{k}") for k in range(_MAX_CONCAT)], name=name)


def _axes_arg(m: Match, b, op_type: str, axes: list[int]) -> tuple[list, dict]:
    """(extra inputs, attributes) carrying ``axes`` for ``op_type`` at the model's opset."""
    as_input = m.opset >= (13 if op_type in ("Squeeze", "Unsqueeze", "ReduceSum") else 18)
    if as_input:
        return [b.const(np.array(axes, dtype=np.int64))], {}
    return [], {"axes": list(axes)}


class _AxesPair(Rule):
    """Two Squeezes or two Unsqueezes: one node over the ``combined`` axes, in x's terms."""

    def combined(self, m: Match) -> Optional[list[int]]:
        rank = m.rank("x")
        a1, a2 = axes_of(m, "inner", "a1"), axes_of(m, "outer", "a2")
        if rank is None or a1 is None or a2 is None:
            return None
        return self.merge(m, rank, a1, a2)

    def merge(self, m: Match, rank: int, a1: list[int], a2: list[int]) -> Optional[list[int]]:
        raise NotImplementedError

    def check(self, m: Match) -> Optional[str]:
        axes = self.combined(m)
        if axes is None:
            return "rank, axes or (for a Squeeze without axes) dims unknown"
        return None if axes else "neither node changes the rank"

    def rewrite(self, m: Match, b) -> Value:
        op = m.root.op_type
        extra, attrs = _axes_arg(m, b, op, self.combined(m))
        return b.op(op, [m["x"], *extra], attrs, name=m.node("outer").name)


class SqueezeSqueeze(_AxesPair):
    """Squeeze(Squeeze(x, a), b): ``b`` counts the dims left by ``a``; map it back to ``x``'s
    positions and squeeze the union at once. A Squeeze without axes needs its input's dims."""

    name = "squeeze_squeeze"
    summary = "Squeeze(Squeeze(x, a), b) -> Squeeze(x, a + b)"
    pattern = Op("Squeeze", Op("Squeeze", "x", Opt(Const("a1")), name="inner"),
                 Opt(Const("a2")), name="outer")

    def merge(self, m: Match, rank: int, a1: list[int], a2: list[int]) -> Optional[list[int]]:
        if not a1:
            a1 = _ones_at(m.shape("x"))
        n1 = _norm(a1, rank) if a1 is not None else None
        if n1 is None:
            return None
        left = [i for i in range(rank) if i not in n1]
        if not a2:
            a2 = _ones_at(m.shape("inner"))
        n2 = _norm(a2, len(left)) if a2 is not None else None
        if n2 is None:
            return None
        return sorted(n1 | {left[i] for i in n2})


class UnsqueezePair(_AxesPair):
    """Unsqueeze(Unsqueeze(x, a), b): the final positions of ``a``'s new dims are the
    positions not in ``b``, counted in order, whose index is in ``a``."""

    name = "unsqueeze_pair"
    summary = "Unsqueeze(Unsqueeze(x, a), b) -> Unsqueeze(x, a + b)"
    pattern = Op("Unsqueeze", Op("Unsqueeze", "x", Opt(Const("a1")), name="inner"),
                 Opt(Const("a2")), name="outer")

    def merge(self, m: Match, rank: int, a1: list[int], a2: list[int]) -> Optional[list[int]]:
        if not a1 or not a2:
            return None
        n1 = _norm(a1, rank + len(a1))
        n2 = _norm(a2, rank + len(a1) + len(a2))
        if n1 is None or n2 is None:
            return None
        kept = [p for p in range(rank + len(a1) + len(a2)) if p not in n2]
        return sorted(n2 | {p for k, p in enumerate(kept) if k in n1})



class ConcatConcat(Rule):
    """A Concat input made by another Concat on the same axis, read by nothing else, is
    replaced by that Concat's inputs in place (concatenation is associative)."""

    name = "concat_concat"
    summary = "Concat(a, Concat(b, c), d) on one axis -> Concat(a, b, c, d)"
    pattern = concat_pattern("outer")

    def spliced(self, m: Match) -> Optional[list[Value]]:
        outer = m.node("outer")
        rank = m.rank(outer.outputs[0])
        axis = m.attr(outer, "axis")
        if not rank or axis is None:
            return None
        out, merged = [], False
        for v in outer.inputs:
            p = v.producer if v is not None else None
            if (p is not None and p.op_type == "Concat" and p.domain == ""
                    and p.graph is outer.graph and not v.is_graph_output()
                    and all(u is outer for u, _ in v.uses())
                    and m.attr(p, "axis") is not None and (m.attr(p, "axis") - axis) % rank == 0):
                out.extend(p.inputs)
                merged = True
            else:
                out.append(v)
        return out if merged else None

    def check(self, m: Match) -> Optional[str]:
        if self.spliced(m) is None:
            return "no input is a Concat on the same axis read only here (or rank unknown)"
        return None

    def rewrite(self, m: Match, b) -> Value:
        outer = m.node("outer")
        return b.op("Concat", self.spliced(m), attrs_of(outer), name=outer.name)


class ReduceUnsqueeze(Rule):
    """Unsqueeze(Reduce(x, A, keepdims=0), A) is Reduce(x, A, keepdims=1): both axis lists name
    positions of a tensor of x's rank. Reducing every axis (no axes) counts as A = all axes;
    ``noop_with_empty_axes=1`` without axes refuses. ArgMax/ArgMin have one ``axis``."""

    name = "reduce_unsqueeze"
    summary = "Unsqueeze(Reduce(x, A, keepdims=0), A) -> Reduce(x, A, keepdims=1)"
    pattern = Op("Unsqueeze", Op(_REDUCE + ("ArgMax", "ArgMin"), "x", Opt(Const("ra")),
                                 name="red", attrs={"keepdims": 0}),
                 Opt(Const("ua")), name="outer")

    def check(self, m: Match) -> Optional[str]:
        red, rank = m.node("red"), m.rank("x")
        if rank is None:
            return "rank unknown"
        if red.op_type in ("ArgMax", "ArgMin"):
            ra = [int(m.attr(red, "axis") or 0)]
        else:
            ra = axes_of(m, "red", "ra")
            if ra == [] and m.attr(red, "noop_with_empty_axes"):
                return "no axes with noop_with_empty_axes=1"
            ra = list(range(rank)) if ra == [] else ra
        ua = axes_of(m, "outer", "ua")
        if ra is None or not ua:
            return "axes unknown"
        n1, n2 = _norm(ra, rank), _norm(ua, rank)
        if n1 is None or n1 != n2:
            return "the Unsqueeze does not restore the reduced axes"
        return None

    def rewrite(self, m: Match, b) -> Value:
        red = m.node("red")
        return b.op(red.op_type, list(red.inputs), attrs_of(red, keepdims=1),
                    name=m.node("outer").name)


def _slice_args(m: Match, node, pre: str) -> Optional[dict[int, tuple[int, int, int]]]:
    """axis -> (start, end, step) of a Slice (opset >= 10) whose arguments are constants."""
    rank = m.rank(node.inputs[0])
    st, en = m.const(pre + "s"), m.const(pre + "e")
    ax = m.const(pre + "a") if pre + "a" in m else np.arange(0 if st is None else st.size)
    sp = m.const(pre + "p") if pre + "p" in m else np.ones_like(ax)
    if rank is None or any(c is None for c in (st, en, ax, sp)):
        return None
    norm = _norm([int(a) for a in ax.reshape(-1)], rank)
    if norm is None or not (st.size == en.size == ax.size == sp.size):
        return None
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in ax.reshape(-1)]
    return {a: (int(s), int(e), int(p)) for a, s, e, p in
            zip(axes, st.reshape(-1), en.reshape(-1), sp.reshape(-1))}


class SliceSlice(Rule):
    # long: the docstring argues how two Slices compose per axis; composed() is that argument in
    #   code
    """Slice(Slice(x, A), B) -> one Slice. Axes in only one of them keep their arguments (the
    dim they clamp against is x's either way); an axis in both needs x's dim there as a number:
    then the two index ranges compose into one range (Slice clamps exactly like Python's
    ``range(d)[start:end:step]``). Slice-1 (attributes) is left alone. The first Slice may have
    other readers (a Swin patch merge slices each of two row slices twice): each reader is
    rewritten one for one, and the first Slice goes with its last reader."""

    name = "slice_slice"
    summary = "Slice(Slice(x)) -> one Slice"
    opset = 10
    pattern = Op("Slice", Op("Slice", "x", Const("is"), Const("ie"), Opt(Const("ia")),
                             Opt(Const("ip")), name="inner", private=False),
                 Const("os"), Const("oe"), Opt(Const("oa")), Opt(Const("op")), name="outer")

    def composed(self, m: Match) -> Optional[dict[int, tuple[int, int, int]]]:
        first = _slice_args(m, m.node("inner"), "i")
        second = _slice_args(m, m.node("outer"), "o")
        shape = m.shape("x")
        if first is None or second is None or shape is None:
            return None
        out = {**first, **second}
        for a in first.keys() & second.keys():
            d = shape[a]
            if type(d) is not int or 0 in first[a][2:] + second[a][2:]:
                return None
            r = range(d)[slice(*first[a])][slice(*second[a])]
            end = r.stop if r.stop >= 0 else -_BIG  # before index 0 (a negative step)
            out[a] = (r.start, end, r.step) if len(r) else (0, 0, 1)
        return out

    def check(self, m: Match) -> Optional[str]:
        if self.composed(m) is None:
            return "arguments, rank or (on an axis both slice) the dim unknown"
        return None

    def rewrite(self, m: Match, b) -> Value:
        args = sorted(self.composed(m).items())
        ins = [np.array([a[1][k] for a in args], dtype=np.int64) for k in range(3)]
        axes = np.array([a[0] for a in args], dtype=np.int64)
        consts = [b.const(c) for c in (ins[0], ins[1], axes, ins[2])]
        return b.op("Slice", [m["x"], *consts], name=m.node("outer").name)


# Ops computing each output element from the same element of each input (and attributes only):
# they give the same values whatever shape the elements are arranged in.
_ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Neg", "Abs", "Relu", "Sigmoid", "Tanh",
    "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos",
    "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish",
    "Gelu", "Mish", "Cast", "Not", "And", "Or", "Xor", "Equal", "Less", "Greater", "Where", "Clip",
})
_MAX_REGION = 64


def _region(m: Match, e: Value) -> Optional[tuple[Value, list]]:
    """(r, nodes producers first) when ``e`` is computed from one Reshape output r by
    elementwise ops of this graph whose other operands are one-element constants of rank at most
    r's and x's (x: what r reshapes, of the root's static output shape), every value but ``e``
    read only inside the region, ``e`` only by the root."""
    out = m.shape(m.root.outputs[0])
    if out is None or any(type(d) is not int for d in out) or e.is_graph_output() or \
            any(u is not m.root for u, _ in e.uses()):
        return None
    order, seen, r = [], set(), None
    stack = [(e.producer, False)]
    while stack:
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if n in seen:
            continue
        if (n is None or n.op_type not in _ELEMENTWISE or n.domain != ""
                or n.graph is not m.graph or len(n.outputs) != 1 or len(seen) >= _MAX_REGION):
            return None
        seen.add(n)
        stack.append((n, True))
        for v in n.inputs:
            c = const_value(v)
            if v is None or (c is not None and c.size == 1 and c.ndim <= len(out)):
                continue
            p = v.producer
            if r is None and p is not None and p.op_type == "Reshape" and \
                    m.shape(p.inputs[0]) == out:
                r = v
            if v is not r:
                stack.append((p, False))
    if r is None or any(const_value(v) is not None and const_value(v).ndim > (m.rank(r) or 0)
                        for n in order for v in n.inputs):
        return None
    inside = set(order)
    for n in order:
        v = n.outputs[0]
        if v is not e and (v.is_graph_output() or any(u not in inside for u, _ in v.uses())):
            return None
    return r, order


_VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


class ViewChain(Rule):
    """Two views in a row only regroup x's elements in order (a Transpose that moves only dims
    of length 1 is a view too: an LSTM's [T,1,B,H] output to [T,B,1,H]): when the second's output
    shape is static (every dim a number, none 0: a 0 in a Reshape target copies a dim), one
    Reshape to that shape does both. fuse.reshape_chain covers a second Reshape with a constant
    target on any shape; this covers an Unsqueeze, Squeeze or Flatten second, on static shapes."""

    name = "view_chain"
    summary = "V2(V1(x)) of Reshape/Flatten/Squeeze/Unsqueeze with a static result -> Reshape"
    opset = 5
    pattern = Op(_VIEWS, Op(_VIEWS + ("Transpose",), "x", Opt("a1"), name="inner"), Opt("a2"),
                 name="outer")

    def check(self, m: Match) -> Optional[str]:
        out = m.shape(m.root.outputs[0])
        if out is None or any(type(d) is not int or d <= 0 for d in out):
            return "the result's shape is not static (or has a 0 dim)"
        inner = m.node("inner")
        if inner.op_type == "Transpose":  # a view only when it moves nothing but dims of 1
            shape = m.shape("x")
            perm = _perm(m, inner, len(shape)) if shape is not None else None
            if perm is None or [p for p in perm if shape[p] != 1] != \
                    [i for i, d in enumerate(shape) if d != 1]:
                return "the Transpose moves dims other than 1s"
        return None

    def rewrite(self, m: Match, b) -> Value:
        shape = b.const(np.array(list(m.shape(m.root.outputs[0])), dtype=np.int64))
        return b.op("Reshape", [m["x"], shape], name=m.node("outer").name)


class ReshapeAround(Rule):
    """Reshape(E(Reshape(x, a)), b) -> E(x) when b is x's static shape and E only combines
    elements position by position (:data:`_ELEMENTWISE`, other operands one-element constants):
    the same values in the same arrangement, computed without the two Reshapes (a traced MLP's
    activation between the Gemms' 2-D views). E is rebuilt on x; the old one goes when unread."""

    name = "reshape_around"
    summary = "Reshape(E(Reshape(x)), shape of x) -> E(x) for elementwise E"
    pattern = Op("Reshape", "e", Const("s2"), name="outer")

    def check(self, m: Match) -> Optional[str]:
        if _region(m, m["e"]) is None:
            return "not an elementwise region over one Reshape of a value of this static shape"
        return None

    def rewrite(self, m: Match, b) -> Value:
        r, order = _region(m, m["e"])
        new = {r: r.producer.inputs[0]}
        for n in order:
            ins = [new.get(v, v) if v is not None else None for v in n.inputs]
            new[n.outputs[0]] = b.op(n.op_type, ins, attrs_of(n), domain=n.domain)
        return new[m["e"]]


def _perm(m: Match, node, rank: int) -> Optional[list[int]]:
    p = m.attr(node, "perm")
    p = list(range(rank))[::-1] if p is None else [int(i) for i in p]
    return p if sorted(p) == list(range(rank)) else None


class TransposeShared(Rule):
    """Transpose(Transpose(x, p), q) is Transpose(x, [p[q[i]] ...]). The driver erases the first
    Transpose once its last reader is rewritten, so a Transpose read by several Transposes goes
    too; one node replaces one node, so nothing ever grows. An identity result is x itself, or an
    Identity where the output is a graph output that x cannot name."""

    name = "transpose_shared"
    summary = "Transpose(Transpose(x, p), q) -> Transpose(x, p then q), the first one shared"
    pattern = Op("Transpose", Op("Transpose", "x", name="inner", private=False), name="outer")

    def composed(self, m: Match) -> Optional[list[int]]:
        rank = m.rank("x")
        if rank is None:
            return None
        p, q = _perm(m, m.node("inner"), rank), _perm(m, m.node("outer"), rank)
        return None if p is None or q is None else [p[i] for i in q]

    def check(self, m: Match) -> Optional[str]:
        perm = self.composed(m)
        if perm is None:
            return "rank or permutations unknown"
        private = all(u is m.root for u, _ in m["inner"].uses()) and \
            not m["inner"].is_graph_output()
        if private and perm != list(range(len(perm))):
            return "read only here: fuse.transpose_transpose merges it"
        return None

    def rewrite(self, m: Match, b) -> Value:
        perm, outer = self.composed(m), m.node("outer")
        if perm != list(range(len(perm))):
            return b.op("Transpose", [m["x"]], {"perm": perm}, name=outer.name)
        if _replaceable(m, m["x"]) is None:
            return m["x"]
        return b.op("Identity", [m["x"]], name=outer.name)


class TransposeView(Rule):
    # long: plan follows each dim of x through three nodes (the docstring's argument); pieces of it
    #   would pass the dim labels between them
    """Transpose(V(Transpose(x, p), A), q) with V an Unsqueeze or Squeeze. Follow each dim of x
    through the three nodes (new unit dims carry no label); the result is V(x) on the dims that
    end up new (or go), followed by the permutation that puts x's dims where they end up, which
    is dropped when it is the identity. Unit dims are interchangeable, so any order among them
    is the same tensor."""

    name = "transpose_view"
    summary = "Transpose(Unsqueeze|Squeeze(Transpose(x))) -> Unsqueeze|Squeeze(x) (+ Transpose)"
    pattern = Op("Transpose", Op(("Unsqueeze", "Squeeze"), Op("Transpose", "x", name="t1"),
                                 Opt(Const("ax")), name="view"), name="t2")

    def plan(self, m: Match) -> Optional[tuple[list[int], list[int]]]:
        """(axes of V applied to x, permutation after it)."""
        rank, view = m.rank("x"), m.node("view")
        axes = axes_of(m, "view", "ax")
        p1 = _perm(m, m.node("t1"), rank) if rank is not None else None
        if p1 is None or axes is None:
            return None
        labels: list = list(p1)  # position i of t1's output holds dim p1[i] of x
        if view.op_type == "Unsqueeze":
            new = _norm(axes, rank + len(axes)) if axes else None
            if new is None:
                return None
            it = iter(labels)
            labels = [None if i in new else next(it) for i in range(rank + len(axes))]
        else:
            gone = _norm(axes or _ones_at(m.shape(view.inputs[0])) or [], rank)
            if not gone:
                return None
            labels = [lb for i, lb in enumerate(labels) if i not in gone]
        p2 = _perm(m, m.node("t2"), len(labels))
        if p2 is None:
            return None
        final = [labels[j] for j in p2]
        if view.op_type == "Unsqueeze":
            vaxes = [i for i, lb in enumerate(final) if lb is None]
            order = iter(range(rank))  # V(x): x's dims in order at the labelled positions
            after = [None if lb is None else next(order) for lb in final]
        else:
            vaxes = sorted(set(range(rank)) - set(final))
            after = [lb for lb in range(rank) if lb not in vaxes]
        units = iter(i for i, lb in enumerate(after) if lb is None)
        perm = [next(units) if lb is None else after.index(lb) for lb in final]
        return vaxes, perm

    def check(self, m: Match) -> Optional[str]:
        return None if self.plan(m) is not None else "rank, permutations or axes unknown"

    def rewrite(self, m: Match, b) -> Value:
        vaxes, perm = self.plan(m)
        op = m.node("view").op_type
        extra, attrs = _axes_arg(m, b, op, vaxes)
        y = b.op(op, [m["x"], *extra], attrs)
        if perm == list(range(len(perm))):
            return y
        return b.op("Transpose", [y], {"perm": perm}, name=m.node("t2").name)


RULES = (SqueezeSqueeze, UnsqueezePair, ConcatConcat, ReduceUnsqueeze, SliceSlice, TransposeShared,
         TransposeView, ViewChain, ReshapeAround)

__all__ = ["RULES", "SqueezeSqueeze", "UnsqueezePair", "ConcatConcat", "ReduceUnsqueeze",
           "SliceSlice", "TransposeShared", "TransposeView", "ViewChain", "ReshapeAround"]
