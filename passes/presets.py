"""Named pipelines. ``--preset NAME`` and a bare ``NAME`` in ``-p`` expand to these."""

from __future__ import annotations

PRESETS: dict[str, str] = {
    # Folding, algebraic simplification and cleanup, to a fixed point. fuse joins as it lands.
    "default": "fixpoint(fold,simplify,identity,dce,cse){max=8}",
}

SUMMARIES: dict[str, str] = {
    "default": "the standard optimization pipeline, run to a fixed point",
}

__all__ = ["PRESETS", "SUMMARIES"]
