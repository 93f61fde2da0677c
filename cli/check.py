"""``onnxopt check``: model health and target readiness reports (see issue 11)."""

from __future__ import annotations


def run_check(argv: list[str]) -> int:
    """Entry of ``onnxopt check``."""
    from ..errors import UsageError

    raise UsageError("onnxopt check is not available yet")
