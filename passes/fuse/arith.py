"""Chains of Add/Sub or Mul/Div by constants combined into one op.

Exactness: integer Add/Sub/Mul chains are exact (two's-complement arithmetic is associative);
integer Div is never combined (truncation does not compose). Float chains are re-associated:
``(x * a) * b`` becomes ``x * (a*b)`` with ``a*b`` computed in float64 and rounded once, so the
result moves by at most a couple of ulp of the output; ``(x + a) + b`` becomes ``x + (a+b)``, which
moves the result by at most an ulp of the intermediate ``x + a``. Both are within the verifier's
float tolerances. A chain is left alone when the combined constant would overflow, underflow to
zero, or be bigger than both constants (broadcasting them against each other).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..rewrite import Const, Match, Op, Or, Rule
from ._common import FLOATS, INTS


def _inner(kinds: tuple[str, ...]) -> Or:
    """x op c for each op in kinds (either order for all: the check reads the real order)."""
    return Or(*(Op(k, "x", Const("c1"), name="inner", commutative=True) for k in kinds))


def _chain(kinds: tuple[str, ...]) -> list[Op]:
    """(x op1 c1) op2 c2 for op1 and op2 in kinds (either order: the check reads the real one)."""
    return [Op(k, _inner(kinds), Const("c2"), commutative=True) for k in kinds]


class _Chain(Rule):
    opset = 1
    benefit = 1

    def dtype_ok(self, m: Match) -> Optional[str]:
        dt = m.dtype("x")
        if dt is None:
            dt = m.dtype("c1")
        if dt not in FLOATS + INTS:
            return f"element type {dt} is not a plain number type"
        c1, c2 = m.const("c1"), m.const("c2")
        if c1.dtype != c2.dtype:
            return "constants have different types"
        if np.broadcast_shapes(c1.shape, c2.shape) not in (c1.shape, c2.shape):
            return "combined constant would be bigger than either constant"
        return None

    @staticmethod
    def _x_first(node, m: Match) -> bool:
        return node.inputs[0] is m["x"]


def _finite_like(new: np.ndarray, *olds: np.ndarray) -> bool:
    """No overflow (inf where inputs are finite) and no underflow (0 where no input is 0)."""
    with np.errstate(all="ignore"):
        finite = np.all([np.all(np.isfinite(o)) for o in olds])
        if finite and not np.all(np.isfinite(new)):
            return False
        nonzero = all(np.all(o != 0) for o in olds)
        return not (nonzero and np.any(new == 0))


class AddChain(_Chain):
    # long: linear() reads the (x +/- a) +/- b and b - (x +/- a) orderings as one x*sign + k form
    """(x ± a) ± b and b - (x ± a) forms folded to x + k or k - x."""

    name = "add_chain"
    summary = "combine chains of Add/Sub by constants"
    pattern = _chain(("Add", "Sub"))

    def linear(self, m: Match):
        """(sign of x, constant) with root = sign*x + constant, as float64 or the int type."""
        inner, root = m.node("inner"), m.root
        c1, c2 = m.const("c1"), m.const("c2")
        wide = np.float64 if c1.dtype.kind == "f" else c1.dtype
        c1, c2 = c1.astype(wide), c2.astype(wide)
        with np.errstate(all="ignore"):
            if inner.op_type == "Add":
                s1, k1 = 1, c1
            elif self._x_first(inner, m):
                s1, k1 = 1, -c1
            else:
                s1, k1 = -1, c1
            inner_first = root.inputs[0] is m["inner"]
            if root.op_type == "Add":
                t, k2 = 1, c2
            elif inner_first:
                t, k2 = 1, -c2
            else:
                t, k2 = -1, c2
            k = (k1 if t == 1 else -k1) + k2
        return t * s1, k

    def check(self, m: Match) -> Optional[str]:
        reason = self.dtype_ok(m)
        if reason:
            return reason
        _, k = self.linear(m)
        if m.const("c1").dtype.kind == "f" and not _finite_like(
                k.astype(m.const("c1").dtype), m.const("c1"), m.const("c2")):
            return "combined constant overflows"
        return None

    def rewrite(self, m: Match, b):
        sign, k = self.linear(m)
        kv = b.const(k.astype(m.const("c1").dtype))
        if sign > 0:
            return b.op("Add", [m["x"], kv])
        return b.op("Sub", [kv, m["x"]])


class MulChain(_Chain):
    # long: four Mul/Div orderings, each with its own refusals (Div only for floats, no constant
    #   numerator)
    """(x * a) * b, (x / a) * b, (x * a) / b, (x / a) / b folded to one Mul or Div. Div only for
    floats; a constant numerator (c / x) is not linear and is left alone."""

    name = "mul_chain"
    summary = "combine chains of Mul/Div by constants"
    pattern = _chain(("Mul", "Div"))

    def parts(self, m: Match):
        """(numerator, denominator) with root = x * numerator / denominator (float64)."""
        inner, root = m.node("inner"), m.root
        wide = np.float64 if m.const("c1").dtype.kind == "f" else m.const("c1").dtype
        c1, c2 = m.const("c1").astype(wide), m.const("c2").astype(wide)
        one = np.ones((), c1.dtype)
        num1, den1 = (c1, one) if inner.op_type == "Mul" else (one, c1)
        num2, den2 = (c2, one) if root.op_type == "Mul" else (one, c2)
        with np.errstate(all="ignore"):
            return num1 * num2, den1 * den2

    def check(self, m: Match) -> Optional[str]:
        reason = self.dtype_ok(m)
        if reason:
            return reason
        inner, root = m.node("inner"), m.root
        is_float = m.const("c1").dtype.kind == "f"
        if (inner.op_type == "Div" or root.op_type == "Div") and not is_float:
            return "integer division does not compose"
        if inner.op_type == "Div" and not self._x_first(inner, m):
            return "constant divided by x is not linear"
        if root.op_type == "Div" and root.inputs[0] is not m["inner"]:
            return "constant divided by the chain is not linear"
        if is_float:
            num, den = self.parts(m)
            with np.errstate(all="ignore"):
                k = (num / den).astype(m.const("c1").dtype)
            if not _finite_like(k, m.const("c1"), m.const("c2")):
                return "combined constant overflows or underflows"
        return None

    def rewrite(self, m: Match, b):
        dt = m.const("c1").dtype
        num, den = self.parts(m)
        if dt.kind != "f":
            return b.op("Mul", [m["x"], b.const(num.astype(dt))])
        if np.all(num == 1):  # keep the shape num broadcasts to: ones[2,1,4] / c is no scalar
            den = np.broadcast_to(den, np.broadcast_shapes(num.shape, den.shape))
            return b.op("Div", [m["x"], b.const(np.array(den, dtype=dt))])  # 0-d stays 0-d
        with np.errstate(all="ignore"):
            k = num / den
        return b.op("Mul", [m["x"], b.const(k.astype(dt))])


RULES = [AddChain(), MulChain()]

__all__ = ["RULES", "AddChain", "MulChain"]
