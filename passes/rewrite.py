"""Pattern rewriting: declarative patterns, checks that say why they refuse, rewrites via Builder.

A :class:`Rule` has three parts:

- ``pattern``: what to look for, rooted at the op whose outputs get replaced. Built from
  :class:`Op` (op type(s) and domain, ``commutative`` to try both orders of the first two inputs,
  attribute and dtype constraints, ``rank`` answered by shape inference, ``private`` = "this
  intermediate value has no user outside the match", the default for every non-root op),
  :class:`Var` (any value; the same name twice means the same value), :class:`Const` (a value
  that must be a constant: an initializer that is not a graph input, or a ``Constant`` node's
  output),
  :class:`Opt` (an optional input: absent, or matching its pattern) and :class:`Or`
  (alternatives). A plain string is a ``Var``. A rule may list several patterns.
- ``check(m)``: every precondition the pattern cannot say; returns a reason string to refuse
  (shown by the tracer with ``-v``), None to accept. It must not change the IR.
- ``rewrite(m, b)``: builds the replacement with ``b`` (an :class:`onnxopt.ir.Builder` inserting
  before the root) and returns the values replacing the root's outputs. It never edits matched
  nodes.

:class:`Rewriter` (the driver) runs rules over every graph with a worklist indexed by root op:
each node is examined when it is new or when something around it changed, never by rescanning the
graph. On success it replaces the root's outputs (graph outputs included, names kept), erases the
matched nodes that became dead and whatever only they read, tags new nodes with the rule
name, records a :class:`~onnxopt.passes.Rewrite`, and pushes the neighbourhood back on the worklist.
``max_rewrites`` stops after N rewrites (bisection finds the first bad one with it). A rule whose
``opset`` (the minimum opset of the ops it creates) is newer than the graph's does not run. Later
rounds, and a later run of the same :class:`RewritePass` (a fixed-point iteration), examine only
nodes within the rules' pattern depth downstream of what changed since (the IR's mutation clock).
Shape questions read the shape analysis' facts (``value.meta``); asking changes nothing.

:class:`RewritePass` turns a list of rules into a pass with ``only`` and ``max_rewrites`` options;
built-in fusions (``fuse``) and plugins use it the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence, Union

import numpy as np

from ..errors import UsageError
from ..ir import Builder, Graph, Model, Node, TensorType, Value
from ..ir.core import changed_since, clock
from .base import ALL, Pass, PassContext, PassResult, Rewrite, iter_graphs

# -- patterns -------------------------------------------------------------------------------------


class Pattern:
    """Base of pattern elements."""


class Var(Pattern):
    """Any value, bound to ``name``. ``const``: must be a constant; ``dtypes``: allowed element
    types; ``rank``: required rank (answered by shape inference; unknown rank refuses)."""

    def __init__(self, name: str, *, const: bool = False, dtypes: Optional[Sequence[int]] = None,
                 rank: Optional[int] = None):
        self.name = name
        self.const = const
        self.dtypes = frozenset(dtypes) if dtypes is not None else None
        self.rank = rank

    def __repr__(self) -> str:
        return f"{'Const' if self.const else 'Var'}({self.name!r})"


def Const(name: str, *, dtypes: Optional[Sequence[int]] = None,
          rank: Optional[int] = None) -> Var:
    """A value that must be constant (initializer or Constant node), bound to ``name``."""
    return Var(name, const=True, dtypes=dtypes, rank=rank)


class Opt(Pattern):
    """An optional input: absent (bound to None when the inner pattern is named) or matching."""

    def __init__(self, inner: Union[Pattern, str]):
        self.inner = _pat(inner)


class Or(Pattern):
    """The first alternative that leads to a complete match (with backtracking)."""

    def __init__(self, *alternatives: Union[Pattern, str]):
        self.alternatives = tuple(_pat(a) for a in alternatives)


class Op(Pattern):
    """A value produced by a node.

    ``op_type``: a name or a tuple of names. ``inputs``: patterns for the node's inputs; the node
    may not have more (non-omitted) inputs than listed, missing ones only match :class:`Opt`.
    ``name``: binds the output value (``m[name]``) and the node (``m.node(name)``).
    ``attrs``: attribute name -> required value, or a predicate on the value (schema defaults apply
    when the attribute is absent). ``commutative``: also try the first two inputs swapped.
    ``private``: every output of the node is read only by matched nodes (default for non-roots).
    ``output``: which output of the node the value must be.
    """

    _ids = itertools.count()

    def __init__(self, op_type: Union[str, tuple[str, ...]], *inputs: Union[Pattern, str],
                 name: Optional[str] = None, domain: str = "", commutative: bool = False,
                 attrs: Optional[dict[str, Any]] = None, dtypes: Optional[Sequence[int]] = None,
                 rank: Optional[int] = None, private: bool = True, output: int = 0):
        self.op_types = (op_type,) if isinstance(op_type, str) else tuple(op_type)
        self.inputs = tuple(_pat(p) for p in inputs)
        self.name = name or f"_op{next(Op._ids)}"
        self.domain = domain
        self.commutative = commutative
        self.attrs = dict(attrs or {})
        self.dtypes = frozenset(dtypes) if dtypes is not None else None
        self.rank = rank
        self.private = private
        self.output = output

    def __repr__(self) -> str:
        return f"Op({'|'.join(self.op_types)} {self.name})"


def _pat(p: Union[Pattern, str]) -> Pattern:
    if isinstance(p, str):
        return Var(p)
    if not isinstance(p, Pattern):
        raise UsageError(f"not a pattern element: {p!r}")
    return p


# -- constants and attributes ---------------------------------------------------------------------

_CONST_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


def const_value(v: Optional[Value]) -> Optional[np.ndarray]:
    """The data of a constant value (initializer that is not a graph input, or a Constant node's
    output), else None."""
    if v is None:
        return None
    if v.producer is None:
        if v.const_value is not None and not v.is_graph_input():
            return v.const_value.numpy()
        return None
    node = v.producer
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or has_ref_attrs(node):
        return None
    for key in _CONST_ATTRS:
        a = node.attributes.get(key)
        if a is None:
            continue
        val = a.value
        if key == "value":
            return val.numpy() if hasattr(val, "numpy") else None
        if key == "value_float":
            return np.array(val, dtype=np.float32)
        if key == "value_floats":
            return np.array(val, dtype=np.float32)
        return np.array(val, dtype=np.int64)
    return None


@lru_cache(maxsize=None)
def schema_default(op_type: str, attr: str, opset: int, domain: str = "") -> Any:
    """The default value of an attribute in the op's schema at ``opset`` (None when none)."""
    import onnx
    from onnx import defs

    try:
        schema = defs.get_schema(op_type, opset, domain)
    except defs.SchemaError:  # unknown op or domain: no defaults known
        return None
    a = schema.attributes.get(attr)
    if a is None or not a.default_value.name:
        return None
    val = onnx.helper.get_attribute_value(a.default_value)
    if isinstance(val, bytes):
        val = val.decode("utf-8")
    if isinstance(val, list):
        val = tuple(val)
    return val


def has_ref_attrs(node: Node) -> bool:
    """True when an attribute of ``node`` refers to an attribute of its function (``@name``):
    its value is not known inside the body, so no rule may read it."""
    return any(a.ref_attr_name for a in node.attributes.values())


def attr_of(node: Node, name: str, opset: int) -> Any:
    """An attribute's value, falling back to the schema default at ``opset``."""
    a = node.attributes.get(name)
    if a is not None:
        return a.value
    return schema_default(node.op_type, name, opset, node.domain or "")


# -- shapes ----------------------------------------------------------------------------------------


# Where the shape analysis records its facts (``onnxopt.passes.shapes``; see ShapeAnalysis).
_FACT, _HINT = "shapes_type", "shapes_hint_dims"


def _best_type(v: Value):
    """The analysis' type of ``v`` when it recorded one, else the declared type."""
    t = v.meta.get(_FACT, _UNBOUND)
    return v.type if t is _UNBOUND else t


class Shapes:
    """Shape facts for patterns and checks, from symbolic shape inference when it is available
    (``onnxopt.passes.shapes``), else from the declared types. Every answer is a proof: an
    unknown shape or dim never satisfies a constraint.

    Inference runs on the first question (a rule set that never asks costs nothing); its facts
    are kept beside the IR and read through this object, so asking never changes the IR.

    ``materialize=True`` is for callers that read ``value.type``/``value.shape`` directly: the
    facts are then also written into the value types when the analysis runs, for the duration
    of the pass: :meth:`undo` puts the declared types back, and the pass manager calls it when
    the pass ends (the facts stay in ``value.meta``; only the ``shapes`` pass writes types)."""

    def __init__(self, ctx: Optional[PassContext] = None, infer: bool = True,
                 materialize: bool = True):
        self._ctx = ctx if infer else None
        self._ready = self._ctx is None
        self._materialize = materialize
        self._shape_of: Optional[Callable] = None
        self._dims_equal: Optional[Callable] = None
        self._sym_value: Optional[Callable] = None
        self._changes: Optional[list] = None  # what materializing changed (for undo)
        self.memo: dict = {}  # scratch for rules, one run long (see Match.memo)
        if materialize and self._ctx is not None:
            self._load()  # such callers read value types right away

    def _load(self) -> None:
        self._ready = True
        ctx = self._ctx
        try:
            from .shapes import ShapeAnalysis, dims_equal, shape_of, sym_value
            from .shapes.infer import materialize
        except ImportError:
            return
        ctx.analysis(ShapeAnalysis)
        if self._materialize:
            self._changes = materialize(ctx.model)
            if self._changes:
                ctx.at_pass_end(self.undo)
        self._shape_of, self._dims_equal, self._sym_value = shape_of, dims_equal, sym_value

    def undo(self) -> bool:
        """Put back the types materializing overwrote; True when there was something to undo.
        (The facts and the context's cached analysis stay: they are still true.)"""
        if not self._changes:
            return False
        from .shapes.infer import unmaterialize

        unmaterialize(self._changes)
        self._changes = None
        return True

    def shape(self, v: Optional[Value]):
        """The Shape of ``v`` (dims int/SymDim/None), None when the rank is unknown."""
        if v is None:
            return None
        if not self._ready:
            self._load()
        if self._shape_of is not None:
            return self._shape_of(v)
        return v.shape

    def dtype(self, v: Optional[Value]) -> Optional[int]:
        """The element type of ``v`` (inferred, declared, or from constant data)."""
        if v is None:
            return None
        if self._shape_of is not None:
            t = _best_type(v)
            dt = t.dtype if isinstance(t, TensorType) else None
            if dt:
                return dt
        if v.dtype:
            return v.dtype
        c = const_value(v)
        if c is not None:
            from ..ir import from_np_dtype

            return from_np_dtype(c.dtype)
        if not self._ready:
            self._load()
            if self._shape_of is not None:
                t = _best_type(v)
                return (t.dtype or None) if isinstance(t, TensorType) else None
            return v.dtype
        return None

    def rank(self, v: Optional[Value]) -> Optional[int]:
        """The rank of ``v``, None when unknown."""
        s = self.shape(v)
        return None if s is None else len(s)

    def dims_equal(self, a, b) -> bool:
        """True only when two dims are provably equal."""
        if a is None or b is None:
            return False
        if not self._ready:
            self._load()
        if self._dims_equal is not None:
            return bool(self._dims_equal(a, b))
        return type(a) is type(b) and a == b

    def sym_value(self, v: Optional[Value]) -> Optional[list]:
        """The elements of a small int shape tensor (ints/SymDims), when shape inference knows
        them; constants answer even without it."""
        if v is None:
            return None
        c = const_value(v)
        if c is not None and c.dtype.kind in "iu" and c.ndim <= 1:
            return [int(x) for x in c.reshape(-1)]
        if not self._ready:
            self._load()
        if self._sym_value is not None:
            return self._sym_value(v)
        return v.meta.get("symval")


# -- matching --------------------------------------------------------------------------------------


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
        return self._b[name]

    def __contains__(self, name: str) -> bool:
        return self._b.get(name) is not None

    def get(self, name: str) -> Optional[Value]:
        """The bound value, None when unbound or absent."""
        return self._b.get(name)

    def node(self, name: str) -> Node:
        """The node an :class:`Op` pattern named ``name`` matched."""
        return self._b[name].producer

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


class _Miss:
    """The deepest failure seen while matching one root (the near-miss to explain)."""

    __slots__ = ("depth", "reason")

    def __init__(self):
        self.depth = -1
        self.reason = ""

    def fail(self, depth: int, reason: str) -> None:
        if depth > self.depth:
            self.depth, self.reason = depth, reason


class _Matcher:
    def __init__(self, graph: Graph, opset: int, shapes: Shapes):
        self.graph = graph
        self.opset = opset
        self.shapes = shapes
        self.miss = _Miss()

    # bindings: dict name -> Value (or None); "@nodes" -> tuple of matched nodes
    def value(self, p: Pattern, v: Optional[Value], b: dict) -> Iterator[dict]:
        depth = len(b["@nodes"])
        if isinstance(p, Opt):
            if v is None:
                name = getattr(p.inner, "name", None)
                yield {**b, name: None} if name else b
                return
            yield from self.value(p.inner, v, b)
            return
        if v is None:
            self.miss.fail(depth, f"{_describe(p)} is missing")
            return
        if isinstance(p, Or):
            for alt in p.alternatives:
                yield from self.value(alt, v, b)
            return
        if isinstance(p, Var):
            yield from self.var(p, v, b, depth)
            return
        yield from self.op(p, v, b, depth)

    def var(self, p: Var, v: Value, b: dict, depth: int) -> Iterator[dict]:
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND:
            if bound is v:
                yield b
            else:
                self.miss.fail(depth, f"{p.name!r} is bound to two different values")
            return
        reason = self.value_constraints(v, p.dtypes, p.rank)
        if reason is None and p.const and const_value(v) is None:
            reason = "is not a constant"
        if reason is not None:
            self.miss.fail(depth, f"{_label(v)} ({p.name}) {reason}")
            return
        yield {**b, p.name: v}

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

    def op(self, p: Op, v: Value, b: dict, depth: int) -> Iterator[dict]:
        node = v.producer
        if node is None or node.op_type not in p.op_types or _dom(node) != p.domain:
            got = f"{node.op_type}" if node is not None else "a graph input or constant"
            self.miss.fail(depth, f"{_label(v)} comes from {got}, not {'|'.join(p.op_types)}")
            return
        if node.graph is not self.graph:
            self.miss.fail(depth, f"{node!r} is in an enclosing graph")
            return
        if v.index != p.output:
            self.miss.fail(depth, f"{_label(v)} is output {v.index} of {node!r}, not {p.output}")
            return
        bound = b.get(p.name, _UNBOUND)
        if bound is not _UNBOUND and bound is not v:
            self.miss.fail(depth, f"{p.name!r} is bound to two different values")
            return
        if node in b["@nodes"]:
            if bound is v:
                yield b
            return
        yield from self.node(p, node, {**b, p.name: v})

    def node(self, p: Op, node: Node, b: dict) -> Iterator[dict]:
        """Match ``node`` (already of the right type) against ``p``: constraints, then inputs."""
        depth = len(b["@nodes"])
        reason = self.node_constraints(p, node)
        if reason is not None:
            self.miss.fail(depth, f"{_label_node(node)}: {reason}")
            return
        b = {**b, "@nodes": b["@nodes"] + (node,)}
        inputs = list(node.inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        if len(inputs) > len(p.inputs):
            self.miss.fail(depth, f"{_label_node(node)} has {len(inputs)} inputs, the pattern "
                                  f"{len(p.inputs)}")
            return
        inputs += [None] * (len(p.inputs) - len(inputs))
        orders = [inputs]
        if p.commutative and len(inputs) >= 2 and inputs[0] is not inputs[1]:
            orders.append([inputs[1], inputs[0]] + inputs[2:])
        for order in orders:
            yield from self.inputs(p.inputs, order, 0, b)

    def inputs(self, pats, vals, i: int, b: dict) -> Iterator[dict]:
        if i == len(pats):
            yield b
            return
        for b2 in self.value(pats[i], vals[i], b):
            yield from self.inputs(pats, vals, i + 1, b2)

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


_UNBOUND = object()


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple)):
        return got is not None and tuple(got) == tuple(want)
    if isinstance(want, float) and isinstance(got, (int, float)):
        return float(got) == want
    return got == want


def _dom(node: Node) -> str:
    return "" if node.domain == "ai.onnx" else node.domain


def _label(v: Value) -> str:
    return repr(v.name) if v.name else "an anonymous value"


def _label_node(n: Node) -> str:
    return f"{n.op_type} {n.name!r}" if n.name else n.op_type


def _describe(p: Pattern) -> str:
    if isinstance(p, Var):
        return repr(p.name)
    if isinstance(p, Op):
        return "|".join(p.op_types)
    return "an input"


def _private_violation(b: dict, root: Node, pats: dict[int, Op]) -> Optional[str]:
    nodes = b["@nodes"]
    matched = set(map(id, nodes))
    for n in nodes:
        if n is root:
            continue
        p = pats.get(id(n))
        if p is not None and not p.private:
            continue
        for out in n.outputs:
            if out.is_graph_output():
                return f"{_label(out)} (of {_label_node(n)}) is a graph output"
            for user, _ in out.uses():
                if id(user) not in matched:
                    return f"{_label(out)} (of {_label_node(n)}) has another user, " \
                           f"{_label_node(user)}"
    return None


def _op_patterns(p: Pattern, out: dict[int, Op], b: dict) -> None:
    """Map matched node ids to the Op pattern that matched them (for the private check)."""
    if isinstance(p, Op):
        v = b.get(p.name)
        if v is not None and v.producer is not None:
            out.setdefault(id(v.producer), p)
        for q in p.inputs:
            _op_patterns(q, out, b)
    elif isinstance(p, Opt):
        _op_patterns(p.inner, out, b)
    elif isinstance(p, Or):
        for q in p.alternatives:
            _op_patterns(q, out, b)


def _needs(p: Pattern):
    """What a root input matched by ``p`` must be, checkable without matching: a set of
    (domain, op type) producers, "const", or None (anything)."""
    if isinstance(p, Op):
        return frozenset((p.domain, t) for t in p.op_types)
    if isinstance(p, Var):
        return "const" if p.const else None
    if isinstance(p, Or):
        alts = [_needs(a) for a in p.alternatives]
        if alts and all(isinstance(a, frozenset) for a in alts):
            return frozenset().union(*alts)
    return None  # Opt (may be absent), or alternatives of different kinds


def _plan(p: Op) -> tuple:
    plan = getattr(p, "_quick", None)
    if plan is None:
        plan = tuple((i, need) for i, need in enumerate(_needs(q) for q in p.inputs)
                     if need is not None)
        p._quick = plan
    return plan


def _signature(ins: Sequence[Optional[Value]]) -> list:
    """Per input of a root: None when absent, else (producer's (domain, op type) or None, is
    it possibly a constant) — what :func:`_sig_ok` tests plans against, computed once."""
    out: list = []
    for v in ins:
        if v is None:
            out.append(None)
            continue
        p = v.producer
        if p is None:
            out.append((None, v.const_value is not None and not v._is_input))
        else:
            dom = p.domain
            std = dom in ("", "ai.onnx")
            out.append((("" if std else dom, p.op_type), std and p.op_type == "Constant"))
    return out


def _plan_holds(plan: tuple, sig: list) -> bool:
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


def _sig_ok(plan: tuple, commutative: bool, sig: list) -> bool:
    """False when a pattern with ``plan`` cannot match a root whose inputs have ``sig``
    (a direct input's producer op type, or not a constant): a cheap test before matching.
    Constant-ness is tested as :func:`const_value` would, without decoding anything."""
    if not plan or _plan_holds(plan, sig):
        return True
    if commutative and len(sig) >= 2:
        return _plan_holds(plan, [sig[1], sig[0]] + sig[2:])
    return False


def match(rule: "Rule", pattern: Op, root: Node, opset: int, shapes: Shapes,
          miss: Optional[_Miss] = None) -> Optional[Match]:
    """Match one pattern at ``root``; None when it does not match (the reason goes to ``miss``)."""
    m = _Matcher(root.graph, opset, shapes)
    if miss is not None:
        m.miss = miss
    if root.op_type not in pattern.op_types or _dom(root) != pattern.domain:
        m.miss.fail(0, f"root is {root.op_type}, not {'|'.join(pattern.op_types)}")
        return None
    flat = pattern.__dict__.get("_flat")
    if flat is None:
        flat = pattern._flat = all(isinstance(q, Var) or (
            isinstance(q, Opt) and isinstance(q.inner, Var)) for q in pattern.inputs)
    if flat:
        return _match_flat(m, rule, pattern, root)
    start = {"@nodes": (), pattern.name: root.outputs[pattern.output]}
    for b in m.node(pattern, root, start):
        pats: dict[int, Op] = {}
        _op_patterns(pattern, pats, b)
        reason = _private_violation(b, root, pats)
        if reason is not None:
            m.miss.fail(len(b["@nodes"]), reason)
            continue
        binds = {k: v for k, v in b.items() if k != "@nodes"}
        return Match(rule, root, binds, b["@nodes"], opset, shapes)
    return None


def _match_flat(mt: _Matcher, rule: "Rule", p: Op, root: Node) -> Optional[Match]:
    """:func:`match` for a pattern whose inputs are all values (Var, Const, Opt of those):
    the same answers and miss reasons, without the generator machinery."""
    reason = mt.node_constraints(p, root)
    if reason is not None:
        mt.miss.fail(0, f"{_label_node(root)}: {reason}")
        return None
    inputs = list(root.inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    if len(inputs) > len(p.inputs):
        mt.miss.fail(0, f"{_label_node(root)} has {len(inputs)} inputs, the pattern "
                        f"{len(p.inputs)}")
        return None
    inputs += [None] * (len(p.inputs) - len(inputs))
    orders = [inputs]
    if p.commutative and len(inputs) >= 2 and inputs[0] is not inputs[1]:
        orders.append([inputs[1], inputs[0]] + inputs[2:])
    for order in orders:
        b = {p.name: root.outputs[p.output]}
        for q, v in zip(p.inputs, order):
            if isinstance(q, Opt):
                if v is None:
                    if q.inner.name:
                        b[q.inner.name] = None
                    continue
                q = q.inner
            if v is None:
                mt.miss.fail(1, f"{_describe(q)} is missing")
                break
            bound = b.get(q.name, _UNBOUND)
            if bound is not _UNBOUND:
                if bound is not v:
                    mt.miss.fail(1, f"{q.name!r} is bound to two different values")
                    break
                continue
            why = mt.value_constraints(v, q.dtypes, q.rank)
            if why is None and q.const and const_value(v) is None:
                why = "is not a constant"
            if why is not None:
                mt.miss.fail(1, f"{_label(v)} ({q.name}) {why}")
                break
            b[q.name] = v
        else:
            return Match(rule, root, b, (root,), mt.opset, mt.shapes)
    return None


# -- rules -----------------------------------------------------------------------------------------


class Rule:
    """A rewrite rule. Subclass and set ``name``, ``summary``, ``pattern`` (one :class:`Op` or a
    sequence of them, all with root ops), ``opset`` (the minimum default-domain opset of the ops
    the rewrite creates) and ``benefit`` (rules on the same root are tried by decreasing benefit);
    implement :meth:`check` and :meth:`rewrite`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    pattern: ClassVar[Union[Op, Sequence[Op]]] = ()
    opset: ClassVar[int] = 1
    benefit: ClassVar[int] = 1

    def patterns(self) -> tuple[Op, ...]:
        """The rule's root patterns."""
        p = self.pattern
        return (p,) if isinstance(p, Op) else tuple(p)

    def check(self, m: Match) -> Optional[str]:
        """A reason to refuse the match, or None to accept. Must not change the IR."""
        return None

    def rewrite(self, m: Match, b: Builder) -> Union[Value, Sequence[Value]]:
        """Build the replacement; return the values replacing the root's outputs."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


@dataclass
class TraceEvent:
    """A rule refusing (or applying) at a node: ``stage`` is "match", "check" or "applied"."""

    rule: str
    node: Node
    stage: str
    reason: str = ""
    depth: int = 0

    def __str__(self) -> str:
        where = _label_node(self.node)
        if self.stage == "applied":
            return f"rule {self.rule} applied at {where}"
        return f"rule {self.rule} refused at {where}: {self.reason}"


Tracer = Callable[[TraceEvent], None]


class NotApplicable(str):
    """A check's answer meaning "this is not the pattern at all" rather than a near-miss, for
    rules whose structure is checked in code (traced only with ``-vv``)."""


class VerboseTracer:
    """The tracer for ``-v``: check refusals and near-misses (a pattern matched at least three
    nodes deep), each (rule, node) once, and only for nodes no rule rewrote in the end; ``-vv``
    adds every structural miss and every rewrite. Call :meth:`flush` when the pass is done."""

    def __init__(self, ctx: PassContext, level: int):
        self.ctx = ctx
        self.level = level
        self.events: dict[tuple[str, int], TraceEvent] = {}

    def __call__(self, ev: TraceEvent) -> None:
        if ev.stage == "applied":
            if self.level >= 2:
                self.events[(ev.rule, id(ev.node), len(self.events))] = ev
            return
        near = ev.stage == "check" or (ev.stage == "match" and ev.depth >= 3)
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


class _Builder(Builder):
    """The Builder handed to rewrites: also remembers the initializers it made (for rollback)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.created_values: list[Value] = []

    def const(self, data, name=None, dtype=None) -> Value:
        v = super().const(data, name, dtype)
        if v.producer is None:
            self.created_values.append(v)
        return v


_MAX_REQUEUE = 16  # users of a value re-queued after a rewrite, at most
MEMO = True  # sweeps look only near changes since the last clean sweep (tests turn it off)


class _Worklist:
    """LIFO of nodes, each at most once. Seeded in graph order, so later nodes (the roots of the
    largest patterns) are examined first."""

    def __init__(self, graph: Graph, index: dict):
        self.graph = graph
        self.index = index
        self.stack: list[Node] = []
        self.queued: set[int] = set()

    def push(self, n: Optional[Node]) -> None:
        if n is None or n.graph is not self.graph or id(n) in self.queued:
            return
        if (_dom(n), n.op_type) not in self.index:
            return
        self.queued.add(id(n))
        self.stack.append(n)

    def pop(self) -> Optional[Node]:
        while self.stack:
            n = self.stack.pop()
            self.queued.discard(id(n))
            if n.graph is self.graph:
                return n
        return None


class Rewriter:
    """Applies rules to a model: a worklist per graph, indexed by root op."""

    def __init__(self, rules: Sequence[Rule], *, prefix: str = "",
                 max_rewrites: Optional[int] = None, tracer: Optional[Tracer] = None,
                 memo_key: Optional[tuple] = None):
        self.rules = list(rules)
        self.prefix = prefix
        self.max_rewrites = max_rewrites
        self.tracer = tracer
        self.count = 0
        self.capped: list[str] = []
        self.max_rounds = 8
        # With a key, each graph remembers the mutation clock of the last sweep that found
        # nothing, and the next run with the same key looks only near what changed since.
        self.memo_key = memo_key
        self._clean: Optional[int] = None  # start of the last round of run_on_graph, if clean

    def run(self, model: Model, ctx: Optional[PassContext] = None,
            shapes: Optional[Shapes] = None) -> PassResult:
        """Rewrite every graph of ``model`` (subgraphs first, then function bodies, then main)."""
        ctx = ctx or PassContext(model)
        memo = MEMO and self.memo_key is not None and shapes is None and self.tracer is None \
            and self.max_rewrites is None
        shapes = shapes or Shapes(ctx, materialize=False)
        if memo:
            # The memo holds for facts of one generation, read before the sweep: bring the
            # analysis up to date now (cheap when cached); without it, sweep everything.
            if ctx.has_analysis("shapes"):
                shapes._load()
            else:
                memo = False
        result = PassResult()
        for g in iter_graphs(model):
            opset = _graph_opset(model, g)
            key = ("rewrite", self.memo_key)
            since = None
            if memo:
                last = g.meta.get(key)
                if last is not None and last[1] == (model.meta.get("shapes.generation"), opset):
                    since = last[0]
            result.merge(self.run_on_graph(g, opset, shapes, since))
            if memo and self._clean is not None:
                g.meta[key] = (self._clean, (model.meta.get("shapes.generation"), opset))
            else:
                g.meta.pop(key, None)
        for msg in self.capped:
            ctx.note(msg)
        if result.modified:
            # A rewrite replaces values by equal ones (same type and shape, checked) and never
            # edits a matched node: every surviving value keeps its shape.
            result.preserved = frozenset({"shapes"})
        else:
            shapes.undo()  # a materializing Shapes passed in: the IR leaves as it came
            result.preserved = ALL
        return result

    def _index(self, opset: int) -> dict:
        """(domain, op type) -> [(rule, its patterns rooted at that op)], by decreasing benefit."""
        index: dict[tuple[str, str], list[tuple[Rule, list[Op]]]] = {}
        for rule in sorted(self.rules, key=lambda r: -r.benefit):  # stable: keeps list order
            if opset < rule.opset:
                continue
            by_op: dict[tuple[str, str], list[Op]] = {}
            for p in rule.patterns():
                for t in p.op_types:
                    by_op.setdefault((p.domain, t), []).append(p)
            for key, pats in by_op.items():
                index.setdefault(key, []).append((rule, pats))
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
        depth = _index_depth(index)
        cap = 8 * len(graph.nodes) + 64  # a rule set that never settles is a bug: stop, report
        done = 0
        for _ in range(self.max_rounds):
            start = clock()
            work = _Worklist(graph, index)
            if since is None:
                for n in graph.nodes:
                    work.push(n)
            else:
                near = changed_since(graph, since, depth)
                if near:
                    for n in graph.nodes:
                        if n in near:
                            work.push(n)
            before = done
            while not self._exhausted():
                node = work.pop()
                if node is None:
                    break
                if done >= cap:
                    self.capped.append(f"rewrite: graph {graph.name!r} still changing after "
                                       f"{cap} rewrites (rules undo each other?); stopped")
                    return result
                entries = index.get((_dom(node), node.op_type), ())
                # The tracer wants the reason of every miss: no quick filter then.
                sig = _signature(node.inputs) if entries and self.tracer is None else None
                for rule, pats in entries:
                    m = self._try(rule, pats, node, opset, shapes, sig)
                    if m is not None:
                        self._apply(m, work, result)
                        done += 1
                        break
            if done == before or self._exhausted():
                if done == before:
                    self._clean = start
                return result
            since = start
        self.capped.append(f"rewrite: graph {graph.name!r} still changing after "
                           f"{self.max_rounds} rounds; stopped")
        return result

    def _exhausted(self) -> bool:
        return self.max_rewrites is not None and self.count >= self.max_rewrites

    def _try(self, rule: Rule, pats: list[Op], node: Node, opset: int,
             shapes: Shapes, sig: Optional[list] = None) -> Optional[Match]:
        """The first pattern of ``rule`` that matches at ``node`` and passes the check; else
        None, after telling the tracer the deepest near-miss. ``sig``: the root's input
        signature (:func:`_signature`), to skip patterns its direct inputs rule out."""
        miss = _Miss()
        for pat in pats:
            if sig is not None and not _sig_ok(_plan(pat), pat.commutative, sig):
                continue
            m = match(rule, pat, node, opset, shapes, miss)
            if m is None:
                continue
            reason = rule.check(m)
            if reason is None:
                return m
            if isinstance(reason, NotApplicable):
                miss.fail(len(m.nodes) - 1, reason)
            else:
                miss.fail(len(m.nodes) + 100, reason)  # a refused check beats structural misses
        if self.tracer:
            stage = "check" if miss.depth >= 100 else "match"
            depth = miss.depth - 100 if miss.depth >= 100 else max(miss.depth, 0)
            self.tracer(TraceEvent(self.prefix + rule.name, node, stage, miss.reason, depth))
        return None

    def _apply(self, m: Match, work: _Worklist, result: PassResult) -> None:
        graph, root, name = m.graph, m.root, self.prefix + m.rule.name
        b = _Builder(graph, before=root, tag=name)
        try:
            new = m.rule.rewrite(m, b)
            new = [new] if isinstance(new, Value) else list(new)
            if len(new) != len(root.outputs):
                raise RuntimeError(f"rule {name} returned {len(new)} values for "
                                   f"{len(root.outputs)} outputs of {root!r}")
            pairs = list(zip(root.outputs, new)) + m.extra
            for old, nv in pairs:
                _check_replacement(name, old, nv)
        except BaseException:
            _rollback(b)
            raise
        others = [old.producer for old, _ in m.extra if old.producer is not None]
        replaced = tuple(_node_id(n) for n in list(m.nodes) + others)
        inputs = _external_inputs(list(m.nodes) + others)
        created = set(map(id, b.created))
        for old, nv in pairs:
            if nv is None:
                continue
            if nv.type is None:
                nv.type = old.type
            _inherit_fact(old, nv)
            if nv.name is None and old.name and id(nv.producer) in created \
                    and not old.is_graph_output():
                nv.name, old.name = old.name, None
            old.replace_all_uses_with(nv, outputs=True)
        _erase_dead(graph, list(m.nodes) + others)
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
            work.push(v.producer)
            # A value read by many nodes (a shared constant, the attention mask) would make
            # every rewrite touching it cost as much as the graph: its users wait for the next
            # round, which seeds every node anyway after a round that rewrote something.
            if v.num_uses() <= _MAX_REQUEUE:
                for user, _ in v.uses():
                    work.push(user)


def _pattern_depth(p: Pattern) -> int:
    if isinstance(p, Op):
        return 1 + max((_pattern_depth(q) for q in p.inputs), default=0)
    if isinstance(p, Opt):
        return _pattern_depth(p.inner)
    if isinstance(p, Or):
        return max((_pattern_depth(a) for a in p.alternatives), default=0)
    return 0


def _index_depth(index: dict) -> int:
    """How far downstream of a change a root can be whose match sees it: the deepest pattern,
    plus a margin for checks that look a little beyond their pattern (a producer's producer,
    a sibling reading the same input)."""
    deepest = max((_pattern_depth(p) for entries in index.values() for _, pats in entries
                   for p in pats), default=1)
    return deepest + 2


def _node_id(n: Node) -> str:
    """A node's name, else its op type and first output's name (text-syntax models name no
    nodes)."""
    if n.name:
        return n.name
    out = n.outputs[0].name if n.outputs else None
    return f"{n.op_type}({out})" if out else n.op_type


def _graph_opset(model: Model, g: Graph) -> int:
    if g.function is not None:
        v = g.function.opset_imports.get("", g.function.opset_imports.get("ai.onnx"))
        if v is not None:
            return v
    while g.parent_node is not None and g.parent_node.graph is not None:
        g = g.parent_node.graph
        if g.function is not None:
            v = g.function.opset_imports.get("")
            if v is not None:
                return v
    return model.opset("") or 1


def _inherit_fact(old: Value, new: Value) -> None:
    """A new value replacing ``old`` has its type: carry the analysis' fact over (so later
    rules in this pass can ask about it) unless the value already has its own."""
    meta = old.meta
    if _FACT in meta and _FACT not in new.meta:
        new.meta[_FACT] = meta[_FACT]
        if _HINT in meta:
            new.meta[_HINT] = meta[_HINT]


def _check_replacement(rule: str, old: Value, new: Optional[Value]) -> None:
    """A rewrite keeps each output's element type and (known) static shape."""
    if new is None:
        if old.has_uses():
            raise RuntimeError(f"rule {rule} dropped {old.name!r}, which is still used")
        return
    to, tn = _best_type(old), _best_type(new)
    if not (isinstance(to, TensorType) and isinstance(tn, TensorType)):
        return
    if to.dtype and tn.dtype and to.dtype != tn.dtype:
        raise RuntimeError(f"rule {rule} changed the element type of {old.name!r} "
                           f"({to.dtype} -> {tn.dtype})")
    so, sn = to.shape, tn.shape
    if so is not None and sn is not None and so.is_static() and sn.is_static() and so != sn:
        raise RuntimeError(f"rule {rule} changed the shape of {old.name!r} ({so} -> {sn})")


def _rollback(b: _Builder) -> None:
    for n in reversed(b.created):
        if n.graph is not None and not any(o.has_uses() for o in n.outputs):
            n.graph.erase(n)
    for v in b.created_values:
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


# -- passes built from rules -----------------------------------------------------------------------


class RewritePass(Pass):
    """A pass that applies ``rules`` (a list of :class:`Rule` instances) with the driver.

    Options: ``only`` (a rule name: run just that one), ``max_rewrites`` (stop after N rewrites).
    New nodes are tagged ``<pass name>.<rule name>``.
    """

    rules: ClassVar[Sequence[Rule]] = ()
    options: ClassVar[dict[str, Any]] = {"only": "", "max_rewrites": -1}

    def selected_rules(self, model: Model) -> list[Rule]:
        """The rules this instance runs (``only`` applied; opset filtering is the driver's)."""
        only = self.opts.get("only") or ""
        rules = list(self.rules)
        if only:
            names = {r.name for r in rules}
            if only not in names:
                raise UsageError(f"pass {self.name!r} has no rule {only!r} "
                                 f"(rules: {', '.join(sorted(names))})")
            rules = [r for r in rules if r.name == only]
        return rules

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        limit = self.opts.get("max_rewrites")
        limit = None if limit is None or int(limit) < 0 else int(limit)
        tracer = verbose_tracer(ctx, ctx.verbose)
        rules = self.selected_rules(model)
        opset = model.opset("") or 1
        newer = [f"{r.name} (opset {r.opset})" for r in rules if r.opset > opset]
        if tracer is not None and newer:
            ctx.note(f"{self.name}: rules not run at opset {opset}: {', '.join(newer)}; "
                     "--target-opset upgrades the model")
        key = (self.name, tuple(sorted((k, repr(v)) for k, v in self.opts.items())))
        rw = Rewriter(rules, prefix=f"{self.name}.", max_rewrites=limit, tracer=tracer,
                      memo_key=key)
        result = rw.run(model, ctx)
        if tracer is not None:
            tracer.flush()
        return result


def apply_rules(model: Model, rules: Sequence[Rule], ctx: Optional[PassContext] = None, *,
                prefix: str = "", max_rewrites: Optional[int] = None,
                tracer: Optional[Tracer] = None, shapes: Optional[Shapes] = None) -> PassResult:
    """Apply ``rules`` to every graph of ``model`` in place; returns the PassResult.
    ``shapes=Shapes()`` answers shape constraints from declared types only (no inference)."""
    return Rewriter(rules, prefix=prefix, max_rewrites=max_rewrites,
                    tracer=tracer).run(model, ctx, shapes)


__all__ = [
    "Pattern", "Var", "Const", "Opt", "Or", "Op", "Rule", "Match", "Shapes", "Rewriter",
    "RewritePass", "TraceEvent", "Tracer", "NotApplicable", "VerboseTracer", "apply_rules",
    "const_value", "attr_of", "has_ref_attrs", "schema_default", "verbose_tracer", "match",
]
