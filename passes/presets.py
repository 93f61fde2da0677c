"""Named pipelines. ``--preset NAME`` and a bare ``NAME`` in ``-p`` expand to these."""

from __future__ import annotations

PRESETS: dict[str, str] = {
    # Cleanup to a fixed point. Later passes (fold, simplify, fuse) join as they land.
    "default": "fixpoint(identity,dce,cse){max=8}",
}

SUMMARIES: dict[str, str] = {
    "default": "the standard optimization pipeline, run to a fixed point",
}

__all__ = ["PRESETS", "SUMMARIES"]
