"""Neural-network ops: MatMul, Gemm, convolutions and pooling (floor/ceil expressions), Resize,
normalizations, recurrent layers, Attention, quantization, losses, signal ops, detection ops."""

from __future__ import annotations

import numpy as np

from . import dims as D
from .common import broadcast, norm_axis
from .context import BOOL, INT64, NodeCtx
from .table import shape_fn

FLOAT = 1


def matmul_shape(n: NodeCtx, a, b, why: str = "MatMul"):
    """numpy matmul: 1-D operands promoted, batch dims broadcast, inner dims required equal."""
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        n.error(f"{why}: scalar operand")
        return None
    a1, b1 = len(a) == 1, len(b) == 1
    A = [1] + list(a) if a1 else list(a)
    B = list(b) + [1] if b1 else list(b)
    n.require_equal(A[-1], B[-2], f"{why} inner dims")
    batch = broadcast(n, [A[:-2], B[:-2]], f"{why} batch broadcast")
    if batch is None:
        return None
    out = list(batch)
    if not a1:
        out.append(A[-2])
    if not b1:
        out.append(B[-1])
    return out


@shape_fn("", "MatMul", "MatMulInteger")
def _matmul(n: NodeCtx) -> None:
    dt = 6 if n.node.op_type == "MatMulInteger" else n.dtype(0)
    n.set(0, dt, matmul_shape(n, n.shape(0), n.shape(1), n.node.op_type))


@shape_fn("", "QLinearMatMul")
def _qlinear_matmul(n: NodeCtx) -> None:
    n.set(0, n.dtype(7), matmul_shape(n, n.shape(0), n.shape(3), "QLinearMatMul"))


@shape_fn("", "Gemm")
def _gemm(n: NodeCtx) -> None:
    a, b = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if a is None or b is None:
        n.set(0, dt, [None, None])
        return
    if len(a) != 2 or len(b) != 2:
        n.error(f"Gemm: operands of rank {len(a)} and {len(b)}")
        return
    M, K1 = (a[1], a[0]) if n.attr("transA", 0) else (a[0], a[1])
    K2, N = (b[1], b[0]) if n.attr("transB", 0) else (b[0], b[1])
    n.require_equal(K1, K2, "Gemm inner dims")
    if n.has(2) and n.shape(2) is not None:
        c = n.shape(2)
        if len(c) > 2:
            n.error(f"Gemm: C of rank {len(c)}")
            return
        broadcast(n, [[M, N], c], "Gemm C broadcast")
    n.set(0, dt, [M, N])


# -- convolution and pooling ----------------------------------------------------------------------


def _spatial_attrs(n: NodeCtx, k: int, kernel):
    strides = list(n.attr("strides", None) or [1] * k)
    dil = list(n.attr("dilations", None) or [1] * k)
    pads = list(n.attr("pads", None) or [0] * (2 * k))
    auto = n.attr("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    return strides, dil, pads, auto or "NOTSET"


def conv_out(n, ins, kernel, strides, dil, pads, auto, ceil_mode=False):
    """Spatial output dims of a convolution/pooling window."""
    k = len(ins)
    out = []
    for i in range(k):
        d, kk, s, dl = ins[i], kernel[i], strides[i], dil[i]
        if kk is None or d is None:
            out.append(None)
            continue
        eff = D.add(D.mul(dl, D.sub(kk, 1)), 1)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(D.ceildiv(d, s))
            continue
        if auto == "VALID":
            pb = pe = 0
        else:
            pb, pe = pads[i], pads[i + k]
        num = D.sub(D.add(D.add(d, pb), pe), eff)
        if type(num) is int and num < 0:
            n.error(f"window of {eff} does not fit the padded input {D.add(D.add(d, pb), pe)}")
            out.append(None)
            continue
        if not ceil_mode:
            out.append(D.add(D.floordiv(num, s), 1))
            continue
        o = D.add(D.ceildiv(num, s), 1)
        # The last window must start inside the input or the left padding. It always does when
        # pe + s <= eff, since (o - 1) * s <= num + s - 1 = d + pb + pe - eff + s - 1.
        if type(pe) is int and type(s) is int and type(eff) is int and pe + s <= eff:
            out.append(o)
            continue
        lim = D.add(D.floordiv(D.sub(D.add(d, pb), 1), s), 1)
        if type(o) is int and type(lim) is int:
            out.append(o - 1 if (o - 1) * s >= D.add(d, pb) else o)
        else:
            out.append(D.dmin(o, lim))
    return out


def _conv_like(n: NodeCtx, xi: int, wi: int, dtype: int) -> None:
    x, w = n.shape(xi), n.shape(wi)
    if x is None:  # x has w's rank (or the op fails): the output's channels are w's dim 0
        n.set(0, dtype, None if w is None else [None, w[0]] + [None] * (len(w) - 2))
        return
    r = len(x)
    if r < 3:
        n.error(f"{n.node.op_type}: input of rank {r}")
        return
    k = r - 2
    kernel = n.attr("kernel_shape")
    kernel = list(kernel) if kernel is not None else (list(w[2:]) if w is not None else None)
    if kernel is None:
        n.set(0, dtype, [x[0], w[0] if w is not None else None] + [None] * k)
        return
    strides, dil, pads, auto = _spatial_attrs(n, k, kernel)
    group = n.attr("group", 1)
    if w is not None and len(w) == r:
        n.require_equal(D.mul(w[1], group), x[1], f"{n.node.op_type} input channels")
    out = [x[0], w[0] if w is not None else None]
    out += conv_out(n, list(x[2:]), kernel, strides, dil, pads, auto)
    n.set(0, dtype, out)


@shape_fn("", "Conv")
def _conv(n: NodeCtx) -> None:
    _conv_like(n, 0, 1, n.dtype(0))


@shape_fn("", "ConvInteger")
def _conv_integer(n: NodeCtx) -> None:
    _conv_like(n, 0, 1, 6)


@shape_fn("", "QLinearConv")
def _qlinear_conv(n: NodeCtx) -> None:
    _conv_like(n, 0, 3, n.dtype(7) or n.dtype(0))


@shape_fn("", "DeformConv")
def _deform_conv(n: NodeCtx) -> None:
    _conv_like(n, 0, 1, n.dtype(0))


@shape_fn("", "ConvTranspose")
def _conv_transpose(n: NodeCtx) -> None:
    x, w = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if x is None:
        n.set(0, dt, None)
        return
    r = len(x)
    k = r - 2
    group = n.attr("group", 1)
    kernel = n.attr("kernel_shape")
    kernel = list(kernel) if kernel is not None else (list(w[2:]) if w is not None else None)
    cout = D.mul(w[1], group) if w is not None else None
    if w is not None:
        n.require_equal(w[0], x[1], "ConvTranspose input channels")
    oshape = n.attr("output_shape")
    if oshape is not None:
        oshape = list(oshape)
        n.set(0, dt, [x[0], cout] + oshape[-k:])
        return
    if kernel is None:
        n.set(0, dt, [x[0], cout] + [None] * k)
        return
    strides, dil, pads, auto = _spatial_attrs(n, k, kernel)
    opad = list(n.attr("output_padding", None) or [0] * k)
    out = [x[0], cout]
    for i in range(k):
        d = x[2 + i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(D.mul(d, strides[i]))
            continue
        pb, pe = (0, 0) if auto == "VALID" else (pads[i], pads[i + k])
        full = D.add(D.add(D.mul(strides[i], D.sub(d, 1)), opad[i]),
                     D.add(D.mul(D.sub(kernel[i], 1), dil[i]), 1))
        out.append(D.sub(D.sub(full, pb), pe))
    n.set(0, dt, out)


@shape_fn("", "AveragePool", "MaxPool", "LpPool")
def _pool(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    if x is None:
        n.set(0, dt, None)
        if n.has_out(1):
            n.set(1, INT64, None)
        return
    k = len(x) - 2
    kernel = list(n.attr("kernel_shape") or [])
    if len(kernel) != k:
        n.error(f"{n.node.op_type}: kernel_shape {kernel} for rank {len(x)}")
        return
    strides, dil, pads, auto = _spatial_attrs(n, k, kernel)
    ceil_mode = bool(n.attr("ceil_mode", 0))
    out = list(x[:2]) + conv_out(n, list(x[2:]), kernel, strides, dil, pads, auto, ceil_mode)
    n.set(0, dt, out)
    if n.has_out(1):
        n.set(1, INT64, out)


@shape_fn("", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    n.set(0, dt, None if x is None else list(x[:2]) + [1] * (len(x) - 2))


@shape_fn("", "MaxUnpool")
def _max_unpool(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    if n.has(2):
        target = n.dimlist(2)
        n.set(0, dt, target if target is not None else
              (None if x is None else [None] * len(x)))
        return
    if x is None:
        n.set(0, dt, None)
        return
    k = len(x) - 2
    kernel = list(n.attr("kernel_shape") or [])
    strides = list(n.attr("strides", None) or [1] * k)
    pads = list(n.attr("pads", None) or [0] * (2 * k))
    out = list(x[:2])
    for i in range(k):
        out.append(D.sub(D.add(D.mul(D.sub(x[2 + i], 1), strides[i]), kernel[i]),
                         pads[i] + pads[i + k]))
    n.set(0, dt, out)


@shape_fn("", "Col2Im")
def _col2im(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    img, block = n.dimlist(1), n.dimlist(2)
    if x is None or img is None or block is None:
        n.set(0, dt, None)
        return
    c = D.truediv(x[1], D.prod(block))
    n.set(0, dt, [x[0], c] + list(img))


# -- normalization ---------------------------------------------------------------------------------


@shape_fn("", "BatchNormalization")
def _batchnorm(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    n.set(0, dt, x)
    c = x[1] if x is not None and len(x) > 1 else None
    for i in range(1, n.n_out):
        if n.has_out(i):
            n.set(i, n.dtype(3) or dt, [c])


@shape_fn("", "InstanceNormalization", "GroupNormalization", "RMSNormalization")
def _same_norm(n: NodeCtx) -> None:
    n.same_as(0, 0)


@shape_fn("", "LayerNormalization")
def _layernorm(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    n.set(0, dt, x)
    if n.n_out > 1:
        stash = n.attr("stash_type", 1)
        if x is None:
            n.set(1, stash, None)
            n.set(2, stash, None)
            return
        axis = norm_axis(n.attr("axis", -1), len(x))
        ms = list(x[:axis]) + [1] * (len(x) - axis)
        n.set(1, stash, ms)
        n.set(2, stash, ms)


# -- resize ------------------------------------------------------------------------------------


def _scaled(d, scale: float):
    if d is None:
        return None
    if type(d) is int:
        return int(np.floor(np.float32(d) * np.float32(scale)))
    # floor(d * p/q) is (d*p) // q: the dims' own arithmetic, which needs no sympy for a CNN's.
    p, q = float(np.float32(scale)).as_integer_ratio()  # exact, in lowest terms
    return D.floordiv(D.mul(d, p), q)


@shape_fn("", "Resize", "Upsample")
def _resize(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    if x is None:
        n.set(0, dt, None)
        return
    r = len(x)
    scales = sizes = None
    if n.node.op_type == "Upsample" and n.has_attr("scales"):
        scales = list(n.attr("scales"))
    elif n.node.op_type == "Upsample" or (n.opset < 11 and n.n_in == 2):
        scales = n.floats(1)
        if scales is None:
            n.set(0, dt, [None] * r)
            return
    else:
        if n.has(3):
            sizes = n.dimlist(3)
            if sizes is None:
                n.set(0, dt, [None] * r)
                return
        elif n.has(2):
            scales = n.floats(2)
            if scales is None:
                if n.shape(2) is not None and n.shape(2)[0] == 0:
                    n.set(0, dt, [None] * r)
                    return
                n.set(0, dt, [None] * r)
                return
            if not scales:
                scales = None
        if scales is None and sizes is None:
            n.set(0, dt, [None] * r)
            return
    axes = n.attr("axes")
    axes = [norm_axis(a, r) for a in axes] if axes is not None else list(range(r))
    out = list(x)
    if scales is not None:
        if len(scales) != len(axes):
            n.error(f"Resize: {len(scales)} scales for rank {r}")
            return
        for a, s in zip(axes, scales):
            out[a] = _scaled(x[a], s)
    else:
        if len(sizes) != len(axes):
            n.error(f"Resize: {len(sizes)} sizes for rank {r}")
            return
        policy = n.attr("keep_aspect_ratio_policy", "stretch")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy == "stretch":
            for a, s in zip(axes, sizes):
                out[a] = s
        else:
            ins = [x[a] for a in axes]
            if not all(type(v) is int for v in ins + sizes):
                for a in axes:
                    out[a] = None
            else:
                ratios = [np.float32(s) / np.float32(i) for s, i in zip(sizes, ins)]
                sc = min(ratios) if policy == "not_larger" else max(ratios)
                for a, i in zip(axes, ins):
                    out[a] = int(np.floor(np.float32(i) * sc + np.float32(0.5)))
    n.set(0, dt, out)


# -- recurrent -----------------------------------------------------------------------------------


@shape_fn("", "RNN", "GRU", "LSTM")
def _rnn(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    hidden = n.attr("hidden_size")
    if hidden is None and n.shape(2) is not None:
        gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[n.node.op_type]
        hidden = D.truediv(n.shape(2)[1], gates)
    direction = n.attr("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    dirs = 2 if direction == "bidirectional" else 1
    layout = n.attr("layout", 0)
    if x is None or len(x) != 3:
        seq = batch = None
    elif layout:
        batch, seq = x[0], x[1]
    else:
        seq, batch = x[0], x[1]
    if layout:
        y, yh = [batch, seq, dirs, hidden], [batch, dirs, hidden]
    else:
        y, yh = [seq, dirs, batch, hidden], [dirs, batch, hidden]
    n.set(0, dt, y)
    n.set(1, dt, yh)
    if n.node.op_type == "LSTM":
        n.set(2, dt, yh)


# -- attention ---------------------------------------------------------------------------------


@shape_fn("", "Attention")
def _attention(n: NodeCtx) -> None:
    q, k, v = n.shape(0), n.shape(1), n.shape(2)
    dt = n.dtype(0)
    if q is None or k is None or v is None:
        return
    qh = n.attr("q_num_heads")
    kvh = n.attr("kv_num_heads")
    past_k = n.shape(4) if n.has(4) else None
    past_v = n.shape(5) if n.has(5) else None
    if len(q) == 3:
        B, qs = q[0], q[1]
        if not qh or not kvh:
            return
        kvs = k[1]
        vhead = D.truediv(v[2], kvh)
        y = [B, qs, D.mul(qh, vhead)]
        khead = D.truediv(k[2], kvh)
    elif len(q) == 4:
        B, qh, qs, _ = q
        kvh, kvs, khead = k[1], k[2], k[3]
        vhead = v[3]
        y = [B, qh, qs, vhead]
    else:
        n.error(f"Attention: Q of rank {len(q)}")
        return
    n.set(0, dt, y)
    past = past_k[2] if past_k is not None and len(past_k) == 4 else (0 if not n.has(4) else None)
    total = D.add(past, kvs)
    if n.has_out(1):
        n.set(1, n.dtype(1) or dt, [B, kvh, total, khead])
    if n.has_out(2):
        pv = past_v[2] if past_v is not None and len(past_v) == 4 else (0 if not n.has(5) else None)
        n.set(2, n.dtype(2) or dt, [B, kvh, D.add(pv, kvs), vhead])
    if n.has_out(3):
        n.set(3, dt, [B, qh, qs, total])


@shape_fn("", "LinearAttention")
def _linear_attention(n: NodeCtx) -> None:
    q, v = n.shape(0), n.shape(2)
    k = n.shape(1)
    dt = n.dtype(0)
    qh, kvh = n.attr("q_num_heads"), n.attr("kv_num_heads")
    if q is None or v is None or len(q) != 3 or len(v) != 3 or not qh or not kvh:
        return
    dv = D.truediv(v[2], kvh)
    n.set(0, dt, [q[0], q[1], D.mul(qh, dv)])
    if n.has_out(1):
        dk = D.truediv(k[2], kvh) if k is not None and len(k) == 3 else None
        n.set(1, dt, [q[0], kvh, dk, dv])


@shape_fn("", "CausalConvWithState")
def _causal_conv(n: NodeCtx) -> None:
    x, w = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    n.set(0, dt, x)
    if n.has_out(1):
        km1 = D.sub(w[2], 1) if w is not None and len(w) == 3 else None
        n.set(1, dt, None if x is None else [x[0], x[1], km1])


@shape_fn("", "RotaryEmbedding")
def _rotary(n: NodeCtx) -> None:
    n.same_as(0, 0)


# -- quantization -----------------------------------------------------------------------------------


@shape_fn("", "QuantizeLinear")
def _quantize(n: NodeCtx) -> None:
    dt = n.attr("output_dtype", 0) or (n.dtype(2) if n.has(2) else 2)
    n.set(0, dt, n.shape(0))


@shape_fn("", "DequantizeLinear")
def _dequantize(n: NodeCtx) -> None:
    dt = n.attr("output_dtype", 0) or (n.dtype(1) if n.opset >= 19 else FLOAT) or FLOAT
    n.set(0, dt, n.shape(0))


@shape_fn("", "DynamicQuantizeLinear")
def _dyn_quantize(n: NodeCtx) -> None:
    n.set(0, 2, n.shape(0))
    n.set(1, FLOAT, [])
    n.set(2, 2, [])


# -- losses ----------------------------------------------------------------------------------------


def _reduction(n: NodeCtx) -> str:
    r = n.attr("reduction", "mean")
    return r.decode() if isinstance(r, bytes) else r


@shape_fn("", "NegativeLogLikelihoodLoss")
def _nll(n: NodeCtx) -> None:
    dt = n.dtype(0)
    n.set(0, dt, [] if _reduction(n) != "none" else n.shape(1))


@shape_fn("", "SoftmaxCrossEntropyLoss")
def _sce(n: NodeCtx) -> None:
    dt = n.dtype(0)
    n.set(0, dt, [] if _reduction(n) != "none" else n.shape(1))
    if n.has_out(1):
        n.set(1, dt, n.shape(0))


# -- signal ------------------------------------------------------------------------------------------


@shape_fn("", "DFT")
def _dft(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    if x is None:
        n.set(0, dt, None)
        return
    r = len(x)
    if n.opset >= 20:
        axis = n.scalar(2) if n.has(2) else -2
    else:
        axis = n.attr("axis", 1)
    if axis is None or isinstance(axis, float):
        n.set(0, dt, [None] * r)
        return
    a = norm_axis(int(axis), r)
    if a is None or a == r - 1:
        n.error("DFT: bad axis")
        return
    length = n.scalar(1) if n.has(1) else None
    if isinstance(length, float):
        length = int(length)
    onesided, inverse = n.attr("onesided", 0), n.attr("inverse", 0)
    last = 2
    if onesided and inverse:  # IRFFT: a full real signal
        if length is None and not n.has(1):
            length = D.mul(D.sub(x[a], 1), 2)
        last = 1
    else:
        if length is None and not n.has(1):
            length = x[a]
        if onesided:
            length = D.add(D.floordiv(length, 2), 1) if length is not None else None
    out = list(x)
    out[a] = length
    out[-1] = last
    n.set(0, dt, out)


@shape_fn("", "STFT")
def _stft(n: NodeCtx) -> None:
    x = n.shape(0)
    dt = n.dtype(0)
    step = n.scalar(1)
    flen = n.scalar(3) if n.has(3) else (n.shape(2)[0] if n.has(2) and n.shape(2) else None)
    if x is None or len(x) != 3:
        n.set(0, dt, [None] * 4)
        return
    frames = None
    if flen is not None and step is not None:
        frames = D.add(D.floordiv(D.sub(x[1], flen), step), 1)
    bins = flen
    if n.attr("onesided", 1) and flen is not None:
        bins = D.add(D.floordiv(flen, 2), 1)
    n.set(0, dt, [x[0], frames, bins, 2])


@shape_fn("", "HannWindow", "HammingWindow", "BlackmanWindow")
def _window(n: NodeCtx) -> None:
    size = n.scalar(0)
    n.set(0, n.attr("output_datatype", FLOAT), [size])


@shape_fn("", "MelWeightMatrix")
def _mel(n: NodeCtx) -> None:
    bins, dft = n.scalar(0), n.scalar(1)
    rows = D.add(D.floordiv(dft, 2), 1) if dft is not None else None
    n.set(0, n.attr("output_datatype", FLOAT), [rows, bins])


@shape_fn("", "Det")
def _det(n: NodeCtx) -> None:
    x = n.shape(0)
    n.set(0, n.dtype(0), None if x is None else list(x[:-2]))


# -- vision / detection ----------------------------------------------------------------------------


@shape_fn("", "NonMaxSuppression")
def _nms(n: NodeCtx) -> None:
    n.set(0, INT64, [n.fresh("nms"), 3])


@shape_fn("", "RoiAlign")
def _roi_align(n: NodeCtx) -> None:
    x, rois = n.shape(0), n.shape(1)
    out = [rois[0] if rois is not None else None, x[1] if x is not None else None,
           n.attr("output_height", 1), n.attr("output_width", 1)]
    n.set(0, n.dtype(0), out)


@shape_fn("", "MaxRoiPool")
def _max_roi_pool(n: NodeCtx) -> None:
    x, rois = n.shape(0), n.shape(1)
    ph, pw = (list(n.attr("pooled_shape")) + [None, None])[:2]
    n.set(0, n.dtype(0), [rois[0] if rois is not None else None,
                          x[1] if x is not None else None, ph, pw])


@shape_fn("", "GridSample")
def _grid_sample(n: NodeCtx) -> None:
    x, g = n.shape(0), n.shape(1)
    dt = n.dtype(0)
    if x is None or g is None:
        n.set(0, dt, None if x is None else [None] * len(x))
        return
    n.set(0, dt, [x[0], x[1]] + list(g[1:-1]))


@shape_fn("", "AffineGrid")
def _affine_grid(n: NodeCtx) -> None:
    size = n.dimlist(1)
    dt = n.dtype(0)
    if size is None:
        s = n.shape(1)
        if s is not None and type(s[0]) is int:
            k = s[0] - 2
            n.set(0, dt, [None] * (k + 1) + [k])
        return
    k = len(size) - 2
    n.set(0, dt, [size[0]] + list(size[2:]) + [k])


@shape_fn("", "ImageDecoder")
def _image_decoder(n: NodeCtx) -> None:
    fmt = n.attr("pixel_format", "RGB")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    c = 1 if fmt == "Grayscale" else 3
    n.set(0, 2, [n.fresh("img_h"), n.fresh("img_w"), c])


# -- strings -------------------------------------------------------------------------------------------


@shape_fn("", "RegexFullMatch")
def _regex(n: NodeCtx) -> None:
    n.same_as(0, 0, BOOL)


@shape_fn("", "StringConcat")
def _string_concat(n: NodeCtx) -> None:
    n.set(0, 8, broadcast(n, [n.shape(0), n.shape(1)], "StringConcat broadcast"))


@shape_fn("", "StringSplit")
def _string_split(n: NodeCtx) -> None:
    x = n.shape(0)
    if x is None:
        n.set(0, 8, None)
        n.set(1, INT64, None)
        return
    n.set(0, 8, list(x) + [n.fresh("splits")])
    n.set(1, INT64, list(x))


@shape_fn("", "StringNormalizer")
def _string_normalizer(n: NodeCtx) -> None:
    x = n.shape(0)
    stop = n.attr("stopwords")
    if x is None:
        n.set(0, 8, None)
        return
    if not stop:
        n.set(0, 8, list(x))
        return
    out = list(x)
    out[-1] = n.fresh("strnorm")
    n.set(0, 8, out)


@shape_fn("", "TfIdfVectorizer")
def _tfidf(n: NodeCtx) -> None:
    x = n.shape(0)
    idx = n.attr("ngram_indexes")
    width = (max(idx) + 1) if idx else None
    if x is None:
        n.set(0, FLOAT, None)
    elif len(x) == 1:
        n.set(0, FLOAT, [width])
    else:
        n.set(0, FLOAT, [x[0], width])


__all__ = ["conv_out", "matmul_shape"]
