"""The base of every conversion rule and the emitters that write an op in the target's form.

A conversion rule is a :class:`~onnxopt.passes.Rule` made for one conversion (``source`` ->
``target``): it matches nodes written for the source opset and rewrites them into nodes valid
at the target. Nodes the opset pass created are already in the target's form and are never
matched again (their tag says so), which is also what keeps the driver from looping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...ir import Builder, Value
from ..rewrite import Match, Op, Opt, Rule, attr_of
from .versions import since

TAG = "opset."
MAX_INPUTS = 8


def node_pattern(ops: Sequence[str]) -> Op:
    """A root of any of ``ops`` with up to MAX_INPUTS inputs bound to i0, i1, ..."""
    return Op(tuple(ops), *[Opt(f"i{k}") for k in range(MAX_INPUTS)], name="y")


class ConversionRule(Rule):
    """A rule converting nodes written for opset ``source`` to opset ``target``.

    Subclasses set ``ops`` (the root op types) and implement :meth:`refuse` (a reason, or None)
    and ``rewrite``. ``down`` says the direction the rule serves. ``needs``/``until``, each
    ``(opset, reason)``, refuse a target below / at or above that opset."""

    ops: tuple[str, ...] = ()
    down = True
    needs: tuple[int, str] | None = None
    until: tuple[int, str] | None = None

    def __init__(self, source: int, target: int):
        self.source = source
        self.target = target
        self.pattern = node_pattern(self.ops)  # type: ignore[misc]

    def check(self, m: Match) -> str | None:
        node = m.root
        if str(node.meta.get("tag", "")).startswith(TAG):
            return "made by the opset pass: already in the target's form"
        old, new = since(node.op_type, self.source), since(node.op_type, self.target)
        if self.down and (old is None or old <= self.target):
            return f"{node.op_type}-{old} is not newer than opset {self.target}"
        if not self.down and old == new:
            return f"{node.op_type} is the same at opsets {self.source} and {self.target}"
        return _outside_bounds(self) or self.refuse(m)

    def refuse(self, m: Match) -> str | None:
        return None

    def attr(self, m: Match, name: str):
        """The root's attribute, with the default of the source opset's schema."""
        return attr_of(m.root, name, self.source)

    def inputs(self, m: Match) -> list[Value | None]:
        return [m.get(f"i{k}") for k in range(len(m.root.inputs))]


def _outside_bounds(rule: ConversionRule) -> str | None:
    """The rule's reason for a target outside its ``needs``/``until`` bounds (None: inside)."""
    if rule.needs is not None and rule.target < rule.needs[0]:
        return rule.needs[1]
    if rule.until is not None and rule.target >= rule.until[0]:
        return rule.until[1]
    return None


def norm_axes(axes: Sequence[int], rank: int | None) -> list[int] | None:
    """Axes made non-negative (None when one is negative and the rank is unknown)."""
    out = []
    for a in axes:
        a = int(a)
        if a < 0:
            if rank is None:
                return None
            a += rank
        out.append(a)
    return out


def axes_input_since(op: str) -> int:
    """The opset at which ``op`` (a ReduceX, Squeeze or Unsqueeze) took its axes as an input."""
    return 13 if op in ("ReduceSum", "Squeeze", "Unsqueeze") else 18


def reduce(b: Builder, op: str, x: Value, axes: Sequence[int] | None, keepdims: int,
           opset: int) -> Value:
    """``op`` (ReduceX/Squeeze/Unsqueeze) over ``axes`` in the form ``opset`` takes."""
    attrs = {} if op in ("Squeeze", "Unsqueeze") else {"keepdims": keepdims}
    if axes is None:
        return b.op(op, [x], attrs)
    if opset >= axes_input_since(op):
        return b.op(op, [x, b.const(np.array(list(axes), dtype=np.int64))], attrs)
    return b.op(op, [x], {**attrs, "axes": [int(a) for a in axes]})


def slice_(b: Builder, x: Value, starts, ends, axes, opset: int) -> Value:
    """Slice with constant starts/ends/axes in the form ``opset`` takes."""
    if opset >= 10:
        c = [b.const(np.array(v, dtype=np.int64)) for v in (starts, ends, axes)]
        return b.op("Slice", [x] + c)
    return b.op("Slice", [x], {"starts": list(starts), "ends": list(ends), "axes": list(axes)})


def scalar(b: Builder, value, dtype) -> Value:
    """A 0-d constant of numpy ``dtype``."""
    return b.const(np.array(value, dtype=dtype))


__all__ = [
    "TAG",
    "ConversionRule",
    "axes_input_since",
    "node_pattern",
    "norm_axes",
    "reduce",
    "scalar",
    "slice_",
]
