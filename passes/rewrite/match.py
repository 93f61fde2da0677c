"""The matcher: one pattern against one root node, with backtracking, and the :class:`Match` a
rule's check and rewrite read.

Matching walks the pattern from the root up its inputs. A partial match is a pair: the bindings
(pattern name -> value, None for an absent optional input) and the tuple of matched nodes (root
first). Generators give backtracking (an :class:`Or` alternative or the commuted order of a
``commutative`` op is tried when what follows fails); inputs that are plain values
(``Op.flat``: every input a :class:`Var` or an :class:`Opt` of one) bind in one loop instead,
which is the whole match for most roots. Every failure is reported to a :class:`Miss` with the
depth it reached, so the tracer can explain the near-miss.

Before matching at all, the driver tests each pattern's ``plan`` (what its direct inputs must be:
produced by some op, or constant) against the root's input signature, computed once per root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import numpy as np

from ...ir import Graph, Node, Value
from ..blame import UnboundName
from .constants import attr_of, const_value, has_ref_attrs
from .facts import Shapes
from .patterns import Op, Opt, Or, Pattern, Var, describe
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
        self._consts: dict[str, Optional[np.ndarray]] = {}
        self.extra: list[tuple[Value, Value]] = []  # also_replace() requests of the rewrite

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
        if name not in self._consts:
            self._consts[name] = const_value(self._b.get(name))
        return self._consts[name]

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
    m = _Matcher(root.graph, opset, shapes, miss)
    if root.op_type not in pattern.op_types or root.domain != pattern.domain:
        if miss is not None:
            miss.fail(0, f"root is {root.op_type}, not {'|'.join(pattern.op_types)}")
        return None
    start = {pattern.name: root.outputs[pattern.output]}
    if pattern.flat:  # the fast path: the root is the whole match, no generator needed
        for order in m.orders(pattern, root, 0):
            b = m.bind_values(pattern.inputs, order, start, 1)
            if b is not None:
                return Match(rule, root, b, (root,), opset, shapes)
        return None
    for b, nodes in m.node(pattern, root, start, ()):
        reason = _private_violation(pattern, b, nodes)
        if reason is not None:
            if miss is not None:
                miss.fail(len(nodes), reason)
            continue
        return Match(rule, root, b, nodes, opset, shapes)
    return None


class _Matcher:
    """Matching state for one root: the graph, the opset for attribute defaults, the shape
    facts, and where misses go (None: nowhere, and the reasons are not worded)."""

    __slots__ = ("graph", "opset", "shapes", "miss")

    def __init__(self, graph: Graph, opset: int, shapes: Shapes, miss: Optional[Miss]):
        self.graph = graph
        self.opset = opset
        self.shapes = shapes
        self.miss = miss

    def value(self, p: Pattern, v: Optional[Value], b: dict, nodes: tuple) -> Iterator[_State]:
        """Every way ``v`` matches ``p`` given the partial match ``(b, nodes)``."""
        depth = len(nodes)
        if isinstance(p, Opt):
            if v is None:
                yield ({**b, p.name: None} if p.name else b), nodes
                return
            yield from self.value(p.inner, v, b, nodes)
            return
        if v is None:
            if self.miss is not None:
                self.miss.fail(depth, f"{describe(p)} is missing")
            return
        if isinstance(p, Or):
            for alt in p.alternatives:
                yield from self.value(alt, v, b, nodes)
            return
        if isinstance(p, Var):
            reason = self.var_reason(p, v, b)
            if reason is not None:
                if self.miss is not None:
                    self.miss.fail(depth, reason)
            else:
                yield (b if p.name in b else {**b, p.name: v}), nodes
            return
        yield from self.op(p, v, b, nodes)

    def var_reason(self, p: Var, v: Value, b: dict) -> Optional[str]:
        """Why ``v`` cannot be bound to ``p`` (None: it can, or already is)."""
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND:
            return None if bound is v else f"{p.name!r} is bound to two different values"
        if p.plain:
            return None
        reason = self.value_constraints(v, p.dtypes, p.rank)
        if reason is None and p.const and const_value(v) is None:
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

    def op(self, p: Op, v: Optional[Value], b: dict, nodes: tuple) -> Iterator[_State]:
        depth = len(nodes)
        if v is None:
            if self.miss is not None:
                self.miss.fail(depth, f"{describe(p)} is missing")
            return
        node = v.producer
        if node is None or node.op_type not in p.op_types or node.domain != p.domain:
            if self.miss is not None:
                got = f"{node.op_type}" if node is not None else "a graph input or constant"
                self.miss.fail(depth, f"{label(v)} comes from {got}, not "
                                      f"{'|'.join(p.op_types)}")
            return
        if node.graph is not self.graph:
            if self.miss is not None:
                self.miss.fail(depth, f"{node!r} is in an enclosing graph")
            return
        if v.index != p.output:
            if self.miss is not None:
                self.miss.fail(depth, f"{label(v)} is output {v.index} of {node!r}, "
                                      f"not {p.output}")
            return
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND and bound is not v:
            if self.miss is not None:
                self.miss.fail(depth, f"{p.name!r} is bound to two different values")
            return
        if node in nodes:
            if bound is v:
                yield b, nodes
            return
        yield from self.node(p, node, {**b, p.name: v}, nodes)

    def node(self, p: Op, node: Node, b: dict, nodes: tuple) -> Iterator[_State]:
        """Match ``node`` (already of the right type) against ``p``: constraints, then inputs."""
        depth = len(nodes)
        nodes = nodes + (node,)
        for order in self.orders(p, node, depth):
            if p.flat:
                b2 = self.bind_values(p.inputs, order, b, depth + 1)
                if b2 is not None:
                    yield b2, nodes
            else:
                yield from self.inputs(p, order, 0, b, nodes)

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

    def inputs(self, p: Op, vals: tuple, i: int, b: dict, nodes: tuple) -> Iterator[_State]:
        """Every way ``vals[i:]`` match ``p.inputs[i:]``. Value patterns (``p.values``) have
        at most one way: they are bound in a loop, backtracking happens only at the others."""
        pats, values, n = p.inputs, p.values, len(p.inputs)
        if i < n and values[i]:
            b = dict(b)
            while i < n and values[i]:
                if not self.bind(pats[i], vals[i], b, len(nodes)):
                    return
                i += 1
        if i == n:
            yield b, nodes
            return
        q = pats[i]
        ways = self.op(q, vals[i], b, nodes) if type(q) is Op else \
            self.value(q, vals[i], b, nodes)
        for b2, nodes2 in ways:
            yield from self.inputs(p, vals, i + 1, b2, nodes2)

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
        if type(q) is Opt:
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


__all__ = ["Match", "match", "signature", "sig_ok"]
