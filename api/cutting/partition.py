"""Which stage each node goes to, for cuts at named tensors and for extraction.

A boundary is a set of tensors. The nodes a boundary's tensors depend on (transitively, body
captures included) go before it; every other live node after it. So stage k holds the nodes the
boundary k+1 needs that no earlier boundary needed, and the last stage holds the rest.

A boundary *separates* when nothing computed from the model's inputs before it is read after it
except the tensors named at it or at an earlier boundary. Otherwise a path from an input to an
output avoids the cut: the error names that path (the fix is to add a tensor of it to the cut).
Model inputs are available to every stage; values computed from initializers and constants alone
may cross (they depend on no input).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from ..ir import Node, Value
from .graphview import GraphView, is_free

_PATH_SHOWN = 8  # path names shown in an error, at most


def resolve(view: GraphView, names: Sequence[str], what: str) -> list[Value]:
    """The main-graph values called ``names``; a one-line error for a name that is not a tensor
    of the main graph (missing, or defined inside a control-flow body)."""
    out = []
    for name in names:
        v, holder = view.value_named(name)
        if v is None and holder is not None:
            raise UsageError(f"{what} {name!r}: defined inside the body of {holder.op_type} node "
                             f"{holder.name or '(unnamed)'!r}; cut outside control flow (at the "
                             "node's outputs or inputs)")
        if v is None:
            raise UsageError(f"{what} {name!r}: no tensor of that name in the model")
        out.append(v)
    return out


def assign_at(view: GraphView, boundaries: list[list[Value]]) -> dict[Node, int]:
    """Stage of every stage node for cuts at ``boundaries`` (checked: see module docstring)."""
    for k, tensors in enumerate(boundaries):
        for v in tensors:
            if v.producer is None:
                role = "an initializer" if v.is_initializer() else "a model input"
                raise UsageError(f"--at {v.name!r}: is {role}; a cut goes at computed tensors")
            if is_free(v.producer):
                raise UsageError(f"--at {v.name!r}: is a Constant's output (each stage gets its "
                                 "own copy of constants)")
    stage: dict[Node, int] = {}
    for k, tensors in enumerate(boundaries):
        stack = [v.producer for v in tensors]
        while stack:
            n = stack.pop()
            if n in stage or is_free(n):
                continue
            stage[n] = k
            stack.extend(v.producer for v in view.reads[n]
                         if v.producer is not None and v.producer not in stage)
    last = len(boundaries)
    for n in view.stage_nodes():
        stage.setdefault(n, last)
    stage = {n: s for n, s in stage.items() if n in view.live}
    _check_nonempty(stage, boundaries)
    _check_separates(view, stage, boundaries)
    return stage


def _check_nonempty(stage: dict, boundaries: list[list[Value]]) -> None:
    counts = [0] * (len(boundaries) + 1)
    for s in stage.values():
        counts[s] += 1
    for k, c in enumerate(counts):
        if c == 0:
            at = ",".join(v.name for v in boundaries[min(k, len(boundaries) - 1)])
            why = ("nothing comes after it" if k == len(boundaries) else
                   "it is computed before the previous boundary (boundaries out of order?)")
            raise UsageError(f"--at {at}: stage {k} would be empty: {why}")


def _check_separates(view: GraphView, stage: dict, boundaries: list[list[Value]]) -> None:
    named = {v for tensors in boundaries for v in tensors}
    for n, s in stage.items():
        if n not in view.input_dependent:
            continue
        for v in n.outputs:
            if v in named:  # a named tensor may feed any later stage
                continue
            later = [u for u in view.readers.get(v, ()) if stage.get(u, -1) > s]
            if later:
                at = ",".join(t.name for t in boundaries[s])
                raise UsageError(f"--at {at}: does not separate the graph: "
                                 f"{path_through(view, v, later)} avoids the cut "
                                 f"(add {v.name!r} to it)")


def path_through(view: GraphView, v: Value, readers: list[Node]) -> str:
    """'input -> ... -> v -> ... -> output': a path from a model input through ``v`` and one of
    ``readers`` to a model output."""
    back = [v.name]
    inputs = set(view.model_inputs)
    cur: Value | None = v
    while cur is not None and cur not in inputs and cur.producer is not None:
        dep = [x for x in view.reads[cur.producer]
               if x in inputs or x.producer in view.input_dependent]
        cur = dep[0] if dep else None
        if cur is not None:
            back.append(cur.name)
    fwd = _forward(view, readers)
    names = list(reversed(back)) + fwd
    if len(names) > _PATH_SHOWN:
        names = names[:_PATH_SHOWN // 2] + ["..."] + names[-_PATH_SHOWN // 2:]
    return " -> ".join(str(x) for x in names)


def _forward(view: GraphView, starts: list[Node]) -> list[str]:
    """Names of values on a path from one of ``starts`` to a model output (breadth first)."""
    outputs = set(view.graph.outputs)
    prev: dict = {n: None for n in starts}
    queue = list(starts)
    while queue:
        n = queue.pop(0)
        for o in n.outputs:
            if o in outputs:
                chain = [o.name]
                while prev[n] is not None:
                    n, via = prev[n]
                    chain.append(via.name)
                return list(reversed(chain))
            for u in view.readers.get(o, ()):
                if u not in prev:
                    prev[u] = (n, o)
                    queue.append(u)
    return []


def assign_extract(view: GraphView, inputs: list[Value], outputs: list[Value]) -> set:
    """The nodes computing ``outputs`` from ``inputs`` (and initializers and constants); an error
    names a path from another model input that reaches an output without passing the inputs."""
    given = set(inputs)
    model_inputs = set(view.model_inputs)
    chosen: set = set()
    stack = [(v, v) for v in outputs]
    while stack:
        v, out = stack.pop()
        if v in given:
            continue
        if v in model_inputs:
            raise UsageError(f"--extract: output {out.name!r} depends on model input {v.name!r}, "
                             "which is not among --inputs (add it, or a tensor between them)")
        n = v.producer
        if n is None or n in chosen or is_free(n):
            continue
        chosen.add(n)
        stack.extend((x, out) for x in view.reads[n])
    return chosen
