"""The committed part of the architecture zoo (golden/dynamize/zoo, made by golden/dynamize/zoo.py
from transformers' tiny configs and hand-written CNNs): each model exported at one shape by the
TorchScript tracer and by the torch.export-based exporter, repaired by dynamize, and compared with
PyTorch's own outputs at the other saved shapes. Where the exporter folded a table at the trace
length, the refusal names the table and suggests the bounded repair; with it, every length up to
the trace matches and a longer one is an error, never a wrong result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxopt
import pytest
from onnxopt.errors import OnnxoptError
from onnxopt.passes import PassContext, PassManager
from onnxopt.passes.pipeline import PassSpec
from onnxopt.testing import run_model

ZOO = Path(__file__).resolve().parent.parent / "golden" / "dynamize" / "zoo"
MODELS = sorted(p.name.removesuffix(".onnx") for p in ZOO.glob("*.onnx"))
# the constraint each export needs: the dynamo exporter keeps only the trace's rows of the
# position table (BERT, GPT-2) or of the rotary cos/sin (Llama)
NEEDS = {"bert.dynamo": "seq<=7", "gpt2.dynamo": "seq<=7", "llama.dynamo": "seq<=7"}


def spec(meta: dict) -> str:
    return ";".join(f"{name}:" + ",".join(f"{ax}={sym}" for ax, sym in dims.items())
                    for name, dims in meta["dynamic"].items())


def repair(path: Path, meta: dict, constraint: str = ""):
    model = onnxopt.load(path)
    opts = {"dynamic": spec(meta), "constraint": constraint}
    PassManager([PassSpec("dynamize", opts)]).run(model, PassContext(model))
    return model


def saved(name: str):
    exp = np.load(ZOO / f"{name}.expected.npz")
    k = 0
    while f"shape{k}/input:" in " ".join(exp.files):
        pre = f"shape{k}/input:"
        outs = sorted(f for f in exp.files if f.startswith(f"shape{k}/output:"))
        yield k, {f[len(pre):]: exp[f] for f in exp.files if f.startswith(pre)}, \
            [exp[f] for f in outs]
        k += 1


def within(meta: dict, feeds: dict, constraint: str) -> bool:
    if "<=" not in constraint:
        return True
    sym, bound = constraint.split("<=")
    return all(feeds[n].shape[int(a)] <= int(bound) for n, dims in meta["dynamic"].items()
               for a, s in dims.items() if s == sym)


def test_the_zoo_holds_both_exporters() -> None:
    names = {m.split(".")[0] for m in MODELS}
    assert len(names) >= 7
    assert all(f"{n}.script" in MODELS and f"{n}.dynamo" in MODELS for n in names)


@pytest.mark.parametrize("model", MODELS)
def test_zoo_model_repaired_matches_pytorch(model: str) -> None:
    name = model.split(".")[0]
    meta = json.loads((ZOO / f"{name}.json").read_text())
    path = ZOO / f"{model}.onnx"
    need = NEEDS.get(model, "")
    if need:
        with pytest.raises(OnnxoptError, match=f"cannot be freed.*--constraint '{need}'"):
            repair(path, meta)
    repaired = repair(path, meta, need)
    checked = refused = 0
    for k, feeds, want in saved(name):  # shape0 is the trace shape
        if not within(meta, feeds, need):
            with pytest.raises(Exception, match="Gather"):  # beyond the folded rows: an error
                run_model(repaired, feeds)
            refused += 1
            continue
        for got, ref in zip(run_model(repaired, feeds), want, strict=True):
            assert got.shape == ref.shape, f"{model} shape{k}"
            np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3, err_msg=f"{model} shape{k}")
        checked += 1
    assert checked >= 4 and refused == (1 if need else 0)
