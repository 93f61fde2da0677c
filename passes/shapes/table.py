"""The shape-function table: one function per ``(domain, op_type)``.

A shape function receives a :class:`~onnxopt.passes.shapes.context.NodeCtx` and sets the types (and,
for small tensors, the element values) of the node's outputs through it. An output it does not set
stays unknown; the function never guesses.
"""

from __future__ import annotations

from collections.abc import Callable

_TABLE: dict[tuple[str, str], Callable] = {}


def shape_fn(domain: str, *ops: str) -> Callable:
    """Register the decorated function for ``ops`` of ``domain`` ("" is the standard domain)."""
    dom = domain

    def deco(fn: Callable) -> Callable:
        for op in ops:
            _TABLE[(dom, op)] = fn
        return fn

    return deco


def lookup(domain: str, op_type: str):
    """The shape function of an op, or None."""
    return _TABLE.get((domain, op_type))


def covered(domain: str = "") -> list[str]:
    """Op types of ``domain`` that have a shape function, sorted."""
    return sorted(op for d, op in _TABLE if d == domain)


__all__ = ["covered", "lookup", "shape_fn"]
