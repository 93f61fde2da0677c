"""What a cut needs to know about the main graph: which values each node reads (captures of its
If/Loop/Scan bodies included), which nodes are live, which depend on a model input.

A node whose body reads an outer value depends on it exactly as if it were an input: the value
must be computed in the node's stage or an earlier one, and becomes a stage input when it comes
from an earlier stage. Constant nodes (no inputs, no body) are *free*: every stage that reads one
gets its own copy, so they never cross a boundary and never bind a stage.
"""

from __future__ import annotations

from ..ir import Graph, Node, Value


def is_free(node: Node) -> bool:
    """A Constant node: copied into each stage that reads it instead of crossing a boundary."""
    return (node.domain == "" and node.op_type == "Constant" and not node.inputs
            and not node.subgraphs())


def top_node(node: Node, main: Graph) -> Node:
    """The outermost node holding ``node``: in ``main``, or in a stage graph made already."""
    while node.graph is not main and node.graph is not None and node.graph.parent_node:
        node = node.graph.parent_node
    return node


def captured(node: Node, main: Graph) -> list[Value]:
    """Main-graph values read inside the bodies of ``node``, in first-read order."""
    out: dict[Value, None] = {}
    for body in node.subgraphs():
        for inner in body.all_nodes():
            for v in inner.inputs:
                if v is not None and v.owning_graph() is main:
                    out[v] = None
    return list(out)


class GraphView:
    """Read-only facts about the main graph of a model, computed once."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.order: list[Node] = list(graph.nodes)
        self.pos = {n: i for i, n in enumerate(self.order)}
        self.reads: dict[Node, list[Value]] = {}
        for n in self.order:
            direct = [v for v in n.inputs if v is not None]
            self.reads[n] = list(dict.fromkeys(direct + captured(n, graph)))
        self.model_inputs = [v for v in graph.inputs if not v.is_initializer()]
        self.readers: dict[Value, list[Node]] = {}
        for n in self.order:
            for v in self.reads[n]:
                self.readers.setdefault(v, []).append(n)
        self.live = self._live()
        self.input_dependent = self._input_dependent()

    def _live(self) -> set:
        """Nodes some graph output depends on (the rest is dead code, left out of every stage)."""
        live: set = set()
        stack = [v.producer for v in self.graph.outputs if v.producer is not None]
        while stack:
            n = stack.pop()
            if n in live:
                continue
            live.add(n)
            stack.extend(v.producer for v in self.reads[n]
                         if v.producer is not None and v.producer not in live)
        return live

    def _input_dependent(self) -> set:
        inputs = set(self.model_inputs)
        dep: set = set()
        for n in self.order:
            if any(v in inputs or v.producer in dep for v in self.reads[n]):
                dep.add(n)
        return dep

    def stage_nodes(self) -> list[Node]:
        """Live nodes that belong to a stage (free Constant nodes are copied, not placed)."""
        return [n for n in self.order if n in self.live and not is_free(n)]

    def value_named(self, name: str) -> tuple[Value | None, Node | None]:
        """(the main-graph value called ``name``, None) or (None, the control-flow node whose
        body defines it) or (None, None) when no graph of the model has that name."""
        g = self.graph
        for v in list(g.inputs) + list(g.initializers):
            if v.name == name:
                return v, None
        for n in self.order:
            for v in n.outputs:
                if v.name == name:
                    return v, None
        for n in self.order:
            for body in n.subgraphs():
                if _defines(body, name):
                    return None, n
        return None, None


def _defines(g: Graph, name: str) -> bool:
    if any(v.name == name for v in list(g.inputs) + list(g.initializers)):
        return True
    return any(v.name == name for n in g.all_nodes() for v in n.outputs)
