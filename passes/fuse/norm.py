"""Normalization fusions: LayerNormalization (opset 17) and RMSNormalization (opset 23) from
their decomposed forms, with epsilon, axes, scale and bias recovered.

Both compute the same formula in the same order as the decomposition (mean, centred square,
mean, + eps, sqrt, divide); the fused op may accumulate in float32 for float16 inputs
(``stash_type=1``), which is more accurate than the decomposition, never less.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..rewrite import Const, Match, Op, Opt, Or, Rule
from ._common import FLOATS, axes_of, scalar, trailing_axes


def _norm_patterns(centered: Op, value: str, ms_axes: str) -> list[Op]:
    """Root patterns for ``centered / sqrt(mean(centered^2) + eps)`` optionally ``* gamma`` and
    ``+ beta``; ``value`` is the name ``centered`` binds (reused in the square)."""
    sq = Or(Op("Pow", value, Const("two"), name="sq"), Op("Mul", value, value, name="sq"))
    ms = Op("ReduceMean", sq, Opt(Const(ms_axes)), name="ms")
    std = Op("Sqrt", Op("Add", ms, Const("eps"), commutative=True, name="ms_eps"), name="std")
    norms = [Op("Div", centered, std, name="norm"),
             Op("Mul", centered, Op("Reciprocal", std, name="rstd"), name="norm",
                commutative=True)]
    out = []
    for norm in norms:
        scaled = Op("Mul", norm, "gamma", commutative=True, name="scaled")
        out.append(Op("Add", scaled, "beta", commutative=True, name="out"))
    for norm in norms:
        out.append(Op("Mul", norm, "gamma", commutative=True, name="out"))
    return out + norms


def _reduced_axes(m: Match, node: str, axes_name: str) -> Optional[list[int]]:
    n = m.node(node)
    if not int(m.attr(n, "keepdims") if m.attr(n, "keepdims") is not None else 1):
        return None
    return axes_of(m, node, axes_name)


def _param(m: Match, name: str, norm_dims: list) -> tuple[Optional[object], str]:
    """gamma/beta as a value of exactly the normalized shape: the value itself, a constant
    reshaped or broadcast to it, or (None, reason)."""
    v = m.get(name)
    if v is None:
        return None, ""
    c = m.const(name)
    shape = tuple(c.shape) if c is not None else m.shape(name)
    if shape is None:
        return None, f"shape of {name} unknown"
    rank, k = m.rank("x"), len(norm_dims)
    if rank is None or len(shape) > rank:
        return None, f"{name} could broadcast the rank of the input up"
    if any(d != 1 for d in shape[:-k]) if len(shape) > k else False:
        return None, f"{name} varies along non-normalized axes"
    if len(shape) == k and all(m.shapes.dims_equal(a, b) for a, b in zip(shape, norm_dims)):
        return v, ""
    if c is not None and all(type(d) is int for d in norm_dims):
        tail = (1,) * max(k - len(shape), 0) + shape[-k:]
        if all(t in (1, n) for t, n in zip(tail, norm_dims)):
            return np.broadcast_to(c.reshape(tail), norm_dims).copy(), ""
    return None, f"{name} shape {shape} is not provably the normalized shape {tuple(norm_dims)}"


class _Norm(Rule):
    # long: the one plan LayerNorm and RMSNorm share (type, trailing axes, exponent 2, eps,
    #   scale/bias shapes); split, both rules would repeat it
    """Shared checks: float type, trailing axes, exponent 2, scalar eps, scale/bias shapes."""

    def plan(self, m: Match):
        """(axis, eps, scale, bias, normalized dims) or a reason string (worked out once for
        the check and the rewrite)."""
        return m.once("plan", lambda: self._plan(m))

    def _plan(self, m: Match):
        dtype = m.dtype("x") or m.dtype("eps")
        if dtype not in FLOATS:
            return "input is not a float tensor"
        axes = _reduced_axes(m, "ms", "ms_axes")
        if not axes:
            return "mean of squares: axes not constant, empty, or keepdims=0"
        if m.get("mean") is not None:
            mean = _reduced_axes(m, "mean", "mean_axes")
            if mean is None or sorted(mean) != sorted(axes):
                return "the two ReduceMeans reduce different axes"
        rank = m.rank("x")
        k = trailing_axes(axes, rank)
        if k is None:
            return f"axes {axes} are not the trailing axes"
        if m.get("two") is not None and scalar(m.const("two")) != 2.0:
            return "exponent is not 2"
        eps = scalar(m.const("eps"))
        if eps is None or not np.isfinite(eps) or eps < 0:
            return "epsilon is not a non-negative scalar"
        for c in ("two", "eps"):
            cv = m.const(c)
            if cv is not None and cv.ndim > 0 and (rank is None or cv.ndim > rank):
                return f"{c} constant could broadcast the rank up"
        shape = m.shape("x")
        if shape is None or len(shape) < k:
            return "shape of the normalized axes unknown"
        norm_dims = list(shape[len(shape) - k:])
        if 0 in norm_dims:  # empty rows: the decomposition gives an empty result, the fused
            return "a normalized dim is 0"  # ops are refused by onnxruntime
        scale, why = _param(m, "gamma", norm_dims)
        if why:
            return why
        bias, why = _param(m, "beta", norm_dims)
        if why:
            return why
        if scale is None and not all(type(d) is int for d in norm_dims):
            return "no scale and the normalized shape is not static"
        for p in ("gamma", "beta"):
            if m.get(p) is not None and m.dtype(p) != dtype:
                return f"{p} has another element type"
        return (-k, float(eps), scale, bias, norm_dims)

    def check(self, m: Match) -> Optional[str]:
        p = self.plan(m)
        return p if isinstance(p, str) else None

    def inputs(self, m: Match, b, scale, bias, norm_dims):
        from ...ir import np_dtype

        dt = np_dtype(m.dtype("x") or m.dtype("eps"))
        if scale is None:
            scale = np.ones(norm_dims, dt)
        ins = [m["x"], scale if not isinstance(scale, np.ndarray) else b.const(scale.astype(dt))]
        if bias is not None:
            ins.append(bias if not isinstance(bias, np.ndarray) else b.const(bias.astype(dt)))
        return ins


_LN_CENTERED = Op("Sub", "x", Op("ReduceMean", "x", Opt(Const("mean_axes")), name="mean"),
                  name="d")


class LayerNorm(_Norm):
    """ReduceMean, Sub, Pow 2 (or d*d), ReduceMean, Add eps, Sqrt, Div (or Mul Reciprocal),
    optional Mul gamma, optional Add beta -> LayerNormalization(axis=-k, epsilon=eps). Both
    ReduceMeans reduce the same trailing axes with keepdims=1; gamma and beta have exactly the
    normalized shape (leading 1s allowed) so broadcasting does not change the output shape."""

    name = "layer_norm"
    summary = "LayerNormalization from ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(/Mul/Add)"
    opset = 17
    benefit = 10
    pattern = _norm_patterns(_LN_CENTERED, "d", "ms_axes")

    def rewrite(self, m: Match, b):
        axis, eps, scale, bias, dims = self.plan(m)
        return b.op("LayerNormalization", self.inputs(m, b, scale, bias, dims),
                    {"axis": axis, "epsilon": eps})


class RMSNorm(_Norm):
    """x / sqrt(mean(x^2) + eps) (or x * Reciprocal(...)) optionally * gamma ->
    RMSNormalization(axis=-k, epsilon=eps); same constraints as layer_norm, no bias."""

    name = "rms_norm"
    summary = "RMSNormalization from Pow/ReduceMean/Add/Sqrt/Div(or Reciprocal+Mul)/Mul"
    opset = 23
    benefit = 9
    pattern = [p for p in _norm_patterns("x", "x", "ms_axes") if p.op_types != ("Add",)]

    def rewrite(self, m: Match, b):
        axis, eps, scale, _, dims = self.plan(m)
        return b.op("RMSNormalization", self.inputs(m, b, scale, None, dims),
                    {"axis": axis, "epsilon": eps})


RULES = [LayerNorm(), RMSNorm()]

__all__ = ["RULES", "LayerNorm", "RMSNorm"]
