"""Convolution fusions: BatchNormalization, per-channel Add and Mul folded into Conv weights, and
zero Pad folded into Conv/AveragePool/MaxPool pads.

Folding into weights changes float rounding (the products are computed once, in float64, then
stored in the weight dtype): results agree with the unfused graph to a few ulp, which is within
the verifier's float tolerances.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..rewrite import Const, Match, Op, Opt, Rule, Var
from ._common import attrs_of, channel_vector, scalar

_CONVS = ("Conv", "ConvTranspose")


def _out_channels(m: Match, conv: str, w: np.ndarray) -> Optional[int]:
    node = m.node(conv)
    if node.op_type == "Conv":
        return w.shape[0]
    if node.op_type == "ConvTranspose":
        return w.shape[1] * int(m.attr(node, "group") or 1)
    trans_b = int(m.attr(node, "transB") or 0)  # Gemm
    return w.shape[0] if trans_b else w.shape[1]


def _scale_weights(op: str, w: np.ndarray, s: np.ndarray, group: int, trans_b: int) -> np.ndarray:
    """Multiply output channel j of the op's result by s[j], through its weights (float64)."""
    w = w.astype(np.float64)
    if op == "Conv":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    if op == "ConvTranspose":  # W: [C, M/group, k...]; output channel g*(M/group)+j
        c, mg = w.shape[0], w.shape[1]
        wg = w.reshape((group, c // group, mg) + w.shape[2:])
        sg = s.reshape((group, 1, mg) + (1,) * (w.ndim - 2))
        return (wg * sg).reshape(w.shape)
    return w * (s[:, None] if trans_b else s[None, :])  # Gemm B: [M, K] or [K, M]


def _weights_ok(m: Match, w: str) -> Optional[str]:
    c = m.const(w)
    if c is None or c.dtype.kind != "f":
        return "weights are not a float constant"
    return None


class ConvBatchNorm(Rule):
    # long: Conv, ConvTranspose and Gemm lay weights and bias out differently; check and rewrite
    #   cover all three so the BN algebra is written once
    """BatchNormalization (inference mode) after Conv, ConvTranspose or Gemm, folded into the
    weights and bias: W' = W * s per output channel, b' = (b - mean) * s + beta, with
    s = gamma / sqrt(var + eps). Every BN input must be a constant of shape [M]."""

    name = "conv_bn"
    summary = "fold inference BatchNormalization into Conv/ConvTranspose/Gemm weights and bias"
    opset = 7
    benefit = 3
    pattern = Op("BatchNormalization",
                 Op(("Conv", "ConvTranspose", "Gemm"), "x", Const("w"), Opt(Const("b")),
                    name="conv"),
                 Const("gamma"), Const("beta"), Const("mean"), Const("var"), name="bn")

    def check(self, m: Match) -> Optional[str]:
        bn = m.node("bn")
        if int(m.attr(bn, "training_mode") or 0) != 0:
            return "BatchNormalization is in training mode"
        if "spatial" in bn.attributes and int(bn.attr("spatial")) != 1:
            return "BatchNormalization has spatial=0"
        if any(o.has_uses() for o in bn.outputs[1:]):
            return "BatchNormalization's running statistics outputs are used"
        reason = _weights_ok(m, "w")
        if reason:
            return reason
        w = m.const("w")
        conv = m.node("conv")
        if conv.op_type == "Gemm" and int(m.attr(conv, "transA") or 0) not in (0, 1):
            return "Gemm has an unusual transA"
        if conv.op_type != "Gemm" and (w.ndim < 3 or w.shape[0] % int(m.attr(conv, "group") or 1)):
            return "weights do not fit the group count"
        mch = _out_channels(m, "conv", w)
        for k in ("gamma", "beta", "mean", "var"):
            if m.const(k).shape != (mch,):
                return f"BatchNormalization {k} has shape {m.const(k).shape}, not ({mch},)"
        b = m.const("b")
        if b is not None and conv.op_type != "Gemm" and b.shape != (mch,):
            return f"bias has shape {b.shape}, not ({mch},)"
        if b is not None and conv.op_type == "Gemm" and b.ndim > 2:
            return "Gemm C has rank > 2"
        return None

    def rewrite(self, m: Match, b):
        conv, bn = m.node("conv"), m.node("bn")
        w = m.const("w")
        eps = m.attr(bn, "epsilon")
        eps = 1e-5 if eps is None else float(eps)
        s = m.const("gamma").astype(np.float64) / np.sqrt(m.const("var").astype(np.float64) + eps)
        t = m.const("beta").astype(np.float64) - m.const("mean").astype(np.float64) * s
        group = int(m.attr(conv, "group") or 1) if conv.op_type != "Gemm" else 1
        trans_b = int(m.attr(conv, "transB") or 0) if conv.op_type == "Gemm" else 0
        w2 = _scale_weights(conv.op_type, w, s, group, trans_b).astype(w.dtype)
        bias = m.const("b")
        attrs = attrs_of(conv)
        if conv.op_type == "Gemm":
            beta = float(m.attr(conv, "beta") if m.attr(conv, "beta") is not None else 1.0)
            c = np.zeros(()) if bias is None else bias.astype(np.float64) * beta
            b2 = c * s + t
            attrs["beta"] = 1.0
        else:
            b2 = (np.zeros_like(s) if bias is None else bias.astype(np.float64)) * s + t
        y = b.op(conv.op_type, [m["x"], b.const(w2), b.const(b2.astype(w.dtype))], attrs,
                 name=conv.name)
        return [y] + [None] * (len(bn.outputs) - 1)


def _conv_then(op: str) -> Op:
    """Conv/ConvTranspose (constant weights) followed by ``op`` with a constant, either order."""
    return Op(op, Op(_CONVS, "x", Const("w"), Opt(Var("b")), name="conv"), Const("c"),
              commutative=True)


class _ConvChannelOp(Rule):
    """Shared check for Conv/ConvTranspose followed by a per-channel constant Add or Mul."""

    opset = 1
    benefit = 2

    def check(self, m: Match) -> Optional[str]:
        reason = _weights_ok(m, "w")
        if reason:
            return reason
        w, c = m.const("w"), m.const("c")
        if w.ndim < 3 or w.shape[0] % int(m.attr("conv", "group") or 1):
            return "weights do not fit the group count"
        if c.dtype != w.dtype:
            return "constant and weights have different types"
        mch = _out_channels(m, "conv", w)
        if channel_vector(c, w.ndim, mch) is None:
            return f"constant of shape {c.shape} is not per-channel for {mch} channels " \
                   f"(rank {w.ndim} output)"
        if not np.all(np.isfinite(c)):
            return "constant has inf or nan"
        bias = m.const("b")
        if m.get("b") is not None and bias is None:
            return "bias is not constant"
        return None


class ConvAdd(_ConvChannelOp):
    """Conv/ConvTranspose + Add of a per-channel constant (shape [M,1..], [1,M,1..] or a
    scalar; never one that broadcasts the output bigger), folded into the bias."""

    name = "conv_add"
    summary = "fold a per-channel constant Add after Conv/ConvTranspose into its bias"
    pattern = _conv_then("Add")

    def rewrite(self, m: Match, b):
        conv, w = m.node("conv"), m.const("w")
        cv = channel_vector(m.const("c"), w.ndim, _out_channels(m, "conv", w))
        bias = m.const("b")
        b2 = cv.astype(np.float64) + (0 if bias is None else bias.astype(np.float64))
        return b.op(conv.op_type, [m["x"], m["w"], b.const(b2.astype(w.dtype))], attrs_of(conv),
                    name=conv.name)


class ConvMul(_ConvChannelOp):
    """Conv/ConvTranspose * a per-channel constant, folded into the weights (and bias)."""

    name = "conv_mul"
    summary = "fold a per-channel constant Mul after Conv/ConvTranspose into its weights"
    pattern = _conv_then("Mul")

    def rewrite(self, m: Match, b):
        conv, w = m.node("conv"), m.const("w")
        s = channel_vector(m.const("c"), w.ndim, _out_channels(m, "conv", w)).astype(np.float64)
        w2 = _scale_weights(conv.op_type, w, s, int(m.attr(conv, "group") or 1), 0)
        ins = [m["x"], b.const(w2.astype(w.dtype))]
        if m.const("b") is not None:
            ins.append(b.const((m.const("b").astype(np.float64) * s).astype(w.dtype)))
        return b.op(conv.op_type, ins, attrs_of(conv), name=conv.name)


# -- Pad -------------------------------------------------------------------------------------------

_PAD = Op("Pad", "x", Opt("pads"), Opt("value"), Opt("axes"), name="pad")


def _pad_amounts(m: Match, rank: int) -> tuple[Optional[list[int]], str]:
    """The Pad's full begin+end pads over ``rank`` dims, or (None, reason)."""
    pad = m.node("pad")
    if m.attr(pad, "mode") not in ("constant", b"constant"):
        return None, f"Pad mode is {m.attr(pad, 'mode')!r}, not constant"
    if "pads" in pad.attributes:
        pads = [int(p) for p in pad.attr("pads")]
    else:
        c = m.const("pads")
        if c is None:
            return None, "Pad amounts are not constant"
        pads = [int(p) for p in c.reshape(-1)]
    axes = list(range(len(pads) // 2))
    if m.get("axes") is not None:
        c = m.const("axes")
        if c is None:
            return None, "Pad axes are not constant"
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in c.reshape(-1)]
    if len(pads) != 2 * len(axes) or any(not 0 <= a < rank for a in axes):
        return None, "Pad amounts do not match the input rank"
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[a + rank] = pads[i], pads[i + len(axes)]
    if full[0] or full[1] or full[rank] or full[rank + 1]:
        return None, "Pad pads the batch or channel axis"
    if any(p < 0 for p in full):
        return None, "Pad crops (negative pads)"
    return full, ""


def _pad_value(m: Match) -> Optional[float]:
    pad = m.node("pad")
    if "value" in pad.attributes:
        return float(pad.attr("value"))
    if m.get("value") is None:
        return 0.0
    v = scalar(m.const("value"))
    return None if v is None else float(v)


def _merged_pads(m: Match, node: str, rank: int) -> tuple[Optional[list[int]], str]:
    """The op's explicit pads plus the Pad's spatial pads, or (None, reason)."""
    full, reason = _pad_amounts(m, rank)
    if full is None:
        return None, reason
    n = m.node(node)
    auto = m.attr(n, "auto_pad") or "NOTSET"
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "VALID"):
        return None, f"{n.op_type} has auto_pad={auto}"
    sp = rank - 2
    own = [int(p) for p in (n.attr("pads") or [0] * (2 * sp))] if auto == "NOTSET" else [0] * 2 * sp
    if len(own) != 2 * sp:
        return None, f"{n.op_type} pads do not match the input rank"
    merged = [own[i] + full[2 + i] for i in range(sp)] + \
             [own[sp + i] + full[rank + 2 + i] for i in range(sp)]
    return merged, ""


class PadConv(Rule):
    """Pad (constant mode, value 0, non-negative pads on spatial axes only) folded into Conv's
    pads. Exact: Conv's implicit padding is zeros."""

    name = "pad_conv"
    summary = "fold a zero constant Pad into the following Conv's pads"
    opset = 1
    benefit = 2
    pattern = Op("Conv", _PAD, "w", Opt("b"), name="conv")

    def check(self, m: Match) -> Optional[str]:
        w = m.shape("w")
        if w is None:
            return "weight rank unknown"
        if _pad_value(m) != 0.0:
            return "Pad value is not a constant 0"
        _, reason = _merged_pads(m, "conv", len(w))
        return reason or None

    def rewrite(self, m: Match, b):
        conv = m.node("conv")
        merged, _ = _merged_pads(m, "conv", len(m.shape("w")))
        ins = [m["x"], m["w"]] + ([m["b"]] if m.get("b") is not None else [])
        return b.op("Conv", ins, attrs_of(conv, pads=merged, auto_pad="NOTSET"), name=conv.name)


class PadPool(Rule):
    # long: the docstring argues each exact case (Average/Max pool, count_include_pad, the pad
    #   value) and the check is that case list, one branch each
    """Pad folded into AveragePool/MaxPool pads, only where exactly equivalent.

    AveragePool: value 0; with count_include_pad=1 the pads just add up; with count_include_pad=0
    only when the pool has no pads of its own (the fused pool then counts the pads, which is what
    the explicit zeros were). MaxPool pads behave like -inf: value -inf folds; value 0 only when
    the input is provably >= 0 (a Relu output). Both need ceil_mode=0, dilations 1, and merged
    pads smaller than the kernel (no window made of padding only; onnxruntime requires it).

    A 0-valued Pad before MaxPool on an input that may be negative stays: onnxoptimizer's
    fuse_pad_into_pool folds it anyway, and then a border window whose inputs are all negative
    gives their max instead of the padded 0 (benchmarks/peer_suites.py, pad_pool.max_zero_pad)."""

    name = "pad_pool"
    summary = "fold a constant Pad into AveragePool/MaxPool pads where exactly equivalent"
    opset = 7  # count_include_pad
    benefit = 2
    pattern = Op(("AveragePool", "MaxPool"), _PAD, name="pool")

    def check(self, m: Match) -> Optional[str]:
        pool = m.node("pool")
        kernel = [int(k) for k in m.attr(pool, "kernel_shape") or []]
        if not kernel:
            return "pool has no kernel_shape"
        if int(m.attr(pool, "ceil_mode") or 0):
            return "pool uses ceil_mode"
        if any(int(d) != 1 for d in (m.attr(pool, "dilations") or [])):
            return "pool is dilated"
        merged, reason = _merged_pads(m, "pool", len(kernel) + 2)
        if merged is None:
            return reason
        sp = len(kernel)
        if any(merged[i] >= kernel[i % sp] for i in range(2 * sp)):
            return "merged pads would not be smaller than the kernel"
        value = _pad_value(m)
        if value is None:
            return "Pad value is not constant"
        if pool.op_type == "AveragePool":
            if value != 0.0:
                return "Pad value is not 0"
            own = [int(p) for p in (pool.attr("pads") or [])]
            if not int(m.attr(pool, "count_include_pad") or 0) and any(own):
                return "AveragePool excludes its own pads from the average"
            return None
        if any(o.has_uses() for o in pool.outputs[1:]):
            return "MaxPool indices are used"
        if value == -np.inf:
            return None
        if value == 0.0:
            prod = m["x"].producer
            if prod is not None and prod.op_type == "Relu":
                return None
            return "Pad value 0 can win the max: input not provably >= 0"
        return f"Pad value {value} differs from MaxPool's implicit -inf padding"

    def rewrite(self, m: Match, b):
        pool = m.node("pool")
        merged, _ = _merged_pads(m, "pool", len(m.attr(pool, "kernel_shape")) + 2)
        extra = {"count_include_pad": 1} if pool.op_type == "AveragePool" else {}
        y = b.op(pool.op_type, [m["x"]],
                 attrs_of(pool, pads=merged, auto_pad="NOTSET", **extra), name=pool.name)
        return [y] + [None] * (len(pool.outputs) - 1)


RULES = [ConvBatchNorm(), ConvAdd(), ConvMul(), PadConv(), PadPool()]

__all__ = ["RULES", "ConvBatchNorm", "ConvAdd", "ConvMul", "PadConv", "PadPool"]
