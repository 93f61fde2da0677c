"""Dims in one symbol with at most one floor, computed and printed without sympy.

Convolution and pooling turn a dynamic spatial dim ``H`` into ``floor(H/2 + 1/2)``, the next layer
adds, subtracts and divides again, and those are all the symbolic dims most CNN exports have.
Importing sympy for them costs more than the rest of a small model's run (~0.3 s). A dim of the
form

    c*s + m*floor(q*s + f) + k      (one symbol s; integers c, m, k; q not an integer; 0 <= f < 1)

is computed here with exact fractions, by the same steps as :func:`dims.floor_expr` and sympy's
own arithmetic, and printed exactly as sympy prints it. So the text is the same canonical text
either way, and the sympy expression, when something needs one, is parsed back from the text
(``ir.shape.parse_dim_expr`` gives back the same expression). Every function returns None for
what is outside this form, and the caller asks sympy.

Comparing two such dims may meet two different floors (a coarse map upsampled beside a finer
one): :func:`quasi_nonneg` decides any sum of floors of linear functions of one symbol exactly,
over one period, and ``dims`` uses it on the sympy path too, so both paths decide alike.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ...ir.shape import SymDim

_ZERO = Fraction(0)


class Lin:
    """``c*sym + m*floor(q*sym + f) + k`` with exact fractions; ``q`` and ``f`` are None when
    ``m`` is 0 (no floor), ``sym`` is None for a constant."""

    __slots__ = ("sym", "c", "m", "q", "f", "k")

    def __init__(self, sym, c, m, q, f, k):
        if not m:
            q = f = None
        if not c and not m:
            sym = None
        self.sym, self.c, self.m, self.q, self.f, self.k = sym, c, m, q, f, k

    def _key(self) -> tuple:
        return (self.sym, self.c, self.m, self.q, self.f, self.k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lin) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def is_const(self) -> bool:
        return self.sym is None


def const(k) -> Lin:
    return Lin(None, _ZERO, _ZERO, None, None, Fraction(k))


def add(x: Lin, y: Lin) -> Lin | None:
    """x + y; None when the sum has two symbols or two different floors."""
    if x.sym is not None and y.sym is not None and x.sym != y.sym:
        return None
    if x.m and y.m and (x.q, x.f) != (y.q, y.f):
        return None
    q, f = (x.q, x.f) if x.m else (y.q, y.f)
    return Lin(x.sym or y.sym, x.c + y.c, x.m + y.m, q, f, x.k + y.k)


def scale(x: Lin, r: Fraction) -> Lin:
    """r * x (sympy distributes a number over a sum, so this is its form too)."""
    return Lin(x.sym, x.c * r, x.m * r, x.q, x.f, x.k * r)


def floor(x: Lin) -> Lin | None:
    """floor(x) in :func:`dims.floor_expr`'s canonical form: integer parts pulled out, a floor
    of a floor plus integers over a positive integer flattened into one floor."""
    out = const(0)
    cur = x
    for _ in range(16):
        if cur.is_const:
            return add(out, const(math.floor(cur.k)))
        inner = []  # (is the floor atom, coefficient) of the terms that stay inside
        if cur.c:
            if cur.c.denominator == 1:
                out = add(out, Lin(cur.sym, cur.c, _ZERO, None, None, _ZERO))
            else:
                inner.append((False, cur.c))
        if cur.m:
            if cur.m.denominator == 1:
                out = add(out, Lin(cur.sym, _ZERO, cur.m, cur.q, cur.f, _ZERO))
            else:
                inner.append((True, cur.m))
        if out is None:
            return None
        whole = math.floor(cur.k)
        out = add(out, const(whole))
        frac = cur.k - whole
        if not inner:
            return out
        den = math.lcm(*[c.denominator for _, c in inner], frac.denominator)
        if [is_floor and c * den == 1 for is_floor, c in inner].count(True) == 1:
            # floor((floor(a) + b)/den) is floor((a + b)/den) for an integer-valued b
            c_sym = sum((c * den for is_floor, c in inner if not is_floor), _ZERO)
            cur = Lin(cur.sym, (cur.q + c_sym) / den, _ZERO, None, None, (cur.f + frac * den) / den)
            continue
        if any(is_floor for is_floor, _ in inner) or out.m:
            return None  # a floor inside a floor, or two floors: sympy's form
        return add(out, Lin(cur.sym, _ZERO, Fraction(1), inner[0][1], frac, _ZERO))
    return None


# -- printing, exactly as sympy's str printer -------------------------------------------------


def _number(r: Fraction) -> str:
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


def _term(coef: Fraction, atom: str) -> str:
    """sympy's print of ``coef*atom``: ``S``, ``-S``, ``3*S``, ``S/2``, ``-3*S/4``."""
    num, den = coef.numerator, coef.denominator
    head = atom if abs(num) == 1 else f"{abs(num)}*{atom}"
    return ("-" if num < 0 else "") + (head if den == 1 else f"{head}/{den}")


def _sum(terms: list[tuple[Fraction, str | None]]) -> str:
    """A sum of (coefficient, atom) terms, the constant's atom None, in sympy's term order: the
    symbol, then the floor, then the constant; except ``k - c*x``, which sympy prints with the
    positive constant first."""
    if len(terms) == 2 and terms[1][1] is None and terms[1][0] > 0 and terms[0][0] < 0:
        terms = [terms[1], terms[0]]
    out = ""
    for coef, atom in terms:
        t = _number(coef) if atom is None else _term(coef, atom)
        if not out:
            out = t
        elif t.startswith("-"):
            out += " - " + t[1:]
        else:
            out += " + " + t
    return out


def render(x: Lin) -> str:
    terms: list[tuple[Fraction, str | None]] = []
    if x.c:
        terms.append((x.c, x.sym))
    if x.m:
        inner = [(x.q, x.sym)] + ([(x.f, None)] if x.f else [])
        terms.append((x.m, f"floor({_sum(inner)})"))
    if x.k or not terms:
        terms.append((x.k, None))
    return _sum(terms)


# -- dims in and out ---------------------------------------------------------------------------

_of_text: dict[str, Lin] = {}  # the texts made here, which are never a bare name
_names: dict[str, Lin] = {}


def to_dim(x: Lin | None):
    """The dim of ``x`` (an int for a constant, a SymDim whose text is canonical); None when
    ``x`` is None or not an integer-valued form."""
    if x is None or x.c.denominator != 1 or x.k.denominator != 1:
        return None
    if x.m and x.m.denominator != 1:
        return None
    if x.is_const:
        return int(x.k)
    text = render(x)
    if x.c != 1 or x.m or x.k:
        _of_text[text] = x
    return SymDim.printed(text)


def of_dim(d) -> Lin | None:
    """The form of an int or SymDim; None when it has none here."""
    if type(d) is int:
        return const(d)
    if not isinstance(d, SymDim):
        return None
    if not d.is_name:  # (sympy prints a division by zero as the name ``zoo``)
        return _of_text.get(d.text)
    x = _names.get(d.text)
    if x is None:
        x = _names[d.text] = Lin(d.text, Fraction(1), _ZERO, None, None, _ZERO)
    return x


def nonneg(x: Lin) -> bool | None:
    """x >= 0 decided as :func:`dims._nonneg` decides it: a form monotone in its symbol (every
    symbol is an integer >= 1) has its extreme at symbol = 1."""
    if x.is_const:
        return x.k >= 0
    signs = set()
    if x.c:
        signs.add(1 if x.c > 0 else -1)
    if x.m:
        inside = 1 if x.q > 0 else -1
        if x.m == 1:
            signs.add(inside)
        elif inside == 1 and math.floor(x.q + x.f) >= 0:
            signs.add(1 if x.m > 0 else -1)
        else:
            return None  # sympy's rule: a multiple of a floor must be of a growing one
    if signs >= {1, -1}:
        return None
    at_one = evaluate(x, 1)
    if 1 in signs:
        return True if at_one >= 0 else None
    return False if at_one < 0 else None


QUASI_PERIOD = 1024  # the longest period :func:`quasi_nonneg` walks (a stride of 1024)
OUTSIDE = object()  # not decided here: the caller asks sympy
_compared: dict = {}  # (x, y) -> le_forms(x, y)


def quasi_nonneg(c: Fraction, floors: list, k: Fraction) -> bool | None | object:
    """``c*s + sum(m*floor(q*s + f)) + k >= 0`` for every integer ``s >= 1`` (``floors``: the
    (m, q, f) fractions): True, False when it is negative for every such ``s``, None when it
    is both; :data:`OUTSIDE` when the period exceeds :data:`QUASI_PERIOD`.

    The expression is quasi-linear: with ``P`` the lcm of the ``q``'s denominators,
    ``E(s + P) = E(s) + L*P`` where ``L = c + sum(m*q)``. So with ``L >= 0`` its least value
    lies in ``s = 1..P`` and with ``L <= 0`` its greatest does, and one period decides it exactly.
    This is what tells ``2*floor(H/16 + 15/16) >= floor(H/8 + 7/8)`` (a stride-16 map upsampled
    next to a stride-8 one: every FPN or U-Net export), which no monotonicity rule can."""
    period = 1
    for _, q, _ in floors:
        period = period * q.denominator // math.gcd(period, q.denominator)
        if period > QUASI_PERIOD:
            return OUTSIDE
    slope = c + sum(m * q for m, q, _ in floors)
    # In integers: D times the expression, D > 0 the lcm of the outer coefficients'
    # denominators, and floor(q*s + f) as one integer division.
    scale = 1
    for x in (c, k, *(m for m, _, _ in floors)):
        scale = scale * x.denominator // math.gcd(scale, x.denominator)
    ci, ki = int(c * scale), int(k * scale)
    terms = [(int(m * scale), q.numerator * f.denominator, f.numerator * q.denominator,
              q.denominator * f.denominator) for m, q, f in floors]
    values = [ci * s + ki + sum(m * ((a * s + b) // d) for m, a, b, d in terms)
              for s in range(1, period + 1)]
    if slope >= 0 and min(values) >= 0:
        return True
    if slope <= 0 and max(values) < 0:
        return False
    return None


def le_forms(x: Lin, y: Lin) -> bool | None | object:
    """``x <= y`` by :func:`quasi_nonneg` for two forms in the same symbol (the floors may
    differ); :data:`OUTSIDE` when they are in two symbols."""
    if x.sym is not None and y.sym is not None and x.sym != y.sym:
        return OUTSIDE
    r = _compared.get((x, y), _compared)
    if r is _compared:  # a period of values per pair: a graph compares the same dims often
        floors = [(m, q, f) for m, q, f in ((y.m, y.q, y.f), (-x.m, x.q, x.f)) if m]
        r = _compared[(x, y)] = quasi_nonneg(y.c - x.c, floors, y.k - x.k)
    return r


def evaluate(x: Lin, v: int) -> Fraction:
    """The value at sym = v."""
    r = x.c * v + x.k
    if x.m:
        r += x.m * math.floor(x.q * v + x.f)
    return r


def clear_cache() -> None:
    _of_text.clear()
    _names.clear()
    _compared.clear()
