"""What a shape function sees (:class:`NodeCtx`) and what inference reports (:class:`ShapeInfo`).

Element values of small tensors ("vals") are numpy object arrays of int / float / bool / SymDim /
None (None: that element is unknown). They are kept for tensors of at most :data:`MAX_VALS`
elements, whatever their dtype; the int32/int64 ones of rank 0 or 1 are also published as
``value.meta["symval"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ir import Node, Shape, SymDim, TensorType, Value
from . import dims as D

MAX_VALS = 64
INT64, INT32, BOOL = 7, 6, 9
FLOATS = frozenset({1, 10, 11, 16})
INTS = frozenset({2, 3, 4, 5, 6, 7, 12, 13})


def node_label(node: Node) -> str:
    """How messages name a node: its name, else its op type and position."""
    op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
    if node.name:
        return f"node {node.name!r} ({op})"
    return f"an unnamed {op} node"


@dataclass
class Constraint:
    """A fact the graph proves about two dims.

    ``kind`` is ``"=="`` (MatMul's inner dims, Concat's other axes...) or ``"== or 1"`` (a
    broadcast between ``seq`` and ``16`` means ``seq`` is 16 or 1).
    """

    lhs: Any
    rhs: Any
    kind: str
    node: Node | None = None
    why: str = ""

    def __str__(self) -> str:
        where = f" ({self.why} at {node_label(self.node)})" if self.node is not None else ""
        if self.kind == "== or 1":
            return f"{self.lhs} == {self.rhs} or {self.lhs} == 1 or {self.rhs} == 1{where}"
        return f"{self.lhs} {self.kind} {self.rhs}{where}"


@dataclass
class ShapeIssue:
    """A contradiction (or a declared shape the graph disproves), naming the node."""

    node: Node | None
    message: str
    value: Value | None = None

    def __str__(self) -> str:
        return (f"{node_label(self.node)}: " if self.node is not None else "") + self.message


@dataclass
class Unknown:
    """A node whose outputs are not fully known, and why."""

    node: Node
    reason: str
    values: tuple = ()

    def __str__(self) -> str:
        return f"{node_label(self.node)}: {self.reason}"


@dataclass
class ShapeInfo:
    """The result of shape inference over a model.

    ``constraints``: facts the graph proved (e.g. ``seq == 16``); ``errors``: contradictions, each
    naming its node; ``unknown``: nodes with no shape function or with outputs left (partly)
    unknown; ``hint_conflicts``: declared value_info/output shapes that the graph disproves
    (reported, never acted on); ``warnings``: contradictions inside If branches that may not run;
    ``symbols``: every symbol introduced, name -> where it comes from.
    """

    constraints: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    hint_conflicts: list = field(default_factory=list)
    symbols: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0
    # The inference frame behind this result (what an incremental update continues from).
    state: Any = field(default=None, repr=False, compare=False)

    @staticmethod
    def shape(value: Value) -> Shape | None:
        """The proven shape of a value (see :func:`onnxopt.passes.shapes.shape_of`)."""
        from .analysis import shape_of

        return shape_of(value)

    @staticmethod
    def symval(value: Value) -> tuple | None:
        """The symbolic elements of a small int tensor (None when not tracked)."""
        return value.meta.get("symval")

    @property
    def ok(self) -> bool:
        """True when no contradiction was found."""
        return not self.errors

    def summary(self) -> str:
        """One line: values known, partly known, unknown; constraints; errors."""
        s = self.stats
        return (f"{s.get('known', 0)} values fully known, {s.get('partial', 0)} partly, "
                f"{s.get('unknown', 0)} unknown; {len(self.constraints)} constraints, "
                f"{len(self.errors)} errors, {len(self.unknown)} nodes not fully inferred")


# -- element values ---------------------------------------------------------------------------


def obj_array(items: Sequence, shape: Sequence[int]) -> np.ndarray:
    """An object array of ``items`` (ints, floats, bools, SymDims, None) with ``shape``."""
    a = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        a[i] = x
    return a.reshape(tuple(shape))


def vals_from_numpy(arr: np.ndarray) -> np.ndarray | None:
    """Element values of a constant array (None for strings and big tensors)."""
    if arr.size > MAX_VALS or arr.dtype.kind not in "biuf":
        return None
    if arr.dtype.kind == "f":
        # Python floats, as float() of each element gives (float64 holds every float16/32
        # value exactly), without a per-element call.
        return arr.astype(np.float64).astype(object)
    return arr.astype(object)


def is_concrete(a: np.ndarray) -> bool:
    """True when every element is a plain number or bool."""
    return all(x is not None and not isinstance(x, SymDim) for x in a.flat)


class Unresolved(Exception):
    """An attribute refers to a function attribute whose value is not known here."""


class NodeCtx:
    """A shape function's view of one node: attributes, input types and values, output setters."""

    __slots__ = ("fattrs", "inf", "ins", "node", "opsets")

    def __init__(self, node: Node, inf, opsets: dict, fattrs: dict | None):
        self.node = node
        self.ins = node.inputs  # read by every accessor; a shape function never rewires
        self.inf = inf  # the running inference (driver)
        self.opsets = opsets
        self.fattrs = fattrs

    # -- node ----------------------------------------------------------------------------------
    @property
    def opset(self) -> int:
        """The imported version of the node's domain (for the standard domain: at least 1)."""
        d = self.node.domain
        if d == "":
            v = self.opsets.get("")
            return v if v is not None else 21
        return self.opsets.get(d, 1)

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute's value (function attribute references resolved), or ``default``."""
        a = self.node.attributes.get(name)
        if a is None:
            return default
        if a.ref_attr_name:
            if self.fattrs is None or a.ref_attr_name not in self.fattrs:
                if self.fattrs is not None and a.ref_attr_name in self.fattrs.get("__absent__", ()):
                    return default
                raise Unresolved(a.ref_attr_name)
            v = self.fattrs[a.ref_attr_name]
            return default if v is None else v
        return a.value

    def has_attr(self, name: str) -> bool:
        """True when the attribute is present (after resolving references)."""
        try:
            return self.attr(name, _MISSING) is not _MISSING
        except Unresolved:
            return True

    @property
    def n_in(self) -> int:
        """Number of input slots."""
        return len(self.node.inputs)

    @property
    def n_out(self) -> int:
        """Number of output slots."""
        return len(self.node.outputs)

    def has(self, i: int) -> bool:
        """True when input ``i`` is present (not omitted)."""
        ins = self.ins
        return i < len(ins) and ins[i] is not None

    def has_out(self, i: int) -> bool:
        """True when output ``i`` exists and is not an omitted optional output."""
        outs = self.node.outputs
        return i < len(outs) and outs[i].name != ""

    def input(self, i: int) -> Value | None:
        """Input value ``i`` or None."""
        ins = self.ins
        return ins[i] if i < len(ins) else None

    # -- inputs --------------------------------------------------------------------------------
    def type(self, i: int):
        """The type of input ``i`` (None when unknown or omitted)."""
        ins = self.ins  # input(i), inlined: every shape function asks for types
        v = ins[i] if i < len(ins) else None
        return None if v is None else self.inf.type_of(v)

    def dtype(self, i: int) -> int:
        """Element type of input ``i`` (0 when unknown)."""
        t = self.type(i)
        return t.dtype if isinstance(t, TensorType) else 0

    def shape(self, i: int) -> Shape | None:
        """Shape of input ``i`` (None when the rank is unknown)."""
        t = self.type(i)
        return t.shape if isinstance(t, TensorType) else None

    def rank(self, i: int) -> int | None:
        """Rank of input ``i``."""
        s = self.shape(i)
        return None if s is None else len(s)

    def vals(self, i: int) -> np.ndarray | None:
        """Element values of input ``i`` (object array), when tracked."""
        ins = self.ins
        v = ins[i] if i < len(ins) else None
        return None if v is None else self.inf.vals_of(v)

    def ints(self, i: int) -> list | None:
        """Input ``i`` as a flat list of concrete ints, when every element is known."""
        a = self.vals(i)
        if a is None:
            return None
        out = []
        for x in a.flat:
            if x is None or isinstance(x, SymDim):
                return None
            out.append(int(x))
        return out

    def dimlist(self, i: int) -> list | None:
        """Input ``i`` as a flat list of dims (int, SymDim or None per element)."""
        a = self.vals(i)
        if a is None:
            return None
        return [x if x is None or isinstance(x, SymDim) else int(x) for x in a.flat]

    def scalar(self, i: int) -> Any:
        """The one element of a single-element input (None when unknown)."""
        a = self.vals(i)
        if a is None or a.size != 1:
            return None
        return a.flat[0]

    def floats(self, i: int) -> list | None:
        """Input ``i`` as a flat list of concrete floats."""
        a = self.vals(i)
        if a is None or not is_concrete(a):
            return None
        return [float(x) for x in a.flat]

    # -- outputs -------------------------------------------------------------------------------
    def set(self, i: int, dtype: int, shape=None, vals: np.ndarray | None = None) -> None:
        """Set output ``i`` to a tensor of ``dtype`` and ``shape`` (dims, or None: unknown rank)."""
        outs = self.node.outputs
        if i >= len(outs):
            return
        sh = None if shape is None else Shape(shape)
        self.inf.set_out(outs[i], TensorType(dtype or 0, sh), vals)

    def set_type(self, i: int, t) -> None:
        """Set output ``i`` to any type (sequence, optional...)."""
        if i < len(self.node.outputs) and t is not None:
            self.inf.set_out(self.node.outputs[i], t, None)

    def same_as(self, i_out: int, i_in: int, dtype: int | None = None) -> None:
        """Output ``i_out`` has input ``i_in``'s shape (and dtype unless given)."""
        t = self.type(i_in)
        if isinstance(t, TensorType):
            self.set(i_out, dtype if dtype is not None else t.dtype, t.shape)
        elif dtype is not None:
            self.set(i_out, dtype, None)
        elif t is not None:
            self.set_type(i_out, t)

    # -- facts ---------------------------------------------------------------------------------
    def fresh(self, kind: str) -> SymDim:
        """A fresh data-dependent symbol named after this node (``nz_<node>``...)."""
        return self.inf.fresh(kind, self.node)

    def require_equal(self, a, b, why: str) -> Any:
        """Dims that must be equal: a proven contradiction is an error, an open one a constraint.

        Returns the better-known of the two (the int when one is static).
        """
        if a is None:
            return b
        if b is None:
            return a
        if D.eq(a, b):
            return a
        if D.ne(a, b):
            self.error(f"{why}: {a} != {b}")
            return None
        self.inf.constraint(a, b, "==", self.node, why)
        if type(b) is int:
            return b
        if type(a) is int:
            return a
        return a if D.is_lone(a) or not D.is_lone(b) else b

    def error(self, message: str) -> None:
        """Report a contradiction at this node."""
        self.inf.error(self.node, message)


_MISSING = object()

__all__ = [
    "MAX_VALS",
    "Constraint",
    "NodeCtx",
    "ShapeInfo",
    "ShapeIssue",
    "Unknown",
    "Unresolved",
    "is_concrete",
    "node_label",
    "obj_array",
    "vals_from_numpy",
]
