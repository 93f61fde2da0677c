"""Lift a ``ModelProto`` into the IR.

Names are resolved through a scope stack, so a value of an enclosing graph read inside an
If/Loop/Scan body becomes a use of the outer Value object. A graph whose nodes are out of order is
sorted (ONNX requires order; some exporters forget); a graph that reads an undefined name, defines
a name twice or has a cycle is refused with :class:`~onnxopt.errors.InvalidModelError`.
"""

from __future__ import annotations

import heapq
from typing import Any, Optional

from .errors import InvalidModelError, ModelLoadError
from .gcpause import paused_gc
from .core import A_GRAPH, A_GRAPHS, A_TENSOR, A_TENSORS, Attr, Function, Graph, Model, Node, Value
from .core import bump_nesting
from .shape import Shape, SymDim
from .tensor import Tensor, check_proto_data
from .types import MapType, OptionalType, SequenceType, SparseTensorType, TensorType

_MODEL_FIELDS_MODELED = {
    "ir_version", "opset_import", "producer_name", "producer_version", "domain", "model_version",
    "doc_string", "graph", "metadata_props", "functions",
}


def lift_type(tp) -> Optional[Any]:
    """A TypeProto as an IR type (None when unset)."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        tt = tp.tensor_type
        return TensorType(tt.elem_type, lift_shape(tt.shape) if tt.HasField("shape") else None)
    if which == "sparse_tensor_type":
        tt = tp.sparse_tensor_type
        return SparseTensorType(tt.elem_type,
                                lift_shape(tt.shape) if tt.HasField("shape") else None)
    if which == "sequence_type":
        return SequenceType(lift_type(tp.sequence_type.elem_type))
    if which == "optional_type":
        return OptionalType(lift_type(tp.optional_type.elem_type))
    if which == "map_type":
        return MapType(tp.map_type.key_type, lift_type(tp.map_type.value_type))
    return None


def lift_shape(sp) -> Shape:
    """A TensorShapeProto as a Shape. A negative dim_value (seen in old exports) is unknown."""
    dims: list = []
    for d in sp.dim:
        which = d.WhichOneof("value")
        if which == "dim_value":
            dims.append(d.dim_value if d.dim_value >= 0 else None)
        elif which == "dim_param":
            dims.append(SymDim(d.dim_param) if d.dim_param else None)
        else:
            dims.append(None)
    return Shape(dims)


def _graph_attrs(np) -> list:
    return [a for a in np.attribute if a.type in (A_GRAPH, A_GRAPHS) or a.HasField("g")
            or len(a.graphs)]


def _free_names(gp, cache: dict) -> set:
    """Names a graph proto reads but does not define (what it captures from outer scopes)."""
    # Keyed by id() with the proto kept alive in the entry: protobuf hands out fresh wrapper
    # objects, and a dead wrapper's id can be reused by another submessage.
    key = id(gp)
    if key in cache and cache[key][0] is gp:
        return cache[key][1]
    defined = {vi.name for vi in gp.input}
    defined.update(t.name for t in gp.initializer)
    defined.update(s.values.name for s in gp.sparse_initializer)
    used: set = set()
    for n in gp.node:
        for a in _graph_attrs(n):
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                used |= _free_names(sub, cache)
        used.update(x for x in n.input if x)
        defined.update(n.output)
    used.update(o.name for o in gp.output)
    free = used - defined
    cache[key] = (gp, free)
    return free


class _Lifter:
    def __init__(self, base_dir: Optional[str], raw_lengths: Optional[list] = None,
                 apart: Optional[dict] = None):
        self.base_dir = base_dir
        self.free_cache: dict = {}
        self.raw_lengths = raw_lengths  # raw_data lengths of the main graph's initializers
        self.apart = apart or {}  # their raw_data parsed apart, by index (see lift_model)

    # -- attributes -----------------------------------------------------------------------------
    def attr(self, a, chain: list, owner=None) -> Attr:
        t = a.type
        if t == 0:  # very old files leave the type out; infer it from the field that is set
            from onnx import helper

            t = _infer_attr_type(a, helper)
        if t == A_GRAPH:
            return Attr(a.name, t, self.graph(a.g, chain), ref_attr_name=a.ref_attr_name)
        if t == A_GRAPHS:
            return Attr(a.name, t, tuple(self.graph(g, chain) for g in a.graphs),
                        ref_attr_name=a.ref_attr_name)
        if t in (A_TENSOR, A_TENSORS):  # Constant values: data must fit the dims, undecoded
            where = f"attribute {a.name!r}"
            if owner is not None:
                where = f"node {owner.name or owner.op_type!r} {where}"
            for tp in [a.t] if t == A_TENSOR else a.tensors:
                check_proto_data(tp, what=f"{where}: tensor {tp.name!r}")
        return Attr(a.name, t, proto=a, ref_attr_name=a.ref_attr_name)

    # -- graphs ---------------------------------------------------------------------------------
    def graph(self, gp, chain: list, function: Optional[Any] = None) -> Graph:
        scope: dict[str, Value] = {}
        chain = chain + [scope]
        g = Graph(name=gp.name if function is None else function.name)
        if function is None:
            g.doc_string = gp.doc_string
            for p in gp.metadata_props:
                g.metadata_props[p.key] = p.value
            g.quantization_annotation = list(gp.quantization_annotation)
            inputs = [(vi.name, vi.type) for vi in gp.input]
        else:
            inputs = [(name, None) for name in function.input]
        for name, tp in inputs:
            if name in scope:
                raise InvalidModelError(f"graph {g.name!r}: input {name!r} is declared twice")
            v = Value(name, lift_type(tp) if tp is not None else None)
            scope[name] = v
            g.add_input(v)
        if function is None:
            lengths = self.raw_lengths if not chain[:-1] and self.raw_lengths is not None and \
                len(self.raw_lengths) == len(gp.initializer) else None
            for i, tp in enumerate(gp.initializer):
                v = scope.get(tp.name)
                if v is None:
                    v = scope[tp.name] = Value(tp.name)
                elif v.const_value is not None:
                    raise InvalidModelError(
                        f"graph {g.name!r}: initializer {tp.name!r} is declared twice")
                g.add_initializer(v, Tensor.from_proto(
                    tp, self.base_dir, None if lengths is None else lengths[i],
                    self.apart.get(i) if lengths is not None else None))
            for sp in gp.sparse_initializer:
                name = sp.values.name
                if name in scope:
                    raise InvalidModelError(
                        f"graph {g.name!r}: sparse initializer {name!r} is declared twice")
                v = Value(name, SparseTensorType(sp.values.data_type, Shape(sp.dims)))
                v.graph = g
                v.meta["sparse_initializer"] = sp
                scope[name] = v
                g.sparse_initializers.append(v)
        src = gp if function is None else function
        # Fast path: nodes in order (the norm). Any name not yet defined sends us to the careful
        # path, which sorts or explains exactly what is wrong.
        created: list[Node] = []
        if not self.nodes(g, src.node, chain, created):
            for name in list(scope):  # forget everything but inputs and initializers
                v = scope[name]
                if not (v._is_input or v.const_value is not None
                        or "sparse_initializer" in v.meta):
                    del scope[name]
            for n in created:
                _undo_node(n)
            g = self._reset(g)
            ordered = self.ordered_nodes(src, g.name, chain)
            self.nodes(g, ordered, chain, [])
        for vi in (gp.value_info if function is None else function.value_info):
            v = scope.get(vi.name)
            if v is not None and v.type is None:
                v.type = lift_type(vi.type)
        outs = []
        names = [vi.name for vi in gp.output] if function is None else list(function.output)
        for i, name in enumerate(names):
            v = None
            for s in reversed(chain):
                v = s.get(name)
                if v is not None:
                    break
            if v is None:
                raise InvalidModelError(
                    f"graph {g.name!r}: output {name!r} is not produced by any node, input or "
                    "initializer")
            if function is None:
                declared = lift_type(gp.output[i].type)
                if declared is not None:
                    v.type = declared if v.type is None or v.producer is not None else v.type
            outs.append(v)
        g.outputs = outs
        return g

    def nodes(self, g: Graph, protos, chain: list, created: list) -> bool:
        """Lift node protos in the given order; False as soon as one reads an undefined name
        (or defines a name twice). This loop is the hot path of loading: nodes are built with
        the fast constructor :meth:`Node.lifted`."""
        scope = chain[-1]
        outer = chain[:-1][::-1]
        attr = self.attr
        link = g._nodes.append
        for np_ in protos:
            ins = []
            for x in np_.input:
                if not x:
                    ins.append(None)
                    continue
                v = scope.get(x)
                if v is None:
                    for s in outer:
                        v = s.get(x)
                        if v is not None:
                            break
                    else:
                        return False
                ins.append(v)
            props = {p.key: p.value for p in np_.metadata_props} \
                if len(np_.metadata_props) else None
            node = Node.lifted(np_.domain, np_.op_type, ins, np_.output, np_.name,
                               np_.overload, np_.doc_string, props)
            created.append(node)  # from here on, a failure undoes it (_undo_node)
            for v in node._outputs:
                o = v.name
                if o:
                    if o in scope:
                        return False
                    scope[o] = v
            if len(np_.attribute):
                for a in np_.attribute:
                    at = attr(a, chain, np_)
                    node.attributes[at.name] = at
                    if at.type == A_GRAPH:
                        at.value.parent_node = node
                    elif at.type == A_GRAPHS:
                        for sub in at.value:
                            sub.parent_node = node
            node.graph = g
            link(node)
        return True

    @staticmethod
    def _reset(g: Graph) -> Graph:
        for n in list(g.nodes):
            g.detach(n)
        return g

    def ordered_nodes(self, gp, gname: str, chain: list) -> list:
        """The node protos in a valid order; refuses dangling names, double definitions, cycles."""
        nodes = list(gp.node)
        scope = chain[-1]
        outer = chain[:-1]
        producer: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if not o:
                    continue
                if o in producer:
                    j = producer[o]
                    raise InvalidModelError(
                        f"graph {gname!r}: {o!r} is produced twice, by {_label(nodes[j], j)} and "
                        f"{_label(n, i)}")
                if o in scope:
                    raise InvalidModelError(
                        f"graph {gname!r}: {_label(n, i)} redefines {o!r}, a graph input or "
                        "initializer")
                producer[o] = i
        needs_sort = False
        deps: list[list[int]] = []
        for i, n in enumerate(nodes):
            reads = [x for x in n.input if x]
            for a in _graph_attrs(n):
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    reads.extend(self_free for self_free in _free_names(sub, self.free_cache))
            d = []
            for x in reads:
                j = producer.get(x)
                if j is not None:
                    if j >= i:
                        needs_sort = True
                    d.append(j)
                elif x not in scope and not any(x in s for s in outer):
                    raise InvalidModelError(
                        f"graph {gname!r}: {_label(n, i)} reads {x!r}, which no node, input or "
                        "initializer defines")
            deps.append(d)
        if not needs_sort:
            return nodes
        users: list[list[int]] = [[] for _ in nodes]
        indeg = [0] * len(nodes)
        for i, d in enumerate(deps):
            for j in set(d):
                users[j].append(i)
                indeg[i] += 1
        ready = [i for i in range(len(nodes)) if indeg[i] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for k in users[i]:
                indeg[k] -= 1
                if indeg[k] == 0:
                    heapq.heappush(ready, k)
        if len(order) != len(nodes):
            stuck = next(i for i in range(len(nodes)) if indeg[i] > 0)
            raise InvalidModelError(
                f"graph {gname!r}: the nodes form a cycle through {_label(nodes[stuck], stuck)}")
        return [nodes[i] for i in order]

    def function(self, fp) -> Function:
        attrs_defaults = [Attr(a.name, a.type, proto=a) for a in fp.attribute_proto]
        f = Function(fp.domain, fp.name, Graph(name=fp.name), list(fp.attribute),
                     attrs_defaults, {o.domain: o.version for o in fp.opset_import},
                     overload=getattr(fp, "overload", ""))
        body = self.graph(fp, [], function=fp)
        body.function = f
        f.graph = body
        f.doc_string = fp.doc_string
        for p in fp.metadata_props:
            f.metadata_props[p.key] = p.value
        return f


def _undo_node(n: Node) -> None:
    """Drop the uses a half-lifted node made (it is about to be lifted again, in order)."""
    for i, v in enumerate(n.inputs):
        if v is not None:
            v._uses.pop((n, i), None)
    for sub in n.subgraphs():
        sub._detach_captures()
    for v in n.outputs:
        v.producer = None


def _label(n, i: int) -> str:
    return f"node {n.name!r} ({n.op_type} #{i})" if n.name else f"node {n.op_type} #{i}"


def _infer_attr_type(a, helper) -> int:
    for field, t in (("f", 1), ("i", 2), ("s", 3), ("t", 4), ("g", 5)):
        if a.HasField(field):
            return t
    for field, t in (("floats", 6), ("ints", 7), ("strings", 8), ("tensors", 9), ("graphs", 10)):
        if len(getattr(a, field)):
            return t
    return 0


def lift_model(proto, base_dir: Optional[str] = None, raw_lengths: Optional[list] = None,
               apart: Optional[dict] = None) -> Model:
    """Lift a ModelProto. ``base_dir`` is the folder external data locations are relative to;
    ``raw_lengths`` (from :func:`onnxopt.io`'s scan of the file) gives the raw_data length of
    each main-graph initializer, so checking it does not copy the weights; ``apart`` the
    raw_data of those parsed without it, by index (read-only buffers the tensors keep)."""
    if not proto.HasField("graph"):
        raise ModelLoadError("not an ONNX model: it has no graph")
    if proto.ir_version <= 0:
        raise ModelLoadError("not an ONNX model: ir_version is missing")
    with paused_gc():
        m = _lift_model(proto, base_dir, raw_lengths, apart)
    bump_nesting()  # nodes were linked without Graph._adopt
    return m


def _lift_model(proto, base_dir: Optional[str], raw_lengths: Optional[list] = None,
                apart: Optional[dict] = None) -> Model:
    lifter = _Lifter(base_dir, raw_lengths, apart)
    functions = {}
    for fp in proto.functions:
        f = lifter.function(fp)
        functions[f.key] = f
    graph = lifter.graph(proto.graph, [])
    m = Model(graph, proto.ir_version, {o.domain: o.version for o in proto.opset_import})
    m.producer_name = proto.producer_name
    m.producer_version = proto.producer_version
    m.domain = proto.domain
    m.model_version = proto.model_version
    m.doc_string = proto.doc_string
    for p in proto.metadata_props:
        m.metadata_props[p.key] = p.value
    m.functions = functions
    m.base_dir = base_dir
    for fd, _ in proto.ListFields():
        if fd.name not in _MODEL_FIELDS_MODELED:
            m.opaque[fd.name] = _copy_field(proto, fd)
    return m


def _copy_field(proto, fd):
    val = getattr(proto, fd.name)
    # protobuf 7 dropped FieldDescriptor.label (is_repeated replaces it)
    repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == fd.LABEL_REPEATED
    return list(val) if repeated else val


__all__ = ["lift_model", "lift_type", "lift_shape"]
