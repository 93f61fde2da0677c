"""Down-conversion of Attention (23) into MatMul, Softmax and MatMul, as its spec defines it:
scores = Q Kᵀ · scale, softcapped, + the mask as a bias (+ a causal bias aligned top-left),
softmax over the last axis, times V. 3-D inputs are split into heads and joined back; K and V
heads shared by several Q heads (grouped queries) are repeated. Past/present caches and the
scores output are newer than any target and refused."""

from __future__ import annotations

import math

import numpy as np

from ...ir import Builder, Value
from ..rewrite import Match
from .common import reduce, scalar
from .decompose import Decomposition


class Attention(Decomposition):
    # long: Attention's spec in older ops: heads, GQA repeat, scale, softcap, mask and causal bias
    #   are short steps of one decomposition
    name = "attention"
    summary = "Attention -> MatMul, Softmax, MatMul with mask/causal/softcap biases (opset 23)"
    ops = ("Attention",)
    needs = (11, "the causal mask needs Range (opset 11)")

    def refuse_more(self, m: Match) -> str | None:
        if any(m.get(f"i{k}") is not None for k in (4, 5, 6)):
            return "past key/value caches or non-padded lengths"
        if any(o.has_uses() or o.is_graph_output() for o in m.root.outputs[1:]):
            return "the present or scores outputs are read"
        if {m.rank("i0"), m.rank("i1"), m.rank("i2")} not in ({4}, {3}):
            return "Q, K, V are not all of rank 4 or all of rank 3"
        return None if self.heads(m) else "the head counts or head size are unknown"

    def heads(self, m: Match) -> tuple[int, int, int] | None:
        """(q heads, kv heads, head size) when known."""
        q, k = m.shape("i0"), m.shape("i1")
        if len(q) == 4:
            qh, kh, d = q[1], k[1], q[3]
        else:
            qh, kh = self.attr(m, "q_num_heads"), self.attr(m, "kv_num_heads")
            d = q[2] // qh if isinstance(q[2], int) and qh else None
        ok = all(isinstance(x, int) and x > 0 for x in (qh, kh, d)) and qh % kh == 0
        return (qh, kh, d) if ok else None

    def rewrite(self, m: Match, b: Builder) -> Value:
        (qh, kh, d), three = self.heads(m), m.rank("i0") == 3
        q, k, v = (split_heads(b, m[n], h) if three else m[n]
                   for n, h in (("i0", qh), ("i1", kh), ("i2", kh)))
        if kh != qh:
            k, v = (repeat_heads(b, t, qh // kh, self.target) for t in (k, v))
        scale = self.attr(m, "scale")
        scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
        kt = b.op("Transpose", [k], {"perm": [0, 1, 3, 2]})
        s = b.op("Mul", [b.op("MatMul", [q, kt]), self.c(m, b, scale)])
        cap = float(self.attr(m, "softcap") or 0.0)
        if cap > 0:  # before the biases: a masked -inf must stay -inf
            c = self.c(m, b, cap)
            s = b.op("Mul", [b.op("Tanh", [b.op("Div", [s, c])]), c])
        s = self.biases(m, b, s)
        y = b.op("MatMul", [b.op("Softmax", [s], {"axis": 3}), v])
        if three:
            y = b.op("Reshape", [b.op("Transpose", [y], {"perm": [0, 2, 1, 3]}),
                                 b.const(np.array([0, 0, -1], dtype=np.int64))])
        return (y,) + (None,) * (len(m.root.outputs) - 1) if len(m.root.outputs) > 1 else y

    def biases(self, m: Match, b: Builder, s: Value) -> Value:
        """The mask (a bool mask as 0 / -inf) and the causal bias added to the scores."""
        mask = m.get("i3")
        if mask is not None:
            if m.dtype("i3") == 9:  # bool: True attends
                mask = b.op("Where", [mask, self.c(m, b, 0.0), self.c(m, b, -np.inf)])
            s = b.op("Add", [s, mask])
        if int(self.attr(m, "is_causal") or 0):
            later = causal_later(b, s, self.target)
            s = b.op("Add", [s, b.op("Where", [later, self.c(m, b, -np.inf),
                                               self.c(m, b, 0.0)])])
        return s


def split_heads(b: Builder, x: Value, heads: int) -> Value:
    """(B, S, H*D) -> (B, H, S, D)."""
    shaped = b.op("Reshape", [x, b.const(np.array([0, 0, heads, -1], dtype=np.int64))])
    return b.op("Transpose", [shaped], {"perm": [0, 2, 1, 3]})


def repeat_heads(b: Builder, x: Value, n: int, opset: int) -> Value:
    """(B, kv, S, D) -> (B, kv * n, S, D), each kv head n times in a row."""
    wide = b.op("Expand", [reduce(b, "Unsqueeze", x, [2], 1, opset),
                           b.const(np.array([1, 1, n, 1, 1], dtype=np.int64))])
    heads = b.op("Mul", [b.op("Shape", [x]), b.const(np.array([1, n, 1, 1], dtype=np.int64))])
    return b.op("Reshape", [wide, heads])


def causal_later(b: Builder, s: Value, opset: int) -> Value:
    """A (Sq, Skv) bool: key j comes after query i (top-left aligned), from the scores' shape."""
    shape = b.op("Shape", [s])
    zero, one = scalar(b, 0, np.int64), scalar(b, 1, np.int64)
    rows = b.op("Range", [zero, b.op("Gather", [shape, scalar(b, 2, np.int64)]), one])
    cols = b.op("Range", [zero, b.op("Gather", [shape, scalar(b, 3, np.int64)]), one])
    return b.op("Greater", [cols, reduce(b, "Unsqueeze", rows, [1], 1, opset)])


RULES = (Attention,)

__all__ = ["RULES", "Attention"]
