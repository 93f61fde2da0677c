"""The original's run in a forked child process, beside the passes (:mod:`onnxopt.forked`).

Preparing the original is mostly onnxruntime, which releases the interpreter while it builds a
session and runs it; but building onnxruntime's model, reading the graph's hints and generating
inputs hold it. In a thread beside the passes that slowed them by ~15 % at 50,000 nodes (4.8 s
alone, 5.7 s beside the thread, 4.9 s beside a forked child). A child also cannot take the
parent down if onnxruntime crashes on a hostile original: the parent then prepares in-process,
as it would have without a child.
"""

from __future__ import annotations

from ..forked import Forked, can_fork


class ChildRun:
    """``verifier.prepare()`` in a forked child; :meth:`collect` adopts what it made."""

    def __init__(self, verifier):
        self.verifier = verifier
        self.forked = Forked(verifier.prepare)

    def collect(self) -> bool:
        """Wait for the child and adopt its prepared original; False when it failed, died or
        stalled (preparing in-process then raises its error again, or does the work it could
        not)."""
        ok, prep = self.forked.collect()
        if ok:
            self.verifier.adopt(prep)
        return ok


__all__ = ["ChildRun", "can_fork"]
