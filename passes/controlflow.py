"""``controlflow``: simplify If and Loop with what their conditions and shapes prove.

=================  ===========================================================================
``known``          an If inside a branch of ``If(c)`` whose condition is ``c``, ``Not(c)``, or a
                   shape predicate the enclosing conditions decide (see below): the taken
                   branch replaces it
``derived``        an If whose condition is a shape predicate of another If's output that each
                   branch of that If decides (``Equal(Size(Shape(y)), 2)`` where ``y`` has
                   rank 2 in one branch and 3 in the other): the condition becomes that If's
                   condition (branches swapped when it is the negation); decided the same way
                   in both branches, the taken branch replaces it
``merge``          two Ifs on the same condition (or one on its ``Not``): one If
``equal``          an If whose two branches compute the same values: that branch, inlined
``unreachable``    an If one of whose branches cannot start, because its condition gives a node
                   that ran before the If inputs its schema refuses (see :mod:`.branchfacts`):
                   the other branch replaces it, when it (or the condition) still reads that node
``hoist``          a node both branches compute from the same outer values: computed once
                   before the If (only when neither branch returns it, so the graph shrinks)
``loop_zero``      a Loop proven to run no iteration: its carried outputs are the initial values
``loop_once``      a Loop proven to run one iteration: its body, inlined
=================  ===========================================================================

Shape predicates are ``Equal(Gather(Shape(x), i), k)`` (a dim), ``Equal(Size(Shape(x)), k)`` (the
rank) and ``Equal(Size(x), k)`` (the element count), ``k`` a constant, through any chain of
``Not``. Inside the then-branch of such a predicate on ``x`` the fact "dim i of x is k" holds, so an
inner predicate on the same dim is decided (true for ``k``, false for any other constant), and in
the else-branch an inner predicate with the same ``k`` is false. These branch facts are applied to
predicates only: the shape channel (``shape_of``/``sym_value``) records one fact per Value for the
whole model, and a value captured by a branch is the same Value outside it, so a branch-local fact
written there would leak into the rest of the graph. The per-branch output shapes that ``derived``
reads are ordinary facts of the branch outputs, true wherever they are read. Shapes that hold only
inside a branch (another If on the same condition took the same branch) are re-derived in a scope
of their own by :mod:`.branchfacts`, for ``unreachable``, and never written into ``value.meta``.

A branch output that is an Identity of a value computed in the branch is cleaned up by the
``identity`` pass; an Identity of an outer value stays, since onnx's checker and onnxruntime refuse
a subgraph that returns an outer value directly. Everything here is exact: a rewrite evaluates the
same nodes on every input (an If's untaken branch is never evaluated, before or after); after
``unreachable``, inputs that selected the dropped branch fail where they failed before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Builder, Graph, Node, Tensor, Value
from .base import ALL, GraphPass, PassContext, PassResult, Rewrite, iter_graphs
from .branchfacts import Scope, captured, feeds, node_inside
from .identity import constant_array, graph_opset
from .registry import register
from .shapes import ShapeAnalysis, shape_of, sym_value

_MAX_KEY_ELEMENTS = 4096  # constants compared by value up to this size, by identity above


# -- small readers -------------------------------------------------------------------------------
def _is(node: Node | None, op: str) -> bool:
    return node is not None and node.op == ("", op)


def _int_scalar(v: Value | None) -> int | None:
    """The value of a one-element integer constant (or a proven shape element), else None."""
    if v is None:
        return None
    a = constant_array(v)
    if a is not None:
        if a.size == 1 and a.dtype.kind in "iu":
            return int(a.reshape(-1)[0])
        return None
    s = sym_value(v)
    if s is not None and len(s) == 1 and type(s[0]) is int:
        return s[0]
    return None


def _bool_scalar(v: Value | None) -> bool | None:
    a = constant_array(v)
    if a is None or a.size != 1 or a.dtype != np.bool_:
        return None
    return bool(a.reshape(-1)[0])


def _strip_not(v: Value) -> tuple[Value, bool]:
    """``v`` without its chain of Not: the base value and whether the chain negates it."""
    neg = False
    while _is(v.producer, "Not") and v.producer.inputs[0] is not None:
        v, neg = v.producer.inputs[0], not neg
    return v, neg


def _top_level(node: Node, graph: Graph) -> Node | None:
    """The node of ``graph`` that holds ``node`` (itself, or the node whose subgraph has it)."""
    while node is not None and node.graph is not graph:
        g = node.graph
        node = g.parent_node if g is not None else None
    return node


def _branches(node: Node) -> tuple[Graph | None, Graph | None]:
    t, e = node.attr("then_branch"), node.attr("else_branch")
    if not isinstance(t, Graph) or not isinstance(e, Graph):
        return None, None
    if len(t.outputs) != len(node.outputs) or len(e.outputs) != len(node.outputs):
        return None, None
    return t, e


# -- shape predicates ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pred:
    """``measure(subject) == k``: measure is ("dim", axis), ("rank", 0) or ("size", 0)."""

    subject: Value
    kind: str
    axis: int
    k: int

    def same_measure(self, other: Pred) -> bool:
        return (self.subject is other.subject and self.kind == other.kind
                and self.axis == other.axis)

    def holds_for(self, shape: tuple | None) -> bool | None:
        """The predicate on a value of this shape (None when the shape does not decide it)."""
        if shape is None:
            return None
        if self.kind == "rank":
            return len(shape) == self.k
        if self.kind == "size":
            if any(type(d) is int and d == 0 for d in shape):
                return self.k == 0
            if all(type(d) is int for d in shape):
                return int(np.prod(shape, dtype=np.int64)) == self.k
            return None
        axis = self.axis + len(shape) if self.axis < 0 else self.axis
        if not 0 <= axis < len(shape) or type(shape[axis]) is not int:
            return None
        return shape[axis] == self.k


def _measure(v: Value) -> tuple[Value, str, int] | None:
    p = v.producer
    if _is(p, "Size") and p.inputs[0] is not None:
        src = p.inputs[0].producer
        if _is(src, "Shape") and not src.attributes and src.inputs[0] is not None:
            return src.inputs[0], "rank", 0
        return p.inputs[0], "size", 0
    if _is(p, "Gather") and p.attr("axis", 0) == 0 and p.inputs[0] is not None:
        src = p.inputs[0].producer
        idx = _int_scalar(p.inputs[1])
        if not _is(src, "Shape") or src.inputs[0] is None or idx is None:
            return None
        start, end = src.attr("start", 0), src.attr("end")
        if end is not None or start < 0 or (start > 0 and idx < 0):
            return None
        return src.inputs[0], "dim", idx + start
    return None


def predicate(v: Value) -> Pred | None:
    """``v`` as a shape predicate, or None."""
    p = v.producer
    if not _is(p, "Equal") or len(p.inputs) != 2 or None in p.inputs:
        return None
    for lhs, rhs in ((p.inputs[0], p.inputs[1]), (p.inputs[1], p.inputs[0])):
        k = _int_scalar(rhs)
        m = _measure(lhs) if k is not None else None
        if m is not None:
            return Pred(m[0], m[1], m[2], k)
    return None


def _implied(known: Pred, truth: bool, q: Pred) -> bool | None:
    """What ``known`` having the value ``truth`` says about ``q`` (None: nothing)."""
    if not known.same_measure(q):
        return None
    if truth:
        return q.k == known.k
    return False if q.k == known.k else None


def enclosing_facts(graph: Graph) -> list[tuple[Value, bool]]:
    """(condition, value) of every If branch that encloses ``graph``, innermost first."""
    facts = []
    while graph.parent_node is not None:
        node = graph.parent_node
        if node.op == ("", "If"):
            t, e = node.attr("then_branch"), node.attr("else_branch")
            if graph is t or graph is e:
                facts.append((node.inputs[0], graph is t))
        if node.graph is None:
            break
        graph = node.graph
    return facts


def decide(cond: Value, facts: list[tuple[Value, bool]]) -> bool | None:
    """The value of ``cond`` where ``facts`` hold, or None."""
    base, neg = _strip_not(cond)
    q = predicate(base)
    for c, truth in facts:
        if c is None:
            continue
        cbase, cneg = _strip_not(c)
        t = truth != cneg
        if cbase is base:
            return t != neg
        known = predicate(cbase)
        r = _implied(known, t, q) if known is not None and q is not None else None
        if r is not None:
            return r != neg
    return None


# -- moving nodes between graphs -----------------------------------------------------------------
def move_contents(src: Graph, dst: Graph, before: Node | None,
                  subst: dict[Value, Value]) -> list[Value]:
    """Move every node and constant of ``src`` into ``dst`` (before ``before``, or at the end);
    uses inside ``src`` of each key of ``subst`` read its value instead. Returns ``src``'s
    outputs as values of ``dst``; ``src`` is left empty."""
    for old, new in subst.items():
        for n, i in old.uses():
            if node_inside(n, src):
                n.set_input(i, new)
    b = Builder(dst, before=before)
    consts: dict[Value, Value] = {}
    for v in list(src.initializers):
        name, v.name = v.name, None
        nv = b.const(v.const_value, name=name)
        nv.type = v.type or nv.type
        for n, i in v.uses():
            n.set_input(i, nv)
        consts[v] = nv
    outs = [subst.get(o, consts.get(o, o)) for o in src.outputs]
    src.outputs = []
    for v in consts:
        src.remove_initializer(v)
    for n in list(src.nodes):
        src.detach(n)
        dst.insert_before(before, n)
    return outs


def replace_node(node: Node, values: list[Value]) -> None:
    """Every use of ``node``'s outputs reads ``values``; the node is erased."""
    for old, new in zip(node.outputs, values):
        old.replace_all_uses_with(new, outputs=True)
    node.graph.erase(node)


def inline_branch(node: Node, branch: Graph) -> None:
    """Replace an If by one of its branches."""
    replace_node(node, move_contents(branch, node.graph, node, {}))


def _fresh_graph(src: Graph) -> Graph:
    """A new graph with ``src``'s contents (``src`` is left empty, so dropping it is harmless)."""
    g = Graph(name=src.name)
    g.outputs = move_contents(src, g, None, {})
    return g


def new_if(anchor: Node, cond: Value, then_g: Graph, else_g: Graph, n_out: int,
           names: list[str | None]) -> Node:
    node = Node("", "If", [cond], {"then_branch": then_g, "else_branch": else_g},
                num_outputs=n_out, name=anchor.name)
    for v, name in zip(node.outputs, names):
        v.name = name
    anchor.graph.insert_before(anchor, node)
    return node


# -- structural keys (equal branches, hoisting) --------------------------------------------------
def _freeze(x: Any) -> Any:
    if isinstance(x, Tensor):
        if x.size > _MAX_KEY_ELEMENTS:
            return ("tensor", id(x))
        a = x.numpy()
        return ("tensor", str(a.dtype), a.shape, a.tobytes())
    if isinstance(x, Graph):
        raise _NoKey
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(y) for y in x)
    return x


class _NoKey(Exception):
    """A node that structural comparison does not handle (it holds a graph)."""


def _const_key(v: Value) -> tuple | None:
    if v.producer is None and v.const_value is not None and not v.is_graph_input():
        return ("const", _freeze(v.const_value))
    return None


def node_key(n: Node, leaf) -> tuple:
    """What ``n`` computes, given keys of its inputs from ``leaf``; raises _NoKey."""
    attrs = tuple(sorted((a.name, a.ref_attr_name or _freeze(a.value))
                         for a in n.attributes.values()))
    ins = tuple(None if v is None else leaf(v) for v in n.inputs)
    return (n.domain or "", n.op_type, n.overload, attrs, ins, len(n.outputs))


def _branch_keys(g: Graph) -> list | None:
    """Keys of ``g``'s outputs as expressions over outer values and constants (None: refused)."""
    memo: dict[Value, Any] = {}

    def leaf(v: Value) -> Any:
        if v in memo:
            return memo[v]
        c = _const_key(v)
        if c is not None and v.graph is g:
            key = c
        elif v.producer is not None and v.producer.graph is g:
            key = ("node", node_key(v.producer, leaf), v.index)
        elif v.owning_graph() is g:
            raise _NoKey  # a graph input of the branch (If branches have none)
        else:
            key = ("outer", id(v))
        memo[v] = key
        return key

    try:
        return [leaf(v) for v in g.outputs]
    except (_NoKey, RecursionError):
        return None


# -- the rules -----------------------------------------------------------------------------------
class _Rules:
    """The rules for one graph; each returns True when it changed something."""

    def __init__(self, graph: Graph, opset: int, opsets: dict, ifs: list[Node]):
        self.graph = graph
        self.opset = opset
        self.opsets = opsets
        self.ifs = ifs  # every If of the model (what a branch's condition may resolve)
        self.stats: Counter = Counter()
        self.rewrites: list[Rewrite] = []
        self.facts = enclosing_facts(graph)

    def done(self, rule: str, node: Node) -> bool:
        self.stats[f"controlflow.{rule}"] += 1
        self.rewrites.append(Rewrite(f"controlflow.{rule}", (node.name or node.op_type,)))
        return True

    def known(self, node: Node) -> bool:
        t, e = _branches(node)
        if t is None:
            return False
        d = decide(node.inputs[0], self.facts) if self.facts else None
        if d is None:
            d = _bool_scalar(node.inputs[0])  # fold's job, but cheap and it unblocks the rest
        if d is None:
            return False
        inline_branch(node, t if d else e)
        return self.done("known", node)

    def unreachable(self, node: Node) -> bool:
        """An If whose branch cannot start: its condition makes a node that ran before it fail
        (see :mod:`.branchfacts`); the other branch replaces it. That node stays, because the
        kept branch or the condition reads it, so inputs that failed there still fail."""
        t, e = _branches(node)
        if t is None or not self._resolves_others(node):
            return False
        for dead, live in ((t, e), (e, t)):
            facts = [(node.inputs[0], dead is t)] + self.facts
            scope = Scope(lambda c, f=facts: decide(c, f), dead, self.opsets)
            bad = scope.contradiction(captured(dead))
            if bad is not None and feeds(bad, captured(live) + [node.inputs[0]]):
                inline_branch(node, live)
                return self.done("unreachable", node)
        return False

    def _resolves_others(self, node: Node) -> bool:
        """True when the If's condition decides the condition of another If (the only way a
        branch's facts differ from the global ones)."""
        for truth in (True, False):
            facts = [(node.inputs[0], truth)] + self.facts
            for other in self.ifs:
                if other is not node and other.graph is not None and other.inputs \
                        and other.inputs[0] is not None and decide(other.inputs[0], facts) is not None:
                    return True
        return False

    def derived(self, node: Node) -> bool:
        t, e = _branches(node)
        if t is None:
            return False
        base, neg = _strip_not(node.inputs[0])
        q = predicate(base)
        src = q.subject.producer if q is not None else None
        if not _is(src, "If") or src is node or src.inputs[0] is None:
            return False
        st, se = _branches(src)
        if st is None:
            return False
        k = q.subject.index
        in_then = q.holds_for(shape_of(st.outputs[k]))
        in_else = q.holds_for(shape_of(se.outputs[k]))
        if in_then is None or in_else is None:
            return False
        if in_then == in_else:
            inline_branch(node, t if in_then != neg else e)
            return self.done("known", node)
        # base is src's condition when in_then, its negation otherwise
        swap = (not in_then) != neg
        if swap:
            nt, ne = _fresh_graph(e), _fresh_graph(t)
            fresh = new_if(node, src.inputs[0], nt, ne, len(node.outputs),
                           [v.name for v in node.outputs])
            replace_node(node, list(fresh.outputs))
        else:
            node.set_input(0, src.inputs[0])
        return self.done("derived", node)

    def equal(self, node: Node) -> bool:
        t, e = _branches(node)
        if t is None or any(n.subgraphs() for g in (t, e) for n in g.nodes):
            return False
        kt = _branch_keys(t)
        if kt is None or kt != _branch_keys(e):
            return False
        inline_branch(node, t)
        return self.done("equal", node)

    # -- hoist ---------------------------------------------------------------------------------
    def hoist(self, node: Node) -> bool:
        t, e = _branches(node)
        if t is None:
            return False
        moved = 0
        for tn in list(t.nodes):
            if tn.subgraphs() or any(o.is_graph_output() for o in tn.outputs):
                continue
            key = _outer_key(tn, t)
            if key is None:
                continue
            en = next((n for n in e.nodes if not n.subgraphs() and _outer_key(n, e) == key), None)
            if en is None or any(o.is_graph_output() for o in en.outputs):
                continue
            self._hoist_pair(node, t, tn, e, en)
            moved += 1
        if not moved:
            return False
        self.stats["controlflow.hoisted_nodes"] += moved
        return self.done("hoist", node)

    def _hoist_pair(self, node: Node, t: Graph, tn: Node, e: Graph, en: Node) -> None:
        """Move ``tn`` before the If; ``en`` (the same computation) reads its outputs."""
        b = Builder(self.graph, before=node)
        for i, v in enumerate(tn.inputs):
            if v is not None and v.graph is t and _const_key(v) is not None:
                tn.set_input(i, b.const(v.const_value, name=v.name))
        t.detach(tn)
        self.graph.insert_before(node, tn)
        for old, new in zip(en.outputs, tn.outputs):
            old.replace_all_uses_with(new)
        e.erase(en)
        for g in (t, e):
            for v in list(g.initializers):
                if not v.has_uses():
                    g.remove_initializer(v)

    # -- merge ---------------------------------------------------------------------------------
    def merge_all(self) -> bool:
        """Merge Ifs of this graph that share a condition, pairwise in order."""
        groups: dict[Value, list[tuple[Node, bool]]] = {}
        for n in self.graph.nodes:
            if n.op == ("", "If") and n.inputs and n.inputs[0] is not None and _branches(n)[0]:
                base, neg = _strip_not(n.inputs[0])
                groups.setdefault(base, []).append((n, neg))
        changed = False
        for group in groups.values():
            (a, neg_a), rest = group[0], group[1:]
            for b, neg_b in rest:
                merged = self._merge(a, b, neg_a != neg_b)
                if merged is not None:
                    a, changed = merged, True
                else:
                    a, neg_a = b, neg_b
        return changed

    def _merge(self, a: Node, b: Node, flip: bool) -> Node | None:
        anchor = _placement(self.graph, a, b)
        if anchor is None:
            return None
        ta, ea = _branches(a)
        tb, eb = _branches(b)
        if flip:
            tb, eb = eb, tb
        graphs = []
        for ga, gb in ((ta, tb), (ea, eb)):
            g = Graph(name=ga.name)
            outs = move_contents(ga, g, None, {})
            outs += move_contents(gb, g, None, dict(zip(a.outputs, outs)))
            g.outputs = outs
            graphs.append(g)
        na = len(a.outputs)
        merged = new_if(anchor, a.inputs[0], graphs[0], graphs[1], na + len(b.outputs),
                        [v.name for v in a.outputs + b.outputs])
        self.done("merge", b)
        replace_node(a, list(merged.outputs[:na]))
        replace_node(b, list(merged.outputs[na:]))
        return merged

    # -- Loop ----------------------------------------------------------------------------------
    def loop(self, node: Node) -> bool:
        body = node.attr("body")
        if not isinstance(body, Graph) or len(node.inputs) < 2:
            return False
        n_carried = len(node.inputs) - 2
        if len(body.inputs) != n_carried + 2 or len(body.outputs) != len(node.outputs) + 1:
            return False
        if any(v is None for v in node.inputs[2:]):
            return False
        m, c = node.inputs[0], node.inputs[1]
        trips = _int_scalar(m) if m is not None else None
        go = True if c is None else _bool_scalar(c)
        if trips == 0 or go is False:
            if any(v.has_uses() for v in node.outputs[n_carried:]):
                return False  # scan outputs of unknown shape that someone reads
            replace_node(node, list(node.inputs[2:]))
            return self.done("loop_zero", node)
        if trips == 1 and go is True:
            self._inline_once(node, body, n_carried)
            return self.done("loop_once", node)
        return False

    def _inline_once(self, node: Node, body: Graph, n_carried: int) -> None:
        b = Builder(self.graph, before=node)
        cond = node.inputs[1] if node.inputs[1] is not None else b.const(np.array(True))
        subst = {body.inputs[0]: b.const(np.array(0, dtype=np.int64)), body.inputs[1]: cond}
        subst.update(zip(body.inputs[2:], node.inputs[2:]))
        outs = move_contents(body, self.graph, node, subst)
        values = outs[1:1 + n_carried]
        for s in outs[1 + n_carried:]:
            if self.opset >= 13:
                values.append(b.op("Unsqueeze", [s, b.const(np.array([0], dtype=np.int64))]))
            else:
                values.append(b.op("Unsqueeze", [s], {"axes": [0]}))
        replace_node(node, values)


def _outer_key(n: Node, g: Graph) -> tuple | None:
    """The key of ``n`` when it reads only outer values and constants of ``g``."""
    def leaf(v: Value) -> Any:
        c = _const_key(v)
        if c is not None and v.graph is g:
            return c
        if v.owning_graph() is g or (v.producer is not None and node_inside(v.producer, g)):
            raise _NoKey
        return ("outer", id(v))

    try:
        return node_key(n, leaf)
    except _NoKey:
        return None


def _placement(graph: Graph, a: Node, b: Node) -> Node | None:
    """Where a merge of ``a`` and a later ``b`` can stand: at ``b`` when nothing between them
    reads ``a``, else at ``a`` when everything ``b`` reads exists before ``a``; None otherwise."""
    pos = {n: i for i, n in enumerate(graph.nodes)}
    pa, pb = pos.get(a), pos.get(b)
    if pa is None or pb is None or pa >= pb:
        return None
    between = any(pa < pos.get(_top_level(n, graph), -1) < pb
                  for v in a.outputs for n, _ in v.uses())
    if not between:
        return b
    outs = set(a.outputs)
    for g in b.subgraphs():
        for n in g.all_nodes():
            for v in n.inputs:
                if v is None or v in outs:
                    continue
                top = _top_level(v.producer, graph) if v.producer is not None else None
                if top is not None and top is not b and pos[top] > pa:
                    return None
    return a


_FLOW = (("", "If"), ("", "Loop"))


@register
class ControlFlow(GraphPass):
    """Simplify If and Loop nodes with what their conditions and shapes prove (module doc)."""

    name = "controlflow"
    summary = "resolve, merge, hoist and inline If/Loop using conditions and shape facts"

    def run(self, model, ctx: PassContext) -> PassResult:
        if not any(n.op in _FLOW for g in iter_graphs(model) for n in g.nodes):
            return PassResult()  # every rule starts at an If or a Loop
        ctx.analysis(ShapeAnalysis)  # facts for shape_of/sym_value
        # Every If of the model, once per run (what a branch's condition may resolve); Ifs that
        # a rewrite erases are skipped, new ones wait for the next run.
        self._ifs = [n for n in model.graph.all_nodes() if n.op == ("", "If")]
        return super().run(model, ctx)

    def run_on_graph(self, graph: Graph, ctx: PassContext) -> PassResult:
        rules = _Rules(graph, graph_opset(graph, ctx) or 1, dict(ctx.model.opset_imports),
                       getattr(self, "_ifs", []))
        changed = False
        for node in list(graph.nodes):
            if node.graph is not graph:
                continue  # moved or erased by an earlier rewrite
            if node.op == ("", "If") and node.inputs and node.inputs[0] is not None:
                changed |= (rules.known(node) or rules.derived(node) or rules.equal(node)
                            or rules.unreachable(node) or rules.hoist(node))
            elif node.op == ("", "Loop"):
                changed |= rules.loop(node)
        changed |= rules.merge_all()
        # Values move or are replaced by equal ones; new nodes get facts on the next request.
        return PassResult(modified=changed, stats=rules.stats, rewrites=rules.rewrites,
                          preserved=frozenset({"shapes"}) if changed else ALL)


__all__ = ["ControlFlow", "Pred", "decide", "enclosing_facts", "predicate"]
