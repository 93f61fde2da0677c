"""Helpers shared by the shape functions: broadcasting, axes, attribute-or-input lists."""

from __future__ import annotations

from collections.abc import Sequence

from ...ir import Shape
from . import dims as D
from .context import NodeCtx


def norm_axis(axis: int, rank: int) -> int | None:
    """A non-negative axis (None when out of range)."""
    a = axis + rank if axis < 0 else axis
    return a if 0 <= a < rank else None


def broadcast(n: NodeCtx, shapes: Sequence[Shape | None], why: str = "broadcast"):
    """Numpy (multidirectional) broadcasting of ``shapes``; None when a rank is unknown.

    Per axis: 1s drop out; equal dims are kept; a static dim wins over symbolic ones (they must
    be it or 1: recorded as a constraint); two static dims other than 1 that differ are a
    contradiction; symbolic dims that are not provably equal give ``Max(a, b)``, which is exact
    for every valid binding (each is either the other or 1).
    """
    if None in shapes:
        return None
    if len(shapes) == 1:
        return list(shapes[0])
    if len(shapes) == 2:
        return _broadcast2(n, shapes[0], shapes[1], why)
    r = max(len(s) for s in shapes)
    out = []
    for k in range(r):
        ds = []
        for s in shapes:
            j = k - (r - len(s))
            if j >= 0:
                ds.append(s[j])
        # An axis only one shape has is that shape's dim (what _bdim gives one dim).
        out.append(ds[0] if len(ds) == 1 else _bdim(n, ds, why))
    return out


def _broadcast2(n: NodeCtx, a, b, why: str) -> list:
    """``broadcast`` of two shapes (most calls), without building a dim list per axis."""
    if a == b:
        return list(a)  # what _bdim gives each axis of equal shapes
    la, lb = len(a), len(b)
    # The leading axes only the longer shape has are its dims (what _bdim gives one dim).
    if la >= lb:
        out, a = list(a[:la - lb]), a[la - lb:]
    else:
        out, b = list(b[:lb - la]), b[lb - la:]
    for x, y in zip(a, b):
        out.append(x if x is y and x is not None else _bdim(n, [x, y], why))
    return out


def _bdim(n: NodeCtx, ds: list, why: str):
    first = ds[0]
    if first is not None:
        for d in ds:
            if d is not first and not d == first:
                break
        else:
            return first
    known = [d for d in ds if not (type(d) is int and d == 1)]
    if not known:
        return 1
    statics = {d for d in known if type(d) is int}
    if len(statics) > 1:
        n.error(f"{why}: dims {' vs '.join(str(d) for d in sorted(statics))} cannot broadcast")
        return None
    syms = [d for d in known if d is not None and type(d) is not int]
    has_unknown = any(d is None for d in known)
    if statics:
        s = next(iter(statics))
        for d in syms:
            if not D.eq(d, s):
                n.inf.constraint(d, s, "== or 1", n.node, why)
        return s
    if has_unknown:
        return None
    uniq: list = []
    for d in syms:
        if not any(D.eq(d, u) for u in uniq):
            uniq.append(d)
    if len(uniq) == 1:
        return uniq[0]
    out = uniq[0]
    for d in uniq[1:]:
        n.inf.constraint(uniq[0], d, "== or 1", n.node, why)
        out = D.dmax(out, d)
    return out


def ints_arg(n: NodeCtx, attr: str, index: int) -> tuple[bool, list | None]:
    """A list given as an attribute (older opsets) or as input ``index`` (newer).

    Returns (present, values): present is False when neither is given; values is None when the
    input exists but its values are unknown.
    """
    if n.has_attr(attr):
        v = n.attr(attr)
        return True, list(v) if v is not None else None
    if n.has(index):
        return True, n.ints(index)
    return False, None


def shape_or_none(dims) -> list | None:
    """A list of dims, or None."""
    return None if dims is None else list(dims)


__all__ = ["broadcast", "ints_arg", "norm_axis", "shape_or_none"]
