"""Dim algebra for dynamize: the freed symbols, their trace sizes, and divisibility assumptions.

A dim is an int or a :class:`~onnxopt.ir.SymDim`. Here they are evaluated at the trace binding
(the sizes the model was exported with), compared under the assumptions the repair introduced
(``height`` is a multiple of 4 once a Reshape splits it into ``height/4`` windows of 4), and a
group product is split over target elements (:meth:`Algebra.split`), which is how a Reshape
target's elements get their symbolic meaning: element-count conservation fixes the product,
the trace sizes fix which element carries which factor.

sympy is used only for expressions; lone symbols and ints stay in plain Python.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from fractions import Fraction

from ...ir import SymDim
from ...ir.shape import symbol

Dim = object  # int | SymDim


def sp():
    import sympy

    return sympy


def is_int(d) -> bool:
    return type(d) is int


class Algebra:
    """Dims over the freed symbols, evaluated at the trace binding, under assumptions."""

    def __init__(self, binding: dict[str, int]):
        self.binding = dict(binding)  # freed symbol -> trace size
        self.freed = frozenset(binding)
        self.modulus: dict[str, int] = {}  # symbol -> it is a multiple of this
        self.upper: dict[str, int] = {}  # symbol -> at most this (a bounded repair)
        self._sub = None
        self._simple: dict = {}

    # -- basics -------------------------------------------------------------------------------
    @staticmethod
    def expr(d):
        if is_int(d):
            return sp().Integer(d)
        if isinstance(d, SymDim):
            return d.expr
        return d  # already sympy

    @staticmethod
    def dim(e) -> Dim:
        """A dim from a sympy expression (int when constant)."""
        if isinstance(e, int):
            return e
        if e.is_Integer:
            return int(e)
        return SymDim.from_expr(e)

    def symbols_of(self, d) -> frozenset:
        if d is None or is_int(d):
            return frozenset()
        if isinstance(d, SymDim):
            if d.is_symbol and d._expr is None:
                return frozenset((d.text,))
            return frozenset(s.name for s in d.expr.free_symbols)
        return frozenset(s.name for s in d.free_symbols)

    def has_freed(self, d) -> bool:
        return bool(self.symbols_of(d) & self.freed)

    def evaluate(self, d) -> int | None:
        """The value of ``d`` at the trace binding (None when not an integer or not bound)."""
        if d is None:
            return None
        if is_int(d):
            return d
        if isinstance(d, SymDim) and d.is_symbol and d._expr is None:
            return self.binding.get(d.text)
        e = self.expr(d)
        names = {s.name for s in e.free_symbols}
        if not names <= set(self.binding):
            return None
        v = e.xreplace({symbol(n): sp().Integer(self.binding[n]) for n in names})
        if v.is_Integer:
            return int(v)
        return None

    # -- assumptions --------------------------------------------------------------------------
    def assume_multiple(self, name: str, m: int) -> None:
        if m <= 1:
            return
        old = self.modulus.get(name, 1)
        self.modulus[name] = old * m // math.gcd(old, m)
        self._sub = None

    def assume_integral(self, d) -> bool:
        """Record what makes ``d`` an integer: ``height/4`` needs height to be a multiple of 4.
        False when ``d`` is not integral and no single-symbol divisibility makes it so."""
        if d is None or is_int(d) or (isinstance(d, SymDim) and d.is_symbol):
            return True
        if self.integral(self.expr(d)):
            return True
        S = sp()
        e = S.expand(self.expr(d))
        c, rest = e.as_coeff_Mul()
        if c.is_Rational and c.q > 1 and rest.is_Symbol and rest.name in self.freed:
            self.assume_multiple(rest.name, int(c.q))
            return True
        return False

    def allowed(self, name: str) -> list[int] | None:
        """Every size ``name`` may take (at most its bound, a multiple of its modulus), or None
        when it has no bound."""
        top = self.upper.get(name)
        if top is None:
            return None
        m = self.modulus.get(name, 1)
        return list(range(m, top + 1, m))

    def fixed(self, d) -> bool:
        """True when ``d`` takes its trace value at every size the bounds and moduli allow
        (``floor(height/32 + 31/32)`` under ``height<=32``): a size computed at the trace is
        then right wherever the model may run."""
        names = sorted(self.symbols_of(d) & self.freed)
        sizes = [self.allowed(n) for n in names]
        if any(s is None for s in sizes) or math.prod(len(s) for s in sizes) > 4096:
            return False
        want = self.evaluate(d)
        e = self.expr(d)
        S = sp()
        for combo in itertools.product(*sizes):
            v = e.xreplace({symbol(n): S.Integer(x) for n, x in zip(names, combo)})
            if not (v.is_Integer and int(v) == want):
                return False
        return True

    def _subs(self):
        if self._sub is None:
            S = sp()
            fwd, back = {}, {}
            for name, m in self.modulus.items():
                q = S.Symbol(f"{name}__q", integer=True, positive=True)
                fwd[symbol(name)] = m * q
                back[q] = symbol(name) / m
            self._sub = (fwd, back)
        return self._sub

    def under(self, e):
        """``e`` with every symbol of known modulus written as modulus * quotient."""
        fwd, _ = self._subs()
        return e.subs(fwd) if fwd else e

    def simplify(self, d) -> Dim:
        """``d`` simplified under the assumptions (``4*floor(height/4)`` is ``height``)."""
        if d is None or is_int(d) or (isinstance(d, SymDim) and d.is_symbol):
            return d
        key = (str(d), tuple(sorted(self.modulus.items())))
        hit = self._simple.get(key)
        if hit is None:
            hit = self._simple[key] = self._simplify(d)
        return hit

    def freed_dim(self, d):
        """``d`` simplified, when it still depends on a freed size; else None."""
        if d is None or is_int(d):
            return None
        if not self.modulus:
            return d if self.has_freed(d) else None
        s = self.simplify(d)
        return s if not is_int(s) and self.has_freed(s) else None

    def _simplify(self, d) -> Dim:
        fwd, back = self._subs()
        e = self.expr(d)
        if fwd:
            e = sp().expand(e.subs(fwd)).subs(back)
        return self.dim(sp().expand(e) if e.is_Add else e)

    def eq(self, a, b) -> bool:
        """True when ``a`` and ``b`` are provably equal under the assumptions."""
        if a is None or b is None:
            return False
        if a == b:
            return True
        if is_int(a) and is_int(b):
            return False
        d = self.under(self.expr(a) - self.expr(b))
        return sp().expand(d) == 0

    def integral(self, e) -> bool:
        """True when expression ``e`` is an integer for every binding the assumptions allow."""
        S = sp()
        e = S.expand(self.under(self.expr(e)))
        if e.is_Integer:
            return True
        if e.is_Rational:
            return False
        try:
            poly = S.Poly(e)
        except (S.PolynomialError, S.GeneratorsNeeded, ValueError, TypeError):
            return False
        gens_ok = all(g.is_integer for g in poly.gens)
        return gens_ok and all(c.is_Integer for c in poly.coeffs())

    # -- products and splits ------------------------------------------------------------------
    def prod(self, ds: Iterable) -> Dim:
        S = sp()
        ints = 1
        syms = []
        for d in ds:
            if is_int(d):
                ints *= d
            else:
                syms.append(self.expr(d))
        if not syms:
            return ints
        return self.dim(S.Mul(ints, *syms))

    def split(self, product, traces: list[int]) -> tuple[list, bool] | None:
        """:meth:`_split`, and when that fails under divisibility assumptions, the same on the
        product simplified under them (``floor(h/2)/floor(h/8)`` is 4 when 16 divides h)."""
        got = self._split(product, traces)
        if got is None and self.modulus and not is_int(product):
            got = self._split(self.simplify(product), traces)
        return got

    def _split(self, product, traces: list[int]) -> tuple[list, bool] | None:
        """Split ``product`` (a dim with freed symbols) into ``len(traces)`` factors whose trace
        values are ``traces``: each atom of the product (a symbol, a ``floor(...)``, or any
        non-multiplicative term) goes to one element.

        Preference: integer coefficients (``[batch, seq]`` over ``[3*seq/7, 7*batch/3]``), then
        atoms on outer elements (``[height/4, 4]`` over ``[3, height/3]``: sizes split as
        ``(n // block, block)``, the usual window/patch layout). Returns the factors and whether
        another split was equally preferred (an ambiguity worth reporting), or None.
        """
        S = sp()
        k = len(traces)
        if k == 0:
            return None
        p = S.expand(self.expr(product)) if not is_int(product) else S.Integer(product)
        if p.is_Add:  # batch*seq + batch is batch*(seq + 1): group it, so each factor is an atom
            grouped = S.factor(p)
            if grouped.is_Mul:
                p = grouped
        coeff, rest = p.as_coeff_Mul()
        atoms: list = []
        if rest != 1:
            pw = rest.as_powers_dict() if rest.is_Mul or rest.is_Pow else {rest: 1}
            for base, ex in pw.items():
                ex = sp().Integer(ex) if isinstance(ex, int) else ex
                if not (ex.is_Integer and ex > 0):
                    atoms = [rest]
                    break
                atoms.extend([base] * int(ex))
        if not atoms:
            return None
        vals = []
        for a in atoms:
            v = self.evaluate(self.dim(a))
            if v is None or v <= 0:
                return None
            vals.append(v)
        n = len(atoms)
        if k ** n > 20000:
            return None
        total = Fraction(1)
        for t in traces:
            total *= t
        for v in vals:
            total /= v
        if total != Fraction(coeff.p, coeff.q):
            return None
        best = None
        results: dict[tuple, tuple] = {}
        for assign in itertools.product(range(k), repeat=n):
            coeffs = [Fraction(t) for t in traces]
            for ai, j in enumerate(assign):
                coeffs[j] /= vals[ai]
            if any(c <= 0 for c in coeffs):
                continue
            nonint = sum(1 for c in coeffs if c.denominator != 1)
            on_ones = sum(1 for ai, j in enumerate(assign) if traces[j] == 1 and vals[ai] != 1)
            score = (nonint + on_ones, sum(assign))
            elems = []
            for j in range(k):
                mine = [atoms[ai] for ai, jj in enumerate(assign) if jj == j]
                c = coeffs[j]
                if not mine:
                    elems.append(int(c) if c.denominator == 1 else None)
                    continue
                e = S.Rational(c.numerator, c.denominator) * S.Mul(*mine)
                elems.append(self.dim(e))
            if any(x is None for x in elems):
                continue
            key = tuple(str(x) for x in elems)
            if key not in results or score < results[key][0]:
                results[key] = (score, elems)
            if best is None or score < best[0]:
                best = (score, elems)
        if best is None:
            return None
        ambiguous = any(s[0] == best[0][0] and list(map(str, e)) != list(map(str, best[1]))
                        for s, e in results.values())
        return best[1], ambiguous

    def fmt(self, d) -> str:
        return "?" if d is None else str(d)


def fmt_dims(ds) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in ds) + "]"


__all__ = ["Algebra", "fmt_dims", "is_int"]
