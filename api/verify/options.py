"""What verification is asked (VerifyOptions) and what it answers (VerifyReport, OutputDiff)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .common import _DEFAULT_ATOL, _DEFAULT_RTOL, _INEXACT


@dataclass
class VerifyOptions:
    """How to verify. Tolerances are per ONNX dtype; integer and bool outputs compare exactly."""

    seed: int = 0
    bindings: Optional[list[dict[str, int]]] = None  # explicit symbolic-dim bindings
    feeds: Optional[list[dict[str, np.ndarray]]] = None  # user data; replaces generated inputs
    input_shapes: dict[str, list] = field(default_factory=dict)  # NAME -> dims (ints or symbols)
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # NAME -> (lo, hi)
    atol: dict[int, float] = field(default_factory=lambda: dict(_DEFAULT_ATOL))
    rtol: dict[int, float] = field(default_factory=lambda: dict(_DEFAULT_RTOL))
    atol_override: Optional[float] = None  # for every float output
    rtol_override: Optional[float] = None
    min_bindings: int = 2

    def tolerances(self, dtype: int) -> tuple[float, float]:
        """(atol, rtol) for an output of this ONNX dtype."""
        atol = self.atol.get(dtype, 0.0)
        rtol = self.rtol.get(dtype, 0.0)
        if dtype in _INEXACT:
            if self.atol_override is not None:
                atol = self.atol_override
            if self.rtol_override is not None:
                rtol = self.rtol_override
        return float(atol), float(rtol)


@dataclass
class OutputDiff:
    """One output at one binding.

    ``max_rel`` is the largest ``|a - b| / max(|a|, |b|)`` over elements where that denominator
    is above atol (so a value against 0 counts as 100 %, and noise around 0 does not count).
    """

    name: str
    binding: dict
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


@dataclass
class VerifyReport:
    """The verdict: status "ok" | "failed" | "not verified", with a one-line reason."""

    status: str
    reason: str
    bindings: list[dict[str, int]]
    diffs: list[OutputDiff]
    seconds: float

    @property
    def verified(self) -> bool:
        return self.status == "ok"


ModelSource = Union[str, os.PathLike, bytes, bytearray, Any]
