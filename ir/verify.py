"""The IR verifier: the invariants every pass must leave true, checked in one linear walk.

Checked: every input is defined before use (values of enclosing graphs included, up to the
parent node's position), use lists are exact in both directions, producers and output indices
agree, graph outputs are defined and counted, names are unique, initializer types match their data,
the cached list of nested graphs is current.
"""

from __future__ import annotations

from .errors import IRError
from .core import Graph, Model, Value
from .types import TensorType


def _check_graph(g: Graph, outer: list[set], seen: dict[int, Value], names: dict[str, Value],
                 problems: list[str]) -> None:
    where = f"graph {g.name!r}"
    defined: set[int] = set()
    scopes = outer + [defined]

    def define(v: Value) -> None:
        defined.add(id(v))
        seen[id(v)] = v
        if v.name:
            other = names.setdefault(v.name, v)
            if other is not v:
                problems.append(f"{where}: two values are named {v.name!r}")

    for v in g.inputs:
        if not v._is_input or v.graph is not g:
            problems.append(f"{where}: input {v.name!r} does not know it is an input of this graph")
        define(v)
    for v in g.initializers:
        if v.const_value is None or v.graph is not g:
            problems.append(f"{where}: initializer {v.name!r} lost its tensor or owner")
        elif isinstance(v.type, TensorType) and v.type.dtype and v.type.dtype != v.const_value.dtype:
            problems.append(f"{where}: initializer {v.name!r} is typed {v.type.dtype} but holds "
                            f"{v.const_value.dtype}")
        if id(v) not in defined:
            define(v)
    for v in g.sparse_initializers:
        define(v)
    for n in g.nodes:
        if n.graph is not g:
            problems.append(f"{where}: {n!r} is listed but belongs to another graph")
        for i, v in enumerate(n.inputs):
            if v is None:
                continue
            if not any(id(v) in s for s in scopes):
                problems.append(f"{where}: {n!r} input {i} reads {v.name!r} before it is defined "
                                "(or from another graph)")
            if (n, i) not in v._uses:
                problems.append(f"{where}: {v.name!r} does not list its use by {n!r} input {i}")
            seen[id(v)] = v
        for sub in n.subgraphs():
            if sub.parent_node is not n:
                problems.append(f"{where}: a subgraph of {n!r} does not know its parent")
            _check_graph(sub, scopes, seen, dict(names), problems)
        for i, v in enumerate(n.outputs):
            if v.producer is not n or v.index != i:
                problems.append(f"{where}: output {i} of {n!r} ({v.name!r}) names another producer")
            if id(v) in defined:
                problems.append(f"{where}: {v.name!r} is defined twice")
            define(v)
    slots: dict = {}
    for i, v in enumerate(g.outputs):
        slots.setdefault(v, []).append(i)
    if slots != g._out_pos:
        problems.append(f"{where}: the index of output slots is stale")
    for v in g.outputs:
        if not any(id(v) in s for s in scopes):
            problems.append(f"{where}: output {v.name!r} is not defined")
        seen[id(v)] = v
        if v._outputs_of.count(g) != g._outputs.count(v):
            problems.append(f"{where}: output {v.name!r} has a wrong graph-output count")


def verify_graph_uses(values: dict[int, Value], problems: list[str]) -> None:
    """Every recorded use points at a live node that reads the value at that index."""
    for v in values.values():
        for n, i in v._uses:
            if n.graph is None or n._link is None:
                problems.append(f"{v.name!r} lists a use by {n!r}, which is not in any graph")
            elif i >= len(n.inputs) or n.inputs[i] is not v:
                problems.append(f"{v.name!r} lists a use by {n!r} input {i}, which reads another "
                                "value")


def _walk_nested(g: Graph) -> list[Graph]:
    out: list[Graph] = []
    for n in g.nodes:
        for sub in n.subgraphs():
            out.append(sub)
            out.extend(_walk_nested(sub))
    return out


def _check_nesting(g: Graph, problems: list[str]) -> None:
    """The cached list of nested graphs (Graph.subgraphs) matches a fresh walk."""
    fresh = _walk_nested(g)
    if list(map(id, g.subgraphs())) != list(map(id, fresh)):
        problems.append(f"graph {g.name!r}: the cached list of nested graphs is stale")


def check_model(model: Model) -> list[str]:
    """All invariant violations in the model, as messages (empty when the IR is sound)."""
    problems: list[str] = []
    seen: dict[int, Value] = {}
    _check_graph(model.graph, [], seen, {}, problems)
    _check_nesting(model.graph, problems)
    for f in model.functions.values():
        _check_graph(f.graph, [], seen, {}, problems)
        _check_nesting(f.graph, problems)
    verify_graph_uses(seen, problems)
    return problems


def verify_model(model: Model) -> None:
    """Raise :class:`~onnxopt.errors.IRError` naming the first broken invariants, if any."""
    problems = check_model(model)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise IRError("; ".join(problems[:3]) + more)


__all__ = ["verify_model", "check_model"]
