"""Gemm fusions: MatMul + Add into Gemm (2-D operands only), Transpose into transA/transB."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir.core import clock
from ..rewrite import Const, Match, NotApplicable, Op, Opt, Rule, Var, const_tensor, const_value
from ._common import DOUBLE, FLOAT, attrs_of

_GEMM_TYPES = (FLOAT, DOUBLE)  # what onnxruntime's CPU Gemm implements


class MatMulAdd(Rule):
    """MatMul(A, B) + C into Gemm(A, B, C) when A and B are provably 2-D and C broadcasts
    unidirectionally to the [N, M] product without enlarging it (each of C's dims is 1 or
    provably equal to the product's)."""

    name = "matmul_add"
    summary = "MatMul + Add into Gemm when both operands are 2-D"
    opset = 7
    benefit = 2
    pattern = Op("Add", Op("MatMul", Var("a", rank=2, dtypes=_GEMM_TYPES), Var("b", rank=2),
                           name="mm"), "c", commutative=True, name="add")

    def check(self, m: Match) -> Optional[str]:
        if m["c"] is m.node("mm").outputs[0]:
            return "the added value is the product itself (MatMul + itself)"
        cs = m.shape("c")
        if cs is None:
            return "rank of the added value is unknown"
        if len(cs) > 2:
            return f"added value has rank {len(cs)} (it would broadcast the product)"
        out = (m.shape("a")[0], m.shape("b")[1])
        for i, d in enumerate(cs):
            o = out[2 - len(cs) + i]
            if not (d == 1 or m.shapes.dims_equal(d, o)):
                return f"added value dim {i} ({d}) is neither 1 nor provably {o}"
        if m.dtype("c") != m.dtype("a"):
            return "added value has another element type"
        return None

    def rewrite(self, m: Match, b):
        return b.op("Gemm", [m["a"], m["b"], m["c"]], name=m.node("mm").name)


class TransposeGemm(Rule):
    """Gemm(Transpose(A), B, C) -> Gemm(A, B, C) with transA flipped (likewise B/transB). Gemm
    operands are 2-D, so the Transpose is the 2-D swap when its perm is absent or [1, 0]."""

    name = "transpose_gemm"
    summary = "fold a Transpose of a Gemm operand into transA/transB"
    opset = 1
    benefit = 2
    pattern = [Op("Gemm", Op("Transpose", "src", name="t"), "b", Opt("c")),
               Op("Gemm", "a", Op("Transpose", "src", name="t"), Opt("c"))]

    def check(self, m: Match) -> Optional[str]:
        perm = m.attr("t", "perm")
        if perm is not None and tuple(perm) != (1, 0):
            return f"Transpose perm {tuple(perm)} is not a 2-D swap"
        return None

    def rewrite(self, m: Match, b):
        gemm = m.root
        slot = 0 if gemm.inputs[0] is m["t"] else 1
        key = ("transA", "transB")[slot]
        ins = list(gemm.inputs)
        ins[slot] = m["src"]
        flipped = 1 - int(m.attr(gemm, key) or 0)
        return b.op("Gemm", ins, attrs_of(gemm, **{key: flipped}), name=gemm.name)


def _sibling_plan(m: Match):
    """[(matmul node, weights, bias Add node or None, bias)] for every MatMul reading x with
    private constant 2-D weights of the root's type and inner size, in use order; weights and
    biases as undecoded tensors (most plans are refused). Computed once per x while the IR does
    not change (every sibling is a root asking the same)."""
    x, w0 = m["x"], const_tensor(m["w"])
    key = ("matmul_siblings", x, w0.dtype, w0.dims[0])
    now = clock()
    hit = m.memo.get(key)
    if hit is not None and hit[0] == now:
        return hit[1]
    out = _siblings(m, x, w0)
    m.memo[key] = (now, out)
    return out


def _siblings(m: Match, x, w0) -> list:
    out, seen = [], set()
    for node, i in x.uses():
        if i != 0 or node.op_type != "MatMul" or node.domain or id(node) in seen:
            continue
        if node.graph is not m.graph or node.inputs[1] is x:
            continue
        seen.add(id(node))
        wv = node.inputs[1]
        if wv.num_uses() != 1:
            continue  # shared weights would be stored twice
        w = const_tensor(wv)
        if w is None or len(w.dims) != 2 or w.dtype != w0.dtype or w.dims[0] != w0.dims[0]:
            continue
        add, bias = None, None
        y = node.outputs[0]
        if y.num_uses() == 1 and not y.is_graph_output():
            user, _ = y.uses()[0]
            other = [v for v in user.inputs if v is not y]
            c = const_tensor(other[0]) if user.op_type == "Add" and len(other) == 1 else None
            if c is not None and c.dtype == w.dtype and c.dims == (w.dims[1],):
                add, bias = user, c
        out.append((node, w, add, bias))
    return out


class MatMulSiblings(Rule):
    # long: the rewrite builds the concatenated weights, the optional concatenated bias Add and the
    #   Split whose outputs replace every sibling
    """MatMuls that read the same x with constant 2-D weights (the Q/K/V projections) become
    one MatMul with the weights concatenated, and a Split along the last axis; when every one
    of them is followed by an Add of a constant [N_i] bias, the biases are concatenated into
    one Add before the Split. Exact (each output element is the same dot product). Weights
    used elsewhere are left alone (merging would store them twice)."""

    name = "matmul_siblings"
    summary = "merge MatMuls sharing an input (Q/K/V projections) into one MatMul + Split"
    opset = 1
    benefit = 1
    pattern = [Op("Add", Op("MatMul", "x", Const("w", rank=2), name="mm"), Const("b"),
                  commutative=True, name="add"),
               Op("MatMul", "x", Const("w", rank=2), name="mm")]

    def plan(self, m: Match):
        sib = _sibling_plan(m)
        if m.dtype("x") not in (FLOAT, DOUBLE, 10, 16):
            return NotApplicable("input is not a float tensor")
        if len(sib) < 2 or all(n is not m.node("mm") for n, _, _, _ in sib):
            return NotApplicable("no sibling MatMul with constant weights")
        with_bias = all(add is not None for _, _, add, _ in sib)
        if m.get("add") is not None and not with_bias:
            return NotApplicable("not every sibling has a bias (merged at the MatMuls)")
        if m.get("add") is None and with_bias:
            return NotApplicable("every sibling has a bias (merged at the Adds)")
        return sib, with_bias

    def check(self, m: Match) -> Optional[str]:
        p = self.plan(m)
        return p if isinstance(p, str) else None

    def rewrite(self, m: Match, b):
        sib, with_bias = self.plan(m)
        x = m["x"]
        if x.producer is not None and x.producer.graph is m.graph:
            b.before, b.after = None, x.producer  # before every sibling's first use
        else:
            b.before, b.after = next(iter(m.graph.nodes)), None
        w = np.concatenate([w.numpy() for _, w, _, _ in sib], axis=1)
        y = b.op("MatMul", [x, b.const(w)])
        if with_bias:
            y = b.op("Add", [y, b.const(np.concatenate([c.numpy() for _, _, _, c in sib]))])
        sizes = [w.dims[1] for _, w, _, _ in sib]
        if m.opset >= 13:
            parts = b.op("Split", [y, b.const(np.array(sizes, np.int64))], {"axis": -1},
                         num_outputs=len(sib))
        else:
            parts = b.op("Split", [y], {"axis": -1, "split": sizes}, num_outputs=len(sib))
        root_out = m.root.outputs[0]
        result = None
        for (node, _, add, _), part in zip(sib, parts):
            old = add.outputs[0] if with_bias else node.outputs[0]
            if old is root_out:
                result = part
            else:
                m.also_replace(old, part)
        return result


RULES = [MatMulAdd(), TransposeGemm(), MatMulSiblings()]

__all__ = ["RULES", "MatMulAdd", "TransposeGemm", "MatMulSiblings"]
