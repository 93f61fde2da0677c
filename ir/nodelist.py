"""An ordered node container that stays valid while nodes are inserted and erased mid-iteration.

A doubly linked list of links with a sentinel; a node holds its current link (``Node._link``).
A link belongs to one stay of its node in one list: taking a node out empties its link but keeps
the link's forward pointer, so an iterator standing on it continues with the node that followed
it; putting the node back (elsewhere in this list, or in another graph's) gives it a *new* link.
An iterator therefore never follows a moved node into its new place or another list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:
    from .core import Node


# Nodes handed out by every NodeList iteration so far, and by worklists that report theirs
# (:func:`add_visits`). The pass manager records its growth during a pass as the pass's node
# visits: a pass that sweeps the whole graph each round shows it, an incremental one does not.
_visits = [0]


def node_visits() -> int:
    """Node visits so far in this process (iterations of node lists plus reported ones)."""
    return _visits[0]


def add_visits(n: int) -> None:
    """Count ``n`` node visits made without iterating a node list (a worklist's pops)."""
    _visits[0] += n


class _Link:
    __slots__ = ("node", "prev", "next")

    def __init__(self, node: Optional["Node"]):
        self.node = node  # None: the sentinel, or a link whose node was taken out
        self.prev = self
        self.next = self


class NodeList:
    """Nodes of one graph, in order."""

    __slots__ = ("_root", "_len")

    def __init__(self):
        self._root = _Link(None)
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator["Node"]:
        root = self._root
        link = root.next
        k = 0  # counted locally, added once: the loop is every pass's hot path
        try:
            while link is not root:
                n = link.node
                if n is not None:
                    k += 1
                    yield n
                link = link.next
        finally:
            _visits[0] += k

    def __reversed__(self) -> Iterator["Node"]:
        root = self._root
        link = root.prev
        while link is not root:
            n = link.node
            if n is not None:
                _visits[0] += 1  # per node: backward walks are rare, forward ones are hot
                yield n
            link = link.prev

    def where(self, since: int, keep=frozenset()) -> Iterator["Node"]:
        """The nodes stamped after ``since`` (``ir.core.clock``) or in ``keep``, in order; only
        those count as visits (a node passed over by its stamp is not examined). ``keep`` may
        grow during the walk: nodes added ahead of the walk are handed out."""
        link = self._root.next
        root = self._root
        while link is not root:
            n = link.node
            if n is not None and (n._stamp > since or n in keep):
                _visits[0] += 1
                yield n
            link = link.next

    def first(self):
        """The first node, or None."""
        return self._root.next.node

    def last(self):
        """The last node, or None."""
        return self._root.prev.node

    def _link_after(self, anchor: _Link, node) -> None:
        link = _Link(node)
        nxt = anchor.next
        link.prev = anchor
        link.next = nxt
        anchor.next = link
        nxt.prev = link
        node._link = link
        self._len += 1

    def append(self, node) -> None:
        """Add at the end (lifting's hot path: :meth:`_link_after`, inlined)."""
        root = self._root
        last = root.prev
        link = _Link.__new__(_Link)
        link.node = node
        link.prev = last
        link.next = root
        last.next = root.prev = node._link = link
        self._len += 1

    def insert_after(self, anchor, node) -> None:
        """Add right after ``anchor`` (None means at the front)."""
        self._link_after(self._root if anchor is None else anchor._link, node)

    def insert_before(self, anchor, node) -> None:
        """Add right before ``anchor`` (None means at the end)."""
        self._link_after((self._root if anchor is None else anchor._link).prev, node)

    def unlink(self, node) -> None:
        """Take a node out; its old link keeps pointing forward for iterators standing on it."""
        link = node._link
        link.prev.next = link.next
        link.next.prev = link.prev
        link.node = None
        node._link = None
        self._len -= 1


__all__ = ["NodeList"]
