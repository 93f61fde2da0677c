"""A rewrite rule: a pattern, a check that says why it refuses, a rewrite that builds the
replacement (see the package's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional, Sequence, Union

from ...ir import Builder, Value
from .patterns import Op

if TYPE_CHECKING:
    from .match import Match


class Rule:
    """A rewrite rule. Subclass and set ``name``, ``summary``, ``pattern`` (one :class:`Op` or a
    sequence of them, all with root ops), ``opset`` (the minimum default-domain opset of the ops
    the rewrite creates) and ``benefit`` (rules on the same root are tried by decreasing benefit);
    implement :meth:`check` and :meth:`rewrite`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    pattern: ClassVar[Union[Op, Sequence[Op]]] = ()
    opset: ClassVar[int] = 1
    benefit: ClassVar[int] = 1

    def patterns(self) -> tuple[Op, ...]:
        """The rule's root patterns."""
        p = self.pattern
        return (p,) if isinstance(p, Op) else tuple(p)

    def check(self, m: Match) -> Optional[str]:
        """A reason to refuse the match, or None to accept. Must not change the IR."""
        return None

    def rewrite(self, m: Match, b: Builder) -> Union[Value, Sequence[Value]]:
        """Build the replacement; return the values replacing the root's outputs."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


class NotApplicable(str):
    """A check's answer meaning "this is not the pattern at all" rather than a near-miss, for
    rules whose structure is checked in code (traced only with ``-vv``)."""


__all__ = ["Rule", "NotApplicable"]
