"""The driver: applies rules to every graph of a model with a worklist indexed by root op.

Why the heuristics below are safe: they only decide which nodes get *examined* and when to stop.
Every rewrite that is applied was matched and checked against the graph as it is at that moment,
so examining fewer nodes, or stopping early, can only leave a rewrite undone; it can never make a
wrong one. A lost rewrite is a missed optimization that the next run of the pass (a fixed-point
group, or the user re-running) may still find.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Optional, Sequence

from ...ir import Builder, Graph, Model, Node, TensorType, Value
from ...ir.core import changed_since, clock
from ..base import ALL, PassContext, PassResult, Rewrite, iter_graphs
from ..blame import mark_rule
from ..opsets import graph_imports
from .authoring import check_created, commute_hint
from .facts import Shapes, best_type, inherit_fact
from .match import Match, match, sig_key, sig_ok, signature
from .patterns import Op
from .rule import NotApplicable, Rule
from .trace import CHECK_RANK, Miss, TraceEvent, Tracer

# After a rewrite, the users of each value it touched are re-queued, but only for values with at
# most this many users: a value read by many nodes (a shared constant, the attention mask) would
# make every rewrite touching it cost as much as the graph. Those users are examined in the next
# round only if they lie near a change (see ``changed_since``): at worst a rewrite is lost.
MAX_REQUEUE = 16

# How far beyond the deepest pattern a change is looked for when a sweep seeds only nodes near
# changes: checks may look a little past their pattern (a producer's producer, a sibling reading
# the same input). A check that looks further may miss a rewrite enabled by a distant change;
# it never sees a stale graph (it reads the graph as it is).
DEPTH_MARGIN = 2

# A rule set that never settles (rules undoing each other) is a bug: stop after this many rewrites
# per node of the graph, or this many rounds of the worklist, and report it.
REWRITES_PER_NODE, MIN_REWRITES = 8, 64
MAX_ROUNDS = 8


class Rewriter:
    """Applies rules to a model: a worklist per graph, indexed by root op.

    ``memo_key``: with a key (and the context option ``rewrite.memo``, on by default), each graph
    remembers the mutation clock of the last sweep that found nothing, and the next run with the
    same key looks only near what changed since."""

    def __init__(self, rules: Sequence[Rule], *, prefix: str = "",
                 max_rewrites: Optional[int] = None, tracer: Optional[Tracer] = None,
                 memo_key: Optional[tuple] = None):
        self.rules = list(rules)
        self.prefix = prefix
        self.max_rewrites = max_rewrites
        self.tracer = tracer
        self.count = 0
        self.capped: list[str] = []
        self.max_rounds = MAX_ROUNDS
        self.memo_key = memo_key
        self._clean: Optional[int] = None  # start of the last round of run_on_graph, if clean
        self._imports: Optional[tuple] = None  # (model, the graph's opsets): new nodes must fit

    def run(self, model: Model, ctx: Optional[PassContext] = None,
            shapes: Optional[Shapes] = None) -> PassResult:
        """Rewrite every graph of ``model`` (subgraphs first, then function bodies, then main)."""
        ctx = ctx or PassContext(model)
        memo = ctx.incremental and self.memo_key is not None \
            and shapes is None and self.tracer is None and self.max_rewrites is None
        shapes = shapes or Shapes(ctx)
        if memo:
            # The memo holds for facts of one generation, read before the sweep: bring the
            # analysis up to date now (cheap when cached); without it, sweep everything.
            if ctx.has_analysis("shapes"):
                shapes.load()
            else:
                memo = False
        result = PassResult()
        for g in iter_graphs(model):
            opset = _graph_opset(model, g)
            self._imports = (model, graph_imports(model, g))
            key = ("rewrite", self.memo_key)
            generation = (model.meta.get("shapes.generation"), opset)
            last = g.meta.get(key) if memo else None
            since = last[0] if last is not None and last[1] == generation else None
            result.merge(self.run_on_graph(g, opset, shapes, since))
            if memo and self._clean is not None:
                g.meta[key] = (self._clean, generation)
            else:
                g.meta.pop(key, None)
        for msg in self.capped:
            ctx.note(msg)
        if result.modified:
            # A rewrite replaces values by equal ones (same type and shape, checked) and never
            # edits a matched node: every surviving value keeps its shape.
            result.preserved = frozenset({"shapes"})
        else:
            result.preserved = ALL
        return result

    def _index(self, opset: int) -> dict:
        """(domain, op type) -> [(rule, its patterns rooted at that op, their reach)], by
        decreasing benefit. The reach is how far downstream of a change such a root can still
        see it: the deepest of the patterns plus ``DEPTH_MARGIN``."""
        index: dict[tuple[str, str], list[tuple[Rule, list[Op], int]]] = {}
        for rule in sorted(self.rules, key=lambda r: -r.benefit):  # stable: keeps list order
            if opset < rule.opset:
                continue
            by_op: dict[tuple[str, str], list[Op]] = {}
            for p in rule.patterns():
                for t in p.op_types:
                    by_op.setdefault((p.domain, t), []).append(p)
            for key, pats in by_op.items():
                reach = max(p.depth for p in pats) + DEPTH_MARGIN
                index.setdefault(key, []).append((rule, pats, reach))
        return index

    def run_on_graph(self, graph: Graph, opset: int, shapes: Shapes,
                     since: Optional[int] = None) -> PassResult:
        """Run the worklist on one graph to a fixed point (or the rewrite budget).

        A rewrite re-queues its neighbourhood (new nodes, users of the new values, producers
        and users of the inputs). A pattern whose root lies further downstream than that can
        only be enabled by a later rewrite, so after the worklist drains, another round seeds
        it with every node near a change of the round before (the nodes stamped since it began,
        and what lies within the rules' pattern depth downstream of them: nothing else can
        match now when it did not then); rounds stop when one rewrites nothing. ``since``: the
        clock of an earlier sweep of these rules that found nothing, so that the first round
        too seeds only what is near a change made after it."""
        result = PassResult()
        self._clean = None
        index = self._index(opset)
        if not index:
            return result
        depth = max(reach for entries in index.values() for _, _, reach in entries)
        cap = REWRITES_PER_NODE * len(graph.nodes) + MIN_REWRITES
        # The tracer wants the reason of every miss: no quick filter then.
        plans = _Plans(index, quick=self.tracer is None)
        for _ in range(self.max_rounds):
            start = clock()
            work = _Worklist(graph, plans)
            if since is None:
                work.seed(graph.nodes)
            else:  # in graph order, passing over (not visiting) the nodes far from a change
                work.distance = changed_since(graph, since, depth)
                work.seed(graph.nodes.where(clock(), work.distance))
            before = len(result.rewrites)
            if not self._drain(work, opset, shapes, result, cap):
                return result
            if len(result.rewrites) == before or self._exhausted():
                if len(result.rewrites) == before:
                    self._clean = start
                return result
            since = start
        self.capped.append(f"rewrite: graph {graph.name!r} still changing after "
                           f"{self.max_rounds} rounds; stopped")
        return result

    def _drain(self, work: "_Worklist", opset: int, shapes: Shapes, result: PassResult,
               cap: int) -> bool:
        """Examine the worklist's nodes until it is empty; False when the graph's rewrite cap
        was reached (reported)."""
        graph, entries_of, rewrites = work.graph, work.plans.entries, result.rewrites
        while not self._exhausted():
            node = work.pop()
            if node is None:
                break
            if len(rewrites) >= cap:
                self.capped.append(f"rewrite: graph {graph.name!r} still changing after "
                                   f"{cap} rewrites (rules undo each other?); stopped")
                return False
            # A node seeded for being near a change, and not touched since, is tried only with
            # the rules whose patterns reach back to that change.
            far = work.distance.get(node, 0) if work.distance else 0
            for rule, pats, reach in entries_of(node):
                if reach < far:
                    continue
                m = self._try(rule, pats, node, opset, shapes)
                if m is not None:
                    self._apply(m, work, result)
                    break
        return True

    def _exhausted(self) -> bool:
        return self.max_rewrites is not None and self.count >= self.max_rewrites

    def _try(self, rule: Rule, pats: list[Op], node: Node, opset: int,
             shapes: Shapes) -> Optional[Match]:
        """The first of ``pats`` (patterns of ``rule``) that matches at ``node`` and passes the
        check; else None, after telling the tracer the deepest near-miss (without a tracer,
        misses are not even worded)."""
        miss = Miss() if self.tracer else None
        for pat in pats:
            m = match(rule, pat, node, opset, shapes, miss)
            if m is None:
                continue
            try:
                reason = rule.check(m)
            except Exception as e:  # the error names the rule, not only the pass
                mark_rule(e, rule.name)
                raise
            if reason is None:
                return m
            if miss is None:
                continue
            if isinstance(reason, NotApplicable):
                miss.fail(len(m.nodes) - 1, reason)
            else:
                miss.fail(len(m.nodes) + CHECK_RANK, reason)
        if self.tracer:
            ev = miss.event(self.prefix + rule.name, node)
            if ev.stage == "match":
                ev.reason += commute_hint(rule, pats, node, opset, shapes)
            self.tracer(ev)
        return None

    def _apply(self, m: Match, work: "_Worklist", result: PassResult) -> None:
        graph, root, name = m.graph, m.root, self.prefix + m.rule.name
        b = Builder(graph, before=root, tag=name)
        try:
            new = m.rule.rewrite(m, b)
            check_created(m.rule, b.created, self._imports)
            new = [new] if isinstance(new, Value) else list(new)
            if len(new) != len(root.outputs):
                raise RuntimeError(f"rule {name} returned {len(new)} values for "
                                   f"{len(root.outputs)} outputs of {root!r}")
            pairs = list(zip(root.outputs, new)) + m.extra
            for old, nv in pairs:
                _check_replacement(name, old, nv)
        except BaseException as e:
            _rollback(b)
            if isinstance(e, Exception):
                mark_rule(e, m.rule.name)
            raise
        gone = list(m.nodes) + [old.producer for old, _ in m.extra if old.producer is not None]
        replaced = tuple(_node_id(n) for n in gone)
        inputs = _external_inputs(gone)
        _replace(pairs, set(map(id, b.created)))
        _erase_dead(graph, gone)
        _erase_dead_inputs(inputs)
        self.count += 1
        result.modified = True
        result.stats[name] += 1
        result.rewrites.append(Rewrite(name, replaced))
        if self.tracer:
            self.tracer(TraceEvent(name, root, "applied"))
        for n in b.created:
            work.push(n)
        for v in itertools.chain((nv for _, nv in pairs), inputs):
            if v is None:
                continue
            work.requeue(v.producer)
            if v.num_uses() <= MAX_REQUEUE:
                for user, _ in v.uses():
                    work.requeue(user)


class _Plans:
    """The index's entries a root can use, by its (domain, op type) and input signature
    (:func:`.match.signature`): a pattern whose quick plan the signature rules out cannot match
    there, so it is dropped, and so is a rule left without patterns (trying it would find
    nothing and tell no one: without a tracer a miss goes nowhere). The few distinct signatures
    are filtered once each rather than at every root; the order of rules and patterns stays."""

    def __init__(self, index: dict, quick: bool):
        self.index = index
        self.quick = quick
        # (domain, op type) -> the largest reach of its entries: a seeded node further from
        # every change than that is not worth queueing.
        self.reach = {key: max(e[2] for e in entries) for key, entries in index.items()}
        # Ops none of whose patterns has a plan: every signature keeps all their entries.
        self.unplanned = {key for key, entries in index.items()
                          if not any(p.plan for _, pats, _ in entries for p in pats)}
        self._by_sig: dict[tuple, list] = {}

    def entries(self, node: Node) -> list:
        """(rule, patterns, reach) to try at ``node``, by decreasing benefit."""
        key = (node.domain, node.op_type)
        entries = self.index.get(key, ())
        if not entries or not self.quick or key in self.unplanned:
            return entries
        k = sig_key(node)
        got = self._by_sig.get(k)
        if got is None:
            got = self._by_sig[k] = _filtered(entries, signature(node.inputs))
        return got


def _filtered(entries: list, sig: tuple) -> list:
    out = []
    for rule, pats, reach in entries:
        kept = [p for p in pats if sig_ok(p, sig)]
        if kept:
            out.append((rule, kept, reach))
    return out


class _Worklist:
    """LIFO of nodes, each at most once. Seeded in graph order, so later nodes (the roots of the
    largest patterns) are examined first."""

    def __init__(self, graph: Graph, plans: _Plans):
        self.graph = graph
        self.plans = plans
        self.reach = plans.reach
        self.stack: list[Node] = []
        self.queued: set[Node] = set()  # nodes hash by identity
        # Seeded nodes' distances from the nearest change (``changed_since``); a node pushed
        # again by a rewrite is near that rewrite's change and loses its entry.
        self.distance: dict[Node, int] = {}

    def seed(self, nodes: Iterable[Node]) -> None:
        """Push ``nodes``: distinct nodes of this graph, in graph order, on an empty list."""
        reach, distance, stack = self.reach, self.distance, self.stack
        for n in nodes:
            r = reach.get((n.domain, n.op_type))
            if r is not None and (not distance or distance.get(n, 0) <= r):
                stack.append(n)
        self.queued.update(stack)

    def push(self, n: Optional[Node]) -> None:
        if n is None or n.graph is not self.graph or n in self.queued:
            return
        reach = self.reach.get((n.domain, n.op_type))
        if reach is None or (self.distance and self.distance.get(n, 0) > reach):
            return
        self.queued.add(n)
        self.stack.append(n)

    def requeue(self, n: Optional[Node]) -> None:
        """Push a node next to a rewrite: every rule rooted at it is tried again."""
        self.distance.pop(n, None)
        self.push(n)

    def pop(self) -> Optional[Node]:
        while self.stack:
            n = self.stack.pop()
            self.queued.discard(n)
            if n.graph is self.graph:
                return n
        return None


def _node_id(n: Node) -> str:
    """A node's name, else its op type and first output's name (text-syntax models name no
    nodes)."""
    if n.name:
        return n.name
    out = n.outputs[0].name if n.outputs else None
    return f"{n.op_type}({out})" if out else n.op_type


def _graph_opset(model: Model, g: Graph) -> int:
    if g.function is not None:
        v = g.function.opset_imports.get("")
        if v is not None:
            return v
    while g.parent_node is not None and g.parent_node.graph is not None:
        g = g.parent_node.graph
        if g.function is not None:
            v = g.function.opset_imports.get("")
            if v is not None:
                return v
    return model.opset("") or 1


def _check_replacement(rule: str, old: Value, new: Optional[Value]) -> None:
    """A rewrite keeps each output's element type and (known) static shape."""
    if new is None:
        if old.has_uses():
            raise RuntimeError(f"rule {rule} dropped {old.name!r}, which is still used")
        return
    to, tn = best_type(old), best_type(new)
    if not (isinstance(to, TensorType) and isinstance(tn, TensorType)):
        return
    if to.dtype and tn.dtype and to.dtype != tn.dtype:
        raise RuntimeError(f"rule {rule} changed the element type of {old.name!r} "
                           f"({to.dtype} -> {tn.dtype})")
    so, sn = to.shape, tn.shape
    if so is not None and sn is not None and so.is_static() and sn.is_static() and so != sn:
        raise RuntimeError(f"rule {rule} changed the shape of {old.name!r} ({so} -> {sn})")


def _replace(pairs: list, created: set[int]) -> None:
    """Redirect every use of each old value to its replacement (graph outputs included): the
    replacement takes the old type when it has none, the old fact, and the old name when it
    is a fresh anonymous value (the model keeps its value names)."""
    for old, nv in pairs:
        if nv is None:
            continue
        if nv.type is None:
            nv.type = old.type
        inherit_fact(old, nv)
        if nv.name is None and old.name and id(nv.producer) in created \
                and not old.is_graph_output():
            nv.name, old.name = old.name, None
        old.replace_all_uses_with(nv, outputs=True)


def _rollback(b: Builder) -> None:
    for n in reversed(b.created):
        if n.graph is not None and not any(o.has_uses() for o in n.outputs):
            n.graph.erase(n)
    for v in b.constants:
        if not v.has_uses() and v.graph is not None:
            v.graph.remove_initializer(v)


def _external_inputs(nodes: Sequence[Node]) -> list[Value]:
    """Values the matched nodes read that none of them produces, in order, without repeats."""
    inside = {id(n) for n in nodes}
    seen: set[int] = set()
    out: list[Value] = []
    for n in nodes:
        for v in n.inputs:
            if v is None or id(v) in seen:
                continue
            if v.producer is not None and id(v.producer) in inside:
                continue
            seen.add(id(v))
            out.append(v)
    return out


def _erase_dead(graph: Graph, nodes: Sequence[Node]) -> None:
    """Erase the matched nodes nothing reads any more (consumers before producers)."""
    pending = [n for n in nodes if n.graph is graph]
    progress = True
    while pending and progress:
        progress = False
        for n in list(pending):
            if not any(o.has_uses() for o in n.outputs):
                graph.erase(n)
                pending.remove(n)
                progress = True


def _erase_dead_inputs(values: Sequence[Value]) -> None:
    """Erase what only the erased nodes read: producers whose outputs all became unused
    (recursively: a dead chain feeding the match goes too) and unused initializers."""
    stack = list(values)
    while stack:
        v = stack.pop()
        if v.has_uses():
            continue
        p = v.producer
        if p is None:
            if v.const_value is not None and not v.is_graph_input() and v.graph is not None:
                v.graph.remove_initializer(v)
        elif p.graph is not None and not any(o.has_uses() for o in p.outputs):
            p.graph.erase(p)
            stack.extend(i for i in p.inputs if i is not None)


def apply_rules(model: Model, rules: Sequence[Rule], ctx: Optional[PassContext] = None, *,
                prefix: str = "", max_rewrites: Optional[int] = None,
                tracer: Optional[Tracer] = None, shapes: Optional[Shapes] = None) -> PassResult:
    """Apply ``rules`` to every graph of ``model`` in place; returns the PassResult.
    ``shapes=Shapes()`` answers shape constraints from declared types only (no inference)."""
    return Rewriter(rules, prefix=prefix, max_rewrites=max_rewrites,
                    tracer=tracer).run(model, ctx, shapes)


__all__ = ["Rewriter", "apply_rules", "MAX_REQUEUE", "DEPTH_MARGIN", "MAX_ROUNDS"]
