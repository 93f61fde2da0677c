"""Verification where the model will run: --verify-on / --bench-on and `onnxopt verify A B`.

Each runtime runs both models itself and compares them; a missing runtime is a one-line usage
error naming what to install; a runtime that cannot run the original says so in one line and
leaves the other runtimes' verdicts alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnxopt.cli.main import main
from onnxopt.errors import UsageError
from onnxopt.runtimes import bench_pair, parse_runtimes, verify_on

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "tests" / "models").glob("*.onnx")) + sorted(
    (ROOT / "golden" / "models").glob("*_op17.onnx"))
# The input the model is exported for: OpenVINO's MaxPool refuses the small generated images.
SHAPES = {"ppocr_mobile_v2_cls": {"x": [1, 3, 48, 192]}}
# The one the runtime cannot convert (OpenVINO has no rule for its If with different ranks).
OPENVINO_CANNOT = {"silero_vad_op15_ts"}

MATMUL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,3] y) <float[4,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}, float[3] b = {1,2,3}> {
    h = MatMul (x, w)
    y = Add (h, b)
}
"""

OPTIONAL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N] x) => (float[N] y) {
    o = Optional (x)
    y = OptionalGetElement (o)
}
"""

# A planted miscompile: the first weight with more than one element is scaled by 1.01.
PERTURB_PLUGIN = """
from onnxopt.ir import Builder
from onnxopt.passes import GraphPass, PassResult, register

@register
class Perturb(GraphPass):
    name = "t:perturb"
    summary = "scales one weight by 1.01 (wrong on purpose)"

    def run_on_graph(self, graph, ctx):
        for v in graph.initializers:
            arr = v.const_value.numpy()
            if arr.dtype.kind == "f" and arr.size > 1 and v.has_uses():
                new = Builder(graph).const(arr * 1.01)
                v.replace_all_uses_with(new)
                graph.remove_initializer(v)
                return PassResult(modified=True)
        return PassResult()
"""


@pytest.fixture(scope="module")
def openvino():
    return pytest.importorskip("openvino", reason="openvino not installed: pip install "
                               "'onnxopt[openvino]' to test --verify-on openvino")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("plugin") / "perturb.py"  # one file: a pass registers once
    p.write_text(PERTURB_PLUGIN)
    return p


def _save(text: str, path: Path) -> Path:
    onnx.save(onnx.parser.parse_model(text), str(path))
    return path


def _optimized_bytes(path: Path, shapes=None) -> bytes:
    from onnxopt.optimizer import optimize
    from onnxopt.testing import to_proto

    result = optimize(str(path), verify=False, input_shapes=shapes or {})
    return to_proto(result.model).SerializeToString()


# ---- specs


@pytest.mark.parametrize("spec,fragment", [
    ("tvm", "unknown runtime 'tvm'"),
    ("ort:NoSuchExecutionProvider", "install the onnxruntime build"),
    ("", "no runtime named"),
])
def test_bad_runtime_spec_is_a_usage_error(spec, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_runtimes(spec)


def test_missing_openvino_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    with pytest.raises(UsageError, match=r"onnxopt\[openvino\]"):
        parse_runtimes("ort-full,openvino")


def test_provider_spec_takes_short_names():
    (rt,) = parse_runtimes("ort:CPU")
    assert (rt.kind, rt.full, rt.provider) == ("ort", True, "CPUExecutionProvider")


def test_cli_missing_runtime_exits_2_with_one_line(tmp_path, capsys):
    m = _save(MATMUL, tmp_path / "m.onnx")
    assert main(["verify", str(m), str(m), "--verify-on", "ort:NoSuchExecutionProvider"]) == 2
    assert main([str(m), "-o", str(tmp_path / "o.onnx"), "--verify-on", "tvm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "NoSuchExecutionProvider" in err and "'tvm'" in err
    assert not (tmp_path / "o.onnx").exists()


# ---- the shared and golden models, optimized by the default preset


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_models_match_on_ort_full_and_openvino(path, openvino):
    from onnxopt.verify import VerifyOptions

    shapes = SHAPES.get(path.stem, {})
    reports = verify_on(str(path), _optimized_bytes(path, shapes),
                        parse_runtimes("ort-full,openvino"), VerifyOptions(input_shapes=shapes))
    verdict = {r.runtime: r for r in reports}
    assert verdict["ort-full"].status == "ok", verdict["ort-full"].reason
    assert verdict["ort-full"].diffs and all(d.ok for d in verdict["ort-full"].diffs)
    ov = verdict["openvino"]
    if path.stem in OPENVINO_CANNOT:
        assert ov.status == "not verified" and "\n" not in ov.reason
        assert ov.reason.startswith("openvino cannot load the original: ")
    else:
        assert ov.status == "ok", ov.reason
        assert ov.diffs and all(d.ok for d in ov.diffs)


# ---- a planted miscompile is caught on every runtime


def test_planted_miscompile_caught_on_each_runtime(tmp_path, capsys, openvino, plugin):
    for src in (_save(MATMUL, tmp_path / "m.onnx"), ROOT / "golden/models/bert_op17.onnx"):
        bad = tmp_path / f"{src.stem}.bad.onnx"
        assert main([str(src), "-o", str(bad), "--plugin", str(plugin), "-p", "t:perturb",
                     "--no-verify", "-q"]) == 0
        capsys.readouterr()
        code = main(["verify", str(src), str(bad), "--verify-on",
                     "ort,ort-full,openvino,ort:CPUExecutionProvider", "--json"])
        d = json.loads(capsys.readouterr().out)
        assert code == 1 and d["verified"] is False
        assert [r["runtime"] for r in d["runtimes"]] == ["ort", "ort-full", "openvino",
                                                         "ort:CPUExecutionProvider"]
        for r in d["runtimes"]:
            assert r["status"] == "failed" and "differs" in r["reason"], r
            assert any(not o["ok"] for o in r["outputs"])


def test_optimize_with_verify_on_writes_nothing_when_a_runtime_fails(tmp_path, capsys, plugin):
    m = _save(MATMUL, tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    args = [str(m), "-o", str(out), "--plugin", str(plugin), "-p", "t:perturb", "--no-verify",
            "--verify-on", "ort-full", "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "verification on ort-full failed" in err
    assert not out.exists()
    assert main(args + ["--force"]) == 1 and out.exists()


def test_optimize_with_verify_on_reports_each_runtime(tmp_path, capsys, openvino):
    m = _save(MATMUL, tmp_path / "m.onnx")
    assert main([str(m), "-o", str(tmp_path / "o.onnx"), "--verify-on", "ort-full,openvino",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [(r["runtime"], r["status"]) for r in d["runtimes"]] == [("ort-full", "ok"),
                                                                     ("openvino", "ok")]
    assert {o["binding"]["N"] for o in d["runtimes"][1]["outputs"]} == {1, 2}


# ---- a model the runtime cannot read


def test_model_openvino_cannot_read_is_not_verified_in_one_line(tmp_path, capsys, openvino):
    m = _save(OPTIONAL, tmp_path / "opt.onnx")
    assert main(["verify", str(m), str(m), "--verify-on", "ort-full,openvino"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("verify on ort-full: ok: ")  # the other runtime's verdict stands
    assert lines[1].startswith("verify on openvino: not verified: openvino cannot load the "
                               "original: ")
    assert "No conversion rule found for operations: Optional" in lines[1]
    assert len(lines) == 2
    assert main(["verify", str(m), str(m), "--verify-on", "ort-full,openvino",
                 "--require-verified", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in d["runtimes"]] == ["ok", "not verified"]
    assert d["verified"] is False


# ---- latency


def test_bench_pair_reports_median_and_spread_at_1_and_all_threads(tmp_path):
    m = _save(MATMUL, tmp_path / "m.onnx")
    feed = {"x": np.ones((2, 4), np.float32)}
    (rt,) = parse_runtimes("ort-full")
    rows = bench_pair(rt, str(m), str(m), feed, budget_s=0.05)
    assert [r["threads"] for r in rows] == [1, "all"]
    for r in rows:
        for side in ("original", "optimized"):
            t = r[side]
            assert t["runs"] >= 20 and t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
        assert isinstance(r["slower"], bool)


def test_cli_bench_on_in_summary_and_json(tmp_path, capsys):
    m = _save(MATMUL, tmp_path / "m.onnx")
    assert main(["verify", str(m), str(m), "--bench-on", "ort-full", "--bench-seconds",
                 "0.05"]) == 0
    out = capsys.readouterr().out
    assert "bench on ort-full, 1 thread(s): original " in out
    assert "bench on ort-full, all thread(s): original " in out
    assert main([str(m), "-o", str(tmp_path / "o.onnx"), "--bench-on", "ort",
                 "--bench-seconds", "0.05", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [r["threads"] for r in d["bench"]] == [1, "all"]


# ---- the ort preset keeps onnxruntime's own fusions forming


def _ort_fused(model: bytes, tmp_path: Path) -> dict:
    from collections import Counter

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "ort_optimized.onnx")
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    m = onnx.load(so.optimized_model_filepath, load_external_data=False)
    return Counter(n.op_type for n in m.graph.node if n.domain == "com.microsoft")


def test_ort_preset_lets_onnxruntime_form_skip_layer_norm(tmp_path):
    from onnxopt.optimizer import optimize
    from onnxopt.testing import to_proto

    src = ROOT / "golden/models/bert_op17.onnx"
    out = to_proto(optimize(str(src), "ort", verify=False).model).SerializeToString()
    before = _ort_fused(src.read_bytes(), tmp_path)
    after = _ort_fused(out, tmp_path)
    # the residual Add before each LayerNormalization becomes SkipLayerNormalization only when
    # onnxruntime sees both inputs' shapes, which the written shapes give it
    assert after["SkipLayerNormalization"] == 4 > before["SkipLayerNormalization"]
    assert after["BiasGelu"] >= before["BiasGelu"] > 0  # what forms on the original still forms
    (report,) = verify_on(str(src), out, parse_runtimes("ort-full"))
    assert report.status == "ok", report.reason


@pytest.mark.parametrize("name", ["vit_op17", "gpt2_op17"])
def test_ort_preset_raises_opset_so_attention_fuses(name, tmp_path):
    # onnxruntime's optimizer forms no attention on these exports (nor on onnxsim's, which wins
    # only by emitting com.microsoft.Attention itself); at opset 23 fuse makes the standard op
    from onnxopt.optimizer import optimize
    from onnxopt.testing import to_proto

    src = ROOT / "golden/models" / f"{name}.onnx"
    out = to_proto(optimize(str(src), "ort", verify=False).model)
    assert {o.domain: o.version for o in out.opset_import}[""] == 23
    assert sum(n.op_type == "Attention" and n.domain == "" for n in out.graph.node) == 2
    assert not _ort_fused(src.read_bytes(), tmp_path)["Attention"]
    (report,) = verify_on(str(src), out.SerializeToString(), parse_runtimes("ort-full"))
    assert report.status == "ok", report.reason


def test_the_ort_preset_raises_to_23_but_never_lowers_and_target_opset_wins():
    import onnxopt
    from onnxopt.testing import run_passes

    src = str(ROOT / "golden" / "models" / "gpt2_op17.onnx")
    pinned = onnxopt.optimize(src, "ort", target_opset=17, verify=False)
    assert pinned.model.opset("") == 17  # --target-opset pins the opset over the preset's raise
    m = onnxopt.load(src)
    run_passes(m, "opset{target=24}")
    run_passes(m, "opset{target=23,at_least=1}")
    assert m.opset("") == 24
