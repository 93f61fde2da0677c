"""fold and simplify on real models: tests/models and onnx's light models.

Each model goes through ``fold,simplify,dce,cse`` and must compute what it computed before (in
onnxruntime, at two bindings of every symbolic input dim); the light models, whose weights are
ConstantOfShape generators, must not balloon even when their initializers are true constants.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from onnxopt import load
from onnxopt.passes import PassManager
from onnxopt.testing import assert_equivalent, m_bytes

SHARED = Path(__file__).resolve().parent / "models"  # committed copies (models/README.md)
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
PIPELINE = "fold,simplify,dce,cse"

MODELS = sorted(SHARED.glob("*.onnx")) + sorted(LIGHT.glob("*.onnx"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_model_still_computes_the_same(path: Path):
    m = load(str(path))
    before = m_bytes(m)
    n0 = m.num_nodes()
    PassManager(PIPELINE, verify_each=True, check_modified=True).run(m)
    assert m.num_nodes() <= n0
    assert_equivalent(before, m_bytes(m))


def _constant_weights(path: Path) -> onnx.ModelProto:
    """The light model with its initializers no longer graph inputs (so fold may touch them)."""
    p = onnx.load(str(path))
    inits = {t.name for t in p.graph.initializer}
    keep = [i for i in p.graph.input if i.name not in inits]
    del p.graph.input[:]
    p.graph.input.extend(keep)
    p.ir_version = max(p.ir_version, 4)
    return p


@pytest.mark.parametrize("path", sorted(LIGHT.glob("*.onnx")), ids=lambda p: p.stem)
def test_light_model_weight_generators_do_not_balloon(path: Path):
    proto = _constant_weights(path)
    size = len(proto.SerializeToString())
    m = load(proto)
    generators = sum(n.op_type == "ConstantOfShape" for n in m.graph.nodes)
    elements = sum(v.const_value.size for v in m.graph.initializers)
    PassManager(PIPELINE, verify_each=True).run(m)
    after = m_bytes(m)
    # Tiny generators (at most 64 values, a small bias) may fold; the weights stay generators.
    grown = sum(v.const_value.size for v in m.graph.initializers) - elements
    assert grown <= 64 * generators, f"{grown} more constant elements"
    assert len(after) <= 1.2 * size + 256 * generators, f"{size} -> {len(after)} bytes"
    assert_equivalent(proto, after)


def test_shared_models_are_present():
    """The real models are committed under tests/models; a missing file must not pass silently."""
    assert len(list(SHARED.glob("*.onnx"))) >= 4, f"no models in {SHARED}"
    assert os.path.isdir(LIGHT)
