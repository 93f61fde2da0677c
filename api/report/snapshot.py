"""A picture of a model's main graph and its If/Loop/Scan bodies, taken before the passes run,
to diff against afterwards.

Passes edit the IR in place, so the "before" graph exists only as this snapshot. Nodes and values
are keyed by ``id()`` and the snapshot holds a reference to each, so a node that survives the
pipeline has the same key on both sides and a key is never reused for a new node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ir.core import A_GRAPH, A_GRAPHS
from ..ir.types import dtype_name

ATTR_TEXT = 80  # characters of an attribute's value shown in the page
CONST_ELEMENTS = 16  # elements of a constant shown (its shape and dtype always are)


@dataclass(slots=True)
class NodeInfo:
    """One node as it was when the snapshot was taken."""

    key: int
    op: str
    domain: str
    name: str
    inputs: tuple  # value keys (None for an omitted optional input)
    outputs: tuple
    attrs: dict
    tag: str = ""  # the Builder tag: the rule (or pass) that created it
    bodies: tuple = ()  # (attribute name, Snapshot) for each If/Loop/Scan body, in order


@dataclass(slots=True)
class ValueInfo:
    """One value: its name, type text and, for constants, a preview of the data."""

    key: int
    name: str
    type: str
    kind: str  # "input", "init" or "node"
    const: str | None = None


@dataclass
class Snapshot:
    """The main graph's nodes in order, its values, inputs and outputs."""

    nodes: list[NodeInfo] = field(default_factory=list)
    values: dict[int, ValueInfo] = field(default_factory=dict)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    keep: list = field(default_factory=list)  # the IR objects themselves: ids stay unique
    nested: int = 0  # nodes inside If/Loop/Scan bodies (drawn when their node is expanded)

    def all_nodes(self):
        """Every node, bodies included (depth first, parents first)."""
        for n in self.nodes:
            yield n
            for _, body in n.bodies:
                yield from body.all_nodes()

    def all_values(self) -> dict[int, ValueInfo]:
        """Values of the graph and of its bodies, keyed by identity."""
        out = dict(self.values)
        for n in self.nodes:
            for _, body in n.bodies:
                out.update(body.all_values())
        return out

    def by_key(self) -> dict[int, NodeInfo]:
        """Nodes keyed by identity, bodies included: a node moved between a body and its
        enclosing graph is the same node on both sides."""
        return {n.key: n for n in self.all_nodes()}


def snapshot(model, details: bool = True) -> Snapshot:
    """The main graph of ``model`` now. ``details=False`` skips attributes and constant data
    (for models too large to draw, where only the structure is diffed)."""
    from ..ir.gcpause import paused_gc

    with paused_gc():  # hundreds of thousands of small objects: no full-heap scans meanwhile
        return _snapshot(model.graph, details)


def _snapshot(g, details: bool) -> Snapshot:
    s = Snapshot()
    for v in g.inputs:
        _value(s, v, "input", details)
        s.inputs.append(id(v))
    for v in g.initializers:
        _value(s, v, "init", details)
    for n in g.nodes:
        for v in n.outputs:
            _value(s, v, "node", details)
        s.keep.append(n)
        attrs = {k: _attr_text(a) for k, a in n.attributes.items()} if details else {}
        s.nodes.append(NodeInfo(id(n), n.op_type, n.domain, n.name or "",
                                tuple(None if v is None else id(v) for v in n.inputs),
                                tuple(id(v) for v in n.outputs), attrs,
                                str(n.meta.get("tag", "") or ""), _bodies(n, details)))
        for v in n.inputs:  # values of an enclosing scope are never inputs of the main graph
            if v is not None and id(v) not in s.values:
                _value(s, v, "input", details)
    s.outputs = [id(v) for v in g.outputs]
    s.nested = g.num_nodes() - len(s.nodes)
    return s


def _bodies(n, details: bool) -> tuple:
    """Each graph attribute of ``n`` as a snapshot of its own (a list of graphs: name[i])."""
    if not n.attributes:
        return ()
    out = []
    for name, a in n.attributes.items():
        graphs = a.value if a.type == A_GRAPHS else [a.value] if a.type == A_GRAPH else []
        for k, g in enumerate(graphs):
            out.append((name if a.type == A_GRAPH else f"{name}[{k}]", _snapshot(g, details)))
    return tuple(out)


def _value(s: Snapshot, v, kind: str, details: bool) -> None:
    if id(v) in s.values:
        return
    s.keep.append(v)
    const = _const_text(v.const_value) if details and v.const_value is not None else None
    s.values[id(v)] = ValueInfo(id(v), v.name or "", _type_text(v.type), kind, const)


def _type_text(t) -> str:
    if t is None:
        return "?"
    shape = getattr(t, "shape", None)
    dtype = getattr(t, "dtype", None)
    head = dtype_name(dtype) if isinstance(dtype, int) and dtype else type(t).__name__
    return head + ("" if shape is None else str(shape))


def _const_text(tensor) -> str:
    """dtype, dims and the first elements of a constant (never decoding a large one)."""
    dims = "[" + ",".join(map(str, tensor.dims)) + "]"
    head = f"{dtype_name(tensor.dtype)}{dims}"
    if getattr(tensor, "is_external", False) or tensor.size > 4096:
        return head
    try:
        flat = tensor.numpy().reshape(-1)
    except Exception:  # noqa: BLE001 - an undecodable constant is shown by its type alone
        return head
    items = ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x)
                      for x in flat[:CONST_ELEMENTS].tolist())
    more = ", ..." if flat.size > CONST_ELEMENTS else ""
    return f"{head} {{{items}{more}}}"


def _attr_text(a) -> str:
    try:
        v = a.value
    except Exception:  # noqa: BLE001 - an attribute the IR cannot decode is shown as such, not a crash
        return "(undecodable)"
    if hasattr(v, "nodes"):  # a subgraph
        return f"graph ({len(list(v.nodes))} nodes)"
    if hasattr(v, "dims") and hasattr(v, "dtype"):
        return _const_text(v)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    text = str(v)
    return text if len(text) <= ATTR_TEXT else text[:ATTR_TEXT] + "..."


def fill_shapes(snap: Snapshot, model_proto_bytes: Any) -> bool:
    """Fill value types with inferred (symbolic) shapes from a fresh copy of the same model.

    Inference writes types in place, so it runs on a copy lifted from the bytes; the copy's
    graphs (bodies included) have the snapshot's nodes in the same order, and its values are
    matched by position.
    Returns False (types left as declared) when the copy does not line up."""
    from .. import load
    from ..passes.shapes import infer_shapes

    copy = load(model_proto_bytes)
    try:
        infer_shapes(copy)
    except Exception:  # noqa: BLE001 - inference is a nicety here: declared types stay
        return False
    pairs: list = []
    if not _line_up(copy.graph, snap, pairs):
        return False
    for v, side, key in pairs:
        if key in side.values and v.type is not None:
            side.values[key].type = _type_text(v.type)
    return True


def _line_up(g, snap: Snapshot, pairs: list) -> bool:
    """(copy's value, snapshot, key) for each value of ``g`` and its bodies, by position."""
    nodes = list(g.nodes)
    if len(nodes) != len(snap.nodes):
        return False
    pairs += [(v, snap, k) for v, k in zip(g.inputs, snap.inputs)]
    for n, info in zip(nodes, snap.nodes):
        subs = n.subgraphs()
        if n.op_type != info.op or len(n.outputs) != len(info.outputs) or \
                len(subs) != len(info.bodies):
            return False
        pairs += [(v, snap, k) for v, k in zip(n.outputs, info.outputs)]
        if not all(_line_up(sg, body, pairs) for sg, (_, body) in zip(subs, info.bodies)):
            return False
    return True
