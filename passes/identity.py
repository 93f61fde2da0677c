"""Remove nodes that return one of their inputs unchanged.

Removed: Identity; Dropout in inference (no training_mode input or a constant false one, and the
mask output unused); and no-ops proven from static facts only: Cast/CastLike to the input's own
dtype, Reshape to the input's own shape, Transpose with the identity permutation, Expand to a shape
that cannot grow the input, Slice covering every element, Pad with all-zero pads, Concat of one
input. Shapes come from ``Value.shape`` and constants from initializers or Constant nodes; anything
unknown leaves the node alone.

A graph output keeps its name: the forwarded value takes it over when it is computed in the same
graph, otherwise (a graph input, an initializer, another output, a value of an enclosing graph) an
Identity has to carry the name. Such an Identity is therefore never removed, which keeps fixed-point
pipelines from spinning; any other no-op whose output needs a carrier becomes that Identity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..ir import Graph, Node, Value
from .base import ALL, GraphPass, PassContext, PassResult, Rewrite
from .registry import register

# Slice ends at or past this count as "to the end" even when the dim is not known statically.
_END_OF_AXIS = 2**31 - 1
# Constants decoded to prove a no-op are small (shapes, perms, pads); bigger ones are not read.
_MAX_CONST_ELEMENTS = 4096


def constant_array(v: Value | None) -> np.ndarray | None:
    """The data of ``v`` when it is a constant (an initializer that no caller can override, or
    the output of a Constant node), else None. Big constants are not decoded."""
    if v is None:
        return None
    node = v.producer
    if node is None:
        t = v.const_value
        if t is None or v.is_graph_input() or t.size > _MAX_CONST_ELEMENTS:
            return None
        return t.numpy()
    if node.op_type != "Constant" or node.domain != "" or len(node.attributes) != 1:
        return None
    (name, attr), = node.attributes.items()
    if attr.ref_attr_name:
        return None
    if name == "value":
        t = attr.value
        return t.numpy() if t.size <= _MAX_CONST_ELEMENTS else None
    if name == "value_int":
        return np.array(attr.value, dtype=np.int64)
    if name == "value_ints":
        return np.array(attr.value, dtype=np.int64)
    if name == "value_float":
        return np.array(attr.value, dtype=np.float32)
    if name == "value_floats":
        return np.array(attr.value, dtype=np.float32)
    return None


def value_dtype(v: Value | None) -> int | None:
    """The element type of ``v``: its declared one, or the data type of a Constant's value."""
    if v is None:
        return None
    if v.dtype is not None:
        return v.dtype
    node = v.producer
    if node is not None and node.op_type == "Constant" and node.domain == "":
        a = node.attributes.get("value")
        if a is not None and not a.ref_attr_name:
            return a.value.dtype
        if "value_int" in node.attributes or "value_ints" in node.attributes:
            return 7
        if "value_float" in node.attributes or "value_floats" in node.attributes:
            return 1
    return None


def _int_list(v: Value | None) -> list[int] | None:
    arr = constant_array(v)
    if arr is None or arr.dtype.kind not in "iu" or arr.ndim > 1:
        return None
    return [int(x) for x in arr.reshape(-1)]


def graph_opset(graph: Graph, ctx: PassContext, domain: str = "") -> int | None:
    """The opset version of ``domain`` that applies inside ``graph`` (function bodies have their
    own imports)."""
    root = graph
    while root.parent_node is not None and root.parent_node.graph is not None:
        root = root.parent_node.graph
    if root.function is not None:
        imports = root.function.opset_imports
        v = imports.get(domain)
        if v is not None:
            return v
    return ctx.model.opset(domain)


def dropout_is_inference(node: Node, opset: int | None) -> bool:
    """True when a Dropout provably runs in inference mode (and so returns its input)."""
    if opset is not None and opset < 7:
        return node.attr("is_test", 0) == 1
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is None:
        return True
    arr = constant_array(training)
    return arr is not None and arr.size == 1 and not bool(arr.reshape(-1)[0])


# -- the no-op rules: each returns the index of the input the node returns unchanged, or None --

def _identity(node: Node, opset: int | None) -> int | None:
    return 0


def _dropout(node: Node, opset: int | None) -> int | None:
    return 0 if dropout_is_inference(node, opset) else None


def _cast(node: Node, opset: int | None) -> int | None:
    dtype = value_dtype(node.inputs[0])
    return 0 if dtype is not None and dtype == node.attr("to") else None


def _cast_like(node: Node, opset: int | None) -> int | None:
    dtype = value_dtype(node.inputs[0])
    like = value_dtype(node.inputs[1] if len(node.inputs) > 1 else None)
    return 0 if dtype is not None and dtype == like else None


def _reshape(node: Node, opset: int | None) -> int | None:
    x = node.inputs[0]
    shape = x.shape if x is not None else None
    if shape is None:
        return None
    if opset is not None and opset < 5:
        target = node.attr("shape")
        target = list(target) if target is not None else None
    else:
        target = _int_list(node.inputs[1] if len(node.inputs) > 1 else None)
    if target is None or len(target) != len(shape):
        return None
    allowzero = node.attr("allowzero", 0)
    infer = [i for i, t in enumerate(target) if t == -1]
    if len(infer) > 1:
        return None
    for i, (t, d) in enumerate(zip(target, shape)):
        if t == 0 and not allowzero:
            continue  # copies dim i
        if t == -1:
            continue  # every other dim is proven equal, so the inferred one is dim i
        if type(d) is not int or t != d:
            return None
    return 0


def _transpose(node: Node, opset: int | None) -> int | None:
    perm = node.attr("perm")
    if perm is None:  # reverses the dims: a no-op only up to rank 1
        shape = node.inputs[0].shape
        return 0 if shape is not None and len(shape) <= 1 else None
    return 0 if list(perm) == list(range(len(perm))) else None


def _expand(node: Node, opset: int | None) -> int | None:
    shape = node.inputs[0].shape
    target = _int_list(node.inputs[1] if len(node.inputs) > 1 else None)
    if shape is None or target is None or len(target) > len(shape):
        return None
    for t, d in zip(reversed(target), reversed(shape)):
        if t != 1 and not (type(d) is int and t == d):
            return None
    return 0


def _slice(node: Node, opset: int | None) -> int | None:
    if opset is not None and opset < 10:
        starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
        steps = None
    else:
        ins = list(node.inputs) + [None] * (5 - len(node.inputs))
        starts, ends = _int_list(ins[1]), _int_list(ins[2])
        axes = _int_list(ins[3]) if ins[3] is not None else None
        steps = _int_list(ins[4]) if ins[4] is not None else None
        if (ins[3] is not None and axes is None) or (ins[4] is not None and steps is None):
            return None
    if starts is None or ends is None or len(starts) != len(ends):
        return None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if len(axes) != len(starts) or len(steps) != len(starts):
        return None
    shape = node.inputs[0].shape
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step != 1:
            return None
        dim = None
        if shape is not None:
            a = axis + len(shape) if axis < 0 else axis
            if not 0 <= a < len(shape):
                return None
            dim = shape[a] if type(shape[a]) is int else None
        if not (start == 0 or (dim is not None and start <= -dim)):
            return None
        if not (end >= _END_OF_AXIS or (dim is not None and end >= dim)):
            return None
    return 0


def _pad(node: Node, opset: int | None) -> int | None:
    if opset is not None and opset < 11:
        pads = node.attr("pads")
    else:
        pads = _int_list(node.inputs[1] if len(node.inputs) > 1 else None)
    return 0 if pads is not None and all(p == 0 for p in pads) else None


def _concat(node: Node, opset: int | None) -> int | None:
    return 0 if len(node.inputs) == 1 and node.inputs[0] is not None else None


RULES: dict[str, Callable[[Node, int | None], int | None]] = {
    "Identity": _identity,
    "Dropout": _dropout,
    "Cast": _cast,
    "CastLike": _cast_like,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Expand": _expand,
    "Slice": _slice,
    "Pad": _pad,
    "Concat": _concat,
}


def needs_carrier(out: Value, src: Value) -> bool:
    """True when redirecting graph output ``out`` to ``src`` needs an Identity to keep the name:
    ``src`` is not computed in every graph that returns ``out``, or is itself returned."""
    p = src.producer
    if p is None or src.is_graph_output():
        return True
    return any(g is not p.graph for g in out.output_of())


@register
class RemoveIdentities(GraphPass):
    """Remove Identity, inference Dropout, and Cast/Reshape/Transpose/Expand/Slice/Pad/Concat
    nodes proven to return their input unchanged. Graph outputs keep their names."""

    name = "identity"
    summary = "remove Identity, inference Dropout and provable no-op nodes"

    def run_on_graph(self, graph: Graph, ctx: PassContext) -> PassResult:
        opset = graph_opset(graph, ctx)
        stats: Counter = Counter()
        rewrites: list[Rewrite] = []
        for node in graph.nodes:  # survives erasures and the Identity carriers appended at the end
            if node.domain != "":
                continue
            rule = RULES.get(node.op_type)
            if rule is None or not node.inputs or node.inputs[0] is None or not node.outputs:
                continue
            k = rule(node, opset)
            if k is None or node.inputs[k] is None:
                continue
            if any(v.has_uses() for v in node.outputs[1:]):
                continue  # e.g. a Dropout mask somebody reads
            src, out = node.inputs[k], node.outputs[0]
            carried = out.is_graph_output() and needs_carrier(out, src)
            if carried and node.op_type == "Identity":
                continue  # this Identity is what keeps the output's name
            if out.is_graph_output() and not carried and src.type is None:
                src.type = out.type  # src takes over the output's name; keep its declared type
            out.replace_all_uses_with(src, outputs=True)
            graph.erase(node)
            stats[f"removed.{node.op_type}"] += 1
            if carried:
                stats["replaced_by_identity"] += 1
            else:
                stats["nodes_removed"] += 1
            rewrites.append(Rewrite(f"identity.{node.op_type}", (node.name or node.op_type,)))
        # Uses of an unchanged value move to an equal one: every surviving value keeps its shape.
        return PassResult(modified=bool(stats), stats=stats, rewrites=rewrites,
                          preserved=ALL if not stats else frozenset({"shapes"}))


__all__ = [
    "RULES",
    "RemoveIdentities",
    "constant_array",
    "dropout_is_inference",
    "graph_opset",
    "needs_carrier",
    "value_dtype",
]
