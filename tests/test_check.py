"""``onnxopt check``: the health report, the TensorRT readiness report, JSON output, exit codes,
and the run over tests/models and golden/models shown in the README."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnx.helper as oh
import onnx.parser
import pytest

from onnxopt.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parent / "models"  # committed copies (models/README.md)
GOLDEN_MODELS = sorted((ROOT / "golden" / "models").glob("*.onnx"))

CLEAN = """<ir_version: 10, opset_import: ["" : 17]>
g (float[1,3,8,8] x) => (float[1,3,4,4] y) {
    r = Relu (x)
    y = MaxPool <kernel_shape=[2,2], strides=[2,2]> (r)
}"""

# Refused by TensorRT (Unique, an int MatMul) and restricted (a dynamic input dim).
BLOCKED = """<ir_version: 10, opset_import: ["" : 17]>
g (float[N] x, int32[N,4] a, int32[4,3] b) => (float[M] u, int32[N,3] y) {
    u = Unique (x)
    y = MatMul (a, b)
}"""

# Needs the tensorrt preset: a crop-mode Resize over the full image.
FIXABLE = """<ir_version: 10, opset_import: ["" : 18]>
g (float[1,1,4,6] x) => (float[1,1,8,12] y)
  <float[8] roi = {0,0,0,0,1,1,1,1}, float[4] sc = {1,1,2,2}> {
    y = Resize <mode="linear", coordinate_transformation_mode="tf_crop_and_resize"> (x, roi, sc)
}"""


def write(tmp_path: Path, text: str, name: str = "m.onnx") -> str:
    path = tmp_path / name
    onnx.save(onnx.parser.parse_model(text), path)
    return str(path)


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- exit codes ----------------------------------------------------------------------------------


def test_tensorrt_clean_model_exits_0(tmp_path, capsys):
    code, out, _ = run(["--target", "tensorrt", write(tmp_path, CLEAN)], capsys)
    assert code == 0
    assert "TensorRT 10.15" in out and "result: nothing blocks" in out


def test_tensorrt_blockers_exit_1_grouped_by_kind(tmp_path, capsys):
    code, out, _ = run(["--target", "tensorrt", write(tmp_path, BLOCKED)], capsys)
    assert code == 1
    assert "operator not supported (1, 1 blocking)" in out
    assert "data type not supported (1, 1 blocking)" in out
    assert "dynamic shape: needs an optimization profile" in out
    assert "node 'Unique(u)' (Unique)" in out and "fix: needs a plugin" in out
    assert "result: 2 blocking" in out


def test_tensorrt_fixable_finding_names_the_preset_and_rule(tmp_path, capsys):
    path = write(tmp_path, FIXABLE)
    code, out, _ = run(["--target", "tensorrt", path], capsys)
    assert code == 1
    assert "fix: run --preset tensorrt (trt.resize_crop_to_align_corners)" in out
    # After the preset (verified in onnxruntime) the same check passes.
    fixed = str(tmp_path / "fixed.onnx")
    assert main([path, "--preset", "tensorrt", "-o", fixed, "-q"]) == 0
    code, out, _ = run(["--target", "tensorrt", fixed], capsys)
    assert code == 0, out


@pytest.mark.parametrize("argv", [["missing.onnx"], ["--target", "tensorrt", "missing.onnx"],
                                  ["--target", "nope", "x.onnx"], []])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("onnxopt: error:")


def test_not_a_model_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf \xff\xff")
    for argv in (["--target", "tensorrt", str(bad)], [str(bad)]):
        code, _, err = run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1


def test_directory_is_exit_2(tmp_path, capsys):
    code, _, err = run([str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err


# -- JSON ----------------------------------------------------------------------------------------


def test_tensorrt_json_shape(tmp_path, capsys):
    code, out, _ = run(["--target", "tensorrt", "--json", write(tmp_path, BLOCKED)], capsys)
    d = json.loads(out)
    assert code == 1 and d["exit_code"] == 1 and d["ok"] is False
    assert d["target"] == "tensorrt" and d["blocking"] == 2 and d["warnings"] >= 1
    assert d["info"]["matrix_version"] == "10.15"
    assert d["info"]["matrix_source"].startswith("https://github.com/onnx/onnx-tensorrt/")
    assert d["kinds"]["op"] == {"title": "operator not supported", "count": 1, "blocking": 1}
    f = next(f for f in d["findings"] if f["op"] == "Unique")
    assert set(f) == {"kind", "severity", "node", "op", "graph", "reason", "fix", "rule",
                      "source"}
    assert f["fix"] == {"action": "plugin", "text": "needs a plugin", "passes": []}
    assert f["source"].startswith("https://")


def test_health_json_shape(tmp_path, capsys):
    code, out, _ = run(["--json", write(tmp_path, CLEAN)], capsys)
    d = json.loads(out)
    assert code == 0 and d["target"] == "health" and d["ok"] is True and d["findings"] == []
    assert d["info"]["opset"] == {"": 17}


# -- the health report ---------------------------------------------------------------------------


def test_health_ops_beyond_the_opset_and_removed_ops(tmp_path, capsys):
    text = """<ir_version: 10, opset_import: ["" : 17]>
    g (float[2,3] x) => (float[2,3] y) { y = Gelu (x) }"""
    code, out, _ = run(["--json", write(tmp_path, text)], capsys)
    d = json.loads(out)
    assert code == 1
    (f,) = [f for f in d["findings"] if f["kind"] == "opset"]
    assert f["severity"] == "block" and "opset 20" in f["reason"] and "imports opset 17" in f[
        "reason"]
    assert any(f["kind"] == "checker" for f in d["findings"])
    text = """<ir_version: 7, opset_import: ["" : 11]>
    g (float[1,1,2,2] x, float[4] s) => (float[1,1,4,4] y) { y = Upsample (x, s) }"""
    code, out, _ = run(["--json", write(tmp_path, text, "up.onnx")], capsys)
    d = json.loads(out)
    assert code == 1 and any("deprecated" in f["reason"] for f in d["findings"])


def test_health_checker_errors(tmp_path, capsys):
    node = oh.make_node("Relu", ["x"], ["y"], bogus=1)  # an attribute Relu does not have
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", 1, [2])],
                      [oh.make_tensor_value_info("y", 1, [2])])
    path = tmp_path / "bogus.onnx"
    onnx.save(oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]), path)
    code, out, _ = run([str(path)], capsys)
    assert code == 1 and "onnx.checker errors (1, 1 blocking)" in out and "bogus" in out


def test_health_warnings_do_not_block(tmp_path, capsys):
    text = """<ir_version: 10, opset_import: ["" : 17, "com.example" : 1]>
    g (float[N,4] x, float[3] unused) => (float[N,4] y) <float[5] dead = {1,2,3,4,5}> {
        c = com.example.Custom (x)
        y = Relu (c)
    }"""
    code, out, _ = run([write(tmp_path, text)], capsys)
    assert code == 0
    assert "unused initializers (1)" in out and "'dead' (5 elements)" in out
    assert "unused inputs (1)" in out
    assert "values with unknown shapes" in out and "rank unknown" in out
    assert "result: nothing blocks; " in out


# -- the README run: shared models and golden models ---------------------------------------------

SHARED_MODELS = sorted(SHARED.glob("*.onnx")) if SHARED.is_dir() else []
# What the README shows: silero's If branches return different ranks (blocking); the others
# only need an optimization profile for their dynamic dims.
EXPECTED_BLOCKED = {"silero_vad_op15_ts.onnx"}


@pytest.mark.parametrize("path", SHARED_MODELS + GOLDEN_MODELS, ids=lambda p: p.name)
def test_readme_run_over_shared_and_golden_models(path, capsys):
    code, out, _ = run(["--target", "tensorrt", "--json", str(path)], capsys)
    d = json.loads(out)
    assert code == (1 if path.name in EXPECTED_BLOCKED else 0), out
    assert d["checked_nodes"] > 0
    if path.name in EXPECTED_BLOCKED:
        assert {f["rule"] for f in d["findings"] if f["severity"] == "block"} == {"if-ranks"}
    code, out, _ = run([str(path)], capsys)
    assert code == 0, out


def test_silero_passes_after_fixing_dims_and_the_preset(tmp_path, capsys):
    out = str(tmp_path / "silero.onnx")
    assert main([str(SHARED / "silero_vad_op15_ts.onnx"), "--preset", "tensorrt", "-q",
                 "--input-shape", "input:1,576", "--input-shape", "state:2,1,128",
                 "-o", out]) == 0
    code, text, _ = run(["--target", "tensorrt", out], capsys)
    assert code == 0, text
