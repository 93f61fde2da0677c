"""``example:drop-mul-one``: ``x * 1`` and ``x / 1`` become ``x``.

A pass written by hand: a :class:`~onnxopt.passes.GraphPass` sees one graph at a time (the base
class hands it every subgraph and function body too) and changes it only through the IR's
mutation API. It refuses whenever the constant could change the result: a constant that is not all
ones, or one that would broadcast ``x`` to a bigger shape (``x: [3]`` times ``ones([2, 3])`` is
``[2, 3]``), or one whose broadcast cannot be proved because ``x``'s shape is unknown. The
constant itself is left for ``dce`` to remove once nothing reads it.
"""

from __future__ import annotations

import numpy as np
from onnxopt.ir import Graph, Value
from onnxopt.passes import GraphPass, PassContext, PassResult, const_value


def is_neutral_one(c: np.ndarray, x: Value) -> bool:
    """True when ``x * c == x`` exactly, in values, type and shape."""
    if not np.all(c == 1):
        return False
    if c.ndim == 0:
        return True
    shape = x.shape
    if shape is None or c.ndim > len(shape):
        return False
    return all(d == 1 or (isinstance(s, int) and s == d)
               for d, s in zip(reversed(c.shape), reversed(list(shape))))


class DropMulOne(GraphPass):
    """Removes multiplications and divisions by a constant one."""

    name = "example:drop-mul-one"
    summary = "x * 1 and x / 1 -> x (when the 1 cannot broadcast x)"

    def run_on_graph(self, graph: Graph, ctx: PassContext) -> PassResult:
        result = PassResult()
        for node in list(graph.nodes):
            if node.domain not in ("", "ai.onnx") or node.op_type not in ("Mul", "Div"):
                continue
            # Mul commutes, so either input may be the one; Div only divides by it.
            sides = ((0, 1), (1, 0)) if node.op_type == "Mul" else ((0, 1),)
            for keep, other in sides:
                x, c = node.inputs[keep], const_value(node.inputs[other])
                if x is not None and c is not None and is_neutral_one(c, x):
                    node.outputs[0].replace_all_uses_with(x, outputs=True)
                    graph.erase(node)
                    result.modified = True
                    result.stats[f"{node.op_type} by one removed"] += 1
                    break
        return result
