"""A builder with an insertion point: the way passes create nodes and constants.

    b = Builder(graph, before=node, tag="fuse.conv_bn")
    y = b.op("Add", [x, b.const(np.float32(1))])

Nodes are inserted in creation order at the insertion point, so a sequence of ``op`` calls keeps
topological order. A tag (the rule or pass name) is recorded on every node made, so bisection can
name the rewrite that produced a node.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from .errors import IRError
from .core import Graph, Node, Value
from .shape import Shape
from .tensor import Tensor
from .types import TensorType


class Builder:
    """Creates nodes at an insertion point in one graph."""

    def __init__(self, graph: Graph, before: Optional[Node] = None, after: Optional[Node] = None,
                 tag: Optional[str] = None):
        if before is not None and after is not None:
            raise IRError("Builder takes before= or after=, not both")
        self.graph = graph
        self.before = before
        self.after = after
        self.tag = tag
        self.created: list[Node] = []
        self.constants: list[Value] = []  # initializers made by const(), for undoing a rewrite

    def _place(self, node: Node) -> None:
        if self.after is not None:
            self.graph.insert_after(self.after, node)
            self.after = node
        else:
            self.graph.insert_before(self.before, node)
        if self.tag:
            node.meta["tag"] = self.tag
        self.created.append(node)

    def node(self, op_type: str, inputs: Sequence[Optional[Value]] = (),
             attrs: Optional[dict[str, Any]] = None, domain: str = "", num_outputs: int = 1,
             name: str = "") -> Node:
        """Create and insert a node; returns the Node."""
        n = Node(domain, op_type, inputs, attrs or {}, num_outputs=num_outputs, name=name)
        self._place(n)
        return n

    def op(self, op_type: str, inputs: Sequence[Optional[Value]] = (),
           attrs: Optional[dict[str, Any]] = None, domain: str = "", num_outputs: int = 1,
           name: str = "") -> Union[Value, tuple[Value, ...]]:
        """Create and insert a node; returns its output (or outputs when more than one)."""
        n = self.node(op_type, inputs, attrs, domain, num_outputs, name)
        return n.outputs[0] if num_outputs == 1 else n.outputs

    def const(self, data: Union[np.ndarray, Tensor, int, float, Sequence], name: Optional[str] = None,
              dtype: Optional[Any] = None, shared: Optional[bool] = None) -> Value:
        """A constant value: an initializer, or a Constant node inside a function body.

        ``shared`` (by default, when no ``name`` is asked for): a small constant equal to one
        of the graph's initializers is that initializer (``Graph.equal_initializer``), and
        ``name`` only names a new one. Constants are never edited in place, so readers can
        share one; ``constants`` lists only the initializers this builder added."""
        if isinstance(data, Tensor):
            t = data
        else:
            arr = np.asarray(data, dtype=dtype)
            t = Tensor.from_numpy(arr)
        if self.graph.is_function_body:
            t.name = name or ""
            n = self.node("Constant", [], {"value": t})
            v = n.outputs[0]
            v.type = TensorType(t.dtype, Shape(t.dims))
            v.name = name
            return v
        if (name is None if shared is None else shared):
            found = self.graph.equal_initializer(t)
            if found is not None:
                return found
        t.name = name or ""
        v = Value(name, TensorType(t.dtype, Shape(t.dims)))
        self.graph.add_initializer(v, t)
        self.constants.append(v)
        return v


__all__ = ["Builder"]
