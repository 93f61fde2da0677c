"""Dead code elimination: nodes nothing reads, unused initializers and unused model-local functions.

ONNX operators have no side effects, so a node is dead as soon as none of its outputs is read by a
node or returned by a graph; this holds for custom domains and function calls too. Removal is a
worklist over exact use lists: erasing a node drops its uses, and each producer whose outputs became
unused is examined next, so the pass runs in time linear in the model (nothing is rescanned per
removal). A value of an enclosing graph that an If/Loop/Scan body reads is a real use, so its
producer stays alive as long as the body's node does; erasing a node with bodies releases what the
bodies read. A later run looks only at the nodes stamped since the last one (``ir.core.clock``): a
node becomes dead only by losing the last use of its outputs, which stamps it.

Never removed: inputs and outputs of any graph (the model's interface; subgraph inputs are
positional), initializers that are also graph inputs, sparse initializers.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from ..ir import Function, Graph, Model, Node, Value
from ..ir.core import clock
from .base import ALL, Pass, PassContext, PassResult
from .registry import register

_CLEAN = "dce.clean"  # graph.meta: the clock when the graph last had no dead node


def _graph_alive(g: Graph, dead_functions: set) -> bool:
    """False when ``g`` sits in a body of an erased node, or in a removed function."""
    while True:
        if g.function is not None:
            return id(g.function) not in dead_functions
        parent = g.parent_node
        if parent is None:
            return True
        if parent.graph is None:
            return False
        g = parent.graph


def _is_dead(node: Node) -> bool:
    return not any(v.has_uses() for v in node.outputs)


def _count_nodes(node: Node) -> int:
    return 1 + sum(g.num_nodes() for g in node.subgraphs())


def _values_read_by_bodies(node: Node) -> list[Value]:
    """Every value the bodies of ``node`` read or return (captured outer values among them)."""
    out: list[Value] = []
    for g in node.subgraphs():
        out.extend(g.outputs)
        for n in g.all_nodes():
            out.extend(v for v in n.inputs if v is not None)
    return out


class _Sweeper:
    """Erases dead nodes with a worklist; counts what it removed."""

    def __init__(self, dead_functions: set):
        self.dead_functions = dead_functions
        self.stats: Counter = Counter()
        self.work: list[Node] = []

    def _alive(self, node: Node) -> bool:
        return node.graph is not None and _graph_alive(node.graph, self.dead_functions)

    def sweep_graph(self, g: Graph, since: Optional[int] = None) -> None:
        """Erase every dead node of ``g`` (and, through the worklist, of its enclosing graphs).
        ``since``: the clock when ``g`` last had no dead node; only nodes stamped after it can
        be dead now (a node whose output loses a use or a graph-output role is stamped)."""
        if not _graph_alive(g, self.dead_functions):
            return
        # Reverse order: a node's users come after it, so most chains die in this one walk.
        nodes = list(g.nodes) if since is None else list(g.nodes.where(since))
        for node in reversed(nodes):
            if node.graph is g and _is_dead(node):
                self._erase(node)
                self._drain()

    def _drain(self) -> None:
        while self.work:
            node = self.work.pop()
            if self._alive(node) and _is_dead(node):
                self._erase(node)

    def _erase(self, node: Node) -> None:
        reads = [v for v in node.inputs if v is not None]
        if node.subgraphs():
            reads.extend(_values_read_by_bodies(node))
        self.stats["nodes_removed"] += _count_nodes(node)
        node.graph.erase(node)
        for v in reads:
            p = v.producer
            if p is not None and p.graph is not None and not v.has_uses():
                self.work.append(p)


def _called_functions(g: Graph, functions: dict) -> list[Function]:
    out = []
    for n in g.all_nodes():
        f = functions.get((n.domain, n.op_type, n.overload))
        if f is not None:
            out.append(f)
    return out


def _remove_unused_initializers(g: Graph, stats: Counter) -> None:
    for v in g.initializers:
        if not v.has_uses() and not v.is_graph_input():
            g.remove_initializer(v)
            stats["initializers_removed"] += 1


@register
class DeadCodeElimination(Pass):
    """Remove nodes whose outputs nothing uses, unused initializers and unused functions.

    Works in every graph: subgraphs and function bodies included. Graph inputs and outputs are
    never removed. Value types live on values, so value_info of removed values goes with them.
    """

    name = "dce"
    summary = "remove dead nodes, unused initializers and unused model-local functions"

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        dead_functions: set = set()
        sweeper = _Sweeper(dead_functions)
        memo = ctx.incremental
        main = [model.graph, *model.graph.subgraphs()]
        for g in main:
            sweeper.sweep_graph(g, g.meta.get(_CLEAN) if memo else None)

        # Functions reachable from the main graph, each body cleaned before its calls are read,
        # so a call that was itself dead keeps nothing alive.
        reached: dict[int, Function] = {}
        pending: list[Function] = _called_functions(model.graph, model.functions) \
            if model.functions else []
        while pending:
            f = pending.pop()
            if id(f) in reached:
                continue
            reached[id(f)] = f
            for g in (f.graph, *f.graph.subgraphs()):
                sweeper.sweep_graph(g, g.meta.get(_CLEAN) if memo else None)
            pending.extend(_called_functions(f.graph, model.functions))
        stats = sweeper.stats
        for key, f in list(model.functions.items()):
            if id(f) not in reached:
                # No mutation API for functions: the model's function table is the interface.
                del model.functions[key]
                dead_functions.add(id(f))
                stats["functions_removed"] += 1

        clean = clock()
        for g in model.graphs():
            _remove_unused_initializers(g, stats)
            # No dead node is left anywhere: the next run looks only at what changes after now
            # (removing an initializer stamps no node that could die).
            g.meta[_CLEAN] = clean

        modified = bool(stats)
        # Removing dead code changes no surviving value's type or shape.
        return PassResult(modified=modified, stats=stats,
                          preserved=frozenset({"shapes"}) if modified else ALL)


def eliminate_dead_code(model: Model, ctx: PassContext | None = None) -> PassResult:
    """Run :class:`DeadCodeElimination` on ``model`` (a convenience for other passes and tests)."""
    return DeadCodeElimination().run(model, ctx or PassContext(model))


__all__ = ["DeadCodeElimination", "eliminate_dead_code"]
