"""Regenerate the small committed test models in golden/models/.

    pip install torch==2.13.0 && python golden/models/export.py

Torch is needed ONLY to regenerate these files; nothing else in onnxopt imports it.

Opset situation (torch 2.13.0): the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`)
only has symbolic functions up to opset 20 (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
== 20). Asking it for opset_version=23 does not fail: it emits an OnnxExporterWarning ("Exporting to
ONNX opset version 23 is not supported ... The highest opset version supported is 20") and then
stamps 23 on a graph built from the opset-20 symbolics (tried: for these models that output also
passes the checker and runs). We do not rely on that unsupported path.
The *_op23.onnx models are exported at opset 20 (same exporter, same flags) and then converted with
`onnx.version_converter.convert_version(model, 23)`; the script checks that each converted model
passes onnx.checker (full check), runs in onnxruntime and matches PyTorch. The *_op17.onnx models
are exported at opset 17 directly.

Consequences worth knowing when you read the graphs:
  * bert/gpt2 write LayerNorm by hand, so both opsets contain the decomposed pattern
    ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add.
    vit uses nn.LayerNorm, which exports as LayerNormalization at both opsets.
  * Attention is written out (q @ k^T / sqrt(d), mask, softmax, @ v) in bert, gpt2 and vit, so it
    appears as MatMul, Div (by a scalar constant), [mask], Softmax, MatMul, where the mask is an Add
    of the extended attention mask in bert, a Where (masked_fill of a Trilu causal mask) in gpt2,
    and absent in vit. The script asserts these pattern counts (bert/gpt2: 5 decomposed LayerNorms,
    2 attentions; vit: 2 attentions) so a regeneration cannot silently lose them.
  * ReduceMean takes axes as an attribute at opset 17 and as a constant input at opset 23.
  * bert writes GELU (erf form) by hand: Div, Erf, Add, Mul, Mul at both opsets.
    gpt2 writes the tanh GELU by hand: Pow/Mul/Add/Tanh... at both opsets.
    vit uses nn.GELU(): opset 17 gets the exporter's erf decomposition, opset 23 (exported at 20)
    gets a single Gelu node (opset-20 symbolic).
  * resnet keeps its BatchNormalization nodes: it is exported with training=TrainingMode.PRESERVE
    on a model in eval mode, which skips the exporter's eval-mode Conv+BN folding (the model is
    still exported in inference mode: BatchNormalization has training_mode=0, one output).

Beside each model, <name>.io.npz holds seeded inputs and PyTorch's outputs at two bindings of the
dynamic dims: keys `shape0/input:<name>`, `shape0/output:<name>`, `shape1/input:<name>`, ...
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np
import onnx
import onnx.checker
import onnx.version_converter
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
TORCHSCRIPT_MAX_OPSET = 20
OPSETS = (17, 23)


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class HandLayerNorm(nn.Module):
    """LayerNorm written out so it exports decomposed:
    ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(dim))
        self.bias = nn.Parameter(0.1 * torch.randn(dim))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        d = x - mean
        var = d.pow(2).mean(-1, keepdim=True)
        return d / torch.sqrt(var + self.eps) * self.weight + self.bias


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class SelfAttention(nn.Module):
    """Explicit scaled-dot-product attention: MatMul, Div(scale), Add(mask), Softmax, MatMul."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, additive_mask=None):
        b, t, c = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if additive_mask is not None:
            scores = scores + additive_mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(b, t, c)
        return self.o(ctx)


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.short is None else self.short(x)
        return F.relu(y + s)


class TinyResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.layer3 = BasicBlock(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ff: int):
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.ln1 = HandLayerNorm(hidden, 1e-12)
        self.fc1 = nn.Linear(hidden, ff)
        self.fc2 = nn.Linear(ff, hidden)
        self.ln2 = HandLayerNorm(hidden, 1e-12)

    def forward(self, x, mask):
        x = self.ln1(x + self.attn(x, mask))
        return self.ln2(x + self.fc2(gelu_erf(self.fc1(x))))


class TinyBert(nn.Module):
    def __init__(self, vocab=100, hidden=32, heads=2, layers=2, ff=64, max_pos=64):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_pos, hidden)
        self.ln = HandLayerNorm(hidden, 1e-12)
        self.layers = nn.ModuleList([BertLayer(hidden, heads, ff) for _ in range(layers)])

    def forward(self, input_ids, attention_mask):
        t = input_ids.size(1)
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.ln(self.word(input_ids) + self.pos(pos))
        # HF-style extended mask: 0 where attended, -10000 where masked.
        ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, ext)
        return x


class GPT2Block(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.ln1 = HandLayerNorm(hidden)
        self.heads = heads
        self.head_dim = hidden // heads
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.c_proj = nn.Linear(hidden, hidden)
        self.ln2 = HandLayerNorm(hidden)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.proj = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(c, dim=2)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        causal = torch.tril(torch.ones(t, t, device=x.device))
        att = att.masked_fill(causal == 0, float("-inf"))
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, c)
        x = x + self.c_proj(y)
        return x + self.proj(gelu_tanh(self.fc(self.ln2(x))))


class TinyGPT2(nn.Module):
    def __init__(self, vocab=100, hidden=32, heads=2, layers=2, max_pos=64):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(max_pos, hidden)
        self.blocks = nn.ModuleList([GPT2Block(hidden, heads) for _ in range(layers)])
        self.ln_f = HandLayerNorm(hidden)

    def forward(self, input_ids):
        t = input_ids.size(1)
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for blk in self.blocks:
            x = blk(x)
        x = self.ln_f(x)
        return torch.matmul(x, self.wte.weight.t())  # tied LM head


class ViTLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ff: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden, eps=1e-6)
        self.attn = SelfAttention(hidden, heads)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-6)
        self.fc1 = nn.Linear(hidden, ff)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ff, hidden)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class TinyViT(nn.Module):
    def __init__(self, image=32, patch=8, hidden=32, heads=2, layers=2, ff=64, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(3, hidden, patch, patch)
        n = (image // patch) ** 2
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, hidden))
        self.pos = nn.Parameter(0.02 * torch.randn(1, n + 1, hidden))
        self.layers = nn.ModuleList([ViTLayer(hidden, heads, ff) for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden, eps=1e-6)
        self.head = nn.Linear(hidden, classes)

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x)[:, 0])


# --------------------------------------------------------------------------------------------------
# Export machinery
# --------------------------------------------------------------------------------------------------


def randomize_norms(model: nn.Module, g: torch.Generator):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(1.0 + 0.1 * torch.randn(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
        elif isinstance(m, nn.LayerNorm):  # default weight=1, bias=0 would hide mistakes
            m.weight.data.add_(0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.data.add_(0.1 * torch.randn(m.bias.shape, generator=g))


def make_inputs(kind: str, binding: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    b = binding["batch"]
    if kind == "image":
        return {binding["name"]: torch.randn(b, 3, binding["height"], binding["width"], generator=g)}
    t = binding["seq"]
    ids = torch.randint(0, 100, (b, t), generator=g, dtype=torch.int64)
    out = {"input_ids": ids}
    if kind == "text+mask":
        mask = torch.ones(b, t, dtype=torch.int64)
        for i in range(b):  # pad a random-length tail of every row except the first
            if i > 0:
                keep = int(torch.randint(1, t + 1, (1,), generator=g))
                mask[i, keep:] = 0
        out["attention_mask"] = mask
    return out


SPECS = [
    dict(
        name="resnet",
        build=TinyResNet,
        kind="image",
        inputs=["input"],
        outputs=["logits"],
        dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
        bindings=[
            dict(name="input", batch=2, height=32, width=32),
            dict(name="input", batch=3, height=48, width=40),
        ],
        training=torch.onnx.TrainingMode.PRESERVE,  # keep BatchNormalization nodes
    ),
    dict(
        name="bert",
        expect_layernorm=5,
        expect_attention=2,
        build=TinyBert,
        kind="text+mask",
        inputs=["input_ids", "attention_mask"],
        outputs=["last_hidden_state"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"},
        },
        bindings=[dict(batch=2, seq=8), dict(batch=3, seq=13)],
    ),
    dict(
        name="gpt2",
        expect_layernorm=5,
        expect_attention=2,
        build=TinyGPT2,
        kind="text",
        inputs=["input_ids"],
        outputs=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
        bindings=[dict(batch=2, seq=8), dict(batch=3, seq=13)],
    ),
    dict(
        name="vit",
        expect_layernorm=0,
        expect_attention=2,
        build=TinyViT,
        kind="image",
        inputs=["pixel_values"],
        outputs=["logits"],
        # position embeddings fix the image size at 32x32; only batch is dynamic
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        bindings=[
            dict(name="pixel_values", batch=2, height=32, width=32),
            dict(name="pixel_values", batch=5, height=32, width=32),
        ],
    ),
]


def ort_run(path: str, feeds: dict) -> list:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def export_one(spec: dict, opset: int) -> str:
    torch.manual_seed(1234)
    model = spec["build"]()
    randomize_norms(model, torch.Generator().manual_seed(99))
    model.eval()
    example = make_inputs(spec["kind"], spec["bindings"][0], seed=0)
    args = tuple(example[n] for n in spec["inputs"])
    path = os.path.join(HERE, f"{spec['name']}_op{opset}.onnx")
    export_opset = min(opset, TORCHSCRIPT_MAX_OPSET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*constant folding be turned off.*")
        torch.onnx.export(
            model,
            args,
            path,
            dynamo=False,
            opset_version=export_opset,
            input_names=spec["inputs"],
            output_names=spec["outputs"],
            dynamic_axes=spec["dynamic_axes"],
            do_constant_folding=True,
            training=spec.get("training", torch.onnx.TrainingMode.EVAL),
        )
    m = onnx.load(path)
    if export_opset != opset:
        m = onnx.version_converter.convert_version(m, opset)
    m.producer_name = "onnxopt golden/models/export.py"
    m.producer_version = f"torch {torch.__version__}"
    m.doc_string = f"TorchScript exporter (dynamo=False), exported at opset {export_opset}" + (
        f", converted to {opset} with onnx.version_converter" if export_opset != opset else ""
    )
    onnx.checker.check_model(m, full_check=True)
    for what, fn in (("layernorm", count_decomposed_layernorm), ("attention", count_decomposed_attention)):
        want = spec.get("expect_" + what)
        if want is not None:
            got = fn(m.graph)
            assert got == want, f"{path}: {got} decomposed {what} patterns, expected {want}"
    onnx.save(m, path)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == opset

    # reference outputs at both bindings, and an onnxruntime check against them
    arrays = {}
    for i, binding in enumerate(spec["bindings"]):
        feeds_t = make_inputs(spec["kind"], binding, seed=100 + i)
        with torch.no_grad():
            outs = model(*[feeds_t[n] for n in spec["inputs"]])
        outs = outs if isinstance(outs, tuple) else (outs,)
        feeds = {n: feeds_t[n].numpy() for n in spec["inputs"]}
        for n, v in feeds.items():
            arrays[f"shape{i}/input:{n}"] = v
        for n, v in zip(spec["outputs"], outs):
            arrays[f"shape{i}/output:{n}"] = v.numpy()
        got = ort_run(path, feeds)
        for n, ref, g in zip(spec["outputs"], outs, got):
            np.testing.assert_allclose(g, ref.numpy(), rtol=1e-4, atol=1e-4, err_msg=f"{path} {n} shape{i}")
    np.savez_compressed(path[: -len(".onnx")] + ".io.npz", **arrays)
    return path


def _producers(g: onnx.GraphProto) -> dict:
    return {o: n for n in g.node for o in n.output}


def count_decomposed_layernorm(g: onnx.GraphProto) -> int:
    """Div(Sub(x, ReduceMean(x)), Sqrt(Add(ReduceMean(Pow(Sub, 2)), eps))) -> Mul -> Add."""
    prod, users = _producers(g), {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)

    def op(name):
        return prod[name].op_type if name in prod else None

    count = 0
    for n in g.node:
        if n.op_type != "Div" or op(n.input[0]) != "Sub" or op(n.input[1]) != "Sqrt":
            continue
        sub, sqrt = prod[n.input[0]], prod[n.input[1]]
        add = prod.get(sqrt.input[0])
        if op(sub.input[1]) != "ReduceMean" or add is None or add.op_type != "Add":
            continue
        rm2 = prod.get(add.input[0])
        if rm2 is None or rm2.op_type != "ReduceMean" or op(rm2.input[0]) != "Pow":
            continue
        if prod[rm2.input[0]].input[0] != sub.output[0]:
            continue
        nxt = users.get(n.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Mul":
            nxt2 = users.get(nxt[0].output[0], [])
            if len(nxt2) == 1 and nxt2[0].op_type == "Add":
                count += 1
    return count


def count_decomposed_attention(g: onnx.GraphProto) -> int:
    """Softmax(mask(Div|Mul(MatMul(q, k^T), scale))) feeding a MatMul; mask = Add or Where or none."""
    prod = _producers(g)
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    count = 0
    for n in g.node:
        if n.op_type != "Softmax" or not any(u.op_type == "MatMul" for u in users.get(n.output[0], [])):
            continue
        x = prod.get(n.input[0])
        if x is not None and x.op_type in ("Add", "Where"):
            x = prod.get(x.input[0] if x.op_type == "Add" else x.input[2])
        q_k = prod.get(x.input[0]) if x is not None and x.op_type in ("Div", "Mul") else None
        if q_k is not None and q_k.op_type == "MatMul":
            count += 1
    return count


def summarize(path: str) -> str:
    m = onnx.load(path)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    size = os.path.getsize(path)
    return f"{os.path.basename(path):18s} {size / 1024:7.1f} KiB  {len(m.graph.node):4d} nodes  " + ", ".join(
        f"{k}:{v}" for k, v in sorted(ops.items())
    )


def main() -> int:
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    for spec in SPECS:
        for opset in OPSETS:
            p = export_one(spec, opset)
            print(summarize(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
