"""The near-miss tracer: why a rule did not fire at a node (``onnxopt -v``), and which fired.

While matching one root the matcher records only the deepest failure (:class:`Miss`): the
alternative that got furthest is the one a rule author wants explained. A check's refusal ranks
above every structural miss (see :data:`CHECK_RANK`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ...ir import Node, Value
from ..base import PassContext

# A check refusal is recorded at depth CHECK_RANK + (nodes matched), so it outranks any
# structural miss of the same root (no pattern is that deep). Only the report depends on it:
# whether a rule fires never does.
CHECK_RANK = 100

# ``-v`` reports a structural miss only when the pattern matched this many nodes before it
# failed: shallower misses are "not this pattern at all" and would bury the near-misses.
NEAR_MISS_DEPTH = 3


class Miss:
    """The deepest failure seen while matching one root (the near-miss to explain)."""

    __slots__ = ("depth", "reason")

    def __init__(self):
        self.depth = -1
        self.reason = ""

    def fail(self, depth: int, reason: str) -> None:
        if depth > self.depth:
            self.depth, self.reason = depth, reason

    def event(self, rule: str, node: Node) -> "TraceEvent":
        """The miss as the tracer reports it (a check refusal, or the deepest structural miss)."""
        if self.depth >= CHECK_RANK:
            return TraceEvent(rule, node, "check", self.reason, self.depth - CHECK_RANK)
        return TraceEvent(rule, node, "match", self.reason, max(self.depth, 0))


def label(v: Value) -> str:
    return repr(v.name) if v.name else "an anonymous value"


def label_node(n: Node) -> str:
    return f"{n.op_type} {n.name!r}" if n.name else n.op_type


@dataclass
class TraceEvent:
    """A rule refusing (or applying) at a node: ``stage`` is "match", "check" or "applied"."""

    rule: str
    node: Node
    stage: str
    reason: str = ""
    depth: int = 0

    def __str__(self) -> str:
        where = label_node(self.node)
        if self.stage == "applied":
            return f"rule {self.rule} applied at {where}"
        return f"rule {self.rule} refused at {where}: {self.reason}"


Tracer = Callable[[TraceEvent], None]


class VerboseTracer:
    """The tracer for ``-v``: check refusals and near-misses (a pattern matched at least three
    nodes deep), each (rule, node) once, and only for nodes no rule rewrote in the end; ``-vv``
    adds every structural miss and every rewrite. Call :meth:`flush` when the pass is done."""

    def __init__(self, ctx: PassContext, level: int):
        self.ctx = ctx
        self.level = level
        self.events: dict[tuple, TraceEvent] = {}

    def __call__(self, ev: TraceEvent) -> None:
        if ev.stage == "applied":
            if self.level >= 2:
                self.events[(ev.rule, id(ev.node), len(self.events))] = ev
            return
        near = ev.stage == "check" or (ev.stage == "match" and ev.depth >= NEAR_MISS_DEPTH) \
            or ev.reason.endswith("(commutative=True)")  # a hint that is the fix: always shown
        if self.level >= 2 or near:
            self.events.setdefault((ev.rule, id(ev.node)), ev)

    def flush(self) -> None:
        """Write the collected events as notes (refusals at nodes still in the graph)."""
        for ev in self.events.values():
            if ev.stage == "applied" or ev.node.graph is not None:
                self.ctx.note(str(ev))
        self.events.clear()


def verbose_tracer(ctx: PassContext, level: int) -> Optional[VerboseTracer]:
    """The tracer for ``-v``/``-vv`` (None when not verbose); see :class:`VerboseTracer`."""
    return VerboseTracer(ctx, level) if level > 0 else None


__all__ = ["TraceEvent", "Tracer", "VerboseTracer", "verbose_tracer", "Miss", "CHECK_RANK",
           "label", "label_node"]
