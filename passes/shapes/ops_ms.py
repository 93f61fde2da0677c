"""com.microsoft contrib ops that common exports and onnxruntime's transformer optimizer produce.

Covered: FusedConv, NhwcConv, FusedGemm, FusedMatMul, MatMulNBits, MatMulInteger16,
MatMulIntegerToFloat, DynamicQuantizeMatMul, GemmFastGelu, Gelu, FastGelu, BiasGelu, QuickGelu,
BiasAdd, BiasSplitGelu, BiasSoftmax, SkipLayerNormalization, SkipSimplifiedLayerNormalization,
LayerNormalization, SimplifiedLayerNormalization, EmbedLayerNormalization, GroupNorm, SkipGroupNorm,
Attention, MultiHeadAttention, GroupQueryAttention, RotaryEmbedding, QuantizeLinear,
DequantizeLinear, QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax,
QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool, Trilu, Inverse, DynamicQuantizeLSTM,
QAttention, QLinearConv. A rule given a malformed attribute sets no shape (never raises).
"""

from __future__ import annotations

from . import dims as D
from .common import broadcast, norm_axis
from .context import NodeCtx
from .ops_nn import _conv_like, conv_out, matmul_shape
from .table import shape_fn

MS = "com.microsoft"
FLOAT = 1

SAME = ("Gelu", "FastGelu", "BiasGelu", "QuickGelu", "BiasAdd", "GroupNorm", "SkipGroupNorm",
        "RotaryEmbedding", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "Trilu",
        "Inverse", "BiasSoftmax")


@shape_fn(MS, *SAME)
def _same(n: NodeCtx) -> None:
    n.same_as(0, 0)
    if n.node.op_type == "SkipGroupNorm" and n.has_out(1):
        n.same_as(1, 0)


@shape_fn(MS, "FusedConv")
def _fused_conv(n: NodeCtx) -> None:
    _conv_like(n, 0, 1, n.dtype(0))


def _conv_attrs(n: NodeCtx, w, k: int) -> tuple:
    """kernel_shape, strides, dilations, pads and auto_pad of a convolution over ``k`` spatial
    dims with weight shape ``w``, the ONNX defaults filled in."""
    kernel = list(n.attr("kernel_shape") or w[2:])
    strides = list(n.attr("strides", None) or [1] * k)
    dil = list(n.attr("dilations", None) or [1] * k)
    pads = list(n.attr("pads", None) or [0] * (2 * k))
    auto = n.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return kernel, strides, dil, pads, auto


@shape_fn(MS, "NhwcConv")
def _nhwc_conv(n: NodeCtx) -> None:
    x, w = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if x is None or w is None:
        n.set(0, dt, None)
        return
    k = len(x) - 2
    kernel, strides, dil, pads, auto = _conv_attrs(n, w, k)
    sp = conv_out(n, list(x[1:-1]), kernel, strides, dil, pads, auto)
    n.set(0, dt, [x[0]] + sp + [w[0]])


@shape_fn(MS, "FusedGemm")
def _fused_gemm(n: NodeCtx) -> None:
    from .ops_nn import _gemm

    _gemm(n)


@shape_fn(MS, "FusedMatMul")
def _fused_matmul(n: NodeCtx) -> None:
    a, b = n.shape(0), n.shape(1)
    if a is not None and len(a) >= 2 and n.attr("transA", 0):
        a = list(a[:-2]) + [a[-1], a[-2]]
    if b is not None and len(b) >= 2 and n.attr("transB", 0):
        b = list(b[:-2]) + [b[-1], b[-2]]
    if n.attr("transBatchA", 0) or n.attr("transBatchB", 0):
        n.set(0, n.dtype(0), None)
        return
    n.set(0, n.dtype(0), matmul_shape(n, a, b, "FusedMatMul"))


@shape_fn(MS, "MatMulNBits")
def _matmul_nbits(n: NodeCtx) -> None:
    a = n.shape(0)
    N = n.attr("N")
    n.set(0, n.dtype(0), None if a is None else list(a[:-1]) + [N])


@shape_fn(MS, "MatMulInteger16")
def _matmul_int16(n: NodeCtx) -> None:
    n.set(0, 6, matmul_shape(n, n.shape(0), n.shape(1), "MatMulInteger16"))


@shape_fn(MS, "MatMulIntegerToFloat", "DynamicQuantizeMatMul")
def _matmul_to_float(n: NodeCtx) -> None:
    dt = n.dtype(2) if n.node.op_type == "MatMulIntegerToFloat" else n.dtype(0)
    n.set(0, dt or FLOAT, matmul_shape(n, n.shape(0), n.shape(1), n.node.op_type))


@shape_fn(MS, "GemmFastGelu")
def _gemm_fast_gelu(n: NodeCtx) -> None:
    n.set(0, n.dtype(0), matmul_shape(n, n.shape(0), n.shape(1), "GemmFastGelu"))


@shape_fn(MS, "BiasSplitGelu")
def _bias_split_gelu(n: NodeCtx) -> None:
    x = n.shape(0)
    if x is None:
        n.set(0, n.dtype(0), None)
        return
    n.set(0, n.dtype(0), list(x[:-1]) + [D.truediv(x[-1], 2)])


@shape_fn("", "SimplifiedLayerNormalization")  # onnxruntime registers it in the onnx domain
@shape_fn(MS, "LayerNormalization", "SimplifiedLayerNormalization")
def _layernorm(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    n.set(0, dt, x)
    if x is None:
        return
    axis = norm_axis(n.attr("axis", -1), len(x))
    ms = list(x[:axis]) + [1] * (len(x) - axis)
    stash = n.attr("stash_type", 1)
    for i in range(1, n.n_out):
        if n.has_out(i):
            n.set(i, stash, ms)


@shape_fn(MS, "SkipLayerNormalization", "SkipSimplifiedLayerNormalization")
def _skip_layernorm(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    n.set(0, dt, x)
    if x is None:
        return
    ms = list(x[:-1]) + [1]
    # output, mean, inv_std_var (float), input_skip_bias_sum: the same for both variants.
    for i, t, s in ((1, FLOAT, ms), (2, FLOAT, ms), (3, dt, x)):
        if n.has_out(i):
            n.set(i, t, s)


@shape_fn(MS, "EmbedLayerNormalization")
def _embed_layernorm(n: NodeCtx) -> None:
    ids, word = n.shape(0), n.shape(2)
    dt = n.dtype(2)
    if ids is None:
        return
    H = word[1] if word is not None else None
    n.set(0, dt, [ids[0], ids[1], H])
    if n.has_out(1):
        n.set(1, 6, [ids[0]])
    if n.has_out(2):
        n.set(2, dt, [ids[0], ids[1], H])


@shape_fn(MS, "Attention")
def _attention(n: NodeCtx) -> None:
    x, w = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if x is None or len(x) != 3:
        return
    heads = n.attr("num_heads")
    qkv = n.attr("qkv_hidden_sizes")
    if qkv:
        vh = qkv[2]
        kh = qkv[1]
    elif w is not None:
        vh = D.truediv(w[1], 3)
        kh = vh
    else:
        vh = kh = None
    B, S = x[0], x[1]
    n.set(0, dt, [B, S, vh])
    if n.has_out(1) and heads:
        past = n.shape(4) if n.has(4) else None
        total = D.add(past[3], S) if past is not None and len(past) == 5 else \
            (S if not n.has(4) else None)
        n.set(1, dt, [2, B, heads, total, D.truediv(kh, heads)])


@shape_fn(MS, "MultiHeadAttention")
def _mha(n: NodeCtx) -> None:
    q, k, v = n.shape(0), n.shape(1), n.shape(2)
    dt = n.dtype(0)
    heads = n.attr("num_heads")
    if q is None:
        return
    if len(q) == 3:
        B, S = q[0], q[1]
        if v is not None and len(v) == 3:
            vh = v[2]
        elif v is not None and len(v) == 4:
            vh = D.mul(v[1], v[3])
        elif k is None and len(q) == 3:
            vh = None
        else:
            vh = q[2]
        n.set(0, dt, [B, S, vh])
    elif len(q) == 5:  # packed qkv [B, S, N, 3, H]
        n.set(0, dt, [q[0], q[1], D.mul(q[2], q[4])])
    if heads and n.n_out > 1 and k is not None:
        past = n.shape(6) if n.has(6) else None
        if len(k) == 3:
            L = k[1]
            head = D.truediv(k[2], heads)
        elif len(k) == 4:
            L, head = k[2], k[3]
        else:
            return
        total = D.add(past[2], L) if past is not None and len(past) == 4 else \
            (L if not n.has(6) else None)
        for i in (1, 2):
            if n.has_out(i):
                n.set(i, dt, [q[0], heads, total, head])


@shape_fn(MS, "GroupQueryAttention")
def _gqa(n: NodeCtx) -> None:
    q = n.shape(0)
    dt = n.dtype(0)
    heads = n.attr("num_heads")
    kvh = n.attr("kv_num_heads")
    if q is None or len(q) != 3 or not heads or not kvh:
        return
    if n.has(1):
        hidden = q[2]
        head = D.truediv(hidden, heads)
    else:  # packed qkv
        head = D.truediv(q[2], heads + 2 * kvh)
        hidden = D.mul(head, heads)
    n.set(0, dt, [q[0], q[1], hidden])
    past = n.shape(3) if n.has(3) else None
    for i in (1, 2):
        if n.has_out(i):
            n.set(i, dt, [q[0], kvh, None, head if past is None else past[3]])


@shape_fn(MS, "QuantizeLinear")
def _q(n: NodeCtx) -> None:
    n.set(0, n.dtype(2) if n.has(2) else 2, n.shape(0))


@shape_fn(MS, "DequantizeLinear")
def _dq(n: NodeCtx) -> None:
    n.set(0, n.dtype(1) or FLOAT, n.shape(0))


@shape_fn(MS, "QLinearAdd", "QLinearMul")
def _qlinear_binary(n: NodeCtx) -> None:
    n.set(0, n.dtype(0), broadcast(n, [n.shape(0), n.shape(3)], n.node.op_type))


@shape_fn(MS, "QLinearConcat")
def _qlinear_concat(n: NodeCtx) -> None:
    shapes = [n.shape(i) for i in range(2, n.n_in, 3)]
    dt = n.dtype(2)
    if any(s is None for s in shapes) or not shapes:
        n.set(0, dt, None)
        return
    r = len(shapes[0])
    axis = norm_axis(n.attr("axis", 0), r)
    out = list(shapes[0])
    out[axis] = D.fsum(s[axis] for s in shapes)
    n.set(0, dt, out)


@shape_fn(MS, "QLinearAveragePool")
def _qlinear_avgpool(n: NodeCtx) -> None:
    x = n.shape(0)
    if x is None:
        return
    k = len(x) - 2
    kernel = list(n.attr("kernel_shape") or [])
    strides = list(n.attr("strides", None) or [1] * k)
    pads = list(n.attr("pads", None) or [0] * (2 * k))
    auto = n.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if n.attr("channels_last", 0):
        sp = conv_out(n, list(x[1:-1]), kernel, strides, [1] * k, pads, auto,
                      bool(n.attr("ceil_mode", 0)))
        n.set(0, n.dtype(0), [x[0]] + sp + [x[-1]])
    else:
        sp = conv_out(n, list(x[2:]), kernel, strides, [1] * k, pads, auto,
                      bool(n.attr("ceil_mode", 0)))
        n.set(0, n.dtype(0), list(x[:2]) + sp)


@shape_fn(MS, "QLinearGlobalAveragePool")
def _qlinear_gap(n: NodeCtx) -> None:
    x = n.shape(0)
    if x is None:
        return
    if n.attr("channels_last", 0):
        n.set(0, n.dtype(0), [x[0]] + [1] * (len(x) - 2) + [x[-1]])
    else:
        n.set(0, n.dtype(0), list(x[:2]) + [1] * (len(x) - 2))


def _pos_int(v) -> bool:
    """An attribute usable as a dim: a positive int (a malformed one gives no shape, no crash)."""
    return type(v) is int and v > 0


def _direction(n: NodeCtx) -> int | None:
    d = n.attr("direction", "forward")
    d = d.decode() if isinstance(d, bytes) else d
    return {"forward": 1, "reverse": 1, "bidirectional": 2}.get(d) if isinstance(d, str) else None


@shape_fn(MS, "DynamicQuantizeLSTM")
def _dynamic_quantize_lstm(n: NodeCtx) -> None:
    """LSTM with quantized weights: Y [seq, dirs, batch, hidden], Y_h and Y_c [dirs, batch,
    hidden] (float, the type of X)."""
    x, dirs, hidden = n.shape(0), _direction(n), n.attr("hidden_size")
    if x is None or len(x) != 3 or dirs is None or not _pos_int(hidden):
        return
    dt = n.dtype(0) or FLOAT
    n.set(0, dt, [x[0], dirs, x[1], hidden])
    for i in (1, 2):
        n.set(i, dt, [dirs, x[1], hidden])


@shape_fn(MS, "QAttention")
def _qattention(n: NodeCtx) -> None:
    """Quantized Attention: output [B, S, bias/3] in the bias' float type; present
    [2, B, heads, past + S, head size]."""
    x, b, heads = n.shape(0), n.shape(2), n.attr("num_heads")
    if x is None or len(x) != 3 or b is None or len(b) != 1 or not _pos_int(heads):
        return
    hidden = b[0] // 3 if type(b[0]) is int and b[0] % 3 == 0 else None
    dt = n.dtype(2) or FLOAT
    n.set(0, dt, [x[0], x[1], hidden])
    if n.has_out(1):
        past = n.shape(8) if n.has(8) else None
        total = x[1] if not n.has(8) else (
            D.add(past[3], x[1]) if past is not None and len(past) == 5 else None)
        head = hidden // heads if type(hidden) is int and hidden % heads == 0 else None
        n.set(1, dt, [2, x[0], heads, total, head])


@shape_fn(MS, "QLinearConv")
def _ms_qlinear_conv(n: NodeCtx) -> None:
    """com.microsoft's QLinearConv: onnx's, or with ``channels_last`` NHWC input and output."""
    dt = n.dtype(7) or n.dtype(0)
    cl = n.attr("channels_last", 0)
    if cl not in (0, 1):
        return
    if not cl:
        _conv_like(n, 0, 3, dt)
        return
    x, w = n.shape(0), n.shape(3)
    if x is None or w is None or len(x) < 3 or len(w) != len(x):
        return
    k = len(x) - 2
    kernel, strides, dil, pads, auto = _conv_attrs(n, w, k)
    if len(kernel) != k or len(strides) != k or len(dil) != k or len(pads) != 2 * k:
        return
    n.set(0, dt, [x[0]] + conv_out(n, list(x[1:-1]), kernel, strides, dil, pads, auto) + [w[0]])


MS_OPS = ("FusedConv", "NhwcConv", "FusedGemm", "FusedMatMul", "MatMulNBits", "MatMulInteger16",
          "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "GemmFastGelu", "BiasSplitGelu",
          "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "LayerNormalization",
          "SimplifiedLayerNormalization", "EmbedLayerNormalization", "Attention",
          "MultiHeadAttention", "GroupQueryAttention", "QuantizeLinear", "DequantizeLinear",
          "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool",
          "QLinearGlobalAveragePool", "DynamicQuantizeLSTM", "QAttention", "QLinearConv") + SAME

__all__ = ["MS_OPS"]
