"""Lower the IR back to a ``ModelProto``.

Unchanged tensors and attributes reuse the protos they were lifted from. Every value gets a name
that is unique in the model (anonymous values are numbered, a later duplicate is renamed; graph
inputs and outputs keep theirs, they are the model's interface). Types known on intermediate
values are written as ``value_info``.
"""

from __future__ import annotations

from typing import Callable, Optional

import onnx

from .gcpause import paused_gc
from .core import A_GRAPH, A_GRAPHS, A_TENSOR, A_TENSORS, Attr, Function, Graph, Model, Value
from .shape import SymDim
from .tensor import Tensor
from .types import MapType, OptionalType, SequenceType, SparseTensorType, TensorType

TensorToProto = Callable[[Tensor, str], "onnx.TensorProto"]


def lower_type(t, tp: Optional[onnx.TypeProto] = None) -> onnx.TypeProto:
    """An IR type as a TypeProto."""
    tp = tp if tp is not None else onnx.TypeProto()
    if isinstance(t, (TensorType, SparseTensorType)):
        tt = tp.tensor_type if isinstance(t, TensorType) else tp.sparse_tensor_type
        tt.elem_type = t.dtype
        if t.shape is not None:
            sp = tt.shape
            sp.SetInParent()
            for d in t.shape:
                dp = sp.dim.add()
                if type(d) is int:
                    dp.dim_value = d
                elif isinstance(d, SymDim):
                    dp.dim_param = d.text
    elif isinstance(t, SequenceType):
        tp.sequence_type.SetInParent()
        if t.elem is not None:
            lower_type(t.elem, tp.sequence_type.elem_type)
    elif isinstance(t, OptionalType):
        tp.optional_type.SetInParent()
        if t.elem is not None:
            lower_type(t.elem, tp.optional_type.elem_type)
    elif isinstance(t, MapType):
        tp.map_type.key_type = t.key
        if t.value is not None:
            lower_type(t.value, tp.map_type.value_type)
    return tp


def _value_info(v: Value, out) -> None:
    out.name = v.name
    if v.type is not None:
        lower_type(v.type, out.type)
    if v.doc_string:
        out.doc_string = v.doc_string


def assign_names(model: Model) -> None:
    """Give every anonymous value a fresh name and rename later duplicates.

    Names are unique across the main graph and its subgraphs (ONNX forbids a subgraph to shadow
    an outer name); each function body is its own namespace.
    """
    _assign(model.graph, interface=True)
    for f in model.functions.values():
        _assign(f.graph, interface=False)


def _assign(root: Graph, interface: bool) -> None:
    used: dict[str, Value] = {}
    pending: list[Value] = []
    if interface:
        for v in list(root.inputs) + list(root.outputs):
            if v.name:
                used.setdefault(v.name, v)

    def claim(v: Value) -> None:
        name = v.name
        if name is None:
            pending.append(v)
        elif name and used.setdefault(name, v) is not v:
            pending.append(v)

    def walk(g: Graph) -> None:
        for v in g._inputs:
            claim(v)
        for v in g._inits:
            claim(v)
        for v in g.sparse_initializers:
            claim(v)
        for n in g._nodes:
            for v in n._outputs:
                claim(v)
            if n.attributes:
                for a in n.attributes.values():
                    if a.type == A_GRAPH:
                        walk(a.value)
                    elif a.type == A_GRAPHS:
                        for sub in a.value:
                            walk(sub)

    walk(root)
    counter = 0
    for v in pending:
        while True:
            cand = f"{v.name}_{counter}" if v.name else f"_v{counter}"
            counter += 1
            if cand not in used:
                break
        v.name = cand
        used[cand] = v


class _Lowerer:
    def __init__(self, tensor_to_proto: Optional[TensorToProto]):
        self.tensor_to_proto = tensor_to_proto or (lambda t, name: t.to_proto(name))

    def attr(self, a: Attr) -> onnx.AttributeProto:
        if a.proto is not None and a.type not in (A_GRAPH, A_GRAPHS):
            return a.proto
        p = onnx.AttributeProto()
        p.name = a.name
        p.type = a.type
        if a.ref_attr_name:
            p.ref_attr_name = a.ref_attr_name
            return p
        v = a.value
        if a.type == A_GRAPH:
            self.graph(v, p.g)
        elif a.type == A_GRAPHS:
            for g in v:
                self.graph(g, p.graphs.add())
        elif a.type == A_TENSOR:
            p.t.CopyFrom(v.to_proto(v.name))
        elif a.type == A_TENSORS:
            p.tensors.extend(t.to_proto(t.name) for t in v)
        elif a.type == 1:
            p.f = v
        elif a.type == 2:
            p.i = v
        elif a.type == 3:
            p.s = v.encode() if isinstance(v, str) else v
        elif a.type == 6:
            p.floats.extend(v)
        elif a.type == 7:
            p.ints.extend(v)
        elif a.type == 8:
            p.strings.extend(s.encode() if isinstance(s, str) else s for s in v)
        elif a.type == 11:
            p.sparse_tensor.CopyFrom(v)
        elif a.type == 12:
            p.sparse_tensors.extend(v)
        elif a.type == 13:
            p.tp.CopyFrom(v)
        elif a.type == 14:
            p.type_protos.extend(v)
        return p

    def nodes(self, g: Graph, out) -> None:
        for n in g.nodes:
            np_ = out.add()
            np_.op_type = n.op_type
            if n.domain:
                np_.domain = n.domain
            if n.name:
                np_.name = n.name
            if n.overload:
                np_.overload = n.overload
            np_.input.extend(["" if v is None else v.name for v in n._inputs])
            np_.output.extend([v.name for v in n._outputs])
            if n.attributes:
                np_.attribute.extend(self.attr(a) for a in n.attributes.values())
            if n.doc_string:
                np_.doc_string = n.doc_string
            for k, v in n.metadata_props.items():
                e = np_.metadata_props.add()
                e.key, e.value = k, v

    def graph(self, g: Graph, gp: Optional[onnx.GraphProto] = None) -> onnx.GraphProto:
        gp = onnx.GraphProto() if gp is None else gp
        gp.name = g.name
        if g.doc_string:
            gp.doc_string = g.doc_string
        for v in g.inputs:
            _value_info(v, gp.input.add())
        gp.initializer.extend(self.tensor_to_proto(v.const_value, v.name) for v in g.initializers)
        gp.sparse_initializer.extend(v.meta["sparse_initializer"] for v in g.sparse_initializers)
        self.nodes(g, gp.node)
        for v in g.outputs:
            _value_info(v, gp.output.add())
        outs = {id(v) for v in g.outputs}
        for n in g.nodes:
            for v in n.outputs:
                if v.type is not None and v.name and id(v) not in outs:
                    _value_info(v, gp.value_info.add())
        gp.quantization_annotation.extend(g.quantization_annotation)
        for k, v in g.metadata_props.items():
            e = gp.metadata_props.add()
            e.key, e.value = k, v
        return gp

    def function(self, f: Function) -> onnx.FunctionProto:
        fp = onnx.FunctionProto()
        fp.domain, fp.name = f.domain, f.name
        if f.overload:
            fp.overload = f.overload
        fp.input.extend(v.name for v in f.graph.inputs)
        fp.output.extend(v.name for v in f.graph.outputs)
        fp.attribute.extend(f.attributes)
        fp.attribute_proto.extend(self.attr(a) for a in f.attribute_defaults)
        for d, ver in f.opset_imports.items():
            o = fp.opset_import.add()
            o.domain, o.version = d, ver
        self.nodes(f.graph, fp.node)
        if f.doc_string:
            fp.doc_string = f.doc_string
        for n in f.graph.nodes:
            for v in n.outputs:
                if v.type is not None and v.name:
                    _value_info(v, fp.value_info.add())
        for k, v in f.metadata_props.items():
            e = fp.metadata_props.add()
            e.key, e.value = k, v
        return fp


def lower_graph(graph: Graph, tensor_to_proto: Optional[TensorToProto] = None) -> onnx.GraphProto:
    """Lower one graph (names must already be unique; see :func:`assign_names`)."""
    return _Lowerer(tensor_to_proto).graph(graph)


def lower_model(model: Model, tensor_to_proto: Optional[TensorToProto] = None) -> onnx.ModelProto:
    """Lower a model. ``tensor_to_proto(tensor, name)`` may redirect tensor data (external save)."""
    with paused_gc():
        return _lower_model(model, tensor_to_proto)


def _lower_model(model: Model, tensor_to_proto: Optional[TensorToProto]) -> onnx.ModelProto:
    assign_names(model)
    low = _Lowerer(tensor_to_proto)
    mp = onnx.ModelProto()
    mp.ir_version = model.ir_version
    for d, ver in model.opset_imports.items():
        o = mp.opset_import.add()
        o.domain, o.version = d, ver
    for field in ("producer_name", "producer_version", "domain", "doc_string"):
        val = getattr(model, field)
        if val:
            setattr(mp, field, val)
    if model.model_version:
        mp.model_version = model.model_version
    for k, v in model.metadata_props.items():
        e = mp.metadata_props.add()
        e.key, e.value = k, v
    mp.functions.extend(low.function(f) for f in model.functions.values())
    low.graph(model.graph, mp.graph)
    for name, val in model.opaque.items():
        field = getattr(mp, name)
        if isinstance(val, list):
            field.extend(val)
        elif hasattr(field, "CopyFrom"):
            field.CopyFrom(val)
        else:
            setattr(mp, name, val)
    return mp


__all__ = ["lower_model", "lower_graph", "lower_type", "assign_names"]


