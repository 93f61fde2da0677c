"""Fallback for ops without a shape function here: onnx's own per-node inference.

Used only for ops that have an onnx schema (e.g. ai.onnx.ml, training ops) and no function in
the table (ops with no schema either go to :mod:`.runtime_fallback`); only its static facts are kept (dtypes and integer dims; symbolic dims it returns are
dropped, since their names are onnx's, not ours).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ...ir import TensorType
from ...ir.types import OptionalType, SequenceType
from .context import NodeCtx, is_concrete


@lru_cache(maxsize=1024)
def _schema(domain: str, op_type: str, version: int):
    from onnx import defs

    try:
        return defs.get_schema(op_type, version, domain)
    except Exception:  # no such op in onnx's registry
        return None


def onnx_fallback(domain: str, op_type: str, ctx: NodeCtx) -> Callable | None:
    """A shape function that asks onnx, or None when onnx has no schema for the op."""
    if any(a.type in (5, 10) for a in ctx.node.attributes.values()):
        return None
    schema = _schema(domain, op_type, ctx.opset)
    if schema is None:  # no onnx schema: what onnxruntime proves, if it has the op
        from .runtime_fallback import runtime_fallback

        return runtime_fallback(domain, op_type, ctx)
    if not schema.has_type_and_shape_inference_function:
        return None
    return lambda n: _run(schema, n)


def attribute_protos(n: NodeCtx) -> list:
    """The node's attributes as AttributeProtos (function attribute references resolved)."""
    from onnx import helper

    attrs = []
    for a in n.node.attributes.values():
        if a.ref_attr_name:
            attrs.append(helper.make_attribute(a.name, n.attr(a.name)))
        elif a.proto is not None:
            attrs.append(a.proto)
        else:
            v = a.value
            if hasattr(v, "to_proto"):
                v = v.to_proto()
            attrs.append(helper.make_attribute(a.name, v))
    return attrs


def _static_only(t):
    if isinstance(t, TensorType):
        if t.shape is None:
            return t
        from ...ir import Shape

        return TensorType(t.dtype, Shape([d if type(d) is int else None for d in t.shape]))
    if isinstance(t, SequenceType):
        return SequenceType(_static_only(t.elem))
    if isinstance(t, OptionalType):
        return OptionalType(_static_only(t.elem))
    return t


def _run(schema, n: NodeCtx) -> None:
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    from ...ir import lift_type, lower_type, np_dtype

    node = n.node
    names = []
    types = {}
    data = {}
    for i, v in enumerate(node.inputs):
        if v is None:
            names.append("")
            continue
        name = f"i{i}"
        names.append(name)
        t = n.type(i)
        if t is not None:
            tp = lower_type(_static_only(t))
            types[name] = tp
        a = n.vals(i)
        if a is not None and is_concrete(a) and isinstance(t, TensorType) and t.dtype:
            try:
                arr = np.array(a.tolist(), dtype=np_dtype(t.dtype)).reshape(a.shape)
                data[name] = numpy_helper.from_array(arr, name)
            except (TypeError, ValueError, OverflowError):
                pass
    attrs = attribute_protos(n)
    np_ = onnx.NodeProto()
    np_.op_type = node.op_type
    np_.domain = node.domain
    np_.input.extend(names)
    np_.output.extend(f"o{i}" if v.name != "" else "" for i, v in enumerate(node.outputs))
    np_.attribute.extend(attrs)
    opsets = [helper.make_opsetid(d, v) for d, v in n.opsets.items()]
    try:
        out = shape_inference.infer_node_outputs(schema, np_, types, data, opset_imports=opsets)
    except Exception:  # onnx refuses: outputs stay unknown
        return
    for i in range(len(node.outputs)):
        tp = out.get(f"o{i}")
        if tp is None:
            continue
        t = _static_only(lift_type(tp))
        if isinstance(t, TensorType):
            if t.dtype or t.shape is not None:
                n.set(i, t.dtype, t.shape)
        elif t is not None:
            n.set_type(i, t)


__all__ = ["attribute_protos", "onnx_fallback"]
