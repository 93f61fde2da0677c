"""An ordered node container that stays valid while nodes are inserted and erased mid-iteration.

A doubly linked list through ``Node._prev``/``Node._next`` with a sentinel. An erased node keeps
its forward link, so an iterator standing on it continues with the node that followed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .core import Node


class _Sentinel:
    __slots__ = ("_prev", "_next", "_erased")

    def __init__(self):
        self._prev = self
        self._next = self
        self._erased = False


class NodeList:
    """Nodes of one graph, in order."""

    __slots__ = ("_root", "_len")

    def __init__(self):
        self._root = _Sentinel()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator["Node"]:
        root = self._root
        n = root._next
        while n is not root:
            if not n._erased:
                yield n
            n = n._next

    def __reversed__(self) -> Iterator["Node"]:
        root = self._root
        n = root._prev
        while n is not root:
            if not n._erased:
                yield n
            n = n._prev

    def first(self):
        """The first node, or None."""
        n = self._root._next
        return None if n is self._root else n

    def last(self):
        """The last node, or None."""
        n = self._root._prev
        return None if n is self._root else n

    def _link_after(self, anchor, node) -> None:
        nxt = anchor._next
        node._prev = anchor
        node._next = nxt
        anchor._next = node
        nxt._prev = node
        node._erased = False
        self._len += 1

    def append(self, node) -> None:
        """Add at the end."""
        self._link_after(self._root._prev, node)

    def insert_after(self, anchor, node) -> None:
        """Add right after ``anchor`` (None means at the front)."""
        self._link_after(self._root if anchor is None else anchor, node)

    def insert_before(self, anchor, node) -> None:
        """Add right before ``anchor`` (None means at the end)."""
        self._link_after((self._root if anchor is None else anchor)._prev, node)

    def unlink(self, node) -> None:
        """Take a node out; its forward link survives for iterators standing on it."""
        node._prev._next = node._next
        node._next._prev = node._prev
        node._erased = True
        self._len -= 1


__all__ = ["NodeList"]
