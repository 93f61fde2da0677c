"""Common subexpression elimination: compute each distinct expression once.

Two nodes are merged when they have the same domain, op type and overload, exactly the same
attributes (floats compared bit for bit, tensors by dtype, dims and bytes), the same input Values
and the same output arity; the later node's outputs are redirected to the earlier one's. Nodes are
visited in topological order with a hash table, so a chain of duplicates collapses in one run and
the pass takes time linear in the graph. Byte-identical initializers (same dtype, dims and bytes,
up to ``max_bytes`` each; never graph inputs, which a caller may override) are merged first, so
nodes reading them merge too; identical Constant nodes merge like any node. A later run looks
only at the nodes stamped since the last one (``ir.core.clock``: new, rewired or edited) and the
nodes of the same op reading the same first input, in graph order, in rounds until one merges
nothing.

Never merged: non-deterministic ops (the Random* family, Multinomial, Bernoulli, Dropout that may
train), nodes holding subgraphs, and nodes outside the standard ONNX domains (a custom op or a
function call may be non-deterministic; the pass cannot tell).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np

from ..ir import Attr, Graph, Node, Tensor, Value
from ..ir.core import clock
from .base import ALL, GraphPass, PassContext, PassResult, Rewrite
from .identity import dropout_is_inference, graph_opset, needs_carrier
from .registry import register

NONDETERMINISTIC = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli",
})
_STANDARD_DOMAINS = frozenset({"", "ai.onnx.ml"})
_CLEAN = "cse.clean"  # graph.meta key prefix: the clock of the last run that left no duplicate

# AttributeProto.AttributeType values.
_FLOAT, _INT, _STRING, _TENSOR, _GRAPH = 1, 2, 3, 4, 5
_FLOATS, _INTS, _STRINGS, _TENSORS, _GRAPHS = 6, 7, 8, 9, 10


def _tensor_size(t: Tensor) -> int:
    n = t.nbytes
    return t.size if n is None else n


def tensor_key(t: Tensor, max_bytes: int) -> tuple | None:
    """A hashable key that equal tensors share: dtype, dims and a digest of the bytes (callers
    confirm a match with :func:`tensors_equal`). None for tensors over ``max_bytes``."""
    if _tensor_size(t) > max_bytes:
        return None
    return (t.dtype, t.dims, t.digest())


def tensors_equal(a: Tensor, b: Tensor) -> bool:
    """Same dtype, dims and bytes."""
    return a is b or (a.dtype == b.dtype and a.dims == b.dims
                      and a.raw_bytes() == b.raw_bytes())


def _floats_key(values) -> bytes:
    # ONNX attribute floats are float32: compare their bits, so 0.0 and -0.0 differ, NaN matches.
    return np.asarray(values, dtype=np.float32).tobytes()


def _strings_key(values) -> tuple:
    return tuple(v if isinstance(v, bytes) else v.encode() for v in values)


def _attr_key(a: Attr, max_bytes: int) -> tuple | None:
    """A hashable key for an attribute's exact value; None when it cannot be compared."""
    if a.ref_attr_name:
        return (a.name, a.type, "@" + a.ref_attr_name)
    t, v = a.type, a.value
    if t == _INT:
        body: Any = int(v)
    elif t == _INTS:
        body = tuple(int(x) for x in v)
    elif t in (_FLOAT, _FLOATS):
        body = _floats_key(v if t == _FLOATS else [v])
    elif t == _STRING:
        body = _strings_key([v])
    elif t == _STRINGS:
        body = _strings_key(v)
    elif t == _TENSOR:
        body = tensor_key(v, max_bytes)
    elif t == _TENSORS:
        keys = tuple(tensor_key(x, max_bytes) for x in v)
        body = None if None in keys else keys
    elif t in (_GRAPH, _GRAPHS):
        body = None
    elif hasattr(v, "SerializeToString"):  # sparse tensors, type protos
        body = v.SerializeToString(deterministic=True)
    elif isinstance(v, tuple) and all(hasattr(x, "SerializeToString") for x in v):
        body = tuple(x.SerializeToString(deterministic=True) for x in v)
    else:
        body = None
    return None if body is None else (a.name, t, body)


def _attrs_confirmed(a: Node, b: Node) -> bool:
    """Compare tensor attributes byte for byte (keys only hold their digests)."""
    for name, x in a.attributes.items():
        if x.type == _TENSOR and not tensors_equal(x.value, b.attributes[name].value):
            return False
        if x.type == _TENSORS and not all(
                tensors_equal(p, q) for p, q in zip(x.value, b.attributes[name].value)):
            return False
    return True


def is_deterministic(node: Node, opset: int | None) -> bool:
    """False for ops whose result varies between runs (and Dropout that may train)."""
    if node.op_type in NONDETERMINISTIC:
        return False
    if node.op_type == "Dropout":
        return dropout_is_inference(node, opset)
    return True


def node_key(node: Node, max_bytes: int) -> tuple | None:
    """What two nodes computing the same values share; None when the node cannot be merged."""
    attrs: tuple = ()
    if node.attributes:
        keys = []
        for name in sorted(node.attributes):
            k = _attr_key(node.attributes[name], max_bytes)
            if k is None:
                return None
            keys.append(k)
        attrs = tuple(keys)
    domain = node.domain
    # Which outputs are omitted (named ""), as bits: a node that lacks an output someone reads
    # cannot stand in for one that has it.
    omitted = 0
    for i, v in enumerate(node.outputs):
        if v.name == "":
            omitted |= 1 << i
    # Values hash by identity, so the input tuple compares the very same Values.
    return (domain, node.op_type, node.overload, attrs, node.inputs, len(node.outputs), omitted)


def _merge_initializers(graph: Graph, max_bytes: int, stats: Counter) -> None:
    buckets: dict[tuple, list[Value]] = {}
    for v in graph.initializers:
        t = v.const_value
        if v.is_graph_input() or v.is_graph_output() or _tensor_size(t) > max_bytes:
            continue
        buckets.setdefault((t.dtype, t.dims), []).append(v)
    for group in buckets.values():
        if len(group) < 2:
            continue
        seen: dict[tuple, Value] = {}
        for v in group:
            kept = seen.setdefault(tensor_key(v.const_value, max_bytes), v)
            if kept is v or not tensors_equal(kept.const_value, v.const_value):
                continue
            v.replace_all_uses_with(kept)
            graph.remove_initializer(v)
            stats["initializers_merged"] += 1


@register
class CommonSubexpressionElimination(GraphPass):
    """Merge nodes computing the same thing, identical Constant nodes and byte-identical
    initializers. Non-deterministic ops and nodes with subgraphs are never merged."""

    name = "cse"
    summary = "merge duplicate nodes, constants and byte-identical initializers"
    options: ClassVar[dict[str, Any]] = {"max_bytes": 16 * 2**20}

    def run(self, model, ctx: PassContext) -> PassResult:
        result = super().run(model, ctx)
        if result.modified:
            # Merging changes no surviving value's shape (an Identity added to keep a graph
            # output's name is a new node: the analysis' update infers it).
            result.preserved = frozenset({"shapes"})
        return result

    def run_on_graph(self, graph: Graph, ctx: PassContext) -> PassResult:
        max_bytes = int(self.opts["max_bytes"])
        opset = graph_opset(graph, ctx)
        memo_key = (_CLEAN, max_bytes, opset)
        last = graph.meta.get(memo_key) if ctx.incremental else None
        merger = _Merger(graph, max_bytes, opset, last[1] if last else {})
        since = last[0] if last else None
        start = clock()
        _merge_initializers(graph, max_bytes, merger.stats)
        if since is None:
            merger.sweep(graph.nodes)
        else:
            # Rounds over what changed: a merge rewires the users of the merged node, whose
            # twins may lie before them (the next round sees both in order).
            while True:
                keep = merger.near_changes(since)
                merged = merger.sweep(graph.nodes if keep is None
                                      else graph.nodes.where(clock(), keep))
                if not merged:
                    break
                since, start = start, clock()
        # Everything stamped before ``start`` was examined and no merge is left.
        sourceless = {n: k for n, k in merger.sourceless.items() if n.graph is graph}
        graph.meta[memo_key] = (start, sourceless)
        stats = merger.stats
        modified = bool(stats["nodes_merged"] or stats["initializers_merged"])
        return PassResult(modified=modified, stats=+stats, rewrites=merger.rewrites,
                          preserved=ALL if not modified else frozenset())


class _Merger:
    """One run over one graph: the table of kept nodes by key, and what was merged."""

    def __init__(self, graph: Graph, max_bytes: int, opset: int | None, sourceless: dict):
        self.graph = graph
        self.max_bytes = max_bytes
        self.opset = opset
        self.stats: Counter = Counter()
        self.rewrites: list[Rewrite] = []
        # The keys of the nodes without inputs (Constants) when last swept: such a node is
        # stamped whenever a reader of it comes or goes, which changes nothing it is equal to.
        self.sourceless: dict[Node, tuple | None] = sourceless

    def near_changes(self, since: int) -> set | None:
        """The nodes a merge can involve after a clean run at clock ``since``: those stamped
        since (new, rewired or edited) and their twins-to-be, the nodes of the same op reading
        the same first input (equal keys mean equal inputs). None when every node must be
        looked at (a new or edited node without inputs may equal any other such node)."""
        keep: set[Node] = set()
        looked: set[tuple] = set()
        for n in self.graph.nodes.where(since):
            v = next((i for i in n.inputs if i is not None), None)
            if v is None:
                if n.inputs or n not in self.sourceless or \
                        self.sourceless[n] != node_key(n, self.max_bytes):
                    return None
                continue
            keep.add(n)
            if (v, n.op_type) in looked:
                continue
            looked.add((v, n.op_type))
            for u, _ in v.uses():
                if u.op_type == n.op_type and u.graph is self.graph:
                    keep.add(u)
        return keep

    def sweep(self, nodes) -> bool:
        """Merge each of ``nodes`` (in graph order) into the first earlier one of them with its
        key; True when something was merged."""
        table: dict[tuple, Node] = {}
        merged = False
        for node in nodes:
            if (node.domain not in _STANDARD_DOMAINS or node.subgraphs()
                    or not is_deterministic(node, self.opset)):
                continue
            key = node_key(node, self.max_bytes)
            if not node.inputs:
                self.sourceless[node] = key
            if key is None:
                continue
            kept = table.setdefault(key, node)
            if kept is node or not _attrs_confirmed(node, kept):
                continue
            merged |= self.merge(node, kept)
        return merged

    def merge(self, node: Node, kept: Node) -> bool:
        pairs = list(zip(node.outputs, kept.outputs))
        carried = sum(1 for o, k in pairs if o.is_graph_output() and needs_carrier(o, k))
        if carried and node.op_type == "Identity":
            return False  # an Identity for an Identity gains nothing
        for o, k in pairs:
            if o.is_graph_output() and not needs_carrier(o, k) and k.type is None:
                k.type = o.type  # k takes over the output's name; keep its declared type
            o.replace_all_uses_with(k, outputs=True)
        self.graph.erase(node)
        stats = self.stats
        stats["nodes_merged"] += 1
        stats["nodes_removed"] += 1
        if carried:
            stats["identities_added"] += carried
            stats["nodes_removed"] -= carried
        self.rewrites.append(Rewrite(f"cse.{node.op_type}", (node.name or node.op_type,)))
        return True


__all__ = [
    "NONDETERMINISTIC",
    "CommonSubexpressionElimination",
    "is_deterministic",
    "node_key",
    "tensor_key",
    "tensors_equal",
]
