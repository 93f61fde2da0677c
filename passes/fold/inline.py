"""An ``If`` whose condition is constant is replaced by the nodes of the branch it takes.

A part of :class:`.fold._Folder` (a mixin: the state lives there)."""

from __future__ import annotations

from collections import Counter

from ...ir import Builder, Graph, Node, Tensor, Value
from .common import _Env


class IfInlining:
    """Inlining the branch a constant ``If`` takes (see the module)."""

    def inline_if(self, node: Node, cond: Tensor, env: _Env) -> None:
        arr = cond.numpy()
        if arr.size != 1:
            self.leave(node, "error", f"If condition has {arr.size} elements")
            for sub in node.subgraphs():
                self.walk(sub, env)
            return
        taken = node.attr("then_branch" if bool(arr.reshape(-1)[0]) else "else_branch")
        if not isinstance(taken, Graph) or len(taken.outputs) != len(node.outputs):
            self.leave(node, "error", "If branch does not match the node's outputs")
            return
        self.walk(taken, env)
        parent = node.graph
        mapping: dict[Value, Value] = {}
        for bi in taken.initializers:
            name, bi.name = bi.name, None
            nv = Builder(parent, before=node).const(bi.const_value, name=name)
            nv.type = bi.type or nv.type
            bi.replace_all_uses_with(nv)
            mapping[bi] = nv
            self.source[nv] = bi.const_value.size
        outs = [mapping.get(v, v) for v in taken.outputs]
        taken.outputs = []
        for bi in mapping:
            taken.remove_initializer(bi)
        moved = list(taken.nodes)
        for n in moved:
            taken.detach(n)
        parent.insert_before(node, moved)
        self.unique_names([v for n in moved for v in n.outputs] + list(mapping.values()))
        for old, new in zip(node.outputs, outs):
            old.replace_all_uses_with(new, outputs=True)
        parent.erase(node)
        self.modified = True
        self.stats["inlined.If"] += 1

    def unique_names(self, values: list[Value]) -> None:
        """Rename values moved out of a branch whose names another value of the model has."""
        if self._names is None:
            self._names = Counter()
            for g in self.model.graphs():
                for v in list(g.inputs) + g.initializers:
                    self._names[v.name] += 1
                for n in g.nodes:
                    for v in n.outputs:
                        self._names[v.name] += 1
        names = self._names
        for v in values:
            if v.name and names[v.name] > 1:
                k = 1
                while f"{v.name}_{k}" in names:
                    k += 1
                names[v.name] -= 1
                v.name = f"{v.name}_{k}"
                names[v.name] += 1
