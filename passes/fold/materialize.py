"""Materialization: which computed values become constants (the size policy) and replacing
them in the graph.

A part of :class:`.fold._Folder` (a mixin: the state lives there)."""

from __future__ import annotations

from collections import Counter

from ...ir import Builder, Node, Tensor, Value
from .common import _GENERATORS, _INT_DTYPES


class Materialization:
    """Turning computed values into constants (see the module)."""

    def allowed(self, v: Value, t: Tensor) -> bool:
        if t.size > self.max_elements:
            return False
        if t.size <= self.small or t.size <= self.max_growth * self.source_of(v):
            return True
        return t.size <= self.replace_elements and self.work(v) >= self.replace_nodes

    def work(self, v: Value) -> int:
        """How many folded nodes that do work on data ``v`` is computed from (see the size
        policy), counted over its folded ancestors, each once."""
        seen: set[Node] = set()
        stack = [v.producer] if v.producer in self.folded_set else []
        count = 0
        while stack and count < self.replace_nodes:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            count += self.does_work(n)
            stack.extend(i.producer for i in n.inputs
                         if i is not None and i.producer in self.folded_set)
        return count

    def does_work(self, n: Node) -> bool:
        if n.op_type in _GENERATORS or n.domain != "":
            return False
        sizes = [self.known[o].size for o in n.outputs if o in self.known]
        return bool(sizes) and max(sizes) > self.small

    def needed(self, v: Value) -> bool:
        """True when something that stays reads ``v`` (a kept or unfolded node, a graph output)."""
        if v.is_graph_output():
            return True
        return any(n not in self.folded_set or n in self.kept for n, _ in v.uses())

    def materialize(self) -> None:
        """Decide (consumers first), then create constants in order, then erase dead nodes."""
        plan: list[tuple[Node, list[Value]]] = []
        for node in reversed(self.folded):
            needed = [v for v in node.outputs if self.needed(v)]
            is_const = node.op_type == "Constant" and node.domain == ""
            if needed and is_const and node.graph.is_function_body:
                self.kept.add(node)  # already a constant where no initializer can live
                continue
            if needed and not is_const and not all(self.allowed(v, self.known[v])
                                                  for v in needed):
                self.kept.add(node)
                self.stats[f"folded.{node.op_type}"] -= 1
                self.stats["left.size_policy"] += 1
                self.policy_refused += 1
                continue
            if any(g is not node.graph for v in needed for g in v.output_of()):
                self.kept.add(node)
                self.stats[f"folded.{node.op_type}"] -= 1
                self.stats["left.foreign_output"] += 1
                continue
            if is_const and needed:
                self.stats["constant_to_initializer"] += 1
            plan.append((node, needed))
        plan.reverse()
        for node, needed in plan:
            for v in needed:
                self.replace(node, v)
        partial = [v for v in self.partial if v.producer is not None and self.needed(v)
                   and self.allowed(v, self.known[v])
                   and all(g is v.producer.graph for g in v.output_of())]
        for v in partial:
            self.replace(v.producer, v)
        for node, _ in reversed(plan):
            if not any(v.has_uses() for v in node.outputs):
                node.graph.erase(node)
                self.modified = True
        for v in reversed(self.partial):
            node = v.producer
            if node is not None and node.graph is not None and not node.subgraphs() \
                    and not any(o.has_uses() for o in node.outputs):
                node.graph.erase(node)
                self.modified = True
        self.stats += Counter()  # drop zero and negative counters

    def replace(self, node: Node, v: Value) -> None:
        """Give ``v``'s readers (and graph-output slots) a constant holding its value."""
        t = self.known[v]
        g = node.graph
        if node.op_type == "Identity" and not v.is_graph_output():
            src = node.inputs[0]
            if src is not None and (self.const_of(src) is not None):
                v.replace_all_uses_with(src)
                self.modified = True
                return
        name, v.name = v.name, None
        # An equal small initializer is read instead of a copy (the name then goes), except
        # where the value is a graph output: that keeps its name and its own initializer.
        new = Builder(g, before=node).const(t, name=name, shared=not v.is_graph_output())
        if t.dtype in _INT_DTYPES and t.size <= self.small and len(t.dims) <= 1:
            new.meta["symval"] = tuple(int(x) for x in t.numpy().reshape(-1))
        v.replace_all_uses_with(new)
        for i, o in enumerate(g.outputs):
            if o is v:
                g.set_output(i, new)
        self.modified = True
