"""The matcher: one pattern against one root node, with backtracking, and the :class:`Match` a
rule's check and rewrite read.

Matching walks the pattern from the root up its inputs. A partial match is a pair: the bindings
(pattern name -> value, None for an absent optional input) and the tuple of matched nodes (root
first). The search is depth first over a list of (pattern, value) pairs still to match, an
:class:`Op`'s inputs put before what follows it; it backtracks (an :class:`Or` alternative or
the commuted order of a ``commutative`` op is tried when what follows fails) and stops at the
first complete match that meets the ``private`` constraints. Plain values (a :class:`Var` or an
:class:`Opt` of one) have one way to match and bind in a loop; when they are all of a root's
inputs (``Op.flat``), that loop is the whole match. Every failure is reported to a
:class:`Miss` with the depth it reached, so the tracer can explain the near-miss (without a
Miss, failures are not worded).

Before matching at all, the driver tests each pattern's ``plan`` (what its direct inputs must be:
produced by some op, or constant) against the root's input signature, computed once per root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Hashable, Optional, Sequence, Union

import numpy as np

from ...ir import Graph, Node, Value
from ...ir.core import clock
from ..blame import UnboundName
from .constants import attr_of, const_tensor, const_value, has_ref_attrs
from .facts import Shapes
from .patterns import Op, Opt, Pattern, Var, describe
from .trace import Miss, label, label_node

if TYPE_CHECKING:
    from .rule import Rule

_UNBOUND = object()

# A partial match: (bindings, matched nodes).
_State = tuple[dict, tuple]


class Match:
    """A complete match: bindings by name, the matched nodes (root first) and helpers."""

    def __init__(self, rule: "Rule", root: Node, bindings: dict, nodes: tuple[Node, ...],
                 opset: int, shapes: Shapes):
        self.rule = rule
        self.root = root
        self.graph: Graph = root.graph
        self.nodes = nodes
        self.opset = opset
        self.shapes = shapes
        self._b = bindings
        self._consts: Optional[dict[str, Optional[np.ndarray]]] = None  # const(), by name
        self._once: Optional[dict] = None  # once(): key -> (clock, result)
        self.extra: list[tuple[Value, Value]] = []  # also_replace() requests of the rewrite

    def once(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` for this match, not computed again while the IR does not change: what
        a check works out (a plan) and the rewrite, run next on the same graph, needs again.
        ``key`` names what ``compute`` computes."""
        now = clock()
        if self._once is None:
            self._once = {}
        hit = self._once.get(key)
        if hit is not None and hit[0] == now:
            return hit[1]
        out = compute()
        self._once[key] = (now, out)
        return out

    @property
    def memo(self) -> dict:
        """A dict shared by every match of one run, for rules that compute something per value
        (the siblings reading it...) and would otherwise redo it at every root: store
        ``(onnxopt.ir.core.clock(), result)`` and use an entry only while the clock still
        reads the same (the IR has not changed since)."""
        return self.shapes.memo

    def also_replace(self, old: Value, new: Value) -> None:
        """From ``rewrite``: replace ``old`` (an output of a node outside the match, e.g. a
        sibling the rule merges) by ``new`` as well. The driver does it after the root, with the
        same type and name handling, and erases what became dead."""
        self.extra.append((old, new))

    def __getitem__(self, name: str) -> Optional[Value]:
        try:
            return self._b[name]
        except KeyError:  # a typo in a rule: say what the pattern does bind
            raise UnboundName(name, self._b) from None

    def __contains__(self, name: str) -> bool:
        return self._b.get(name) is not None

    def get(self, name: str) -> Optional[Value]:
        """The bound value, None when unbound or absent."""
        return self._b.get(name)

    def node(self, name: str) -> Node:
        """The node an :class:`Op` pattern named ``name`` matched."""
        return self[name].producer

    def const(self, name: str) -> Optional[np.ndarray]:
        """The data of a bound constant (None when the binding is absent or not constant)."""
        consts = self._consts
        if consts is None:
            consts = self._consts = {}
        elif name in consts:
            return consts[name]
        c = consts[name] = const_value(self._b.get(name))
        return c

    def attr(self, node: Union[Node, str], name: str) -> Any:
        """A matched node's attribute with the schema default."""
        n = self.node(node) if isinstance(node, str) else node
        return attr_of(n, name, self.opset)

    def shape(self, v: Union[Value, str, None]):
        """Shape of a value or binding (see :class:`Shapes`)."""
        return self.shapes.shape(self._b.get(v) if isinstance(v, str) else v)

    def rank(self, v: Union[Value, str, None]) -> Optional[int]:
        """Rank of a value or binding, None when unknown."""
        return self.shapes.rank(self._b.get(v) if isinstance(v, str) else v)

    def dtype(self, v: Union[Value, str, None]) -> Optional[int]:
        """Element type of a value or binding (constants answer from their data)."""
        return self.shapes.dtype(self._b.get(v) if isinstance(v, str) else v)


def match(rule: "Rule", pattern: Op, root: Node, opset: int, shapes: Shapes,
          miss: Optional[Miss] = None) -> Optional[Match]:
    """Match one pattern at ``root``; None when it does not match (the reason goes to ``miss``;
    without one, no reason is even worded)."""
    if root.op_type not in pattern.op_types or root.domain != pattern.domain:
        if miss is not None:
            miss.fail(0, f"root is {root.op_type}, not {'|'.join(pattern.op_types)}")
        return None
    m = _Matcher(root.graph, opset, shapes, miss, pattern)
    start = {pattern.name: root.outputs[pattern.output]}
    for order in m.orders(pattern, root, 0):
        if pattern.flat:  # the fast path: the root is the whole match, nothing to search
            b = m.bind_values(pattern.inputs, order, start, 1)
            if b is not None:
                return Match(rule, root, b, (root,), opset, shapes)
            continue
        found = m.search(_todo(pattern, order, None), start, (root,))
        if found is not None:
            return Match(rule, root, found[0], found[1], opset, shapes)
    return None


def _todo(p: Op, vals: Sequence, rest: Optional[tuple]) -> Optional[tuple]:
    """``p``'s inputs paired with ``vals``, in order, before the pairs still to match in
    ``rest``: the linked list (pattern, value, rest) :meth:`_Matcher.search` works through."""
    pats = p.inputs
    for i in range(len(pats) - 1, -1, -1):
        rest = (pats[i], vals[i], rest)
    return rest


class _Matcher:
    """Matching state for one root: the graph, the opset for attribute defaults, the shape
    facts, where misses go (None: nowhere, and the reasons are not worded) and the root
    pattern (whose ``private`` constraints a complete match must meet)."""

    __slots__ = ("graph", "opset", "shapes", "miss", "pattern")

    def __init__(self, graph: Graph, opset: int, shapes: Shapes, miss: Optional[Miss],
                 pattern: Op):
        self.graph = graph
        self.opset = opset
        self.shapes = shapes
        self.miss = miss
        self.pattern = pattern

    def search(self, todo: Optional[tuple], b: dict, nodes: tuple) -> Optional[_State]:
        """The first complete match (depth first, in pattern order) that extends ``(b, nodes)``
        by matching every (pattern, value) pair of ``todo`` and meets the root pattern's
        ``private`` constraints; None when there is none. Value patterns have at most one way
        to match and are bound in a loop; backtracking happens at Op, Opt and Or elements."""
        if todo is not None and todo[0].is_value:
            b = dict(b)
            while todo is not None and todo[0].is_value:
                if not self.bind(todo[0], todo[1], b, len(nodes)):
                    return None
                todo = todo[2]
        if todo is None:
            reason = _private_violation(self.pattern, b, nodes)
            if reason is None:
                return b, nodes
            if self.miss is not None:
                self.miss.fail(len(nodes), reason)
            return None
        p, v, rest = todo
        if isinstance(p, Op):
            return self.op(p, v, rest, b, nodes)
        if isinstance(p, Opt):
            if v is None:
                return self.search(rest, {**b, p.name: None} if p.name else b, nodes)
            return self.search((p.inner, v, rest), b, nodes)
        if v is None:
            if self.miss is not None:
                self.miss.fail(len(nodes), f"{describe(p)} is missing")
            return None
        for alt in p.alternatives:  # an Or
            found = self.search((alt, v, rest), b, nodes)
            if found is not None:
                return found
        return None

    def op(self, p: Op, v: Optional[Value], rest: Optional[tuple], b: dict,
           nodes: tuple) -> Optional[_State]:
        """:meth:`search` where the next pair is an :class:`Op` pattern and its value."""
        reason = self.op_reason(p, v, b)
        if reason is not None:
            if self.miss is not None:
                self.miss.fail(len(nodes), reason())
            return None
        node = v.producer
        if node in nodes:  # already matched: only as the same binding
            return self.search(rest, b, nodes) if b.get(p.name, _UNBOUND) is v else None
        b = {**b, p.name: v}
        depth = len(nodes)
        nodes = nodes + (node,)
        for order in self.orders(p, node, depth):
            found = self.search(_todo(p, order, rest), b, nodes)
            if found is not None:
                return found
        return None

    def op_reason(self, p: Op, v: Optional[Value], b: dict) -> Optional[Callable[[], str]]:
        """Why ``v`` cannot be the output of a node ``p`` matches, as a function that words
        it (only the tracer asks), or None."""
        if v is None:
            return lambda: f"{describe(p)} is missing"
        node = v.producer
        if node is None or node.op_type not in p.op_types or node.domain != p.domain:
            got = node.op_type if node is not None else "a graph input or constant"
            return lambda: f"{label(v)} comes from {got}, not {'|'.join(p.op_types)}"
        if node.graph is not self.graph:
            return lambda: f"{node!r} is in an enclosing graph"
        if v.index != p.output:
            return lambda: f"{label(v)} is output {v.index} of {node!r}, not {p.output}"
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND and bound is not v:
            return lambda: f"{p.name!r} is bound to two different values"
        return None

    def var_reason(self, p: Var, v: Value, b: dict) -> Optional[str]:
        """Why ``v`` cannot be bound to ``p`` (None: it can, or already is)."""
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND:
            return None if bound is v else f"{p.name!r} is bound to two different values"
        if p.plain:
            return None
        reason = self.value_constraints(v, p.dtypes, p.rank)
        if reason is None and p.const and const_tensor(v) is None:
            reason = "is not a constant"
        return None if reason is None else f"{label(v)} ({p.name}) {reason}"

    def value_constraints(self, v: Value, dtypes, rank) -> Optional[str]:
        if dtypes is not None:
            dt = self.shapes.dtype(v)
            if dt not in dtypes:
                return f"has element type {dt}, not one of {sorted(dtypes)}"
        if rank is not None:
            r = self.shapes.rank(v)
            if r != rank:
                return f"has rank {r if r is not None else 'unknown'}, not {rank}"
        return None

    def orders(self, p: Op, node: Node, depth: int) -> tuple:
        """The input tuples to match against ``p.inputs`` (trailing omitted inputs trimmed,
        padded with None to the pattern's length; both orders of the first two when
        commutative), or none when the node's own constraints fail."""
        if p.constrained or node.attributes:
            reason = self.node_constraints(p, node)
            if reason is not None:
                if self.miss is not None:
                    self.miss.fail(depth, f"{label_node(node)}: {reason}")
                return ()
        inputs = node.inputs
        n, want = len(inputs), len(p.inputs)
        while n and inputs[n - 1] is None:
            n -= 1
        if n > want:
            if self.miss is not None:
                self.miss.fail(depth, f"{label_node(node)} has {n} inputs, the pattern {want}")
            return ()
        if n != want or n != len(inputs):
            inputs = inputs[:n] + (None,) * (want - n)
        if p.commutative and want >= 2 and inputs[0] is not inputs[1]:
            return inputs, (inputs[1], inputs[0]) + inputs[2:]
        return (inputs,)

    def bind_values(self, pats: Sequence[Pattern], vals: Sequence, b: dict,
                    depth: int) -> Optional[dict]:
        """Bind value patterns (:class:`Var`, :class:`Opt` of one) in one pass: there is nothing
        to backtrack over. The extended bindings, or None after reporting the miss."""
        b = dict(b)
        for q, v in zip(pats, vals):
            if not self.bind(q, v, b, depth):
                return None
        return b

    def bind(self, q: Pattern, v: Optional[Value], b: dict, depth: int) -> bool:
        """Bind one value pattern into ``b`` (the caller's own copy); False after reporting
        the miss."""
        if isinstance(q, Opt):
            if v is None:
                if q.name:
                    b[q.name] = None
                return True
            q = q.inner
        if v is None:
            if self.miss is not None:
                self.miss.fail(depth, f"{describe(q)} is missing")
            return False
        reason = self.var_reason(q, v, b)
        if reason is not None:
            if self.miss is not None:
                self.miss.fail(depth, reason)
            return False
        b[q.name] = v
        return True

    def node_constraints(self, p: Op, node: Node) -> Optional[str]:
        if has_ref_attrs(node):
            return "an attribute refers to a function attribute (value unknown here)"
        for key, want in p.attrs.items():
            got = attr_of(node, key, self.opset)
            ok = want(got) if callable(want) else _same(got, want)
            if not ok:
                return f"attribute {key}={got!r} does not qualify"
        if p.dtypes is not None or p.rank is not None:
            reason = self.value_constraints(node.outputs[p.output], p.dtypes, p.rank)
            if reason is not None:
                return f"output {reason}"
        return None


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple)):
        return got is not None and tuple(got) == tuple(want)
    if isinstance(want, float) and isinstance(got, (int, float)):
        return float(got) == want
    return got == want


def _private_violation(pattern: Op, b: dict, nodes: tuple) -> Optional[str]:
    """Why a complete match breaks a ``private`` constraint: an intermediate node (not the
    root) whose output is a graph output or is read outside the match."""
    owner = None if pattern.all_private else _owners(pattern, b)
    for n in nodes[1:]:
        if owner is not None:
            p = owner.get(id(n))
            if p is not None and not p.private:
                continue
        for out in n.outputs:
            if out.is_graph_output():
                return f"{label(out)} (of {label_node(n)}) is a graph output"
            for user, _ in out.uses():
                if user not in nodes:  # identity: nodes define no __eq__
                    return f"{label(out)} (of {label_node(n)}) has another user, " \
                           f"{label_node(user)}"
    return None


def _owners(pattern: Op, b: dict) -> dict[int, Op]:
    """Matched node id -> the (outermost) Op pattern that matched it."""
    owner: dict[int, Op] = {}
    for p in pattern.ops:
        v = b.get(p.name)
        if v is not None and v.producer is not None:
            owner.setdefault(id(v.producer), p)
    return owner


# -- the quick filter ------------------------------------------------------------------------------


def signature(ins: Sequence[Optional[Value]]) -> tuple:
    """Per input of a root: None when absent, else (producer's (domain, op type) or None, is
    it possibly a constant) — what :func:`sig_ok` tests plans against, computed once; a tuple,
    so that the driver can remember what each signature rules out."""
    return tuple(None if v is None else _input_sig(v) for v in ins)


def sig_key(node: Node) -> tuple:
    """The node's (domain, op type) and its :func:`signature` as one flat tuple (producers'
    op types and domains as strings, constant-ness as a bool, None for an absent input):
    it determines the signature, and hashing it is cheaper (no nested tuples)."""
    key: list = [node.domain, node.op_type]
    for v in node.inputs:
        if v is None:
            key.append(None)
        elif v.producer is None:
            key.append(v.const_value is not None and not v._is_input)
        else:
            p = v.producer
            key += (p.op_type, p.domain)
    return tuple(key)


def _input_sig(v: Value) -> tuple:
    p = v.producer
    if p is None:
        return (None, v.const_value is not None and not v._is_input)
    return ((p.domain, p.op_type), p.domain == "" and p.op_type == "Constant")


def _plan_holds(plan: tuple, sig: tuple) -> bool:
    n = len(sig)
    for i, need in plan:
        s = sig[i] if i < n else None
        if s is None:
            return False
        if need == "const":
            if not s[1]:
                return False
        elif s[0] not in need:
            return False
    return True


def sig_ok(p: Op, sig: tuple) -> bool:
    """False when ``p`` cannot match a root whose inputs have ``sig`` (a direct input's producer
    op type, or not a constant): a cheap test before matching. Constant-ness is tested as
    :func:`const_value` would, without decoding anything."""
    plan = p.plan
    if not plan or _plan_holds(plan, sig):
        return True
    if p.commutative and len(sig) >= 2:
        return _plan_holds(plan, (sig[1], sig[0]) + sig[2:])
    return False


__all__ = ["Match", "match", "signature", "sig_key", "sig_ok"]
