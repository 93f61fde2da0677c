"""Shape functions memoized by everything they read.

A shape function of the table sees its node only through :class:`~.context.NodeCtx`: the op, the
opset of its domain, the attributes, the input types and element values, and which outputs
exist. Nodes with the same of all of these (the blocks of a transformer, the layers of a CNN) get
the same answer, so the first such node's effects (outputs set, constraints, errors, in order) are
recorded and replayed for the others through the same calls, with the node swapped in.

The key is exact, not merely equal: ``SymDim.__eq__`` holds for different spellings of one value
(``seq*4/4`` and ``seq``), which shape functions copy into their results, so a dim is keyed by
its text when the text alone determines it (a monomial of named symbols: its expression is parsed
from, or prints as, that text) and by identity otherwise (held by the entry, so the id stays its).
Floats are keyed by their bits (``0.0`` and ``-0.0`` differ), bools apart from ints. Not memoized:
nodes with bodies, inside functions (attribute references), fallback shape functions, and calls
that ask for fresh symbols or sequence items (both depend on more than the key).
"""

from __future__ import annotations

import struct

from ...ir import SymDim, TensorType
from . import dims as D

# Bounds on what an inference keeps (a few KB per signature at most: a graph of repeated
# blocks has hundreds; past the bound nothing more is kept, lookups still answer).
MAX_ENTRIES = 1 << 12  # distinct signatures
MAX_KEYS = 1 << 14  # type and array objects whose keys are kept
_SIMPLE = frozenset({1, 2, 3, 6, 7, 8})  # float, int, string and their lists
_pack = struct.Struct("<d").pack


class _NoKey(Exception):
    """Something the key cannot express exactly: the call is not memoized."""


def _scalar(x):
    t = type(x)
    if t is int or t is str or x is None:
        return x
    if t is float:
        return ("f", _pack(x))
    if t is bool:
        return ("b", x)
    if t is bytes:
        return ("y", x)
    raise _NoKey


def _attr(a):
    if a.ref_attr_name or a.type not in _SIMPLE:
        raise _NoKey
    v = a.value
    return tuple(_scalar(x) for x in v) if type(v) is tuple else _scalar(v)


def _dim(d):
    t = type(d)
    if t is int or d is None:
        return d
    if t is SymDim:
        return d.text if D.plain(d) else ("#", id(d))
    raise _NoKey


def _elem(x):
    t = type(x)
    if t is int or x is None:
        return x
    if t is SymDim:
        return _dim(x)
    return _scalar(x)


def _type_key(t):
    if type(t) is not TensorType:
        raise _NoKey
    s = t.shape
    return t.dtype, None if s is None else tuple([_dim(d) for d in s])


def _vals_key(a):
    return a.shape, tuple([_elem(x) for x in a.flat])


class Keys:
    """Memo keys of the types and element arrays values hold, by object: a replayed call hands
    the same objects to every node it answers, so their keys are built once. Each entry holds its
    object, so an id in a key (a dim keyed by identity, the object itself) is never reused."""

    __slots__ = ("objs",)

    def __init__(self):
        self.objs: dict = {}

    def of(self, x, make):
        e = self.objs.get(id(x))
        if e is not None and e[0] is x:
            return e[1]
        k = make(x)
        if len(self.objs) < MAX_KEYS:
            self.objs[id(x)] = (x, k)
        return k


def key(ctx, fn, keys: Keys) -> tuple | None:
    """The memo key of calling ``fn`` (the table's function for the node) on ``ctx``; None when
    the call cannot be keyed exactly. An entry stored under it keeps :func:`held` alive."""
    n = ctx.node
    inf = ctx.inf
    of = keys.of
    try:
        attrs = n.attributes
        parts = [fn, n.domain, n.op_type, ctx.opset,
                 tuple([(k, _attr(a)) for k, a in attrs.items()]) if attrs else (),
                 tuple([o.name == "" for o in n.outputs])]
        for v in ctx.ins:
            if v is None:
                parts.append(None)
                continue
            t = inf.type_of(v)
            a = inf.vals_of(v)
            parts.append(0 if t is None else of(t, _type_key))
            parts.append(None if a is None else of(a, _vals_key))
    except _NoKey:
        return None
    return tuple(parts)


def held(ctx) -> list:
    """The input types and arrays a key was made from: the objects its ids refer to, which the
    memo entry keeps alive so that no id in its key is reused."""
    inf = ctx.inf
    return [(inf.type_of(v), inf.vals_of(v)) for v in ctx.ins if v is not None]


class Recorder:
    """What a memoized shape function talks to: the inference, with its effects recorded."""

    __slots__ = ("effects", "inf", "node", "spoiled")

    def __init__(self, inf, node):
        self.inf = inf
        self.node = node
        self.effects: list = []
        self.spoiled = False

    def type_of(self, v):
        return self.inf.type_of(v)

    def vals_of(self, v):
        return self.inf.vals_of(v)

    def set_out(self, v, t, vals) -> None:
        for i, o in enumerate(self.node.outputs):
            if o is v:
                self.effects.append((0, i, t, vals))
                break
        else:
            self.spoiled = True
        self.inf.set_out(v, t, vals)

    def constraint(self, a, b, kind: str, node, why: str) -> None:
        self.spoiled |= node is not self.node
        self.effects.append((1, a, b, kind, why))
        self.inf.constraint(a, b, kind, node, why)

    def error(self, node, message: str) -> None:
        self.spoiled |= node is not self.node
        self.effects.append((2, message))
        self.inf.error(node, message)

    def __getattr__(self, name: str):
        # fresh, seq_items_of, set_seq_items, root...: answers that depend on more than the key.
        self.spoiled = True
        return getattr(self.inf, name)


def replay(inf, node, effects: list) -> None:
    """Apply recorded effects to ``node`` in the order they were made."""
    outs = node.outputs
    for e in effects:
        kind = e[0]
        if kind == 0:
            inf.set_out(outs[e[1]], e[2], e[3])
        elif kind == 1:
            inf.constraint(e[1], e[2], e[3], node, e[4])
        else:
            inf.error(node, e[1])


__all__ = ["MAX_ENTRIES", "Keys", "Recorder", "held", "key", "replay"]
