"""Input generation: seeded feeds the model can actually take."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .common import _BOOL, _INEXACT, _SAMPLE_RATE_NAMES, _STRING, _UINT8
from .facts import _Hints


@dataclass
class _Input:
    name: str
    dtype: int
    dims: list          # int (fixed) or str (symbol)
    hints: _Hints


def _np_dtype(dtype: int):
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(dtype)


def onnx_dtype(np_dtype) -> int:
    """The ONNX element type of a numpy dtype (0 when ONNX has none)."""
    from onnx import helper

    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))
    except (TypeError, KeyError, ValueError):
        return 0


def _is_float(dtype: int) -> bool:
    return dtype in _INEXACT


def _resolve(d, binding: dict) -> Optional[int]:
    if isinstance(d, int):
        return d
    v = binding.get(d)
    return int(v) if v is not None else None


def _index_range(inp: _Input, binding: dict, scalar: bool) -> Optional[tuple[int, int]]:
    """[lo, hi) for an index-like input, or None."""
    lo, hi = None, None
    bounds = [b for b in (_resolve(d, binding) for d in inp.hints.index_hi) if b]
    if bounds:
        lo, hi = 0, min(bounds)
    if not scalar and not _is_float(inp.dtype):  # float thresholds are no range
        for values in inp.hints.compared:
            # min and max, not np.unique: that imports numpy.ma, 20 ms of a small model's run.
            vals = np.asarray(values).reshape(-1)
            if vals.size < 2 or not np.all(np.isfinite(vals.astype(np.float64))):
                continue
            vmin, vmax = vals.min(), vals.max()
            if vmin < vmax:  # at least two distinct values
                clo, chi = math.ceil(vmin), math.floor(vmax) + 1
                lo = clo if lo is None else max(lo, clo)
                hi = chi if hi is None else min(hi, chi)
    if lo is None or hi is None or hi <= lo:
        return None
    return lo, hi


def _choices(inp: _Input) -> list:
    out: list = []
    for values in inp.hints.compared:
        for v in values.tolist():
            if v not in out:
                out.append(v)
    return out


def _generated_bytes(dtype: int) -> int:
    """Bytes per element that :func:`_generate` allocates at its peak: numpy draws float64 or
    int64 values, then casts them to the input's type (a second array); strings are objects."""
    if dtype == _STRING:
        return 64
    return 8 + max(1, _np_dtype(dtype).itemsize)


def _generate(inp: _Input, shape: tuple, binding: dict, rng, cand: int,
              ranges: dict) -> np.ndarray:
    """Seeded values for one input that the model can take (see the module docstring)."""
    dt = _np_dtype(inp.dtype)
    size = math.prod(shape)
    lname = inp.name.lower()
    if inp.dtype == _STRING:
        return np.array([f"s{int(x)}" for x in rng.integers(0, 8, size)],
                        dtype=object).reshape(shape)
    if "mask" in lname and inp.name not in ranges:
        # mostly kept, and never a row masked out entirely (softmax of all -inf is NaN)
        m = rng.random(shape) < 0.8
        if len(shape) and shape[-1] > 0:
            m[..., 0] = True
        return m.astype(dt)
    if inp.dtype == _BOOL:
        return rng.random(shape) < 0.5
    if inp.name in ranges:
        lo, hi = ranges[inp.name]
        if _is_float(inp.dtype):
            return rng.uniform(lo, hi, shape).astype(dt)
        return rng.integers(math.ceil(lo), math.floor(hi), shape,
                            endpoint=True).astype(dt)
    # A scalar by declaration (rank 0, or static dims of 1), not a tensor that is 1 by binding.
    scalar = all(isinstance(d, int) for d in inp.dims) and size == 1
    choices = _choices(inp) if scalar else []
    if choices:
        return np.full(shape, choices[cand % len(choices)]).astype(dt)
    idx = _index_range(inp, binding, scalar)
    if idx is not None:
        return rng.integers(idx[0], idx[1], shape).astype(dt)
    if _is_float(inp.dtype):
        return rng.standard_normal(shape).astype(dt)
    if scalar and any(lname == s or lname.endswith("_" + s) for s in _SAMPLE_RATE_NAMES):
        return np.full(shape, 16000).astype(dt)
    if inp.dtype == _UINT8:
        return rng.integers(0, 256, shape).astype(dt)
    return rng.integers(0, 8, shape).astype(dt)
