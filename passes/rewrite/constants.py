"""What a rule reads of a node without shape inference: constant data and attribute values
(with the schema's defaults)."""

from __future__ import annotations

import weakref
from functools import lru_cache
from typing import Any, Callable, Hashable, Optional

import numpy as np

from ...ir import Node, Tensor, Value

_CONST_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


def const_tensor(v: Optional[Value]) -> Optional[Tensor]:
    """The constant data of ``v`` (initializer that is not a graph input, or a Constant node's
    output) as an IR tensor, not decoded: a rule that looks at dtype and dims first decodes
    only the weights it rewrites (a decoded weight stays cached beside its proto's bytes).
    None when ``v`` is not constant."""
    if v is None:
        return None
    if v.producer is None:
        return v.const_value if v.const_value is not None and not v.is_graph_input() else None
    node = v.producer
    if node.op_type != "Constant" or node.domain != "" or has_ref_attrs(node):
        return None
    for key in _CONST_ATTRS:
        a = node.attributes.get(key)
        if a is None:
            continue
        val = a.value
        if key == "value":
            return val if isinstance(val, Tensor) else None
        dtype = np.float32 if key in ("value_float", "value_floats") else np.int64
        return Tensor.from_numpy(np.array(val, dtype=dtype))
    return None


def const_value(v: Optional[Value]) -> Optional[np.ndarray]:
    """The data of a constant value (see :func:`const_tensor`), else None."""
    t = const_tensor(v)
    return None if t is None else t.numpy()


# Facts about constant data ("every element is 0"), remembered per array object: a rule asks
# them of the same shared initializer at every reader, and again at every later run. Passes
# never write into a constant's array (a changed constant is a new Tensor, hence a new array),
# so a fact stays true while its array lives. Keyed by id(): a weak reference tells a live entry
# from one whose array died and whose id was reused, and drops the entry with the array.
_ARRAY_FACTS: dict[int, tuple[weakref.ref, dict]] = {}


def array_fact(c: np.ndarray, key: Hashable, compute: Callable[[np.ndarray], Any]) -> Any:
    """``compute(c)``, computed once per array object and ``key`` (which names what
    ``compute`` computes: one key, one function)."""
    entry = _ARRAY_FACTS.get(id(c))
    if entry is None or entry[0]() is not c:
        k = id(c)
        try:
            ref = weakref.ref(c, lambda r: _forget(k, r))
        except TypeError:  # not weakly referenceable: nothing to remember it by
            return compute(c)
        entry = _ARRAY_FACTS[k] = (ref, {})
    facts = entry[1]
    if key not in facts:
        facts[key] = compute(c)
    return facts[key]


def _forget(k: int, ref: weakref.ref) -> None:
    entry = _ARRAY_FACTS.get(k)
    if entry is not None and entry[0] is ref:  # not the entry of a newer array with that id
        del _ARRAY_FACTS[k]


@lru_cache(maxsize=None)
def schema_default(op_type: str, attr: str, opset: int, domain: str = "") -> Any:
    """The default value of an attribute in the op's schema at ``opset`` (None when none)."""
    import onnx
    from onnx import defs

    try:
        schema = defs.get_schema(op_type, opset, domain)
    except defs.SchemaError:  # unknown op or domain: no defaults known
        return None
    a = schema.attributes.get(attr)
    if a is None or not a.default_value.name:
        return None
    val = onnx.helper.get_attribute_value(a.default_value)
    if isinstance(val, bytes):
        val = val.decode("utf-8")
    if isinstance(val, list):
        val = tuple(val)
    return val


def has_ref_attrs(node: Node) -> bool:
    """True when an attribute of ``node`` refers to an attribute of its function (``@name``):
    its value is not known inside the body, so no rule may read it."""
    for a in node.attributes.values():
        if a.ref_attr_name:
            return True
    return False


def attr_of(node: Node, name: str, opset: int) -> Any:
    """An attribute's value, falling back to the schema default at ``opset``."""
    a = node.attributes.get(name)
    if a is not None:
        return a.value
    return schema_default(node.op_type, name, opset, node.domain or "")


__all__ = ["const_tensor", "const_value", "array_fact", "schema_default", "has_ref_attrs", "attr_of"]
