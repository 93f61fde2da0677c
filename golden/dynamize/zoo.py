"""The wider dynamize corpus: common architectures, both PyTorch exporters, one fixed shape each.

    pip install torch==2.13.0 transformers==5.25.0 onnxscript==0.7.2   # generation only
    HF_HUB_OFFLINE=1 python golden/dynamize/export.py --zoo [--out DIR] [NAME ...]

    HF_HUB_OFFLINE=1 python golden/dynamize/export.py --zoo --reexport [NAME ...]   # baseline

(tested with torch 2.13.0+cpu, transformers 5.25.0, onnxscript 0.7.2; pip resolves these three
without pulling another torch). Nothing else in onnxopt imports torch or transformers.

Every architecture is built from a tiny config (2 layers, hidden 32, 2 heads; images 32x32)
with random weights (seeded; nothing is downloaded) and exported at ONE shape with no dynamic
axes, twice:

  <name>.script.onnx   the TorchScript tracer (dynamo=False, opset 17, constant folding on)
  <name>.dynamo.onnx   the default torch.export-based exporter without dynamic_shapes (opset 18):
                       no Shape ops, every size an initializer, allowZero Reshapes, GatherND

beside <name>.expected.npz (PyTorch's own inputs and outputs: shape0 = the trace shape, shape1..
other shapes; keys as in golden/dynamize) and <name>.json (the dims meant to be dynamic, the
shapes, and whether each export loaded and matched PyTorch at the trace shape). An export that
fails is recorded in the json ("exports": {"dynamo": "failed: ..."}), not fatal.

``--reexport`` (after the plain run) exports the same modules again WITH the dims meant to be
dynamic declared (tracer: ``dynamic_axes``; dynamo: ``dynamic_shapes`` of torch.export.Dim.DYNAMIC,
one per named size) into <out>/reexport/, and counts the other shapes at which each matches the
saved PyTorch outputs (reexport/<name>.json; a failed export counts 0 with its reason), the
baseline for a user who still has the PyTorch code (benchmarks/dynamize_demo.py --zoo).

The default output folder is build/dynamize_zoo (not committed); the few smallest models are
committed under golden/dynamize/zoo (see ``COMMITTED``), regenerated with ``--out
golden/dynamize/zoo`` and their names.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(ROOT, "build", "dynamize_zoo")
VOCAB = 96
TOL = {"rtol": 1e-3, "atol": 1e-4}
# small enough to commit (a few hundred KiB in all); the rest are generated
COMMITTED = ("bert", "gpt2", "llama", "lstm", "yolo_head", "mobilenet_v3", "unet")

SEQ = {"0": "batch", "1": "seq"}
IMG = {"0": "batch", "2": "height", "3": "width"}
BATCH = {"0": "batch"}
TEXT_SHAPES = [(3, 7), (1, 7), (3, 12), (5, 4), (2, 1)]
TEXT_SHAPES_SHORT = [(3, 7), (1, 7), (3, 5), (5, 4), (2, 1)]  # lengths <= trace (folded tables)


# ------------------------------------------------------------------------------------------------
# transformers models from tiny configs
# ------------------------------------------------------------------------------------------------

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def hf(model_cls: str, config_cls: str, **cfg):
    def build():
        import transformers

        config = getattr(transformers, config_cls)(**cfg)
        config._attn_implementation = "eager"
        model = getattr(transformers, model_cls)(config)
        return model.eval()
    return build


class Wrap(nn.Module):
    """Positional inputs -> keyword arguments; the first output tensor (or ``key``) only."""

    def __init__(self, model: nn.Module, names: list[str], key: str | None = None, extra=None):
        super().__init__()
        self.model, self.names, self.key, self.extra = model, names, key, extra or {}

    def forward(self, *args):
        out = self.model(**dict(zip(self.names, args)), **self.extra)
        if isinstance(out, torch.Tensor):
            return out
        if self.key is not None:
            return out[self.key]
        return out[0] if isinstance(out, tuple) else next(iter(out.values()))


def text(name, model_cls, config_cls, mask=True, shapes=TEXT_SHAPES, key=None, extra=None,
         **cfg):
    inputs = {"input_ids": "ids"}
    if mask:
        inputs["attention_mask"] = "mask"
    return {"name": name, "kind": "text", "hf": hf(model_cls, config_cls, **cfg), "inputs": inputs,
                "dynamic": {n: SEQ for n in inputs}, "key": key, "extra": extra,
                "shapes": [{n: [b, t] for n in inputs} for b, t in shapes]}


def image(name, build, shapes, dynamic=IMG, hf_model=True, key=None, channels=3):
    return {"name": name, "kind": "vision", "hf": build if hf_model else None,
                "build": None if hf_model else build, "inputs": {"pixel_values": "float"},
                "dynamic": {"pixel_values": dynamic}, "key": key,
                "shapes": [{"pixel_values": [b, channels, h, w]} for b, h, w in shapes]}


LLAMA_LIKE = dict(vocab_size=VOCAB, max_position_embeddings=64, num_key_value_heads=1, **SMALL)
VIT = dict(image_size=32, patch_size=8, num_channels=3, **SMALL)
BATCH_ONLY = [(3, 32, 32), (1, 32, 32), (2, 32, 32), (5, 32, 32)]
ANY_IMAGE = [(3, 32, 32), (1, 32, 32), (2, 64, 48), (3, 40, 56)]

CASES = [
    text("bert", "BertModel", "BertConfig", vocab_size=VOCAB, max_position_embeddings=64,
         **SMALL),
    text("roberta", "RobertaModel", "RobertaConfig", vocab_size=VOCAB,
         max_position_embeddings=66, **SMALL),
    text("distilbert", "DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=32,
         n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64),
    text("albert", "AlbertModel", "AlbertConfig", vocab_size=VOCAB, embedding_size=16,
         max_position_embeddings=64, **SMALL),
    text("electra", "ElectraModel", "ElectraConfig", vocab_size=VOCAB, embedding_size=16,
         max_position_embeddings=64, **SMALL),
    text("deberta_v2", "DebertaV2Model", "DebertaV2Config", vocab_size=VOCAB,
         max_position_embeddings=64, relative_attention=True, position_buckets=16,
         pos_att_type=["p2c", "c2p"], **SMALL),
    text("gpt2", "GPT2Model", "GPT2Config", vocab_size=VOCAB, n_positions=64, n_embd=32,
         n_layer=2, n_head=2),
    text("gpt_neo", "GPTNeoModel", "GPTNeoConfig", vocab_size=VOCAB, max_position_embeddings=64,
         hidden_size=32, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
         window_size=4),
    text("opt", "OPTModel", "OPTConfig", vocab_size=VOCAB, max_position_embeddings=64,
         hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64,
         word_embed_proj_dim=32),
    text("llama", "LlamaModel", "LlamaConfig", **LLAMA_LIKE),
    text("mistral", "MistralModel", "MistralConfig", sliding_window=None, **LLAMA_LIKE),
    text("qwen2", "Qwen2Model", "Qwen2Config", **LLAMA_LIKE),
    text("phi", "PhiModel", "PhiConfig", vocab_size=VOCAB, max_position_embeddings=64,
         partial_rotary_factor=0.5, **SMALL),
    text("t5_encoder", "T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=32, d_kv=16,
         d_ff=64, num_layers=2, num_heads=2, relative_attention_num_buckets=8),
    text("bart", "BartModel", "BartConfig", key="last_hidden_state", vocab_size=VOCAB, d_model=32,
         encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
         decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
         max_position_embeddings=64),
    text("clip_text", "CLIPTextModel", "CLIPTextConfig", key="last_hidden_state",
         vocab_size=VOCAB, max_position_embeddings=32, **SMALL),
    text("xlm_roberta", "XLMRobertaModel", "XLMRobertaConfig", vocab_size=VOCAB,
         max_position_embeddings=66, **SMALL),
    text("gemma", "GemmaModel", "GemmaConfig", head_dim=16, **LLAMA_LIKE),
    image("dinov2", hf("Dinov2Model", "Dinov2Config", **VIT), BATCH_ONLY, dynamic=BATCH,
          key="last_hidden_state"),
    image("mobilenet_v2", hf("MobileNetV2Model", "MobileNetV2Config", image_size=32,
                             depth_multiplier=0.25), ANY_IMAGE, key="pooler_output"),
    image("vit", hf("ViTModel", "ViTConfig", **VIT), BATCH_ONLY, dynamic=BATCH,
          key="last_hidden_state"),
    image("deit", hf("DeiTModel", "DeiTConfig", **VIT), BATCH_ONLY, dynamic=BATCH,
          key="last_hidden_state"),
    image("beit", hf("BeitModel", "BeitConfig", use_relative_position_bias=True, **VIT),
          BATCH_ONLY, dynamic=BATCH, key="last_hidden_state"),
    image("clip_vision", hf("CLIPVisionModel", "CLIPVisionConfig", **VIT), BATCH_ONLY,
          dynamic=BATCH, key="last_hidden_state"),
    image("swin", hf("SwinModel", "SwinConfig", image_size=32, patch_size=2, embed_dim=16,
                     depths=[1, 1], num_heads=[2, 2], window_size=4),
          [(3, 32, 32), (1, 32, 32), (2, 64, 48), (3, 48, 16)], key="last_hidden_state"),
    image("convnext", hf("ConvNextModel", "ConvNextConfig", hidden_sizes=[16, 32],
                         depths=[1, 1], num_stages=2), ANY_IMAGE, key="last_hidden_state"),
    image("resnet_hf", hf("ResNetModel", "ResNetConfig", embedding_size=16,
                          hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"),
          ANY_IMAGE, key="pooler_output"),
    image("regnet", hf("RegNetModel", "RegNetConfig", embedding_size=16, hidden_sizes=[16, 32],
                       depths=[1, 1], groups_width=8), ANY_IMAGE, key="pooler_output"),
    image("mobilevit", hf("MobileViTModel", "MobileViTConfig", image_size=32, patch_size=2,
                          hidden_sizes=[16, 16, 24], neck_hidden_sizes=[8, 8, 16, 16, 16, 24, 32],
                          num_attention_heads=2), [(3, 32, 32), (1, 32, 32), (2, 64, 64),
                                                   (3, 32, 64)], key="last_hidden_state"),
    image("segformer", hf("SegformerModel", "SegformerConfig", num_encoder_blocks=2,
                          depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
                          mlp_ratios=[2, 2]), ANY_IMAGE, key="last_hidden_state"),
]


# ------------------------------------------------------------------------------------------------
# audio
# ------------------------------------------------------------------------------------------------

CASES += [
    {"name": "whisper_encoder", "kind": "audio", "inputs": {"input_features": "float"},
         "hf": hf("WhisperModel", "WhisperConfig", vocab_size=VOCAB, d_model=32, encoder_layers=2,
               decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
               encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16,
               max_target_positions=16, pad_token_id=1, bos_token_id=2, eos_token_id=2,
               decoder_start_token_id=2), "encoder": True, "key": "last_hidden_state",
         "dynamic": {"input_features": BATCH},
         "shapes": [{"input_features": [b, 8, 32]} for b in (3, 1, 2, 5)]},
    {"name": "wav2vec2", "kind": "audio", "inputs": {"input_values": "float"},
         "hf": hf("Wav2Vec2Model", "Wav2Vec2Config", hidden_size=32, num_hidden_layers=2,
               num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
               conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
               num_conv_pos_embedding_groups=2, do_stable_layer_norm=True,
               feat_extract_norm="layer", mask_time_prob=0.0), "key": "last_hidden_state",
         "dynamic": {"input_values": SEQ},
         "shapes": [{"input_values": [b, t]} for b, t in [(3, 400), (1, 400), (3, 563), (2, 241)]]},
]


# ------------------------------------------------------------------------------------------------
# models written by hand (torchvision is not installed beside the CPU torch)
# ------------------------------------------------------------------------------------------------


class ConvBN(nn.Sequential):
    def __init__(self, cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
        super().__init__(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act() if act else nn.Identity())


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.a, self.b = ConvBN(cin, cout, 3, s), ConvBN(cout, cout, 3, 1, act=None)
        self.skip = ConvBN(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + self.skip(x))


class ResNet(nn.Module):
    """torchvision-style ResNet: stem, max pool, basic blocks, global pool, flatten, fc."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 16, 7, 2)
        self.layers = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layers(F.max_pool2d(self.stem(x), 3, 2, 1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SE(nn.Module):
    def __init__(self, c, r=4, gate=nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.fc2, self.gate = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, s, expand=4, act=nn.Hardswish, gate=nn.Hardsigmoid):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(ConvBN(cin, mid, 1, act=act), ConvBN(mid, mid, 3, s, mid, act),
                                  SE(mid, gate=gate), ConvBN(mid, cout, 1, act=None))
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.res else y


class MobileNetV3(nn.Module):
    """MobileNetV3-style: hard-swish, squeeze-excite with hard-sigmoid, classifier over a pool."""

    def __init__(self, act=nn.Hardswish, gate=nn.Hardsigmoid):
        super().__init__()
        self.stem = ConvBN(3, 8, 3, 2, act=act)
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, act=act, gate=gate),
                                    InvertedResidual(8, 16, 2, act=act, gate=gate))
        self.head = nn.Sequential(nn.Linear(16, 32), act(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1))


class EfficientNet(MobileNetV3):
    """EfficientNet-style: SiLU, sigmoid gates."""

    def __init__(self):
        super().__init__(nn.SiLU, nn.Sigmoid)


class DetrBackbone(nn.Module):
    """DETR-style: conv backbone, sine position embedding over the feature map (built from
    cumsum of a mask), flattened to a sequence, one transformer encoder layer."""

    def __init__(self, d=32):
        super().__init__()
        self.body = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, d, 3, 2))
        self.enc = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True)
        self.d = d

    def forward(self, x):
        f = self.body(x)
        b, c, h, w = f.shape
        mask = torch.ones(b, h, w, dtype=torch.float32)
        y, xx = mask.cumsum(1), mask.cumsum(2)
        dim_t = 10000 ** (2 * (torch.arange(c // 4, dtype=torch.float32)) / (c // 2))
        py, px = y[..., None] / dim_t, xx[..., None] / dim_t
        pos = torch.cat([py.sin(), py.cos(), px.sin(), px.cos()], -1).permute(0, 3, 1, 2)
        seq = (f + pos).flatten(2).transpose(1, 2)
        return self.enc(seq)


def _golden(name):
    sys.path.insert(0, HERE)
    import export as golden  # the first corpus's hand-written models

    return getattr(golden, name)


def hand(name, build, inputs, dynamic, shapes, kind="vision"):
    return {"name": name, "kind": kind, "build": build, "inputs": inputs, "dynamic": dynamic, "shapes": shapes}


def img_shapes(shapes, c=3):
    return [{"pixel_values": [b, c, h, w]} for b, h, w in shapes]


PIX = {"pixel_values": "float"}
CASES += [
    hand("resnet", ResNet, PIX, {"pixel_values": IMG}, img_shapes(ANY_IMAGE)),
    hand("mobilenet_v3", MobileNetV3, PIX, {"pixel_values": IMG}, img_shapes(ANY_IMAGE)),
    hand("efficientnet", EfficientNet, PIX, {"pixel_values": IMG}, img_shapes(ANY_IMAGE)),
    hand("detr_backbone", DetrBackbone, PIX, {"pixel_values": IMG},
         img_shapes([(3, 32, 32), (1, 32, 32), (2, 64, 48), (3, 40, 24)])),
    hand("unet", lambda: _golden("UNet")(), PIX, {"pixel_values": IMG},
         img_shapes([(3, 16, 24), (1, 16, 24), (3, 32, 32), (2, 8, 12)])),
    hand("yolo_head", lambda: _golden("YoloGrid")(), PIX, {"pixel_values": IMG},
         img_shapes([(3, 32, 48), (1, 32, 48), (3, 64, 64), (2, 16, 40)])),
    hand("lstm", lambda: _golden("LstmZeroState")(), {"x": "float"}, {"x": SEQ},
         [{"x": [b, t, 8]} for b, t in TEXT_SHAPES], kind="sequence"),
    hand("gru", lambda: _golden("GruZeroState")(), {"input_ids": "ids50"}, {"input_ids": SEQ},
         [{"input_ids": [b, t]} for b, t in TEXT_SHAPES], kind="sequence"),
]


# ------------------------------------------------------------------------------------------------
# machinery
# ------------------------------------------------------------------------------------------------


def build(case) -> nn.Module:
    torch.manual_seed(20240601)
    if case.get("hf") is not None:
        model = case["hf"]()
        if case.get("encoder"):
            model = model.get_encoder() if hasattr(model, "get_encoder") else model.encoder
        model = Wrap(model, list(case["inputs"]), case.get("key"), case.get("extra"))
    else:
        model = case["build"]()
    model.eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # norms start at 1/0 and running stats at 0/1: perturb them
        for mod in model.modules():
            for pname in ("weight", "bias", "running_mean"):
                t = getattr(mod, pname, None)
                if isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)) and t is not None:
                    t.add_(0.1 * torch.randn(t.shape, generator=g))
    return model


def make_inputs(case, shape, seed):
    """export.py's inputs, with ids from 3 up (above the models' special tokens)."""
    return _golden("make_inputs")(case, shape, seed, vocab=VOCAB, low=3)


def session(path_or_proto):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    src = path_or_proto if isinstance(path_or_proto, str) else path_or_proto.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def export_one(model, args, path, names, outputs, dynamo: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(model, args, dynamo=True, input_names=names,
                                     output_names=outputs, opset_version=18, verbose=False)
            prog.save(path)
        else:
            torch.onnx.export(model, args, path, dynamo=False, opset_version=17,
                              input_names=names, output_names=outputs, do_constant_folding=True)
    m = onnx.load(path)
    m.producer_name = "onnxopt golden/dynamize/zoo.py"
    m.doc_string = (f"{'torch.export-based exporter (dynamo=True)' if dynamo else 'TorchScript tracer (dynamo=False)'}"
                    f", torch {torch.__version__}, NO dynamic axes: traced sizes are baked in")
    onnx.save(m, path)


def run_case(case, out_dir) -> dict:
    name = case["name"]
    model = build(case)
    names = list(case["inputs"])
    arrays, feeds_all, refs_all = {}, [], []
    for i, shape in enumerate(case["shapes"]):
        feeds = make_inputs(case, shape, 1000 + i)
        with torch.no_grad():
            ref = model(*[feeds[n] for n in names])
        refs = [ref.numpy()] if isinstance(ref, torch.Tensor) else [r.numpy() for r in ref]
        for n in names:
            arrays[f"shape{i}/input:{n}"] = feeds[n].numpy()
        outputs = [f"output{k}" if len(refs) > 1 else "output" for k in range(len(refs))]
        for n, r in zip(outputs, refs):
            arrays[f"shape{i}/output:{n}"] = r
        feeds_all.append({n: feeds[n].numpy() for n in names})
        refs_all.append(refs)
    trace = tuple(torch.from_numpy(feeds_all[0][n]) for n in names)
    status = {}
    for exporter in ("script", "dynamo"):
        path = os.path.join(out_dir, f"{name}.{exporter}.onnx")
        t0 = time.time()
        try:
            export_one(model, trace, path, names, outputs, exporter == "dynamo")
            got = session(path).run(None, feeds_all[0])
            for g, r in zip(got, refs_all[0]):
                np.testing.assert_allclose(g, r, **TOL)
            status[exporter] = "ok"
        except Exception as e:  # noqa: BLE001 - recorded, the other models still export
            status[exporter] = "failed: " + (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            if os.path.exists(path):
                os.remove(path)
        kib = os.path.getsize(path) / 1024 if os.path.exists(path) else 0
        print(f"{name:18s} {exporter:6s} {kib:7.1f} KiB {time.time() - t0:5.1f}s {status[exporter]}",
              flush=True)
    meta = {"name": name, "kind": case["kind"], "torch": torch.__version__,
            "inputs": case["inputs"], "outputs": outputs, "dynamic": case["dynamic"],
            "trace": case["shapes"][0], "shapes": case["shapes"], "exports": status}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    np.savez_compressed(os.path.join(out_dir, f"{name}.expected.npz"), **arrays)
    return status


# ------------------------------------------------------------------------------------------------
# --reexport: the baseline a user with the PyTorch code has, the same module exported again
# with the dims the zoo frees declared dynamic, run at the other shapes against PyTorch's outputs
# ------------------------------------------------------------------------------------------------


def export_dynamic(model, args, path, case, outputs, dynamo: bool) -> None:
    names = list(case["inputs"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:  # one Dim per named size, so inputs that share "batch" share the symbol
            dims = {}
            spec = tuple({int(k): dims.setdefault(v, torch.export.Dim.DYNAMIC)
                          for k, v in case["dynamic"].get(n, {}).items()} for n in names)
            if isinstance(model, Wrap):  # forward(*args) is one input to torch.export
                spec = (spec,)
            prog = torch.onnx.export(model, args, dynamo=True, input_names=names,
                                     output_names=outputs, opset_version=18, verbose=False,
                                     dynamic_shapes=spec)
            prog.save(path)
        else:
            axes = {n: {int(k): v for k, v in case["dynamic"].get(n, {}).items()} for n in names}
            torch.onnx.export(model, args, path, dynamo=False, opset_version=17,
                              input_names=names, output_names=outputs, do_constant_folding=True,
                              dynamic_axes=axes)


def _reason(e: BaseException) -> str:
    """The first line of the innermost cause (torch.onnx wraps torch.export's error in a banner)."""
    while e.__cause__ is not None:
        e = e.__cause__
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:200]


def reexport_case(case, out_dir) -> dict:
    """Re-export with dynamic axes; count the non-trace shapes that match PyTorch's saved outputs
    (<out_dir>/<name>.expected.npz, written by the plain --zoo run) -> reexport/<name>.json."""
    name = case["name"]
    meta = json.load(open(os.path.join(out_dir, f"{name}.json")))
    saved = np.load(os.path.join(out_dir, f"{name}.expected.npz"))
    names, outputs = list(case["inputs"]), meta["outputs"]
    model = build(case)
    trace = tuple(torch.from_numpy(saved[f"shape0/input:{n}"]) for n in names)
    sub = os.path.join(out_dir, "reexport")
    os.makedirs(sub, exist_ok=True)
    result = {}
    for exporter in ("script", "dynamo"):
        path = os.path.join(sub, f"{name}.{exporter}.onnx")
        t0, ok, why = time.time(), 0, ""
        try:
            export_dynamic(model, trace, path, case, outputs, exporter == "dynamo")
            sess = session(path)
        except Exception as e:  # noqa: BLE001 - a failed export counts 0, with its reason
            why = "export failed: " + _reason(e)
            sess = None
        for i in range(1, len(meta["shapes"])) if sess else ():
            try:
                got = sess.run(None, {n: saved[f"shape{i}/input:{n}"] for n in names})
                for g, o in zip(got, outputs):
                    np.testing.assert_allclose(g, saved[f"shape{i}/output:{o}"], **TOL)
                ok += 1
            except Exception as e:  # noqa: BLE001 - the first failure's reason, for the table
                why = why or f"shape{i}: " + _reason(e)
        result[exporter] = {"ok": ok, "of": len(meta["shapes"]) - 1, "why": why}
        print(f"{name:18s} {exporter:6s} reexport {ok}/{len(meta['shapes']) - 1} "
              f"{time.time() - t0:5.1f}s {why}", flush=True)
    with open(os.path.join(sub, f"{name}.json"), "w") as f:
        json.dump({"name": name, "torch": torch.__version__, "reexport": result}, f, indent=1)
    return result


def main(argv) -> int:
    reexport = "--reexport" in argv
    argv = [a for a in argv if a != "--reexport"]
    out_dir = DEFAULT_OUT
    if "--out" in argv:
        k = argv.index("--out")
        out_dir = argv[k + 1]
        argv = argv[:k] + argv[k + 2:]
    only = set(argv)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    for case in CASES:
        if only and case["name"] not in only:
            continue
        try:
            (reexport_case if reexport else run_case)(case, out_dir)
        except Exception:  # noqa: BLE001 - a model that does not build is reported, not fatal
            print(f"{case['name']}: could not build or run in PyTorch", flush=True)
            traceback.print_exc(limit=3)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
