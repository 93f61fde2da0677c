"""What the default domain's schemas say about a node at an opset: which version of its op is
in force, whether the node's form (inputs, attributes, element types) fits that version, and
which version changes mean more than their signatures show.

Everything here reads ``onnx.defs``; nothing is a per-op list except :data:`SEMANTIC`, the
version bumps whose signatures stayed compatible while the meaning changed (a generic check
cannot see those, so a rule must handle them or the node is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from onnx import TensorProto, defs

from ..opsets import any_schema, first_version
from ..rewrite import schema_default

# op -> versions at which the op's meaning changed under a compatible-looking signature.
# Softmax & co: axis=1 coerced to 2-D became one axis at 13. Resize 11: coordinate modes
# (10 is asymmetric only). GroupNormalization 21: scale/bias per channel, not per group.
SEMANTIC: dict[str, tuple[int, ...]] = {
    "Softmax": (13,), "LogSoftmax": (13,), "Hardmax": (13,),
    "Resize": (11,), "GroupNormalization": (21,),
}

# Opset 11 made negative axes legal; an older version of these ops reads them as an error (or
# worse), so a node crossing 11 must hold non-negative axis/axes attributes.
NEGATIVE_AXES_AT = 11

MIN_OPSET = 7  # the oldest opset onnxruntime still runs and the converter targets


def max_opset() -> int:
    """The newest default-domain opset the installed onnx knows."""
    return defs.onnx_opset_version()


def schema(op: str, opset: int):
    """The op's schema in force at ``opset`` (None when the op does not exist there or is
    deprecated: a deprecated op cannot be emitted)."""
    s = any_schema(op, opset)
    return None if s is None or s.deprecated else s


def since(op: str, opset: int) -> int | None:
    """The version of ``op`` a node written for ``opset`` is (None when none)."""
    s = any_schema(op, opset)
    return None if s is None else s.since_version


@cache
def first_opset(op: str) -> int | None:
    """The lowest opset at which ``op`` can be emitted (None when the default domain never had
    it). Above :func:`first_version` when the op's first versions are deprecated (e.g.
    GroupNormalization-18, whose meaning 21 changed)."""
    low = first_version(op)
    if low is None:
        return None
    return next((v for v in range(low, max_opset() + 1) if schema(op, v) is not None), None)


def semantic_change(op: str, low: int, high: int) -> int | None:
    """A version v with low < v <= high at which ``op`` changed meaning (None when none)."""
    for v in SEMANTIC.get(op, ()):
        if low < v <= high:
            return v
    return None


def dtype_str(dt: int) -> str:
    """'tensor(float16)' for TensorProto.FLOAT16 (the spelling of schema type constraints)."""
    return f"tensor({TensorProto.DataType.Name(dt).lower()})"


def _formal(params, i: int):
    if i < len(params):
        return params[i]
    last = params[-1] if params else None
    if last is not None and last.option == defs.OpSchema.FormalParameterOption.Variadic:
        return last
    return None


def type_params(node, s, dtype: Callable) -> dict[str, set[int]]:
    """Type parameter (or concrete type string) -> element types the node binds to it."""
    out: dict[str, set[int]] = {}
    for params, values in ((s.inputs, node.inputs), (s.outputs, node.outputs)):
        for i, v in enumerate(values):
            f = _formal(params, i)
            dt = dtype(v) if v is not None else None
            if f is not None and dt:
                out.setdefault(f.type_str, set()).add(dt)
    return out


def bad_types(node, s, dtype: Callable) -> dict[str, set[int]]:
    """Type parameters whose bound element types the schema ``s`` does not allow."""
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in s.type_constraints}
    bad = {}
    for param, dts in type_params(node, s, dtype).items():
        ok = allowed.get(param, {param})
        wrong = {d for d in dts if dtype_str(d) not in ok}
        if wrong:
            bad[param] = wrong
    return bad


def allows(s, param: str, dt: int) -> bool:
    """Whether the schema's type parameter ``param`` admits element type ``dt``."""
    for c in s.type_constraints:
        if c.type_param_str == param:
            return dtype_str(dt) in c.allowed_type_strs
    return dtype_str(dt) == param


def form_problem(node, opset: int, source: int, axes: bool = True) -> str | None:
    """Why the node (written for opset ``source``) is not a valid node at ``opset`` regardless
    of element types: a missing op, too many inputs or outputs, an attribute the older schema
    lacks (unless it holds the newer default), a change of meaning, or (with ``axes``)
    negative axes below 11. None when it fits."""
    s = schema(node.op_type, opset)
    if s is None:
        return f"{node.op_type} does not exist at opset {opset}"
    if s.since_version == since(node.op_type, source):
        return None
    ins = list(node.inputs)
    while ins and ins[-1] is None:
        ins.pop()
    if len(ins) > s.max_input or len(ins) < s.min_input:
        return f"{len(ins)} inputs, opset {opset} takes {s.min_input}..{s.max_input}"
    outs = len(node.outputs)
    if outs > s.max_output:
        return f"{outs} outputs, opset {opset} has at most {s.max_output}"
    for name in node.attributes:
        if name not in s.attributes and not is_default(node, name, source):
            return f"attribute {name} is newer than opset {opset}"
    here, there = s.since_version, since(node.op_type, source) or 0
    v = semantic_change(node.op_type, min(here, there), max(here, there))  # either direction
    if v is not None:
        return f"{node.op_type} changed meaning at opset {v}"
    if axes and opset < NEGATIVE_AXES_AT <= (since(node.op_type, source) or 0) \
            and negative_axes(node):
        return f"negative axes are newer than opset {opset}"
    return None


def negative_axes(node) -> bool:
    """True when an ``axis``/``axes`` attribute of the node holds a negative value."""
    for key in ("axis", "axes"):
        a = node.attributes.get(key)
        if a is None or a.ref_attr_name:
            continue
        vals = a.value if isinstance(a.value, (list, tuple)) else [a.value]
        if any(isinstance(x, int) and x < 0 for x in vals):
            return True
    return False


def is_default(node, name: str, opset: int) -> bool:
    """True when the node's attribute ``name`` holds its schema default at ``opset``."""
    a = node.attributes.get(name)
    if a is None or a.ref_attr_name:
        return False
    want = schema_default(node.op_type, name, opset)
    got = a.value
    if name == "dilations" and want is None:  # no schema default, but all ones is no dilation
        return isinstance(got, (list, tuple)) and all(int(d) == 1 for d in got)
    if isinstance(got, bytes):
        got = got.decode()
    if isinstance(got, list):
        got = tuple(got)
    return want is not None and got == want


__all__ = [
    "MIN_OPSET",
    "NEGATIVE_AXES_AT",
    "SEMANTIC",
    "allows",
    "any_schema",
    "bad_types",
    "dtype_str",
    "first_opset",
    "form_problem",
    "is_default",
    "max_opset",
    "negative_axes",
    "schema",
    "semantic_change",
    "since",
    "type_params",
]
