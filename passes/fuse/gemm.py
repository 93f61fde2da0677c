"""Gemm fusions: MatMul + Add into Gemm (2-D operands only), Transpose into transA/transB."""

from __future__ import annotations

from typing import Optional

from ..rewrite import Match, Op, Opt, Rule, Var
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


RULES = [MatMulAdd(), TransposeGemm()]

__all__ = ["RULES", "MatMulAdd", "TransposeGemm"]
