"""Comparison: outputs against the original's, with tolerances suited to each dtype."""

from __future__ import annotations

import math

import numpy as np

from .options import OutputDiff


def _leaves(x, out: list, sig: list) -> None:
    """Flatten ORT results (tensors, sequences, maps) into arrays plus a structure signature."""
    if isinstance(x, dict):
        sig.append(("map", tuple(sorted(map(str, x)))))
        for k in sorted(x, key=str):
            _leaves(x[k], out, sig)
    elif isinstance(x, (list, tuple)):
        sig.append(("seq", len(x)))
        for e in x:
            _leaves(e, out, sig)
    else:
        sig.append("t")
        out.append(np.asarray(x))


def _compare_arrays(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float):
    """(max_abs, max_rel, ok, note) for one pair of arrays."""
    if ref.shape != got.shape:
        return math.inf, math.inf, False, f"shape {list(got.shape)} != {list(ref.shape)}"
    if ref.dtype != got.dtype:
        return math.inf, math.inf, False, f"dtype {got.dtype} != {ref.dtype}"
    if ref.size == 0:
        return 0.0, 0.0, True, ""
    if ref.dtype.kind in "OUS":
        same = bool(np.array_equal(ref, got))
        return (0.0, 0.0, True, "") if same else (math.inf, math.inf, False, "strings differ")
    if ref.dtype.kind in "biu":
        d = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        ok = bool(np.array_equal(ref, got))
        mag = np.maximum(np.abs(ref.astype(np.float64)), np.abs(got.astype(np.float64)))
        return float(d.max()), _max_rel(d, mag, 0.0), ok, ""
    kind = np.complex128 if ref.dtype.kind == "c" else np.float64
    a, b = ref.astype(kind), got.astype(kind)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    nan_bad = int(np.count_nonzero(nan_a != nan_b))
    infs = (np.isinf(a) | np.isinf(b)) & ~(nan_a | nan_b)
    inf_bad = int(np.count_nonzero(infs & (a != b)))
    finite = ~(nan_a | nan_b | infs)
    d = np.abs(a[finite] - b[finite])
    mag = np.abs(a[finite])
    max_abs = float(d.max()) if d.size else 0.0
    max_rel = _max_rel(d, np.maximum(mag, np.abs(b[finite])), atol)
    bad = int(np.count_nonzero(d > atol + rtol * mag))
    notes = []
    if nan_bad:
        notes.append(f"NaN at {nan_bad} position(s) in one model only")
    if inf_bad:
        notes.append(f"inf differs at {inf_bad} position(s)")
    if bad:
        notes.append(f"{bad} of {ref.size} element(s) out of tolerance")
    if nan_bad or inf_bad:
        max_abs = math.inf
    return max_abs, max_rel, not (nan_bad or inf_bad or bad), "; ".join(notes)


def _max_rel(d: np.ndarray, mag: np.ndarray, floor: float) -> float:
    keep = mag > floor
    if not np.any(keep):
        return 0.0
    return float((d[keep] / mag[keep]).max())


def compare_output(name: str, binding: dict, ref, got, atol: float, rtol: float) -> OutputDiff:
    """One output of the optimized model (``got``) against the original's (``ref``) at one
    binding: tensors, sequences and maps leaf by leaf, within ``atol``/``rtol``."""
    ra: list = []
    rs: list = []
    ga: list = []
    gs: list = []
    _leaves(ref, ra, rs)
    _leaves(got, ga, gs)
    if rs != gs:
        return OutputDiff(name, dict(binding), math.inf, math.inf, False,
                          "structure differs (sequence/map lengths or keys)")
    max_abs = max_rel = 0.0
    ok = True
    notes = []
    for a, b in zip(ra, ga):
        ma, mr, good, note = _compare_arrays(a, b, atol, rtol)
        max_abs, max_rel = max(max_abs, ma), max(max_rel, mr)
        ok = ok and good
        if note:
            notes.append(note)
    return OutputDiff(name, dict(binding), max_abs, max_rel, ok, "; ".join(notes))


def _fmt_binding(binding: dict) -> str:
    if not binding:
        return "the static shapes"
    return "{" + ", ".join(f"{k}={v}" for k, v in binding.items()) + "}"
