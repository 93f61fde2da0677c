"""The committed PyTorch exports (golden/models: resnet, bert, gpt2, vit at opset 17 and 23) after
``fuse`` and after the default preset: their decomposed LayerNorm, GELU and (at opset 23)
attention are fused, and they still match PyTorch's outputs stored beside them (.io.npz, two
bindings of the dynamic dims)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from onnxopt import load
from onnxopt.passes.presets import PRESETS
from onnxopt.testing import run_model, run_passes

MODELS = Path(__file__).resolve().parent.parent / "golden" / "models"

# Ops that must be gone (decomposed patterns) and ops that must appear, per model and opset.
EXPECT = {
    ("resnet", 17): ({"BatchNormalization"}, {"Conv": 9}),
    ("resnet", 23): ({"BatchNormalization"}, {"Conv": 9}),
    ("bert", 17): ({"ReduceMean", "Pow", "Sqrt"}, {"LayerNormalization": 5}),
    ("bert", 23): ({"ReduceMean", "Pow", "Sqrt", "Erf", "Softmax", "Transpose"},
                   {"LayerNormalization": 5, "Gelu": 2, "Attention": 2}),
    ("gpt2", 17): ({"ReduceMean", "Sqrt"}, {"LayerNormalization": 5}),  # tanh GELU: no Gelu
    ("gpt2", 23): ({"ReduceMean", "Pow", "Sqrt", "Tanh", "Softmax", "Trilu", "Where",
                    "Transpose"}, {"LayerNormalization": 5, "Gelu": 2, "Attention": 2}),
    ("vit", 17): (set(), {"LayerNormalization": 5}),  # exported with LayerNormalization already
    ("vit", 23): ({"Softmax", "Erf"}, {"LayerNormalization": 5, "Gelu": 2, "Attention": 2}),
}


def check_outputs(m, name: str) -> None:
    io = np.load(MODELS / f"{name}.io.npz")
    outputs = [v.name for v in m.graph.outputs]
    for binding in sorted({k.split("/")[0] for k in io.files}):
        feeds = {k.split(":", 1)[1]: io[k] for k in io.files if k.startswith(f"{binding}/input:")}
        got = run_model(m, feeds)
        for out, value in zip(outputs, got):
            ref = io[f"{binding}/output:{out}"]
            assert value.shape == ref.shape, f"{name} {binding} {out}: shape {value.shape}"
            np.testing.assert_allclose(value, ref, atol=1e-4, rtol=1e-3,
                                       err_msg=f"{name} {binding} {out}")


def _pipelines() -> list[str]:
    out = ["fuse"]
    if "fuse" in PRESETS["default"]:
        out.append("default")
    return out


@pytest.mark.parametrize("pipeline", _pipelines())
@pytest.mark.parametrize("model,opset", sorted(EXPECT))
def test_golden_model_fused(model: str, opset: int, pipeline: str):
    name = f"{model}_op{opset}"
    m = load(MODELS / f"{name}.onnx")
    before = m.num_nodes()
    run_passes(m, pipeline)
    ops = Counter(n.op_type for n in m.graph.all_nodes())
    gone, present = EXPECT[(model, opset)]
    for op in gone:
        assert ops[op] == 0, f"{name} after {pipeline}: {ops[op]} {op} left"
    for op, n in present.items():
        assert ops[op] == n, f"{name} after {pipeline}: {ops[op]} {op}, expected {n}"
    if gone:
        assert m.num_nodes() < before
    check_outputs(m, name)
