"""Pattern elements: what a rule looks for, as data.

Every element computes what the matcher and the driver ask of it when it is built (patterns are
never edited afterwards): its depth, and for :class:`Op` the quick input plan and whether its
inputs are all plain values (matched without backtracking).
"""

from __future__ import annotations

import itertools
from typing import Any, Optional, Sequence, Union

from ...ir.errors import UsageError


class Pattern:
    """Base of pattern elements. ``depth``: how many nodes deep the element reaches."""

    depth: int = 0
    is_value: bool = False  # a Var, or an Opt of one: matched by binding, never by backtracking


class Var(Pattern):
    """Any value, bound to ``name``. ``const``: must be a constant; ``dtypes``: allowed element
    types; ``rank``: required rank (answered by shape inference; unknown rank refuses)."""

    is_value = True

    def __init__(self, name: str, *, const: bool = False, dtypes: Optional[Sequence[int]] = None,
                 rank: Optional[int] = None):
        self.name = name
        self.const = const
        self.dtypes = frozenset(dtypes) if dtypes is not None else None
        self.rank = rank
        self.plain = not const and dtypes is None and rank is None  # binds any value

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
        self.name: Optional[str] = getattr(self.inner, "name", None)
        self.depth = self.inner.depth
        self.is_value = isinstance(self.inner, Var)


class Or(Pattern):
    """The first alternative that leads to a complete match (with backtracking)."""

    def __init__(self, *alternatives: Union[Pattern, str]):
        self.alternatives = tuple(_pat(a) for a in alternatives)
        self.depth = max((a.depth for a in self.alternatives), default=0)


class Op(Pattern):
    """A value produced by a node.

    ``op_type``: a name or a tuple of names. ``inputs``: patterns for the node's inputs; the node
    may not have more (non-omitted) inputs than listed, missing ones only match :class:`Opt`.
    ``name``: binds the output value (``m[name]``) and the node (``m.node(name)``).
    ``attrs``: attribute name -> required value, or a predicate on the value (schema defaults apply
    when the attribute is absent). ``commutative``: also try the first two inputs swapped.
    ``private``: every output of the node is read only by matched nodes (default for non-roots).
    ``output``: which output of the node the value must be.

    Computed here: ``flat`` (every input is a :class:`Var` or an :class:`Opt` of one: the
    matcher binds them in one loop), ``constrained`` (attribute, dtype or rank constraints on
    the node itself), ``plan`` (what the root's direct inputs must be, tested before matching;
    see :mod:`.match`), ``ops`` (this element and every :class:`Op` below it, outermost first)
    and ``all_private`` (every one of them below the root is ``private``).
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
        self.depth = 1 + max((q.depth for q in self.inputs), default=0)
        self.flat = all(q.is_value for q in self.inputs)
        self.constrained = bool(self.attrs) or self.dtypes is not None or self.rank is not None
        self.plan = tuple((i, need) for i, need in enumerate(_needs(q) for q in self.inputs)
                          if need is not None)
        self.ops: tuple[Op, ...] = (self,) + tuple(_ops_below(self.inputs))
        self.all_private = all(q.private for q in self.ops[1:])

    def __repr__(self) -> str:
        return f"Op({'|'.join(self.op_types)} {self.name})"


def _pat(p: Union[Pattern, str]) -> Pattern:
    if isinstance(p, str):
        return Var(p)
    if not isinstance(p, Pattern):
        raise UsageError(f"not a pattern element: {p!r}")
    return p


def _ops_below(pats: Sequence[Pattern]):
    for p in pats:
        if isinstance(p, Op):
            yield from p.ops
        elif isinstance(p, Opt):
            yield from _ops_below((p.inner,))
        elif isinstance(p, Or):
            yield from _ops_below(p.alternatives)


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


def describe(p: Pattern) -> str:
    """How a miss names a pattern element."""
    if isinstance(p, Var):
        return repr(p.name)
    if isinstance(p, Op):
        return "|".join(p.op_types)
    return "an input"


__all__ = ["Pattern", "Var", "Const", "Opt", "Or", "Op", "describe"]
