"""Helpers shared by the fusion rules: dtype sets, scalar constants, per-channel constants."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ...ir import Node
from ..rewrite import Match

FLOAT, FLOAT16, DOUBLE, BFLOAT16, BOOL = 1, 10, 11, 16, 9
FLOATS = (FLOAT, FLOAT16, DOUBLE, BFLOAT16)
INTS = (2, 3, 4, 5, 6, 7, 12, 13)

# Relative tolerance for recognising a float constant (sqrt(2), 1/6...) stored in each dtype.
_REL = {FLOAT: 4e-7, DOUBLE: 1e-12, FLOAT16: 2e-3, BFLOAT16: 1.6e-2}


def scalar(c: Optional[np.ndarray]) -> Optional[float]:
    """The single element of a one-element constant, else None."""
    if c is None or c.size != 1:
        return None
    return c.reshape(()).item()


def is_close(c: Optional[np.ndarray], target: float, dtype: Optional[int] = None) -> bool:
    """True when ``c`` has one element equal to ``target`` up to the storage precision."""
    x = scalar(c)
    if x is None:
        return False
    rel = _REL.get(dtype or FLOAT, 4e-7)
    return abs(float(x) - target) <= rel * max(abs(target), 1e-30)


def scalar_fits(m: Match, c: Optional[np.ndarray], x: str) -> bool:
    """A one-element constant that broadcasts against ``x`` without changing its shape."""
    if c is None or c.size != 1:
        return False
    if c.ndim == 0:
        return True
    r = m.rank(x)
    return r is not None and c.ndim <= r


def channel_vector(c: np.ndarray, rank: int, channels: int) -> Optional[np.ndarray]:
    """``c`` as a length-``channels`` vector when it broadcasts along axis 1 only of a rank-``rank``
    tensor with ``channels`` channels (so the broadcast result keeps that tensor's shape)."""
    if c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(shape) if i != 1):
        return None
    if shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)) if shape[1] == channels \
        else np.full((channels,), c.reshape(()).item(), dtype=c.dtype)


def attrs_of(node: Node, drop: Sequence[str] = (), **overrides: Any) -> dict:
    """A node's attributes (as Attr objects, so unchanged ones lower to the same protos) with
    some dropped or replaced."""
    out: dict[str, Any] = {k: a for k, a in node.attributes.items() if k not in drop}
    out.update(overrides)
    return out


def axes_of(m: Match, node: str, axes_input: str) -> Optional[list[int]]:
    """Axes of a Reduce*/Squeeze/Unsqueeze: the attribute (older opsets) or a constant input.
    None when they are dynamic; [] when absent."""
    n = m.node(node)
    a = n.attributes.get("axes")
    if a is not None:
        return [int(x) for x in a.value]
    if m.get(axes_input) is None:
        return []
    c = m.const(axes_input)
    if c is None:
        return None
    return [int(x) for x in c.reshape(-1)]


def trailing_axes(axes: Sequence[int], rank: Optional[int]) -> Optional[int]:
    """k when ``axes`` are exactly the last k axes (as negatives, or with a known rank)."""
    if not axes or len(set(axes)) != len(axes):
        return None
    k = len(axes)
    if all(a < 0 for a in axes):
        return k if sorted(axes) == list(range(-k, 0)) else None
    if rank is None:
        return None
    norm = sorted(a + rank if a < 0 else a for a in axes)
    return k if norm == list(range(rank - k, rank)) else None


def np_type(dtype: int):
    """The numpy type of an ONNX float/int dtype."""
    from ...ir import np_dtype

    return np_dtype(dtype)


__all__ = ["FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16", "BOOL", "FLOATS", "INTS", "scalar",
           "is_close", "scalar_fits", "channel_vector", "attrs_of", "axes_of", "trailing_axes",
           "np_type"]
