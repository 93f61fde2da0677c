"""What holds inside one If branch: shapes re-derived under the branch's conditions, and whether
those conditions contradict a node that must already have run when the branch starts.

The shape analysis records one fact per Value for the whole model. Inside a branch of ``If(c)``
more is known: ``c`` has that branch's value, so every other If on ``c`` (or on a predicate that
``c`` decides) took the same branch, and the values computed from its outputs have the shapes that
branch gives. :class:`Scope` re-runs the shape functions on the ancestors of the values a branch
reads, with those Ifs resolved, into a dictionary of its own (never ``value.meta``: an outer Value
read inside the branch is the same object outside it, where the fact need not hold). A scoped
type refines the global fact; it never replaces a global fact by a less precise one.

Unreachable branches. Every ancestor of a value the branch reads from outside ran, and succeeded,
before the branch started. When the branch's conditions give such a node inputs that the op's
schema refuses (onnx's own inference fails on them while it accepts the global facts: an LSTM
whose input would be rank 5), no execution enters the branch normally: where the condition
selects it, the model has already failed at that node. :meth:`Scope.contradiction` names the node.
Only onnx's schema check decides this (no guess of what a runtime might tolerate), and only for
input types that differ from the global ones.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

import numpy as np

from ..ir import Graph, Node, Shape, SymDim, TensorType, Value
from .identity import constant_array
from .shapes import sym_value
from .shapes.context import NodeCtx, obj_array, vals_from_numpy
from .shapes.infer import load_ops, proven_type
from .shapes.table import lookup

MAX_NODES = 2000  # ancestors re-derived per scope; beyond that the global facts stand
_fresh = itertools.count()


class _Overlay:
    """The frame NodeCtx talks to: scoped types first, the global facts otherwise."""

    def __init__(self):
        self.types: dict[Value, object] = {}
        self.vals: dict[Value, np.ndarray | None] = {}
        self.errors: list[Node] = []

    def type_of(self, v: Value):
        return self.types[v] if v in self.types else proven_type(v)

    def vals_of(self, v: Value) -> np.ndarray | None:
        if v in self.vals:
            return self.vals[v]
        a = constant_array(v)
        if a is not None:
            return vals_from_numpy(a)
        s, t = sym_value(v), proven_type(v)
        if s is None or not isinstance(t, TensorType) or t.shape is None or len(t.shape) > 1:
            return None
        shape = tuple(t.shape)
        if shape not in ((), (len(s),)):
            return None
        return obj_array(list(s), shape)

    def set_out(self, v: Value, t, vals) -> None:
        self.types[v] = _refine(t, proven_type(v))
        if vals is not None and not isinstance(vals, np.ndarray):
            vals = obj_array([vals], ())
        t = self.types[v]
        ok = (vals is not None and isinstance(t, TensorType) and t.shape is not None
              and all(type(d) is int for d in t.shape)
              and int(np.prod(t.shape, dtype=np.int64)) == vals.size)
        self.vals[v] = vals.reshape(tuple(t.shape)) if ok else None

    def fresh(self, kind: str, node: Node | None) -> SymDim:
        return SymDim(f"scoped_{kind}_{next(_fresh)}")  # a name no global fact uses

    def constraint(self, *args) -> None:
        pass  # an open equality is no fact either way

    def error(self, node: Node | None, message: str) -> None:
        if node is not None:
            self.errors.append(node)


def _refine(scoped, base):
    """``scoped`` with the dims it leaves unknown taken from ``base`` (both hold in the scope)."""
    if not isinstance(scoped, TensorType) or not isinstance(base, TensorType):
        return scoped if scoped is not None else base
    if scoped.shape is None or (base.shape is not None and len(base.shape) != len(scoped.shape)):
        return base if scoped.shape is None else scoped
    if base.shape is None:
        return scoped
    dims = [d if d is not None else b for d, b in zip(scoped.shape, base.shape)]
    return TensorType(scoped.dtype or base.dtype, Shape(dims))


def node_inside(node: Node, graph: Graph) -> bool:
    """True when ``node`` is in ``graph`` or in a subgraph nested in it."""
    g = node.graph
    while g is not None:
        if g is graph:
            return True
        g = g.parent_node.graph if g.parent_node is not None else None
    return False


def captured(graph: Graph) -> list[Value]:
    """The values that ``graph`` (with its nested subgraphs) reads from enclosing graphs."""
    seen: dict[Value, None] = {}
    for n in graph.all_nodes():
        for v in n.inputs:
            if v is None or v in seen:
                continue
            owner = v.producer.graph if v.producer is not None else v.owning_graph()
            if owner is not None and owner is not graph and not _graph_inside(owner, graph):
                seen[v] = None
    return list(seen)


def _graph_inside(g: Graph, outer: Graph) -> bool:
    while g is not None and g is not outer:
        g = g.parent_node.graph if g.parent_node is not None else None
    return g is outer


def feeds(node: Node, values: list[Value], limit: int = MAX_NODES) -> bool:
    """True when ``node`` is an ancestor of one of ``values`` (through node inputs)."""
    stack = [v.producer for v in values if v is not None and v.producer is not None]
    seen: set = set()
    while stack and len(seen) < limit:
        n = stack.pop()
        if n is node:
            return True
        if n in seen:
            continue
        seen.add(n)
        stack.extend(v.producer for v in n.inputs if v is not None and v.producer is not None)
    return False


class Scope:
    """Shapes inside ``inside`` where ``decide`` gives the conditions that hold there."""

    def __init__(self, decide: Callable[[Value], bool | None], inside: Graph, opsets: dict):
        load_ops()
        self.decide, self.inside, self.opsets = decide, inside, opsets
        self.ov = _Overlay()
        self.state: set = set()
        self.budget = MAX_NODES
        self.bad: Node | None = None

    def shape(self, v: Value) -> Shape | None:
        self._eval(v)
        t = self.ov.type_of(v)
        return t.shape if isinstance(t, TensorType) else None

    def contradiction(self, values: list[Value]) -> Node | None:
        """A node outside the scope that the scope's conditions make fail, or None."""
        for v in values:
            self._eval(v)
        return self.bad

    def _taken(self, node: Node) -> Graph | None:
        if node.op != ("", "If") or not node.inputs or node.inputs[0] is None:
            return None
        d = self.decide(node.inputs[0])
        g = node.attr("then_branch" if d else "else_branch") if d is not None else None
        return g if isinstance(g, Graph) and len(g.outputs) == len(node.outputs) else None

    def _deps(self, node: Node) -> list[Node]:
        taken = self._taken(node)
        vals = taken.outputs if taken is not None else ([] if node.subgraphs() else node.inputs)
        return [v.producer for v in vals if v is not None and v.producer is not None]

    def _eval(self, v: Value) -> None:
        """Scoped types for ``v`` and its ancestors (post-order, each node once)."""
        if v.producer is None or v.producer in self.state:
            return
        stack, expanded = [(v.producer, False)], set()
        while stack:
            node, ready = stack.pop()
            if node in self.state or (not ready and node in expanded):
                continue
            if ready or self.budget <= 0:
                self.state.add(node)
                if ready:
                    self._apply(node)
                continue
            self.budget -= 1
            expanded.add(node)
            stack.append((node, True))
            stack.extend((d, False) for d in self._deps(node) if d not in self.state)

    def _apply(self, node: Node) -> None:
        ov = self.ov
        taken = self._taken(node)
        if taken is not None:  # this If took the branch the scope's conditions select
            for out, src in zip(node.outputs, taken.outputs):
                ov.types[out] = _refine(ov.type_of(src), proven_type(out))
                ov.vals[out] = ov.vals_of(src)
            return
        if node.subgraphs() or not any(v in ov.types for v in node.inputs if v is not None):
            return
        fn = lookup(node.domain, node.op_type)
        if fn is not None:
            with contextlib.suppress(Exception):  # a shape function bug leaves the global facts
                fn(NodeCtx(node, ov, self.opsets, None))
        if self.bad is None and not node_inside(node, self.inside) and _refused(node, ov, self.opsets):
            self.bad = node


def _refused(node: Node, ov: _Overlay, opsets: dict) -> bool:
    """True when onnx's schema inference refuses the node's scoped input types but accepts its
    global ones (a rank the op cannot take, say)."""
    if node.domain != "" or not any(v in ov.types for v in node.inputs if v is not None):
        return False
    scoped = [None if v is None else ov.type_of(v) for v in node.inputs]
    base = [None if v is None else proven_type(v) for v in node.inputs]
    if scoped == base:
        return False
    return _onnx_refuses(node, scoped, opsets) and not _onnx_refuses(node, base, opsets)


def _onnx_refuses(node: Node, types: list, opsets: dict) -> bool:
    import onnx
    from onnx import defs, helper, shape_inference

    from ..ir import lower_type
    from .shapes.fallback import attribute_protos

    try:
        schema = defs.get_schema(node.op_type, opsets.get("", 21), "")
    except Exception:  # noqa: BLE001 no schema: nothing to check against
        return False
    names, tps = [], {}
    for i, t in enumerate(types):
        names.append("" if node.inputs[i] is None else f"i{i}")
        if isinstance(t, TensorType) and t.dtype:
            dims = None if t.shape is None else [d if type(d) is int else None for d in t.shape]
            tps[f"i{i}"] = lower_type(TensorType(t.dtype, None if dims is None else Shape(dims)))
    proto = onnx.NodeProto()
    proto.op_type = node.op_type
    proto.input.extend(names)
    proto.output.extend(f"o{i}" if v.name != "" else "" for i, v in enumerate(node.outputs))
    proto.attribute.extend(attribute_protos(NodeCtx(node, None, opsets, None)))
    imports = [helper.make_opsetid(d, v) for d, v in opsets.items()]
    try:
        shape_inference.infer_node_outputs(schema, proto, tps, {}, opset_imports=imports)
    except Exception:  # noqa: BLE001 onnx's checks raise several types
        return True
    return False


__all__ = ["MAX_NODES", "Scope", "captured", "feeds", "node_inside"]
