"""The ``dynamic`` option: which input dims to free, and under which symbol names.

Text form (what ``--dynamic`` gives, several specs joined with ``;``)::

    input_ids:0=batch,1=seq        dims 0 and 1 of input_ids become batch and seq
    x:-1=width                     negative axes count from the end
    batch                          dim 0 of every input becomes batch

Every mistake is a one-line :class:`UsageError` naming the input and dim: an unknown input, a dim
past the rank, a dim that is already dynamic, one symbol for dims of different trace sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...ir.errors import PassError, UsageError
from ...ir import Graph, SymDim, TensorType, Value

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class DynamizeUsageError(UsageError, PassError):
    """A bad ``--dynamic`` spec. Also a PassError so that the pass manager passes it through as
    is (it wraps other errors), keeping the message to one line and the type a UsageError."""


@dataclass(frozen=True)
class Freed:
    """One input dim to free: the input, its axis, the symbol it becomes, its trace size."""

    input: Value
    axis: int
    symbol: str
    trace: int

    def label(self) -> str:
        return f"{self.input.name}:{self.axis}"


def parse_spec(text: str) -> list[tuple[str | None, int | None, str]]:
    """Parse spec text into ``(input name or None, axis or None, symbol)`` items (syntax only)."""
    items: list[tuple[str | None, int | None, str]] = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        if ":" not in part:
            if not _IDENT.match(part):
                raise DynamizeUsageError(
                    f"dynamize: --dynamic {part!r}: expected NAME:AXIS=SYMBOL[,AXIS=SYMBOL...] "
                    "or a bare SYMBOL (dim 0 of every input)")
            items.append((None, None, part))
            continue
        name, _, dims = part.rpartition(":")
        if not name or not dims.strip():
            raise DynamizeUsageError(f"dynamize: --dynamic {part!r}: expected "
                                     "NAME:AXIS=SYMBOL[,AXIS=SYMBOL...]")
        for d in dims.split(","):
            d = d.strip()
            axis_text, eq, sym = d.partition("=")
            axis_text, sym = axis_text.strip(), sym.strip()
            try:
                axis = int(axis_text)
            except ValueError:
                raise DynamizeUsageError(f"dynamize: --dynamic {part!r}: {axis_text!r} is not a "
                                         "dim index") from None
            if not eq:
                sym = f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{axis}"
            if not _IDENT.match(sym):
                raise DynamizeUsageError(f"dynamize: --dynamic {part!r}: symbol {sym!r} must be "
                                         "an identifier (letters, digits, _)")
            items.append((name, axis, sym))
    return items


def resolve(graph: Graph, items: list[tuple[str | None, int | None, str]]) -> list[Freed]:
    """Check the parsed spec against the model's inputs and return the dims to free."""
    if not items:
        raise DynamizeUsageError("dynamize: nothing to free; give --dynamic, e.g. "
                                 "--dynamic x:0=batch (or dynamize{dynamic=x:0=batch})")
    inputs = [v for v in graph.inputs if v.const_value is None]
    by_name = {v.name: v for v in inputs}
    names = ", ".join(str(v.name) for v in inputs) or "none"
    out: dict[tuple[int, int], Freed] = {}

    def add(v: Value, axis: int, sym: str, bare: bool) -> bool:
        t = v.type
        shape = t.shape if isinstance(t, TensorType) else None
        if shape is None:
            raise DynamizeUsageError(f"dynamize: input {v.name!r} has no known shape")
        rank = len(shape)
        a = axis + rank if axis < 0 else axis
        if not 0 <= a < rank:
            if bare:
                return False
            raise DynamizeUsageError(f"dynamize: input {v.name!r} has rank {rank}; it has no dim "
                                     f"{axis}")
        d = shape[a]
        if type(d) is not int:
            if bare:
                return False
            what = f"({d})" if isinstance(d, SymDim) else "(unknown size)"
            raise DynamizeUsageError(f"dynamize: dim {a} of input {v.name!r} is already dynamic "
                                     f"{what}")
        key = (id(v), a)
        old = out.get(key)
        if old is not None and old.symbol != sym:
            raise DynamizeUsageError(f"dynamize: dim {a} of input {v.name!r} is named twice "
                                     f"({old.symbol} and {sym})")
        out[key] = Freed(v, a, sym, d)
        return True

    for name, axis, sym in items:
        if name is None:
            if not any(add(v, 0, sym, True) for v in inputs):
                raise DynamizeUsageError(f"dynamize: --dynamic {sym}: no input has a static dim 0 "
                                         f"to free (inputs: {names})")
            continue
        v = by_name.get(name)
        if v is None:
            raise DynamizeUsageError(f"dynamize: the model has no input {name!r} "
                                     f"(inputs: {names})")
        add(v, axis, sym, False)
    freed = list(out.values())
    sizes: dict[str, Freed] = {}
    for f in freed:
        other = sizes.setdefault(f.symbol, f)
        if other.trace != f.trace:
            raise DynamizeUsageError(
                f"dynamize: symbol {f.symbol!r} names dims of different sizes ({other.label()} is "
                f"{other.trace}, {f.label()} is {f.trace})")
    taken = {str(d) for v in inputs if isinstance(v.type, TensorType) and v.type.shape
             for d in v.type.shape if isinstance(d, SymDim)}
    for f in freed:
        if f.symbol in taken:
            raise DynamizeUsageError(f"dynamize: symbol {f.symbol!r} is already a dim of an input; "
                                     "pick another name")
    return freed


__all__ = ["DynamizeUsageError", "Freed", "parse_spec", "resolve"]
