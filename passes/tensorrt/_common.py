"""Helpers shared by the TensorRT rules: element types, constants, attribute copies."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...ir import Attr, Builder, Node, Value
from ..rewrite import Match, const_value

FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64 = 1, 2, 3, 4, 5, 6, 7
BOOL, FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16 = 9, 10, 11, 12, 13, 16
INTS = (UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64)


def present(v: Optional[Value]) -> Optional[Value]:
    """``v`` unless it is absent or a constant with no elements (how ONNX spells "not given" for
    inputs that used to be required, e.g. Resize's roi and scales in opsets 11 and 12)."""
    if v is None:
        return None
    c = const_value(v)
    if c is not None and c.size == 0:
        return None
    shape = v.shape
    if shape is not None and any(type(d) is int and d == 0 for d in shape):
        return None
    return v


def attrs_copy(node: Node, **changes: Any) -> dict[str, Attr]:
    """The node's attributes for a new node, with ``changes`` applied (None removes one)."""
    out: dict[str, Attr] = dict(node.attributes)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = Attr.make(k, v)
    return out


def has_ref_attrs(node: Node) -> bool:
    """True when an attribute refers to a function attribute (its value is not known here)."""
    return any(a.ref_attr_name for a in node.attributes.values())


def static_dims(m: Match, v: Optional[Value]) -> Optional[list[int]]:
    """Every dim of ``v`` when all are known integers, else None."""
    s = m.shape(v)
    if s is None or not all(type(d) is int for d in s):
        return None
    return [int(d) for d in s]


def axes_list(m: Match, node: Node, rank: int) -> Optional[list[int]]:
    """The node's ``axes`` attribute normalized to 0..rank-1 (all axes when absent); None when
    invalid."""
    axes = m.attr(node, "axes")
    if not axes:
        return list(range(rank))
    out = [int(a) + rank if int(a) < 0 else int(a) for a in axes]
    if any(not 0 <= a < rank for a in out) or len(set(out)) != len(out):
        return None
    return out


def unsqueeze(b: Builder, x: Value, axes: list[int], opset: int, squeeze: bool = False) -> Value:
    """Unsqueeze (or Squeeze) ``x`` at ``axes`` in the form the opset wants."""
    op = "Squeeze" if squeeze else "Unsqueeze"
    if opset >= 13:
        return b.op(op, [x, b.const(np.array(axes, dtype=np.int64))])
    return b.op(op, [x], {"axes": axes})


__all__ = ["present", "attrs_copy", "has_ref_attrs", "static_dims", "axes_list", "unsqueeze",
           "FLOAT", "FLOAT16", "BFLOAT16", "DOUBLE", "BOOL", "INT32", "INT64", "INTS"]
