"""Element arithmetic for symbolic value propagation (shape tensors and other small tensors).

An element is an int, a float, a bool, a :class:`SymDim` or None (unknown). Concrete elements
follow ONNX's semantics for their dtype (integer Div truncates, integer Mod takes the divisor's
sign, int64 wraps). Symbolic int elements use :mod:`.dims`; symbolic float elements are exact
rationals (a float tensor holding ``seq`` after a Cast), so ``floor(Cast(seq) * 0.5)`` is
``floor(seq/2)``. Anything that cannot be decided is None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...ir import SymDim
from . import dims as D
from .context import FLOATS, INTS, obj_array

_NP = {1: np.float32, 10: np.float16, 11: np.float64}
_BITS = {2: (8, False), 3: (8, True), 4: (16, False), 5: (16, True), 6: (32, True),
         7: (64, True), 12: (32, False), 13: (64, False)}


def _sym(x) -> bool:
    return isinstance(x, SymDim)


def wrap_int(x: int, dtype: int) -> int:
    """x wrapped to the range of an integer dtype."""
    bits, signed = _BITS.get(dtype, (64, True))
    m = 1 << bits
    x %= m
    if signed and x >= m >> 1:
        x -= m
    return x


def _fl(x: float, dtype: int) -> float:
    t = _NP.get(dtype)
    return float(t(x)) if t is not None else float(x)


def _rat(x):
    sp = D.sp()
    if _sym(x):
        return x.expr
    if isinstance(x, bool):
        return sp.Integer(int(x))
    if isinstance(x, int):
        return sp.Integer(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError("not finite")
        return sp.Rational(x)
    raise TypeError(x)


def _from_rat(e, dtype: int):
    """A float-dtype element from an exact expression."""
    if e.is_Number:
        return _fl(float(e), dtype)
    return D.from_expr(e)


def _float_sym(fn: Callable, a, b, dtype: int):
    try:
        return _from_rat(fn(_rat(a), _rat(b)), dtype)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def _int(x) -> Any:
    """An int-dtype element: ints stay ints, SymDims stay SymDims."""
    if isinstance(x, bool):
        return int(x)
    return x


# -- binary arithmetic ---------------------------------------------------------------------------


def add(a, b, dtype: int):
    """a + b in ``dtype``."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        if dtype in INTS:
            return wrap_int(int(a) + int(b), dtype)
        return _fl(a + b, dtype)
    if dtype in INTS:
        return D.add(_int(a), _int(b))
    if dtype in FLOATS:
        return _float_sym(lambda x, y: x + y, a, b, dtype)
    return None


def sub(a, b, dtype: int):
    """a - b in ``dtype``."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        if dtype in INTS:
            return wrap_int(int(a) - int(b), dtype)
        return _fl(a - b, dtype)
    if dtype in INTS:
        return D.sub(_int(a), _int(b))
    if dtype in FLOATS:
        return _float_sym(lambda x, y: x - y, a, b, dtype)
    return None


def mul(a, b, dtype: int):
    """a * b in ``dtype``."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        if dtype in INTS:
            return wrap_int(int(a) * int(b), dtype)
        return _fl(a * b, dtype)
    if dtype in INTS:
        return D.mul(_int(a), _int(b))
    if dtype in FLOATS:
        return _float_sym(lambda x, y: x * y, a, b, dtype)
    return None


def div(a, b, dtype: int):
    """a / b: truncating for ints, exact for symbolic floats."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        if dtype in INTS:
            a, b = int(a), int(b)
            if b == 0:
                return None
            q = abs(a) // abs(b)
            return wrap_int(q if (a >= 0) == (b > 0) else -q, dtype)
        t = _NP.get(dtype, np.float64)
        with np.errstate(all="ignore"):
            return _fl(np.divide(t(a), t(b)), dtype)
    if dtype in INTS:
        if D.nonneg(a) is True and D.lt(0, b) is True:
            return D.floordiv(a, b)
        return None
    if dtype in FLOATS:
        if not _sym(b) and float(b) == 0.0:
            return None
        return _float_sym(lambda x, y: x / y, a, b, dtype)
    return None


def mod(a, b, dtype: int, fmod: int = 0):
    """ONNX Mod: the divisor's sign for ints (fmod=0), the dividend's with fmod=1."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        if dtype in INTS and not fmod:
            return a % b if b else None
        try:
            return _fl(math.fmod(a, b), dtype) if dtype in FLOATS else int(math.fmod(a, b))
        except (ValueError, ZeroDivisionError):
            return None
    if dtype in INTS and D.lt(0, b) is True and (not fmod or D.nonneg(a) is True):
        return D.mod(a, b)
    return None


def dmax(a, b, dtype: int):
    """max(a, b)."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        return max(a, b)
    if dtype in INTS:
        return D.dmax(_int(a), _int(b))
    return _float_sym(lambda x, y: D.sp().Max(x, y), a, b, dtype) if dtype in FLOATS else None


def dmin(a, b, dtype: int):
    """min(a, b)."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        return min(a, b)
    if dtype in INTS:
        return D.dmin(_int(a), _int(b))
    return _float_sym(lambda x, y: D.sp().Min(x, y), a, b, dtype) if dtype in FLOATS else None


def power(a, b, dtype: int):
    """a ** b (concrete only, plus symbolic ** small non-negative int)."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        try:
            if dtype in INTS:
                return wrap_int(int(a) ** int(b), dtype) if int(b) >= 0 else None
            return _fl(float(a) ** float(b), dtype)
        except (OverflowError, ZeroDivisionError, ValueError):
            return None
    if _sym(a) and not _sym(b) and float(b) == int(b) and 0 <= int(b) <= 4:
        r = 1
        for _ in range(int(b)):
            r = D.mul(r, a)
        return r
    return None


# -- unary -----------------------------------------------------------------------------------


def neg(a, dtype: int):
    """-a."""
    if a is None:
        return None
    if not _sym(a):
        return wrap_int(-int(a), dtype) if dtype in INTS else -a
    return D.neg(a)


def absolute(a, dtype: int):
    """|a|."""
    if a is None:
        return None
    if not _sym(a):
        return abs(a)
    if D.nonneg(a) is True:
        return a
    if D.le(a, 0) is True:
        return D.neg(a)
    return None


def floor(a, dtype: int):
    """floor(a) of a float element."""
    if a is None:
        return None
    if not _sym(a):
        return _fl(math.floor(a), dtype) if math.isfinite(a) else a
    r = D.from_expr(D.floor_expr(a.expr))
    return _fl(r, dtype) if type(r) is int else r


def ceil(a, dtype: int):
    """ceil(a) of a float element."""
    if a is None:
        return None
    if not _sym(a):
        return _fl(math.ceil(a), dtype) if math.isfinite(a) else a
    sp = D.sp()
    num, den = sp.fraction(sp.together(a.expr))
    if den.is_Integer and den > 0:
        r = D.from_expr(D.floor_expr((num + den - 1) / den))
    else:
        return None
    return _fl(r, dtype) if type(r) is int else r


def sqrt(a, dtype: int):
    """sqrt of a concrete float element."""
    if a is None or _sym(a) or a < 0:
        return None
    return _fl(math.sqrt(a), dtype)


def cast(a, src: int, dst: int):
    """An element cast from ``src`` to ``dst`` dtype."""
    if a is None:
        return None
    if dst == 9:  # bool
        if _sym(a):
            if D.ne(a, 0):
                return True
            return None
        return bool(a)
    if _sym(a):
        if dst in INTS:
            if src in INTS or src == 9:
                return a
            # float -> int truncates toward zero
            if D.nonneg(a) is True:
                return D.from_expr(D.floor_expr(a.expr))
            if D.le(a, 0) is True:
                return D.neg(D.from_expr(D.floor_expr(-a.expr)))
            return None
        if dst in FLOATS:
            return a
        return None
    if dst in INTS:
        if isinstance(a, float):
            if not math.isfinite(a):
                return None
            a = math.trunc(a)
        return wrap_int(int(a), dst)
    if dst in FLOATS:
        return _fl(float(a), dst)
    return None


# -- comparisons and logic ---------------------------------------------------------------------


def equal(a, b):
    """a == b as a bool element (None when undecided)."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        return bool(a == b)
    if D.eq(a, b):
        return True
    if D.ne(a, b):
        return False
    return None


def less(a, b):
    """a < b."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        return bool(a < b)
    return D.lt(a, b)


def less_equal(a, b):
    """a <= b."""
    if a is None or b is None:
        return None
    if not _sym(a) and not _sym(b):
        return bool(a <= b)
    return D.le(a, b)


def logical_not(a):
    """not a."""
    return None if a is None or _sym(a) else (not a)


def logical_and(a, b):
    """a and b (False wins over unknown)."""
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return bool(a) and bool(b)


def logical_or(a, b):
    """a or b (True wins over unknown)."""
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return bool(a) or bool(b)


def logical_xor(a, b):
    """a xor b."""
    if a is None or b is None:
        return None
    return bool(a) != bool(b)


def where(c, x, y):
    """x if c else y (when c is unknown, the common value of x and y if provably equal)."""
    if c is True or (c is not None and not _sym(c) and c):
        return x
    if c is False or (c is not None and not _sym(c) and not c):
        return y
    if x is None or y is None:
        return None
    if x == y or (not isinstance(x, float) and D.eq(x, y)):
        return x
    return None


# -- arrays ----------------------------------------------------------------------------------

_UFUNCS: dict = {}


def elementwise(fn: Callable, *arrays: np.ndarray | None) -> np.ndarray | None:
    """Apply ``fn`` element by element with numpy broadcasting (None when any input is None)."""
    if any(a is None for a in arrays):
        return None
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        return None
    n = math.prod(shape)
    if n > 64:
        return None
    bs = [np.broadcast_to(a, shape).ravel() for a in arrays]
    out = [fn(*xs) for xs in zip(*bs)]
    return obj_array(out, shape)


__all__ = [
    "absolute",
    "add",
    "cast",
    "ceil",
    "div",
    "dmax",
    "dmin",
    "elementwise",
    "equal",
    "floor",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "mod",
    "mul",
    "neg",
    "power",
    "sqrt",
    "sub",
    "where",
    "wrap_int",
]
