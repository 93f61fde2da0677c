"""Dim algebra on top of :mod:`onnxopt.ir.shape`.

A dim is an ``int``, a :class:`~onnxopt.ir.shape.SymDim` or ``None`` (unknown). Every function here
takes and returns dims, propagates ``None``, and stays in plain Python for ints, lone symbols,
products of symbols and the one-symbol floor forms of :mod:`.affine` (a CNN's spatial dims);
sympy is imported only when an expression really needs algebra. Results are canonical: a symbolic
result is ``SymDim.from_expr(expr)`` of sympy's auto-simplified expression (or, for the forms done
in plain Python, the same text printed without it), so ``seq*4/4`` is ``seq`` and the dim's text is
one spelling per value. Symbols are positive integers (see
:func:`onnxopt.ir.shape.symbol`), which lets ``floor``/``Max``/``Min`` simplify.

Ceil division is written ``floor((a + b - 1)/b)``: sympy prints ``ceiling`` for ``ceil``, which the
IR's dim parser does not read back.

Comparisons are three-valued where it matters: :func:`eq` is True only when provably equal,
:func:`ne` only when provably different, :func:`le` returns None when it cannot decide.

Dims come from model files, so the algebra has a budget: an expression over :data:`MAX_NODES`
tree nodes, or whose expansion would hold over :data:`MAX_TERMS` terms, is never expanded or
asked for its sign. A result over the budget is an unknown dim (``None``) and a comparison over it
is "cannot prove" — a product of a dozen sums in a 250-character ``dim_param`` would otherwise
expand to millions of terms (minutes, gigabytes) inside a broadcast check.
"""

from __future__ import annotations

import re
from fractions import Fraction
from collections.abc import Iterable

from ...ir.shape import Dim, SymDim, symbol
from . import affine as A

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_sympy = None


def sp():
    """The sympy module, imported on first use."""
    global _sympy
    if _sympy is None:
        import sympy

        _sympy = sympy
    return _sympy


def is_lone(d) -> bool:
    """True for a SymDim that is one plain named symbol (no sympy needed to reason about it)."""
    return isinstance(d, SymDim) and bool(_IDENT.match(d.text))


def sym(name: str) -> SymDim:
    """A SymDim for one named symbol (a positive integer)."""
    if _IDENT.match(name):
        return SymDim(name)
    return SymDim(name, symbol(name))


def expr(d):
    """The sympy expression of an int or SymDim."""
    if type(d) is int:
        return sp().Integer(d)
    if isinstance(d, SymDim):
        return d.expr
    if isinstance(d, bool):
        return sp().Integer(int(d))
    raise TypeError(f"not a dim: {d!r}")


_from: dict = {}


def from_expr(e) -> Dim:
    """A canonical dim from a sympy expression: an int when constant, else a SymDim."""
    if e.is_Integer:
        return int(e)
    r = _from.get(e)
    if r is None:
        r = SymDim.from_expr(e)
        _from[e] = r
    return r


_floor_cache: dict = {}


def _int_valued(t) -> bool:
    s = sp()
    if t.is_Symbol or isinstance(t, s.floor):
        return True  # every dim symbol is an integer
    if isinstance(t, (s.Max, s.Min, s.Mul, s.Add)):
        return all(a.is_Integer or _int_valued(a) for a in t.args)
    if isinstance(t, s.Pow):
        return _int_valued(t.base) and t.exp.is_Integer and t.exp >= 0
    return t.is_integer is True


def floor_expr(e):
    """``floor(e)`` in a canonical form, without sympy's (slow) floor evaluation.

    Integer parts are pulled out (``floor(H/2 - 1/2) + 1`` is ``floor(H/2 + 1/2)``: the constant
    left inside is in [0, 1)), and nested floors are flattened: ``floor((floor(x) + k)/n)`` is
    ``floor((x + k)/n)`` for an integer-valued ``k`` and a positive integer ``n`` (so a chain of
    stride-2 convolutions gives ``floor(H/4 + 3/4)``, not floors of floors).
    """
    r = _floor_cache.get(e)
    if r is not None:
        return r
    s = sp()
    out = s.Integer(0)
    cur = e
    result = None
    for _ in range(16):
        if cur.is_Rational:
            result = out + s.floor(cur)
            break
        const = s.Integer(0)
        inner = []
        for t, c in cur.as_coefficients_dict().items():
            if t == 1:
                const = c
            elif c.is_Integer and _int_valued(t):
                out += c * t
            else:
                inner.append((t, c))
        if not const.is_Rational or not all(c.is_Rational for _, c in inner):
            break  # not a rational-linear form: let sympy decide
        k = s.floor(const)
        out += k
        f = const - k
        if not inner:
            result = out
            break
        q = s.ilcm(*[int(c.q) for _, c in inner], int(f.q))
        floors = [(t, c) for t, c in inner if isinstance(t, s.floor) and c * q == 1]
        others = [(t, c) for t, c in inner if not (isinstance(t, s.floor) and c * q == 1)]
        if len(floors) == 1 and all(_int_valued(t) for t, _ in others):
            cur = (floors[0][0].args[0] + s.Add(*[c * q * t for t, c in others]) + f * q) / q
            continue
        result = out + s.floor(s.Add(*[c * t for t, c in inner]) + f, evaluate=False)
        break
    if result is None:
        result = s.floor(e)
    _floor_cache[e] = result
    return result


# -- the budget ------------------------------------------------------------------------------

MAX_NODES = 256  # tree nodes of one dim expression; a real model's dims stay far below
MAX_TERMS = 256  # terms of an expanded polynomial (eq and the sign test expand)


def size(e, cap: int = MAX_NODES) -> int:
    """Tree nodes of a sympy expression, counting stops past ``cap`` (so it costs O(cap))."""
    n = 0
    stack = [e]
    while stack:
        n += 1
        if n > cap:
            return n
        stack.extend(stack.pop().args)
    return n


def expanded_terms(e, cap: int = MAX_TERMS) -> int:
    """An upper bound of the terms ``expand(e)`` holds, computed without expanding (saturates
    just past ``cap``): sums add, products multiply, a power ``b**k`` raises to ``k``."""
    s = sp()
    if e.is_Atom:
        return 1
    if isinstance(e, s.Add):
        n = 0
        for a in e.args:
            n += expanded_terms(a, cap)
            if n > cap:
                return cap + 1
        return n
    if isinstance(e, s.Mul):
        n = 1
        for a in e.args:
            n *= expanded_terms(a, cap)
            if n > cap:
                return cap + 1
        return n
    if isinstance(e, s.Pow) and e.exp.is_Integer and e.exp > 0:
        base, n = expanded_terms(e.base, cap), 1
        for _ in range(int(e.exp)):
            n *= base
            if n > cap:
                return cap + 1
            if n == 1:
                break  # a power of one term is one term
        return n
    return 1  # floor, Max, Mod...: expand leaves them whole


def within_budget(e) -> bool:
    """True when ``e`` is small enough to expand and compare (see the module docstring)."""
    return size(e) <= MAX_NODES and expanded_terms(e) <= MAX_TERMS


_cache: dict = {}


def _binop(op: str, a, b, fn):
    key = (op, a, b)
    r = _cache.get(key)
    if r is None and key not in _cache:
        r = _affine_binop(op, a, b)
        if r is not _OUTSIDE:
            _cache[key] = r
            return r
        try:
            x, y = expr(a), expr(b)
            if size(x) > MAX_NODES or size(y) > MAX_NODES:
                r = None  # over the budget: an unknown dim
            else:
                e = fn(x, y)
                r = from_expr(e) if size(e) <= MAX_NODES and not _infinite(e) else None
        except (TypeError, ValueError, ZeroDivisionError, AttributeError, RecursionError):
            r = None
        _cache[key] = r
    return r


def _infinite(e) -> bool:
    """True for a division by zero's result (``zoo``, ``nan``, ``oo``): not a dim."""
    s = sp()
    return e.has(s.zoo, s.nan, s.oo, -s.oo)


_OUTSIDE = A.OUTSIDE  # the affine forms cannot say: ask sympy
_AFFINE_OPS = frozenset(("+", "-", "neg", "*", "/", "//", "ceil"))


def _affine_binop(op: str, a, b):
    """``op`` on dims of :mod:`.affine`'s form (one symbol, at most one floor) without sympy;
    ``_OUTSIDE`` when an operand or the result is not of that form."""
    if op not in _AFFINE_OPS:
        return _OUTSIDE
    x, y = A.of_dim(a), A.of_dim(b)
    if x is None or y is None:
        return _OUTSIDE
    r = None
    if op == "+":
        r = A.add(x, y)
    elif op == "-":
        r = A.add(x, A.scale(y, -1))
    elif op == "neg":
        r = A.scale(x, -1)
    elif y.is_const and y.k:
        if op == "*":
            r = A.scale(x, y.k)
        elif x.is_const:
            r = None  # both ints: handled before any algebra
        elif op == "/":
            r = A.scale(x, 1 / y.k)
        elif op == "//":
            r = A.floor(A.scale(x, 1 / y.k))
        elif op == "ceil" and y.k > 0:
            r = A.floor(A.scale(A.add(x, A.const(y.k - 1)), 1 / y.k))
    elif x.is_const and x.k and op == "*":
        r = A.scale(y, x.k)
    d = A.to_dim(r)
    return _OUTSIDE if d is None else d


def _known(*ds) -> bool:
    return all(d is not None for d in ds)


def add(a: Dim, b: Dim) -> Dim:
    """a + b."""
    if a is None or b is None:
        return None
    if type(a) is int:
        if type(b) is int:
            return a + b
        if a == 0:
            return b
    elif type(b) is int and b == 0:
        return a
    return _binop("+", a, b, lambda x, y: x + y)


def sub(a: Dim, b: Dim) -> Dim:
    """a - b."""
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        return a - b
    if type(b) is int and b == 0:
        return a
    if a == b:
        return 0
    return _binop("-", a, b, lambda x, y: x - y)


# -- monomials without sympy ---------------------------------------------------------------------
# Reshape and Flatten multiply and divide products of symbols all the time. A product of named
# symbols with a positive integer coefficient is handled here in plain Python, and printed
# exactly as sympy prints it (coefficient first, then factors sorted by name, ``x**k``), so the
# text is the same canonical text either way; the sympy expression is built only if asked for.

_MONO_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\*\*[0-9]+)?\Z")
_mono_cache: dict = {}


def _mono(d):
    """(coefficient, {name: power}) of an int or a monomial SymDim; None otherwise."""
    if type(d) is int:
        return (d, {}) if d > 0 else None
    if not isinstance(d, SymDim):
        return None
    t = d.text
    r = _mono_cache.get(t, 0)
    if r != 0:
        return r
    r = None
    parts = t.replace("**", "^").split("*")
    coef = 1
    powers: dict = {}
    ok = True
    for i, p in enumerate(parts):
        if i == 0 and p.isdigit():
            coef = int(p)
            continue
        if not _MONO_TOKEN.match(p.replace("^", "**")):
            ok = False
            break
        name, _, k = p.partition("^")
        powers[name] = powers.get(name, 0) + (int(k) if k else 1)
    if ok and powers and coef > 0:
        r = (coef, powers)
    _mono_cache[t] = r
    return r


def plain(d) -> bool:
    """True for a SymDim whose text alone determines it: a monomial of named symbols (``seq``,
    ``16*batch*seq``, ``seq**2``), parsed from that text or printed as it by sympy, which prints
    a product of symbols back to the same expression."""
    return isinstance(d, SymDim) and _mono(d) is not None


def _mono_dim(coef: int, powers: dict) -> Dim:
    if not powers:
        return coef
    fs = [n if k == 1 else f"{n}**{k}" for n, k in sorted(powers.items())]
    if coef != 1:
        fs.insert(0, str(coef))
    return SymDim.printed("*".join(fs))


def mul(a: Dim, b: Dim) -> Dim:
    """a * b."""
    if a is None or b is None:
        if (type(a) is int and a == 0) or (type(b) is int and b == 0):
            return 0
        return None
    if type(a) is int:
        if type(b) is int:
            return a * b
        if a == 1:
            return b
        if a == 0:
            return 0
    elif type(b) is int:
        if b == 1:
            return a
        if b == 0:
            return 0
    ma, mb = _mono(a), _mono(b)
    if ma is not None and mb is not None:
        powers = dict(ma[1])
        for n, k in mb[1].items():
            powers[n] = powers.get(n, 0) + k
        return _mono_dim(ma[0] * mb[0], powers)
    return _binop("*", a, b, lambda x, y: x * y)


def neg(a: Dim) -> Dim:
    """-a."""
    if a is None:
        return None
    if type(a) is int:
        return -a
    return _binop("neg", a, 0, lambda x, _: -x)


def floordiv(a: Dim, b: Dim) -> Dim:
    """floor(a / b)."""
    if a is None or b is None:
        return None
    if type(b) is int:
        if b == 0:
            return None
        if type(a) is int:
            return a // b
        if b == 1:
            return a
    if a == b:
        return 1
    return _binop("//", a, b, lambda x, y: floor_expr(x / y))


def ceildiv(a: Dim, b: Dim) -> Dim:
    """ceil(a / b), written floor((a + b - 1) / b) for a positive b."""
    if a is None or b is None:
        return None
    if type(b) is int:
        if b == 0:
            return None
        if type(a) is int:
            return -(-a // b)
        if b == 1:
            return a
        if b < 0:
            return neg(floordiv(a, -b))
    if a == b:
        return 1
    if type(b) is not int and le(1, b) is not True:
        return None
    return _binop("ceil", a, b, lambda x, y: floor_expr((x + y - 1) / y))


def truediv(a: Dim, b: Dim) -> Dim:
    """a / b when the division is known to be exact (reshape's -1): ``seq*64/8`` is ``8*seq``."""
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        if b == 0 or a % b:
            return None
        return a // b
    if type(b) is int and b == 1:
        return a
    if a == b:
        return 1
    ma, mb = _mono(a), _mono(b)
    if ma is not None and mb is not None and ma[0] % mb[0] == 0 and all(
            ma[1].get(n, 0) >= k for n, k in mb[1].items()):
        powers = {n: k - mb[1].get(n, 0) for n, k in ma[1].items()}
        return _mono_dim(ma[0] // mb[0], {n: k for n, k in powers.items() if k})
    return _binop("/", a, b, lambda x, y: x / y)


def mod(a: Dim, b: Dim) -> Dim:
    """a mod b with the sign of b (Python's ``%``)."""
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        return a % b if b else None
    if type(b) is int and b == 1:
        return 0
    return _binop("%", a, b, lambda x, y: sp().Mod(x, y))


def _minmax(cls, x, y):
    """``cls(x, y)`` (Max or Min) without sympy's evaluation, which compares every pair of
    arguments symbolically and costs tens of milliseconds on convolution-size expressions.
    Callers have already failed to order x and y; nested calls of the same kind are flattened
    and the arguments sorted, so the result is canonical."""
    s = sp()
    if x.is_Number and y.is_Number:
        return cls(x, y)
    args: list = []
    for e in (x, y):
        for a in (e.args if isinstance(e, cls) else (e,)):
            if a not in args:
                args.append(a)
    if len(args) == 1:
        return args[0]
    return cls(*sorted(args, key=s.default_sort_key), evaluate=False)


def dmax(a: Dim, b: Dim) -> Dim:
    """max(a, b)."""
    return _extreme(a, b, True)


def dmin(a: Dim, b: Dim) -> Dim:
    """min(a, b)."""
    return _extreme(a, b, False)


def _extreme(a: Dim, b: Dim, biggest: bool) -> Dim:
    """max(a, b) when ``biggest``, else min(a, b): exact on ints, the operand that ``le``
    proves wins when it can, else a symbolic Max/Min."""
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        return max(a, b) if biggest else min(a, b)
    if a == b:
        return a
    if (le(b, a) if biggest else le(a, b)) is True:
        return a
    if (le(a, b) if biggest else le(b, a)) is True:
        return b
    fn = sp().Max if biggest else sp().Min
    return _binop("max" if biggest else "min", a, b, lambda x, y: _minmax(fn, x, y))


def prod(ds: Iterable[Dim]) -> Dim:
    """The product of dims (None when any is unknown and none is 0)."""
    out: Dim = 1
    for d in ds:
        out = mul(out, d)
    return out


def fsum(ds: Iterable[Dim]) -> Dim:
    """The sum of dims."""
    out: Dim = 0
    for d in ds:
        out = add(out, d)
    return out


# -- comparisons -----------------------------------------------------------------------------

_eq_cache: dict = {}


def eq(a: Dim, b: Dim) -> bool:
    """True only when a and b are provably equal."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    ta, tb = type(a) is int, type(b) is int
    if ta and tb:
        return False
    if (ta or is_lone(a)) and (tb or is_lone(b)):
        return False
    x, y = A.of_dim(a), A.of_dim(b)
    if x is not None and y is not None:
        return x == y  # the forms are canonical; sympy's expand proves no more
    key = (a, b)
    r = _eq_cache.get(key)
    if r is None:
        try:
            d = expr(a) - expr(b)
            r = d == 0 or (within_budget(d) and sp().expand(d) == 0)
        except (TypeError, ValueError, RecursionError):
            r = False
        _eq_cache[key] = r
    return r


def dims_equal(a: Dim, b: Dim) -> bool:
    """True only when two dims are provably equal (``seq`` and ``seq*4/4`` are; ``seq`` and
    ``16`` are not, nor is an unknown dim equal to anything)."""
    return eq(a, b)


_sign_cache: dict = {}


def _monotone(e) -> int | None:
    """+1 when ``e`` never decreases as any symbol grows (every symbol is an integer >= 1), -1
    when it never increases, 0 for a constant, None when unknown."""
    s = sp()
    if e.is_Number:
        return 0
    if e.is_Symbol:
        return 1
    if isinstance(e, (s.Add, s.Max, s.Min)):
        signs = {_monotone(a) for a in e.args}
        if None in signs or signs >= {1, -1}:
            return None
        return 1 if 1 in signs else (-1 if -1 in signs else 0)
    if isinstance(e, s.floor):
        return _monotone(e.args[0])
    if isinstance(e, s.Mul):
        coeff, rest = e.as_coeff_Mul()
        factors = s.Mul.make_args(rest)
        # A product of non-negative non-decreasing factors does not decrease.
        if all(_monotone(f) == 1 and _at_one(f) >= 0 for f in factors):
            return 0 if coeff == 0 else (1 if coeff > 0 else -1)
        return None
    if isinstance(e, s.Pow) and e.exp.is_Integer and e.exp > 0:
        return 1 if _monotone(e.base) == 1 and _at_one(e.base) >= 0 else None
    return None


def _at_one(e):
    """``e`` with every symbol at its smallest value, 1."""
    return e.xreplace({x: 1 for x in e.free_symbols})


def _fraction(r):
    """A sympy Rational as a Fraction (None for anything else)."""
    return Fraction(int(r.p), int(r.q)) if r.is_Rational else None


def _linear(e, sym):
    """(a, b) with ``e == a*sym + b``, else None."""
    a = b = Fraction(0)
    for t in sp().Add.make_args(e):
        coeff, rest = t.as_coeff_Mul()
        r = _fraction(coeff)
        if r is None or (rest != 1 and rest != sym):
            return None
        if rest == 1:
            b += r
        else:
            a += r
    return a, b


def _quasi(e):
    """:func:`affine.quasi_nonneg` on a sympy expression in one symbol: multiples of floors of
    linear functions of it plus a linear rest; ``_OUTSIDE`` (not decided here) otherwise."""
    syms = e.free_symbols
    if len(syms) != 1:
        return _OUTSIDE
    (sym,) = syms
    floors, rest = [], []
    for t in sp().Add.make_args(e):
        coeff, f = t.as_coeff_Mul()
        if not isinstance(f, sp().floor):
            rest.append(t)
            continue
        m, ab = _fraction(coeff), _linear(f.args[0], sym)
        if m is None or ab is None:
            return _OUTSIDE
        floors.append((m, *ab))
    ck = _linear(sp().Add(*rest), sym)
    return _OUTSIDE if ck is None else A.quasi_nonneg(ck[0], floors, ck[1])


def _nonneg(e) -> bool | None:
    r = _sign_cache.get(e, 0)
    if r == 0:
        r = None
        try:
            if not within_budget(e):
                raise ValueError("over the dim budget")  # cannot prove: None
            # Dims are monotone in their symbols almost always: the extreme is at symbols = 1.
            m = _monotone(e)
            if m in (0, 1) and _at_one(e) >= 0:
                r = True
            elif m in (0, -1) and _at_one(e) < 0:
                r = False
            elif m is None and not e.has(sp().floor, sp().Max, sp().Min, sp().Mod):
                r = e.is_nonnegative  # sympy decides polynomials; floors and Max it rarely can
            if r is None:
                q = _quasi(e)
                r = None if q is _OUTSIDE else q
        except (TypeError, ValueError, RecursionError):
            r = None
        _sign_cache[e] = r
    return r


def le(a: Dim, b: Dim) -> bool | None:
    """a <= b: True or False when provable, else None."""
    if a is None or b is None:
        return None
    if type(a) is int and type(b) is int:
        return a <= b
    if a == b:
        return True
    # An int against a product of symbols (each >= 1) needs no sympy: the product is at least
    # its coefficient and grows without bound.
    if type(a) is int:
        m = _mono(b)
        if m is not None and a <= m[0]:
            return True
    elif type(b) is int:
        m = _mono(a)
        if m is not None and m[0] > b:
            return False
    x, y = A.of_dim(a), A.of_dim(b)
    if x is not None and y is not None:
        diff = A.add(y, A.scale(x, -1))
        r = None if diff is None else A.nonneg(diff)
        if r is None:
            r = A.le_forms(x, y)
        if r is not _OUTSIDE:
            return r
    return _nonneg(expr(b) - expr(a))


def lt(a: Dim, b: Dim) -> bool | None:
    """a < b: True or False when provable, else None."""
    r = le(b, a)
    return None if r is None else not r


def nonneg(a: Dim) -> bool | None:
    """a >= 0, three-valued."""
    return le(0, a)


def ne(a: Dim, b: Dim) -> bool:
    """True only when a and b are provably different."""
    if a is None or b is None:
        return False
    if type(a) is int and type(b) is int:
        return a != b
    if a == b:
        return False
    lt_ = lt(a, b)
    if lt_ is True:
        return True
    gt_ = lt(b, a)
    return gt_ is True


def clear_caches() -> None:
    """Forget memoized results (benchmarks time cold runs with it)."""
    for c in (_from, _cache, _eq_cache, _sign_cache, _floor_cache, _mono_cache):
        c.clear()
    A.clear_cache()


def free_symbols(d: Dim) -> frozenset:
    """Names of the symbols a dim depends on."""
    if d is None or type(d) is int:
        return frozenset()
    if is_lone(d):
        return frozenset((d.text,))
    x = A.of_dim(d)
    if x is not None:
        return frozenset((x.sym,))
    return frozenset(s.name for s in d.expr.free_symbols)


def evaluate(d: Dim, binding: dict):
    """The value of a dim at a binding ``{symbol name: int}`` (None when a symbol is unbound)."""
    if d is None:
        return None
    if type(d) is int:
        return d
    if is_lone(d):
        return binding.get(d.text)
    x = A.of_dim(d)
    if x is not None:
        v = binding.get(x.sym)
        return None if v is None else int(A.evaluate(x, v))
    e = d.expr
    subs = {}
    for s in e.free_symbols:
        if s.name not in binding:
            return None
        subs[s] = sp().Integer(binding[s.name])
    v = e.xreplace(subs)
    if not v.is_number:
        return None
    if v.is_Integer:
        return int(v)
    try:
        f = float(v)  # not an integer: a wrong dim, returned so that the caller sees it
    except (TypeError, ValueError):
        return None
    if f != f or f in (float("inf"), float("-inf")):
        return None  # a division by zero at this binding
    return int(f) if f == int(f) else f


__all__ = [
    "add",
    "ceildiv",
    "clear_caches",
    "dims_equal",
    "dmax",
    "dmin",
    "eq",
    "evaluate",
    "expr",
    "floor_expr",
    "floordiv",
    "free_symbols",
    "from_expr",
    "fsum",
    "is_lone",
    "le",
    "lt",
    "mod",
    "mul",
    "ne",
    "neg",
    "nonneg",
    "plain",
    "prod",
    "sp",
    "sub",
    "sym",
    "truediv",
]
