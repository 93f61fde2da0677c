"""Turn a stage assignment into stage models, through the IR's mutation API.

The model is consumed: each stage's nodes are detached from the main graph, in order, and
appended to the stage's graph. What a stage reads from outside itself is redirected to a value
of its own: a graph input (a model input, or a tensor an earlier stage outputs), an initializer
sharing the original Tensor (so external data stays external and only what the stage reads is
written with it), or a copy of a Constant node. Uses inside If/Loop/Scan bodies are redirected
too, so a body that captures a value of an earlier stage reads the stage input. Stage inputs and
outputs get the inferred (symbolic) types; names are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Function, Graph, Model, Node, Value
from .graphview import GraphView, is_free, top_node

INPUT = "input"  # the source of a stage input that the pipeline's caller feeds


@dataclass
class StageIO:
    """One stage's interface: each input's source (INPUT or a stage index) and its outputs."""

    inputs: list[tuple[str, object]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    boundary: list[Value] = field(default_factory=list)  # outputs later stages read
    initializers: list[str] = field(default_factory=list)


def _type(v: Value):
    return v.meta.get("shapes_type") or v.type


def _needs(view: GraphView, nodes: list[Node]) -> list[Value]:
    """Values ``nodes`` read that none of them produces, in first-read order."""
    inside = {o for n in nodes for o in n.outputs}
    out: dict[Value, None] = {}
    for n in nodes:
        for v in view.reads[n]:
            if v not in inside:
                out[v] = None
    return list(out)


def split(model: Model, view: GraphView, stage_of: dict[Node, int], n_stages: int,
          finals: list[Value]) -> tuple[list[Model], list[StageIO]]:
    """Stage models (in order) and their interfaces; ``finals`` are what the pipeline returns."""
    main = model.graph
    main.outputs = []  # the stages' graphs return them now
    members: list[list[Node]] = [[] for _ in range(n_stages)]
    for n in view.order:
        if n in stage_of:
            members[stage_of[n]].append(n)
    made_in = {o: s for n, s in stage_of.items() for o in n.outputs}
    needs = [_needs(view, nodes) for nodes in members]
    orphans = [v for v in finals if v not in made_in]  # returned, but computed by no stage
    needs[-1].extend(v for v in orphans if v not in needs[-1])
    read_later: dict[Value, int] = {}
    for k, vs in enumerate(needs):
        for v in vs:
            if v in made_in:
                read_later[v] = max(read_later.get(v, -1), k)
    models, ios = [], []
    for k, nodes in enumerate(members):
        io = StageIO()
        g = Graph(name=f"{main.name or 'graph'}_stage{k}")
        local = _bring_in(g, view, main, needs[k], made_in, stage_of, k, io, set(nodes))
        for n in nodes:
            main.detach(n)
            g.append(n)
        outs = [local.get(v, v) for v in finals if made_in.get(v) == k or (
            k == n_stages - 1 and v in orphans)]
        io.boundary = [o for n in nodes for o in n.outputs if read_later.get(o, -1) > k]
        outs += [v for v in io.boundary if v not in outs]
        for v in outs:
            if v.producer is not None and _type(v) is not None:
                v.type = _type(v)
        g.outputs = outs
        io.outputs = [v.name for v in outs]
        models.append(_stage_model(model, g))
        ios.append(io)
    return models, ios


def _bring_in(g: Graph, view: GraphView, main: Graph, needs: list[Value], made_in: dict,
              stage_of: dict, k: int, io: StageIO, members: set) -> dict[Value, Value]:
    """Give stage ``k`` its own value for everything it reads from outside; redirect its uses."""
    local: dict[Value, Value] = {}
    consts: list[Node] = []
    for v in needs:
        new = Value(v.name, _type(v))
        if v.is_initializer():
            if v.is_graph_input():  # IR < 4 lists every initializer as an input too
                g.add_input(new)
            g.add_initializer(new, v.const_value)
            io.initializers.append(v.name)
        elif v.producer is not None and is_free(v.producer):
            p = v.producer
            consts.append(Node(p.domain, p.op_type, [], list(p.attributes.values()),
                               outputs=[new], name=p.name))
        else:
            if new.type is None:
                from ..errors import UsageError

                raise UsageError(f"cannot infer the type of {v.name!r}, which crosses into "
                                 f"stage {k}; give input shapes (--input-shape)")
            g.add_input(new)
            io.inputs.append((v.name, made_in.get(v, INPUT)))
        for user, i in v.uses():
            if top_node(user, main) in members:
                user.set_input(i, new)
        local[v] = new
    for c in consts:
        g.append(c)
    return local


def _stage_model(model: Model, g: Graph) -> Model:
    """A model around ``g`` with the opset imports and local functions it uses."""
    used_funcs: dict[tuple, Function] = {}
    domains = {""}
    stack = [g]
    while stack:
        graph = stack.pop()
        for n in graph.all_nodes():
            domains.add(n.domain)
            f = model.functions.get((n.domain, n.op_type, n.overload))
            if f is not None and f.key not in used_funcs:
                used_funcs[f.key] = f
                stack.append(f.graph)
    domains |= {d for f in used_funcs.values() for d in f.opset_imports}
    opsets = {d: v for d, v in model.opset_imports.items() if d in domains}
    m = Model(g, model.ir_version, opsets)
    for key in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(m, key, getattr(model, key))
    m.metadata_props = dict(model.metadata_props)
    m.functions = {key: f for key, f in model.functions.items() if key in used_funcs}
    m.base_dir = model.base_dir
    return m


def output_source(ios: list[StageIO], name: str) -> int | None:
    """Index of the stage that outputs ``name`` (the first one)."""
    for k, io in enumerate(ios):
        if name in io.outputs:
            return k
    return None
