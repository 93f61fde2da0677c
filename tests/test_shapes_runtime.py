"""Shape inference against the runtime on real models.

Models: ``tests/models/*.onnx`` (inputs as MANIFEST.md says), onnx's light models
(``onnx/backend/test/data/light``, static inputs) and ``golden/models/*.onnx`` (inputs from their
``.io.npz``). Every intermediate value of the main graph is exposed as an output and the model runs
in onnxruntime at two bindings of its symbolic input dims; every inferred dim, evaluated at that
binding, must equal the runtime dim. The fraction of values whose shape is fully known is printed
(``pytest -s``). Two stricter variants: the light models with N, H, W made symbolic, and the
golden/dynamize corpus (sizes baked in at export) with its dynamic dims made symbolic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxopt.io import load
from onnxopt.passes.shapes import infer_shapes
from onnxopt.passes.shapes.check import compare, input_binding, runtime_shapes

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parent / "models"  # committed copies (models/README.md)
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _shared_feeds(name: str, rng: np.random.Generator):
    """Two valid input sets per shared model (see tests/models/README.md)."""
    f32 = np.float32
    if name.startswith("magika"):
        return [{"bytes": rng.integers(0, 257, (b, 2048)).astype(np.int32)} for b in (1, 3)]
    if name.startswith("ppocr_mobile"):
        return [{"x": rng.standard_normal(s).astype(f32)} for s in ((1, 3, 48, 192),
                                                                   (2, 3, 48, 320))]
    if name.startswith("ppocrv4_det"):
        return [{"x": rng.standard_normal(s).astype(f32)} for s in ((1, 3, 320, 320),
                                                                   (2, 3, 256, 416))]
    if name.startswith("silero_vad"):
        return [
            {"input": rng.uniform(-1, 1, (1, 576)).astype(f32),
             "state": (rng.standard_normal((2, 1, 128)) * 0.1).astype(f32),
             "sr": np.array(16000, dtype=np.int64)},
            {"input": rng.uniform(-1, 1, (2, 288)).astype(f32),
             "state": (rng.standard_normal((2, 2, 128)) * 0.1).astype(f32),
             "sr": np.array(8000, dtype=np.int64)},
        ]
    return None


def _static_feeds(proto, rng: np.random.Generator):
    inits = {t.name for t in proto.graph.initializer}
    feeds = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if any(d <= 0 for d in dims):
            return None
        feeds[i.name] = rng.standard_normal(dims).astype(np.float32)
    return [feeds]


def feeds_for(path: Path, proto):
    """Input sets to run ``path`` with (None when unknown)."""
    rng = np.random.default_rng(0)
    f = _shared_feeds(path.name, rng)
    if f is not None:
        return f
    npz = path.with_suffix(".io.npz")
    if npz.exists():
        d = np.load(npz)
        return [{k.split(":", 1)[1]: d[k] for k in d.files if k.startswith(f"{s}/input:")}
                for s in ("shape0", "shape1")]
    return _static_feeds(proto, rng)


def model_paths() -> list[Path]:
    """Every model the runtime check covers."""
    return (sorted(SHARED.glob("*.onnx")) + sorted(LIGHT.glob("*.onnx"))
            + sorted((ROOT / "golden" / "models").glob("*.onnx")))



@pytest.mark.parametrize("path", model_paths(), ids=lambda p: p.name)
def test_inferred_dims_equal_runtime_dims(path: Path) -> None:
    proto = onnx.load(str(path))
    feeds = feeds_for(path, proto)
    if feeds is None:
        pytest.skip(f"no known valid inputs for {path.name}")
    model = load(proto)
    info = infer_shapes(model)
    assert not info.errors, f"{path.name}: a valid model reported as contradictory: " \
                            f"{info.errors[0]}"
    bindings = []
    for fd in feeds:
        actual = runtime_shapes(proto, fd)
        b = input_binding(model, fd)
        r = compare(model, actual, b)
        bindings.append(b)
        assert not r.wrong, f"{path.name} at {b}: wrong dims {r.wrong[:5]}"
        line = (f"{path.name} at {b}: {r.known}/{r.values} values fully known "
                f"({100 * r.fraction_known:.1f}%), {r.partial} partly, {r.unknown} unknown")
        print("\n" + line, end="")
    if len(feeds) > 1:
        assert bindings[0] != bindings[1], "the two input sets bind the symbols alike"


@pytest.mark.parametrize("path", sorted(LIGHT.glob("*.onnx")), ids=lambda p: p.name)
def test_light_models_with_symbolic_input_dims(path: Path) -> None:
    """The light models with their batch and image dims made symbolic (N, H, W), run at two
    sizes; a binding the model itself cannot run (a Reshape to a fixed size) is left out."""
    proto = onnx.load(str(path))
    inits = {t.name for t in proto.graph.initializer}
    ins = [i for i in proto.graph.input if i.name not in inits]
    for i in ins:
        dims = i.type.tensor_type.shape.dim
        dims[0].dim_param = "N"
        if len(dims) == 4:
            dims[2].dim_param, dims[3].dim_param = "H", "W"
    model = load(proto)
    info = infer_shapes(model)
    assert not info.errors, str(info.errors[0])
    rng = np.random.default_rng(0)
    ran = 0
    for n, hh, ww in ((1, 224, 224), (2, 256, 192)):
        fd = {i.name: rng.standard_normal((n, 3, hh, ww)).astype(np.float32) for i in ins}
        try:
            actual = runtime_shapes(proto, fd)
        except Exception:  # noqa: BLE001, S112 - the model only runs at its export size
            continue
        ran += 1
        b = input_binding(model, fd)
        r = compare(model, actual, b)
        assert not r.wrong, f"{path.name} at {b}: wrong dims {r.wrong[:5]}"
        print(f"\n{path.name} (symbolic N,H,W) at {b}: {r.known}/{r.values} values fully known "
              f"({100 * r.fraction_known:.1f}%)", end="")
    assert ran


def _dynamize_cases() -> list[Path]:
    return sorted((ROOT / "golden" / "dynamize").glob("*.json"))


@pytest.mark.parametrize("spec", _dynamize_cases(), ids=lambda p: p.stem)
def test_dynamize_corpus_with_symbolic_dims(spec: Path) -> None:
    """golden/dynamize models (traced at one shape, sizes baked in) with the dims their .json
    names dynamic made symbolic, checked at every stored shape onnxruntime runs."""
    import json

    j = json.loads(spec.read_text())
    path = spec.parent / j["model"]
    proto = onnx.load(str(path))
    for i in proto.graph.input:
        for ax, sym in j.get("dynamic", {}).get(i.name, {}).items():
            i.type.tensor_type.shape.dim[int(ax)].dim_param = sym
    model = load(proto)
    info = infer_shapes(model)
    assert not info.errors, str(info.errors[0])
    data = np.load(spec.parent / j["expected"])
    ran = 0
    for k in range(8):
        fd = {key.split(":", 1)[1]: data[key] for key in data.files
              if key.startswith(f"shape{k}/input:")}
        if not fd:
            break
        try:
            actual = runtime_shapes(proto, fd)
        except Exception:  # noqa: BLE001, S112 - sizes baked in at export: the model fails there
            continue
        ran += 1
        r = compare(model, actual, input_binding(model, fd))
        assert not r.wrong, f"{path.name}: wrong dims {r.wrong[:5]}"
    assert ran
