"""``example:fuse``: a pass made of rewrite rules, written with the pattern API.

A rule is a pattern rooted at the op whose output gets replaced, a check that returns a reason
when it refuses (``onnxopt -v`` prints it), and a rewrite that builds the replacement with a
Builder and never edits the matched nodes. :class:`~onnxopt.passes.RewritePass` runs the rules
with a worklist to a fixed point and tags new nodes with ``example:fuse.<rule>``, so a wrong
rewrite is named by onnxopt's bisection.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from onnxopt.ir import Builder, Value
from onnxopt.passes import Match, Op, RewritePass, Rule, Var


class GapFlatten(Rule):
    """Flatten(GlobalAveragePool(x), axis=1) -> ReduceMean(x, axes=[2, ..., rank-1], keepdims=0)."""

    name = "gap_flatten"
    summary = "GlobalAveragePool + Flatten(axis=1) -> one ReduceMean"
    # The root is Flatten; GlobalAveragePool's output must have no other reader (the default for
    # every non-root op), since the rewrite removes it.
    pattern = Op("Flatten", Op("GlobalAveragePool", Var("x")), attrs={"axis": 1})

    def check(self, m: Match) -> Optional[str]:
        rank = m.rank("x")
        if rank is None:
            return "the rank of the pooled tensor is unknown"
        if rank < 3:
            return f"the pooled tensor has rank {rank}, not 3 or more"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        axes = list(range(2, m.rank("x")))
        if m.opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
            return b.op("ReduceMean", [m["x"], b.const(np.array(axes, dtype=np.int64))],
                        {"keepdims": 0})
        return b.op("ReduceMean", [m["x"]], {"axes": axes, "keepdims": 0})


class ExampleFuse(RewritePass):
    """The package's rewrite rules as one pass (options: only=RULE, max_rewrites=N)."""

    name = "example:fuse"
    summary = "the example package's rewrite rules"
    rules = (GapFlatten(),)  # `onnxopt --list-passes` lists them under the pass
