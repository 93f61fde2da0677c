"""Regenerate the dynamize corpus in golden/dynamize/.

    pip install torch==2.13.0 && python golden/dynamize/export.py
    HF_HUB_OFFLINE=1 python golden/dynamize/export.py --zoo     # the wider corpus: see zoo.py

Torch is needed ONLY to regenerate these files; nothing else in onnxopt imports it.

Scenario: the user traced a model with the TorchScript tracer (`torch.onnx.export(..., dynamo=False)`)
at ONE fixed shape and forgot dynamic_axes, so batch / sequence / image sizes got baked into the graph
(input declarations, Reshape/Expand/Resize shape constants, zero-state initializers, divisors...).
A dynamize pass must make the marked dims symbolic again so the model gives PyTorch's answer at
other sizes.

For every case <name>:
  <name>.onnx          traced at the trace shape, opset 17, do_constant_folding=True, no dynamic_axes
  <name>_nofold.onnx   the same with do_constant_folding=False -- only where that changes the graph
  <name>.expected.npz  PyTorch's own outputs: shape0 = the trace shape, shape1.. = other shapes; keys
                       `shape<i>/input:<input name>` and `shape<i>/output:<output name>`
  <name>.json          {"dynamic": {input: {axis: dim name}}, "trace": {input: dims},
                        "shapes": [{input: dims}, ...] (same order as the npz), "constraints": ...,
                        "as_exported": per shape, what onnxruntime does with the exported model when
                        ONLY the input declarations are relaxed (informational: "match",
                        "wrong shape: ...", "wrong values: ..." or "error: ..."),
                        "baked": where the trace sizes ended up (hand-written from reading the graphs),
                        "notes": ...}
The script checks each exported model in onnxruntime at the trace shape against PyTorch.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
VOCAB = 50
RTOL = ATOL = 1e-4


# --------------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------------


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    """Explicit attention; the head split uses the traced sizes b, t (HF style)."""

    def __init__(self, hidden=32, heads=2):
        super().__init__()
        self.heads, self.hd = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.o = nn.Linear(hidden, hidden)

    def forward(self, x, add_mask=None):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q = q.view(b, t, self.heads, self.hd).permute(0, 2, 1, 3)
        k = k.view(b, t, self.heads, self.hd).permute(0, 2, 1, 3)
        v = v.view(b, t, self.heads, self.hd).permute(0, 2, 1, 3)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hd)
        if add_mask is not None:
            s = s + add_mask
        p = torch.softmax(s, dim=-1)
        return self.o(torch.matmul(p, v).permute(0, 2, 1, 3).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, hidden=32, heads=2):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = Attention(hidden, heads)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, 2 * hidden)
        self.fc2 = nn.Linear(2 * hidden, hidden)

    def forward(self, x, add_mask=None):
        x = x + self.attn(self.ln1(x), add_mask)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class CnnFlatten(nn.Module):
    """Classic `x.view(x.size(0), -1)` flatten before the classifier."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc(x)


class BertMask(nn.Module):
    """Embeddings + positions from arange, HF-style extended attention mask, 2 layers."""

    def __init__(self, hidden=32, heads=2, layers=2, max_pos=32):
        super().__init__()
        self.word = nn.Embedding(VOCAB, hidden)
        self.pos = nn.Embedding(max_pos, hidden)
        self.ln = nn.LayerNorm(hidden)
        self.blocks = nn.ModuleList([Block(hidden, heads) for _ in range(layers)])

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.size()
        pos = torch.arange(t, dtype=torch.long).unsqueeze(0).expand(b, t)
        x = self.ln(self.word(input_ids) + self.pos(pos))
        ext = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        for blk in self.blocks:
            x = blk(x, ext)
        return x


class GptTril(nn.Module):
    """Causal mask built each call with torch.tril(torch.ones(T, T)) and masked_fill."""

    def __init__(self, hidden=32, heads=2, max_pos=32):
        super().__init__()
        self.heads, self.hd = heads, hidden // heads
        self.wte = nn.Embedding(VOCAB, hidden)
        self.wpe = nn.Embedding(max_pos, hidden)
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)
        self.ln_f = nn.LayerNorm(hidden)

    def causal(self, t):
        return torch.tril(torch.ones(t, t)).view(1, 1, t, t)

    def forward(self, input_ids):
        B, T = input_ids.shape
        x = self.wte(input_ids) + self.wpe(torch.arange(T))
        C = x.size(-1)
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, self.hd).transpose(1, 2)
        k = k.view(B, T, self.heads, self.hd).transpose(1, 2)
        v = v.view(B, T, self.heads, self.hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        att = att.masked_fill(self.causal(T) == 0, float("-inf"))
        y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        x = x + self.fc2(gelu_tanh(self.fc(self.ln2(x))))
        return self.ln_f(x) @ self.wte.weight.t()


class GptBuffer(GptTril):
    """HF GPT-2 style: a registered lower-triangular buffer sliced to [:T, :T], torch.where with
    finfo.min, position_ids from arange(0, T) with a leading view(-1, T)."""

    def __init__(self, hidden=32, heads=2, max_pos=32):
        super().__init__(hidden, heads, max_pos)
        self.register_buffer(
            "bias",
            torch.tril(torch.ones(max_pos, max_pos, dtype=torch.bool)).view(1, 1, max_pos, max_pos),
            persistent=False,
        )

    def forward(self, input_ids):
        B, T = input_ids.shape
        position_ids = torch.arange(0, T, dtype=torch.long).unsqueeze(0).view(-1, T)
        x = self.wte(input_ids) + self.wpe(position_ids)
        C = x.size(-1)
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, self.hd).transpose(1, 2)
        k = k.view(B, T, self.heads, self.hd).transpose(1, 2)
        v = v.view(B, T, self.heads, self.hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-1, -2)) / (float(v.size(-1)) ** 0.5)
        q_len, k_len = q.size(-2), k.size(-2)
        causal = self.bias[:, :, k_len - q_len : k_len, :k_len]
        att = torch.where(causal, att, torch.tensor(torch.finfo(att.dtype).min, dtype=att.dtype))
        y = torch.matmul(torch.softmax(att, dim=-1), v)
        y = y.permute(0, 2, 1, 3).contiguous()
        y = y.view(y.size()[:-2] + (self.heads * self.hd,))
        x = x + self.proj(y)
        x = x + self.fc2(gelu_tanh(self.fc(self.ln2(x))))
        return self.ln_f(x) @ self.wte.weight.t()


class VitCls(nn.Module):
    """Patch conv, class token expanded to the batch, position embeddings, 2 layers, head."""

    def __init__(self, hidden=32, heads=2, layers=2, patch=8, image=32):
        super().__init__()
        self.patch = nn.Conv2d(3, hidden, patch, patch)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, hidden))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image // patch) ** 2 + 1, hidden))
        self.blocks = nn.ModuleList([Block(hidden, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 10)

    def forward(self, pixel_values):
        B = pixel_values.shape[0]
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(B, -1, -1), x), dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x)[:, 0])


class LstmZeroState(nn.Module):
    """2-layer LSTM, batch_first, explicit zero (h0, c0) of shape [layers, B, H]."""

    def __init__(self, inp=8, hidden=16, layers=2):
        super().__init__()
        self.layers, self.hidden = layers, hidden
        self.rnn = nn.LSTM(inp, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, 4)

    def forward(self, x):
        h0 = torch.zeros(self.layers, x.size(0), self.hidden)
        c0 = torch.zeros(self.layers, x.size(0), self.hidden)
        y, (hn, _cn) = self.rnn(x, (h0, c0))
        return self.fc(y), hn


class GruZeroState(nn.Module):
    """Bidirectional GRU over embeddings, batch_first, zero h0 built with new_zeros."""

    def __init__(self, hidden=16):
        super().__init__()
        self.hidden = hidden
        self.emb = nn.Embedding(VOCAB, 8)
        self.rnn = nn.GRU(8, hidden, 1, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 4)

    def forward(self, input_ids):
        x = self.emb(input_ids)
        h0 = x.new_zeros(2, x.shape[0], self.hidden)
        y, _ = self.rnn(x, h0)
        return self.fc(y)


class ArangeExpand(nn.Module):
    """Positions from torch.arange(T) expanded to (B, T); key mask expanded to (B, T, T)."""

    def __init__(self, hidden=16, max_pos=32):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, hidden)
        self.pos = nn.Embedding(max_pos, hidden)
        self.fc = nn.Linear(hidden, hidden)

    def forward(self, input_ids, attention_mask):
        B, T = input_ids.shape
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = self.emb(input_ids) + self.pos(pos)
        m = attention_mask[:, None, :].expand(B, T, T)
        s = torch.bmm(x, x.transpose(1, 2)) / math.sqrt(x.size(-1))
        s = s.masked_fill(m == 0, -1e4)
        return self.fc(torch.bmm(torch.softmax(s, -1), x))


class UNet(nn.Module):
    """Two downsamples; one upsample by scale_factor=2, one by an explicit size taken from the skip."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(3, 8, 3, padding=1)
        self.e2 = nn.Conv2d(8, 16, 3, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.d2 = nn.Conv2d(32, 8, 3, padding=1)
        self.d1 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        s1 = F.relu(self.e1(x))  # H
        s2 = F.relu(self.e2(F.max_pool2d(s1, 2)))  # H/2
        m = F.relu(self.mid(F.max_pool2d(s2, 2)))  # H/4
        u2 = F.interpolate(m, scale_factor=2.0, mode="nearest")
        u2 = F.relu(self.d2(torch.cat([u2, s2], 1)))
        u1 = F.interpolate(u2, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        u1 = F.relu(self.d1(torch.cat([u1, s1], 1)))
        return self.out(u1)


def window_partition(x, ws: int):
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws: int, H: int, W: int):
    # exactly as in the Swin reference code: int() of a traced size -> a baked constant
    B = int(windows.shape[0] / (H * W / ws / ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class SwinWindow(nn.Module):
    """Channels-last input (B, H, W, C); window attention over 4x4 windows; H, W multiples of 4."""

    def __init__(self, dim=16, heads=2, ws=4):
        super().__init__()
        self.ws = ws
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x):
        _, H, W, C = x.shape
        w = window_partition(self.norm(x), self.ws).view(-1, self.ws * self.ws, C)
        w = self.attn(w).view(-1, self.ws, self.ws, C)
        x = x + window_reverse(w, self.ws, H, W)
        return self.fc(x)


class YoloGrid(nn.Module):
    """Stride-8 backbone, detection head decoded with a meshgrid over the feature map's H, W."""

    def __init__(self, nc=3, na=2):
        super().__init__()
        self.nc, self.na, self.no, self.stride = nc, na, nc + 5, 8
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.SiLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.SiLU(),
            nn.Conv2d(16, 16, 3, 2, 1),
            nn.SiLU(),
        )
        self.head = nn.Conv2d(16, na * self.no, 1)
        self.register_buffer("anchors", torch.tensor([[10.0, 13.0], [16.0, 30.0]]).view(1, na, 1, 1, 2))

    def forward(self, images):
        p = self.head(self.backbone(images))
        bs, _, ny, nx = p.shape
        p = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
        yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
        y = p.sigmoid()
        xy = (y[..., 0:2] * 2.0 - 0.5 + grid) * self.stride
        wh = (y[..., 2:4] * 2) ** 2 * self.anchors
        out = torch.cat((xy, wh, y[..., 4:]), -1)
        return out.view(bs, -1, self.no)


class AttnHeads(nn.Module):
    """One attention block on float features [B, T, 32] with 2 heads (head dim 16). Traced at a
    shape where a trace size equals a model dim, so the constant alone cannot tell them apart."""

    def __init__(self):
        super().__init__()
        self.block = Block(32, 2)

    def forward(self, x):
        return self.block(x)


class SeqMeanDiv(nn.Module):
    """Mean over the sequence written as a sum divided by the traced length T."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        T = x.size(1)
        y = torch.tanh(self.fc1(x))
        return self.fc2(y.sum(1) / T)


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------

SEQ_DYN = {"0": "batch", "1": "seq"}


def seq_shapes(trace_b, trace_t, others):
    return [(trace_b, trace_t)] + others


CASES = [
    dict(
        name="cnn_flatten",
        baked="x.view(x.size(0), -1): Reshape shape int64[2] {3,-1} (nofold: scalar 3 -> Unsqueeze -> Concat with -1)",
        build=CnnFlatten,
        inputs={"x": "float"},
        outputs=["logits"],
        dynamic={"x": {"0": "batch"}},
        shapes=[{"x": [b, 3, 16, 16]} for b in (3, 1, 2, 6)],
    ),
    dict(
        name="bert_mask",
        baked="attention Reshapes {3,7,2,16} and {3,7,32}; arange(T) -> int64[1,7] constant, expand(b,t) -> Expand whose shape {3,7} goes through the exporter's Where(Equal(shape,-1),1,shape) pattern; with batch 1 the graph silently broadcasts to a batch-3 output",
        build=BertMask,
        inputs={"input_ids": "ids", "attention_mask": "mask"},
        outputs=["last_hidden_state"],
        dynamic={"input_ids": SEQ_DYN, "attention_mask": SEQ_DYN},
        shapes=[{"input_ids": [b, t], "attention_mask": [b, t]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
    ),
    dict(
        name="gpt2_tril",
        baked="attention Reshapes {3,7,2,16}, {3,7,32}; causal mask = Trilu(float ones[7,7] initializer) -> Reshape {1,1,7,7}",
        baked_nofold_only="positions: arange -> int64[7] constant -> Gather(wpe.weight)",
        baked_fold_only="LOSSY: wpe(arange(T)) is constant-folded into a float[7,32] initializer and wpe.weight is no longer in the graph, so seq > 7 cannot be recovered from this file (seq <= 7 only by slicing); batch can",
        build=GptTril,
        inputs={"input_ids": "ids"},
        outputs=["logits"],
        dynamic={"input_ids": SEQ_DYN},
        shapes=[{"input_ids": [b, t]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
    ),
    dict(
        name="gpt2_buffer",
        baked="attention Reshapes {3,7,2,16}, {3,7,32}; the 32x32 bool buffer is sliced at export time into a bool[1,1,7,7] initializer in BOTH variants (the full buffer is gone: a pass must recognise the lower-triangular constant to go past 7); position_ids arange -> int64[1,7] constant -> Gather(wpe)",
        build=GptBuffer,
        inputs={"input_ids": "ids"},
        outputs=["logits"],
        dynamic={"input_ids": SEQ_DYN},
        shapes=[{"input_ids": [b, t]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
        constraints={"seq": "<= 32 (size of the registered causal buffer and of the position table)"},
    ),
    dict(
        name="vit_cls",
        baked="cls.expand(B,-1,-1): shape {3,-1,-1} through Where(Equal(..,-1)) with ConstantOfShape({3}); attention Reshapes {3,17,2,16}, {3,17,32} (17 = patches+1, static); flatten(2) uses the exporter's own Shape/Slice and stays dynamic",
        build=VitCls,
        inputs={"pixel_values": "float"},
        outputs=["logits"],
        dynamic={"pixel_values": {"0": "batch"}},
        shapes=[{"pixel_values": [b, 3, 32, 32]} for b in (3, 1, 2, 6)],
    ),
    dict(
        name="lstm_zero_state",
        baked="h0/c0 zeros become float zeros[1,3,16] initializers (per layer; nofold: one zeros[2,3,16] sliced per layer) fed to the exporter's own Expand(h0, [1, Shape(x)[1], 16]) - that Expand is dynamic but bidirectional broadcasting keeps the baked 3; seq is dynamic in the LSTM op already",
        build=LstmZeroState,
        inputs={"x": "float"},
        outputs=["y", "h_n"],
        dynamic={"x": SEQ_DYN},
        shapes=[{"x": [b, t, 8]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
    ),
    dict(
        name="gru_zero_state",
        baked="h0 = new_zeros(2,B,16) becomes a float zeros[2,3,16] initializer fed to the exporter's Expand(h0, [2, Shape(x)[1], 16]); seq already dynamic",
        build=GruZeroState,
        inputs={"input_ids": "ids"},
        outputs=["y"],
        dynamic={"input_ids": SEQ_DYN},
        shapes=[{"input_ids": [b, t]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
    ),
    dict(
        name="arange_expand",
        baked="arange(T) -> int64[1,7] constant -> Expand with shape {3,7}; mask expand shape {3,7,7}; both via the exporter's Where(Equal(shape,-1),1,shape) pattern",
        build=ArangeExpand,
        inputs={"input_ids": "ids", "attention_mask": "mask"},
        outputs=["y"],
        dynamic={"input_ids": SEQ_DYN, "attention_mask": SEQ_DYN},
        shapes=[{"input_ids": [b, t], "attention_mask": [b, t]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
    ),
    dict(
        name="unet",
        baked="scale_factor=2 -> Resize with scales {1,1,2,2} (already shape-free); size=s1.shape[-2:] -> Resize sizes = Concat(Slice(Shape(x),0,2), int64[2] {16,24}): only H,W baked, batch-only change already works",
        build=UNet,
        inputs={"image": "float"},
        outputs=["mask"],
        dynamic={"image": {"0": "batch", "2": "height", "3": "width"}},
        shapes=[{"image": [b, 3, h, w]} for b, h, w in [(3, 16, 24), (1, 16, 24), (3, 32, 32), (2, 8, 12)]],
        constraints={"height": "multiple of 4", "width": "multiple of 4"},
    ),
    dict(
        name="swin_window",
        baked="int() in window_reverse plus H//ws, W//ws: Reshapes {5,3,4,7,4,16}, {-1,4,4,16}, {5,3,7,4,4,-1}, {5,12,28,-1}; the window attention Reshapes carry 105 = 5*3*7 (product of derived sizes); even with do_constant_folding=False the derived values 3, 7, 105 are already constants (no arithmetic left to trace back)",
        build=SwinWindow,
        inputs={"x": "float"},
        outputs=["y"],
        dynamic={"x": {"0": "batch", "1": "height", "2": "width"}},
        shapes=[{"x": [b, h, w, 16]} for b, h, w in [(5, 12, 28), (1, 12, 28), (5, 8, 8), (2, 16, 4)]],
        constraints={"height": "multiple of 4 (window size)", "width": "multiple of 4 (window size)"},
    ),
    dict(
        name="yolo_grid",
        baked="view {3,2,8,4,6} (4 = H/8, 6 = W/8), meshgrid aranges -> int64[4,1] {0..3} and int64[1,6] {0..5} constants -> Expand, grid Reshape {1,1,4,6,2}, output Reshape {3,-1,8}",
        build=YoloGrid,
        inputs={"images": "float"},
        outputs=["detections"],
        dynamic={"images": {"0": "batch", "2": "height", "3": "width"}},
        shapes=[{"images": [b, 3, h, w]} for b, h, w in [(3, 32, 48), (1, 32, 48), (3, 64, 64), (2, 16, 40)]],
        constraints={"height": "multiple of 8 (stride)", "width": "multiple of 8 (stride)"},
    ),
    dict(
        name="batch2_heads2",
        baked="Reshapes {2,7,2,16}, {2,7,32}: the first 2 is batch, the second is heads",
        build=AttnHeads,
        inputs={"x": "float"},
        outputs=["y"],
        dynamic={"x": SEQ_DYN},
        shapes=[{"x": [b, t, 32]} for b, t in [(2, 7), (1, 7), (2, 12), (4, 5)]],
        notes="traced with batch 2 and 2 attention heads: the Reshape constant [2, 7, 2, 16] holds 2 twice",
    ),
    dict(
        name="seq16_headdim16",
        baked="Reshapes {3,16,2,16}, {3,16,32}: the first 16 is seq, the last is head size",
        build=AttnHeads,
        inputs={"x": "float"},
        outputs=["y"],
        dynamic={"x": SEQ_DYN},
        shapes=[{"x": [b, t, 32]} for b, t in [(3, 16), (1, 16), (3, 9), (2, 20)]],
        notes="traced with seq 16 and head size 16: the Reshape constant [3, 16, 2, 16] holds 16 twice",
    ),
    dict(
        name="seq_mean_div",
        baked="Div by float scalar 7.0 (the traced T); no error at other shapes, only wrong values when seq changes",
        build=SeqMeanDiv,
        inputs={"x": "float"},
        outputs=["y"],
        dynamic={"x": SEQ_DYN},
        shapes=[{"x": [b, t, 16]} for b, t in [(3, 7), (1, 7), (3, 12), (5, 4)]],
        notes="y.sum(1) / T: the traced length becomes a scalar divisor; a wrong answer, not an error",
    ),
]


# --------------------------------------------------------------------------------------------------
# Machinery
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def perturb_norms(model: nn.Module) -> None:
    """LayerNorm starts as weight=1, bias=0; perturb it so a broken graph cannot hide behind that."""
    g = torch.Generator().manual_seed(7)
    for mod in model.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.weight.add_(0.1 * torch.randn(mod.weight.shape, generator=g))
            mod.bias.add_(0.1 * torch.randn(mod.bias.shape, generator=g))


def make_inputs(case: dict, shape: dict, seed: int, vocab: int = VOCAB, low: int = 0) -> dict:
    """Seeded inputs of ``shape`` by kind: ``float``; ``ids`` (ids in ``[low, vocab)``) or
    ``ids<N>`` (ids in ``[low, N)``); ``mask`` (row 0 unpadded, others padded). The zoo
    (zoo.py) draws its ids from 3, above its models' special tokens."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, kind in case["inputs"].items():
        dims = shape[name]
        if kind == "float":
            out[name] = torch.randn(*dims, generator=g)
        elif re.fullmatch(r"ids\d*", kind):
            top = int(kind[3:] or vocab)
            out[name] = torch.randint(low, top, dims, generator=g, dtype=torch.int64)
        elif kind == "mask":
            b, t = dims
            m = torch.ones(b, t, dtype=torch.int64)
            for i in range(1, b):  # row 0 unpadded, other rows padded after a random length >= 1
                m[i, int(torch.randint(1, t + 1, (1,), generator=g)) :] = 0
            out[name] = m
        else:
            raise ValueError(kind)
    return out


def session(model_or_path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def relax_inputs(m: onnx.ModelProto, dynamic: dict) -> onnx.ModelProto:
    """Only what a user would try first: make the input declarations symbolic, drop stale shapes."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    for inp in m2.graph.input:
        for axis, sym in dynamic.get(inp.name, {}).items():
            d = inp.type.tensor_type.shape.dim[int(axis)]
            d.Clear()
            d.dim_param = sym
    del m2.graph.value_info[:]
    for out in m2.graph.output:
        out.type.tensor_type.ClearField("shape")
    return m2


def export(model, args, path, case, fold: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*with a batch_size other than 1.*")  # LSTM/GRU
        torch.onnx.export(
            model,
            args,
            path,
            dynamo=False,
            opset_version=OPSET,
            input_names=list(case["inputs"]),
            output_names=case["outputs"],
            do_constant_folding=fold,
        )
    m = onnx.load(path)
    m.producer_name = "onnxopt golden/dynamize/export.py"
    m.producer_version = f"torch {torch.__version__}"
    m.doc_string = (
        f"TorchScript tracer (dynamo=False), opset {OPSET}, do_constant_folding={fold}, "
        "NO dynamic_axes: traced sizes are baked in"
    )
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def compact_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=1)
    return (
        re.sub(
            r"\[\s+(-?\d+(?:,\s+-?\d+)*)\s+\]",
            lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]",
            text,
        )
        + "\n"
    )


def graph_key(m: onnx.ModelProto):
    return (
        [(n.op_type, len(n.input)) for n in m.graph.node],
        sorted((i.name, tuple(i.dims)) for i in m.graph.initializer),
    )


def trace_sized_constants(m: onnx.ModelProto, sizes: set) -> list:
    """Small int / scalar constants that contain a trace size, with their consumers (for the report)."""
    from onnx import numpy_helper

    consumers = {}
    for n in m.graph.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, []).append(f"{n.op_type}[{i}]")
    found = []
    tensors = [(i.name, i) for i in m.graph.initializer]
    tensors += [(n.output[0], n.attribute[0].t) for n in m.graph.node if n.op_type == "Constant" and n.attribute[0].t]
    for name, t in tensors:
        a = numpy_helper.to_array(t)
        if a.size > 8 and not (set(a.shape) & sizes and a.size <= 4096 and not a.any()):
            continue  # bigger tensors only if all-zero with a trace-sized dim (zero states)
        if a.size <= 8:
            vals = set(a.ravel().tolist())
            if vals & sizes:
                found.append(f"{a.dtype}{list(a.shape)}={a.ravel().tolist()} -> {','.join(consumers.get(name, []))}")
        else:
            found.append(f"zeros{list(a.shape)} -> {','.join(consumers.get(name, []))}")
    return found


def run_case(case: dict) -> None:
    name = case["name"]
    torch.manual_seed(20240601)
    model = case["build"]().eval()
    perturb_norms(model)
    shapes = case["shapes"]
    in_names, out_names = list(case["inputs"]), case["outputs"]

    # PyTorch reference at every shape (shape0 = trace shape)
    arrays, feeds_all, refs_all = {}, [], []
    for i, shape in enumerate(shapes):
        feeds_t = make_inputs(case, shape, seed=1000 + i)
        with torch.no_grad():
            outs = model(*[feeds_t[n] for n in in_names])
        outs = outs if isinstance(outs, tuple) else (outs,)
        feeds = {n: feeds_t[n].numpy() for n in in_names}
        refs = [o.numpy() for o in outs]
        for n in in_names:
            arrays[f"shape{i}/input:{n}"] = feeds[n]
        for n, r in zip(out_names, refs):
            arrays[f"shape{i}/output:{n}"] = r
        feeds_all.append(feeds)
        refs_all.append(refs)

    trace_args = tuple(torch.from_numpy(feeds_all[0][n]) for n in in_names)
    variants = []
    m_fold = export(model, trace_args, os.path.join(HERE, f"{name}.onnx"), case, fold=True)
    variants.append((name, m_fold, True))
    nofold_path = os.path.join(HERE, f"{name}_nofold.onnx")
    m_nofold = export(model, trace_args, nofold_path, case, fold=False)
    if graph_key(m_nofold) != graph_key(m_fold):
        variants.append((f"{name}_nofold", m_nofold, False))
    else:
        os.remove(nofold_path)

    sizes = {shapes[0][n][int(a)] for n, axes in case["dynamic"].items() for a in axes}
    for vname, m, fold in variants:
        # must run and match at the trace shape
        got = session(m).run(None, feeds_all[0])
        for n, r, g in zip(out_names, refs_all[0], got):
            np.testing.assert_allclose(g, r, rtol=RTOL, atol=ATOL, err_msg=f"{vname} {n} at trace shape")
        # informational: what the exported graph does when only the input declarations are relaxed
        status = []
        relaxed = relax_inputs(m, case["dynamic"])
        try:
            sess = session(relaxed)
        except Exception as e:  # noqa: BLE001
            sess, load_err = None, str(e).strip().splitlines()[0][:240]
        for i in range(len(shapes)):
            if sess is None:
                status.append(f"error: {load_err}")
                continue
            try:
                got = sess.run(None, feeds_all[i])
                msg = "match"
                for n, g, r in zip(out_names, got, refs_all[i]):
                    if g.shape != r.shape:
                        msg = f"wrong shape: {n} {list(g.shape)}, expected {list(r.shape)}"
                        break
                    if not np.allclose(g, r, rtol=RTOL, atol=ATOL):
                        msg = f"wrong values: {n} max_abs={float(np.max(np.abs(g - r))):.3g}"
                        break
                status.append(msg)
            except Exception as e:  # noqa: BLE001
                status.append("error: " + str(e).strip().splitlines()[0][:240])
        meta = {
            "model": f"{vname}.onnx",
            "expected": f"{vname}.expected.npz",
            "torch": torch.__version__,
            "opset": OPSET,
            "do_constant_folding": fold,
            "inputs": case["inputs"],
            "outputs": out_names,
            "dynamic": case["dynamic"],
            "trace": shapes[0],
            "shapes": shapes,
            "constraints": case.get("constraints", {}),
            "as_exported": status,
            "baked": "; ".join(
                [case["baked"]] + [case[k] for k in ("baked_fold_only" if fold else "baked_nofold_only",) if k in case]
            ),
            "notes": case.get("notes", (case["build"].__doc__ or "").strip()),
        }
        with open(os.path.join(HERE, f"{vname}.json"), "w") as f:
            f.write(compact_json(meta))
        np.savez_compressed(os.path.join(HERE, f"{vname}.expected.npz"), **arrays)
        kib = os.path.getsize(os.path.join(HERE, f"{vname}.onnx")) / 1024
        print(f"{vname:26s} {kib:6.1f} KiB {len(m.graph.node):4d} nodes  as_exported={status}")
        for line in trace_sized_constants(m, sizes):
            print(f"    trace-sized constant: {line}")


def main() -> int:
    if sys.argv[1:2] == ["--zoo"]:  # the wider corpus of common architectures: see zoo.py
        sys.path.insert(0, HERE)
        import zoo

        return zoo.main(sys.argv[2:])
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    only = set(sys.argv[1:])
    for case in CASES:
        if not only or case["name"] in only:
            run_case(case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
