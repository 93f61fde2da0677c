"""User constraints on freed sizes: ``height%16==0`` and ``seq<=7``.

Some exports are repairable only for some sizes, and the file cannot say which:

- a window-partition model splits ``height`` into ``floor(height/4)/4`` windows, a whole number
  only when height is a multiple of 16: ``--constraint 'height%16==0'`` lets the repair assume
  it (the proof runs with ``height = 16*q``), and the run check picks multiples of 16;
- a table the exporter folded at the trace length (positions, rotary cos/sin, a relative bias)
  has lost its rows beyond T: ``--constraint 'seq<=7'`` allows the **bounded repair** that slices
  the folded rows to the runtime length (right when row i depends on position i only, as in
  every position table; the refusal without it says so).

Each constraint is recorded in the model's metadata (``onnxopt.dynamize.constraints``) and in
the report. A constraint on a dim that is not freed, one the trace size breaks, a modulus or
bound below 1, or a malformed one is a one-line usage error (exit 2, nothing written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .spec import DynamizeUsageError

_FORM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:%\s*(-?\d+)\s*==\s*0|<=\s*(-?\d+))\s*\Z")
METADATA_KEY = "onnxopt.dynamize.constraints"
BOUNDS_KEY = "onnxopt.dynamize.bounds"


@dataclass(frozen=True)
class Constraint:
    """``symbol % value == 0`` (kind ``mod``) or ``symbol <= value`` (kind ``le``)."""

    symbol: str
    kind: str
    value: int

    def __str__(self) -> str:
        return f"{self.symbol}%{self.value}==0" if self.kind == "mod" else \
            f"{self.symbol}<={self.value}"


def parse_constraints(text: str) -> list[Constraint]:
    """``NAME%M==0`` / ``NAME<=N`` items joined with ``;`` (syntax only)."""
    out = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        m = _FORM.match(part)
        if not m:
            raise DynamizeUsageError(f"dynamize: --constraint {part!r}: expected NAME%M==0 "
                                     "(a multiple of M) or NAME<=N (at most N)")
        name, mod, le = m.groups()
        kind, value = ("mod", int(mod)) if mod is not None else ("le", int(le))
        if value <= 0:
            what = "a modulus" if kind == "mod" else "a bound"
            raise DynamizeUsageError(f"dynamize: --constraint {part!r}: {what} must be a "
                                     f"positive whole number, not {value}")
        out.append(Constraint(name, kind, value))
    return out


def check_constraints(cons: list[Constraint], trace: dict[str, int]) -> None:
    """Every constraint names a freed symbol and holds at the trace size."""
    for c in cons:
        if c.symbol not in trace:
            freed = ", ".join(sorted(trace)) or "none"
            raise DynamizeUsageError(f"dynamize: --constraint '{c}': {c.symbol} is not a freed "
                                     f"dim (freed: {freed})")
        t = trace[c.symbol]
        if c.kind == "mod" and t % c.value:
            raise DynamizeUsageError(f"dynamize: --constraint '{c}': the trace {c.symbol} is "
                                     f"{t}, not a multiple of {c.value}")
        if c.kind == "le" and t > c.value:
            raise DynamizeUsageError(f"dynamize: --constraint '{c}': the trace {c.symbol} is "
                                     f"{t}, above {c.value}")


def suggest_equal(alg, a, b) -> str | None:
    """The constraints under which dims ``a`` and ``b`` are provably equal (``floor(height/2)``
    and ``4*floor(height/8)`` when 8 divides height), as :func:`suggest_modulus` finds them."""
    return _search(alg, alg.symbols_of(a) | alg.symbols_of(b), lambda: alg.eq(a, b))


def suggest_modulus(alg, d) -> str | None:
    """The constraints that would make ``d`` (``floor(height/4)/4``, ``batch*height*width/1024``)
    a whole number at every size: the smallest modulus, shared by the symbols whose trace size
    it divides, that proves it. None when no such modulus does."""
    return _search(alg, alg.symbols_of(d), lambda: alg.integral(alg.expr(d)))


def _search(alg, symbols, holds) -> str | None:
    """The smallest modulus m, assumed of every freed symbol whose trace size it divides, under
    which ``holds()``; the constraints as --constraint text, or None."""
    syms = sorted(symbols & alg.freed)
    if not syms:
        return None
    top = max(alg.binding[s] for s in syms)
    saved = dict(alg.modulus)
    try:
        for m in range(2, top + 1):
            which = [s for s in syms if alg.binding[s] % m == 0]
            if not which:
                continue
            alg.modulus = dict(saved)
            alg._sub = None
            for s in which:
                alg.assume_multiple(s, m)
            if holds():
                return "' --constraint '".join(f"{s}%{alg.modulus[s]}==0" for s in which)
    finally:
        alg.modulus = saved
        alg._sub = None
    return None


def record(model, cons: list[Constraint], bounds: dict[str, int]) -> None:
    """Keep the constraints the repair relied on, and the largest sizes it found the model
    serves (a 64-row position table, a relative bias folded at 7), in the model's metadata."""
    if cons:
        model.metadata_props[METADATA_KEY] = "; ".join(str(c) for c in cons)
    if bounds:
        model.metadata_props[BOUNDS_KEY] = "; ".join(f"{s}<={n}" for s, n in sorted(
            bounds.items()))


__all__ = ["BOUNDS_KEY", "METADATA_KEY", "Constraint", "check_constraints", "parse_constraints", "record",
           "suggest_equal", "suggest_modulus"]
