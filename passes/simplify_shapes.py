"""``simplify`` rules that replace a computed shape by the constant the shape facts prove.

=====================  =========================================================================
``reshape_target``     a Reshape target known in terms of the input's dims becomes a constant:
                       ``[batch, seq, 4, 16]`` for an input ``[batch, seq, 64]`` is
                       ``[0, 0, 4, 16]`` (``0`` copies the input's dim, one ``-1`` takes the rest)
=====================  =========================================================================

The Shape/Gather/Concat chain that computed the target becomes dead (``dce`` removes it). The
rule evaluates nothing: it reads the target's symbolic value from shape inference. Shape
inference reads an overridable input's (IR < 4 initializer that is also a graph input) default
as its value, so a model with such an input is left alone: its target may be the default's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Graph, Value
from .fuse._common import attrs_of
from .rewrite import Match, Op, Rule

_INT64 = 7  # TensorProto.INT64: a Reshape target's only element type


def _has_overridable_inputs(g: Graph) -> bool:
    while g.parent is not None:
        g = g.parent
    return any(v.const_value is not None for v in g.inputs)


def _target_from_dims(m: Match, sv: list, shape, allowzero: bool) -> Optional[list[int]]:
    """``sv`` (ints and symbolic dims) as Reshape's constant target for an input of ``shape``,
    None when a constant cannot say it (an unknown element, two unrelated dims)."""
    out: list[int] = []
    for i, d in enumerate(sv):
        if type(d) is int or isinstance(d, np.integer):
            out.append(int(d))
        elif d is None:
            return None
        elif not allowzero and i < len(shape) and m.shapes.dims_equal(shape[i], d):
            out.append(0)
        else:
            out.append(-1)  # the one dim Reshape computes from the element count
    if out.count(-1) > 1 or (allowzero and 0 in out and -1 in out):
        return None
    return out


class ReshapeTarget(Rule):
    """A Reshape whose non-constant target is known in terms of its input's dims gets a
    constant target; the node keeps its name and attributes."""

    name = "reshape_target"
    summary = "Reshape target computed from the input's dims -> a constant ([0, 0, 4, 16])"
    opset = 5  # the target is an input from opset 5 on
    pattern = Op("Reshape", "x", "s")

    def target(self, m: Match) -> Optional[list[int]]:
        return m.once("target", lambda: self._target(m))

    def _target(self, m: Match) -> Optional[list[int]]:
        s = m["s"]
        if m.const("s") is not None or m.dtype(s) != _INT64:
            return None
        sv, shape = m.shapes.sym_value(s), m.shape("x")
        if sv is None or shape is None or _has_overridable_inputs(m.root.graph):
            return None
        allowzero = m.opset >= 14 and m.attr(m.root, "allowzero") == 1
        return _target_from_dims(m, sv, shape, allowzero)

    def check(self, m: Match) -> Optional[str]:
        return None if self.target(m) is not None else "the target is not provably a constant"

    def rewrite(self, m: Match, b) -> Value:
        node = m.root
        target = b.const(np.array(self.target(m), dtype=np.int64))
        return b.op("Reshape", [m["x"], target], attrs_of(node), name=node.name)


RULES = (ReshapeTarget,)

__all__ = ["ReshapeTarget", "RULES"]
