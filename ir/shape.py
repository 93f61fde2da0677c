"""Shapes and dims.

A dim is an ``int`` (static), a :class:`SymDim` (a named symbol or an expression over symbols), or
``None`` (unknown). A :class:`Shape` is a tuple of dims; an unknown rank is ``None`` at the type
level, never a Shape.

Dim strings come from model files, so they are parsed by the small recursive-descent parser here,
never by ``sympy.sympify`` (which evaluates arbitrary Python). Anything the grammar does not accept
becomes one opaque symbol whose name is the whole string. sympy is imported only when an
expression really needs algebra: plain ints and lone symbols never touch it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Union

# Dotted names are identifiers too: exporters write dims like "p2o.DynamicDimension.1".
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_.]*)|(\*\*|//|[-+*/%(),]))")
_FUNCS = ("floor", "ceil", "ceiling", "max", "min", "Max", "Min", "Mod")
_MAX_EXPR_CHARS = 256  # longer dim strings stay opaque symbols


def _sympy():
    import sympy

    return sympy


@lru_cache(maxsize=4096)
def symbol(name: str):
    """The sympy symbol for a dim name: a positive integer, which lets floor/ceil simplify."""
    return _sympy().Symbol(name, integer=True, positive=True)


class _Parser:
    """Recursive descent over + - * / // % ** and floor/ceil/min/max/Mod calls."""

    def __init__(self, text: str):
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise ValueError(text)
            num, ident, op = m.groups()
            self.toks.append(("n", num) if num else ("i", ident) if ident else ("o", op))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (op is not None and tok != ("o", op)):
            raise ValueError(op)
        self.i += 1
        return tok

    def parse(self):
        e = self.expr()
        if self.peek() is not None:
            raise ValueError("trailing")
        return e

    def expr(self):
        e = self.term()
        while self.peek() in (("o", "+"), ("o", "-")):
            op = self.take()[1]
            rhs = self.term()
            e = e + rhs if op == "+" else e - rhs
        return e

    def term(self):
        sp = _sympy()
        e = self.factor()
        while self.peek() in (("o", "*"), ("o", "/"), ("o", "//"), ("o", "%")):
            op = self.take()[1]
            rhs = self.factor()
            if op == "*":
                e = e * rhs
            elif op == "/":
                e = e / rhs
            elif op == "//":
                e = sp.floor(e / rhs)
            else:
                e = sp.Mod(e, rhs)
        return e

    def factor(self):
        if self.peek() == ("o", "-"):
            self.take()
            return -self.factor()
        base = self.atom()
        if self.peek() == ("o", "**"):
            self.take()
            exp = self.factor()
            if not exp.is_Integer or exp < 0 or exp > 8:
                raise ValueError("power")
            if base.is_Pow or (base.is_Number and abs(base) > 2**32):
                raise ValueError("power")  # nested or huge powers: a bomb, not a dim
            return base**exp
        return base

    def atom(self):
        sp = _sympy()
        kind, text = self.take()
        if kind == "n":
            return sp.Integer(int(text))
        if kind == "o":
            if text != "(":
                raise ValueError(text)
            e = self.expr()
            self.take(")")
            return e
        if self.peek() == ("o", "("):
            if text not in _FUNCS:
                raise ValueError(text)
            self.take("(")
            args = [self.expr()]
            while self.peek() == ("o", ","):
                self.take()
                args.append(self.expr())
            self.take(")")
            fn = {
                "floor": sp.floor,
                "ceil": sp.ceiling,
                "ceiling": sp.ceiling,  # how sympy prints it
                "max": sp.Max,
                "Max": sp.Max,
                "min": sp.Min,
                "Min": sp.Min,
                "Mod": sp.Mod,
            }[text]
            return fn(*args)
        return symbol(text)


@lru_cache(maxsize=8192)
def parse_dim_expr(text: str):
    """Parse a dim string into a sympy expression; an unparsable string is one opaque symbol."""
    if _IDENT.match(text):
        return symbol(text)
    if len(text) > _MAX_EXPR_CHARS:  # no real dim is this long; never spend time on it
        return symbol(text)
    try:
        return _Parser(text).parse()
    except (ValueError, TypeError, ZeroDivisionError, RecursionError):
        return symbol(text)


class SymDim:
    """A symbolic dim: a lone symbol (no sympy needed) or an expression (sympy, built lazily).

    Two SymDims are equal when their canonical texts are equal; ``seq*4/4`` canonicalizes to
    ``seq`` because expression texts are printed back from sympy.
    """

    __slots__ = ("text", "_expr", "_canon")

    def __init__(self, text: str, expr=None):
        # The text is kept as written (no sympy at lift); comparisons use the canonical text,
        # which needs sympy only for expressions (a lone name is its own canonical form).
        self.text = text
        self._expr = expr
        self._canon = text if _IDENT.match(text) else None

    @classmethod
    def from_expr(cls, expr) -> "Dim":
        """A dim from a sympy expression: an int when the expression is a constant."""
        if expr.is_Integer:
            return int(expr)
        d = cls(_expr_text(expr), expr)
        d._canon = d.text
        return d

    @classmethod
    def printed(cls, text: str) -> "SymDim":
        """A SymDim whose text is sympy's own print of its expression, made without sympy (the
        plain-Python dim algebra prints exactly as sympy does): canonical as it stands, so
        hashing and comparing it need no sympy."""
        d = cls(text)
        d._canon = text
        return d

    @property
    def is_name(self) -> bool:
        """True when the text is a plain name that stands for its own symbol (not a name sympy
        printed for something else, such as ``zoo`` for a division by zero)."""
        return bool(_IDENT.match(self.text)) and (self._expr is None or self._expr.is_Symbol)

    def _key(self) -> str:
        if self._canon is None:
            self._canon = _expr_text(self.expr)
        return self._canon

    @property
    def expr(self):
        """The sympy expression (parsed on first use)."""
        if self._expr is None:
            self._expr = parse_dim_expr(self.text)
        return self._expr

    def canonical(self) -> "Dim":
        """The same dim with its text printed back from sympy (``seq*4/4`` becomes ``seq``)."""
        if _IDENT.match(self.text):
            return self
        return SymDim.from_expr(self.expr)

    @property
    def is_symbol(self) -> bool:
        """True for a lone named symbol such as ``batch``."""
        return bool(_IDENT.match(self.text)) or (self._expr is not None and self._expr.is_Symbol)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SymDim):
            return self.text == other.text or self._key() == other._key()
        return False

    def __hash__(self) -> int:
        return hash(("SymDim", self._key()))

    def __repr__(self) -> str:
        return f"SymDim({self.text!r})"

    def __str__(self) -> str:
        return self.text


def _expr_text(expr) -> str:
    return str(expr)


Dim = Union[int, SymDim, None]


def make_dim(d: Union[int, str, SymDim, None]) -> Dim:
    """Normalize an int, dim string, SymDim or None into a dim."""
    if d is None or isinstance(d, SymDim):
        return d
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        return SymDim(d)
    if hasattr(d, "is_Integer"):
        return SymDim.from_expr(d)
    raise TypeError(f"not a dim: {d!r}")


class Shape(tuple):
    """An immutable tuple of dims (int, SymDim or None)."""

    def __new__(cls, dims: Iterable[Union[int, str, SymDim, None]] = ()):
        if type(dims) is cls:
            return dims  # already normalized, and immutable: no copy needed
        if type(dims) is list or type(dims) is tuple:
            # Shape functions build lists of ready dims: take them as they are when they are.
            for d in dims:
                if d is not None and type(d) is not int and type(d) is not SymDim:
                    break
            else:
                return super().__new__(cls, dims)
        return super().__new__(cls, (make_dim(d) for d in dims))

    @property
    def rank(self) -> int:
        """Number of dims."""
        return len(self)

    def is_static(self) -> bool:
        """True when every dim is an int."""
        return all(type(d) is int for d in self)

    def numel(self) -> int | None:
        """Element count when static, else None."""
        if not self.is_static():
            return None
        n = 1
        for d in self:
            n *= d
        return n

    def __repr__(self) -> str:
        return "Shape([" + ", ".join("?" if d is None else str(d) for d in self) + "])"

    def __str__(self) -> str:
        return "[" + ",".join("?" if d is None else str(d) for d in self) + "]"


__all__ = ["Dim", "SymDim", "Shape", "make_dim", "parse_dim_expr", "symbol"]
