"""`onnxopt cut`: pipeline stages and extracted subgraphs, each a valid model, whose composition
reproduces the original bit for bit (verification runs inside every cut below)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxopt
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxopt.cli.main import main
from onnxopt.cutting import run_pipeline
from onnxopt.errors import UsageError, VerificationError
from onnxopt.testing import assert_text

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "golden" / "models"
MODELS = ROOT / "tests" / "models"
SILERO = MODELS / "silero_vad_op15_ts.onnx"

TINY = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4, 4] w1 = {1.,0.,0.,0., 0.,2.,0.,0., 0.,0.,3.,0., 0.,0.,0.,4.}, float[4] b = {1., 2., 3., 4.},
 float[4, 4] w2 = {0.,1.,0.,0., 1.,0.,0.,0., 0.,0.,0.,1., 0.,0.,1.,0.}>
{
  c = Constant <value = float[1] {0.5}> ()
  h = MatMul(x, w1)
  hb = Add(h, b)
  r = Relu(hb)
  z = MatMul(r, w2)
  zc = Mul(z, c)
  s = Add(zc, b)
  y = Add(s, x)
}
"""


def tiny():
    return onnx.parser.parse_model(TINY)


def initializers_unused(model) -> list[str]:
    """Initializers of a stage (IR) that no node of it reads, subgraphs included."""
    read = {v for n in model.graph.all_nodes() for v in n.inputs if v is not None}
    return [v.name for v in model.graph.initializers if v not in read]


def test_two_stages_keep_names_and_only_the_weights_each_reads():
    r = onnxopt.cut(tiny(), at=["r"])
    assert r.verification == "ok", r.reason
    s0, s1 = r.stages
    assert_text(s0, """
        <
           ir_version: 8,
           opset_import: ["" : 17]
        >
        g_stage0 (float[N,4] x) => (float[N,4] r)
           <float[4,4] w1 = {1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0}, float[4] b = {1.0, 2.0, 3.0, 4.0}>
        {
           h = MatMul (x, w1)
           hb = Add (h, b)
           r = Relu (hb)
        }
        """.replace("\n        ", "\n"))
    # The shared bias is written into both stages; the Constant is copied, not passed.
    assert [v.name for v in s1.graph.inputs] == ["r", "x"]
    assert [v.name for v in s1.graph.initializers] == ["w2", "b"]
    assert [n.op_type for n in s1.graph.nodes] == ["Constant", "MatMul", "Mul", "Add", "Add"]
    man = r.manifest
    assert man["stages"][1]["inputs"] == [{"name": "r", "from": 0}, {"name": "x", "from": "input"}]
    assert man["stages"][0]["boundary_bytes"] == "16*N"
    assert man["stages"][0]["flops"] == "40*N"  # MatMul 2*N*4*4, Add 4N, Relu 4N


def test_a_cut_that_a_path_avoids_is_refused_naming_the_path():
    text = TINY.replace("y = Add(s, x)", "y = Add(s, h)")
    with pytest.raises(UsageError, match=r"--at r: does not separate the graph: x -> h -> y "
                                         r"avoids the cut \(add 'h' to it\)"):
        onnxopt.cut(onnx.parser.parse_model(text), at=["r"])
    r = onnxopt.cut(onnx.parser.parse_model(text), at=["r,h"])
    assert r.verification == "ok"


@pytest.mark.parametrize("at, message", [
    (["nope"], "--at 'nope': no tensor of that name in the model"),
    (["x"], "--at 'x': is a model input"),
    (["w1"], "--at 'w1': is an initializer"),
    (["c"], "--at 'c': is a Constant's output"),
    (["y"], "--at y: stage 1 would be empty: nothing comes after it"),
    (["r", "h"], "--at h: stage 1 would be empty"),
])
def test_bad_cuts_are_one_line_errors(at, message):
    with pytest.raises(UsageError) as e:
        onnxopt.cut(tiny(), at=at)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_tensor_inside_a_control_flow_body_is_refused():
    with pytest.raises(UsageError, match=r"defined inside the body of If node '/model/decoder/If'"):
        onnxopt.cut(str(SILERO), at=["/model/decoder/Squeeze_output_0"])


def test_cuts_across_if_captures_on_silero():
    """Each If of the decoder reads (captures) a tensor the previous stage computes; the LSTM
    body's weights go with its stage, the body's captured state comes from the model's inputs."""
    r = onnxopt.cut(str(SILERO), at=["/model/encoder/3/activation/Relu_output_0",
                                    "/model/decoder/If_output_0",
                                    "/model/decoder/If_1_output_0,/model/decoder/If_1_output_1"])
    assert r.verification == "ok", r.reason
    stages = r.manifest["stages"]
    assert stages[1]["inputs"] == [{"name": "/model/encoder/3/activation/Relu_output_0",
                                    "from": 0}]
    assert {"name": "/model/decoder/If_output_0", "from": 1} in stages[2]["inputs"]
    assert {"name": "state", "from": "input"} in stages[2]["inputs"]
    assert "model.decoder.rnn.weight_ih" in [v.name for v in r.stages[2].graph.initializers]
    for m in r.stages:
        assert initializers_unused(m) == []


LOOP = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N] x, int64 trip) => (float[N] y)
{
  a = Relu(x)
  b = Neg(a)
  cond = Constant <value = bool {1}> ()
  y = Loop (trip, cond, b) <body = body (int64 i, bool c, float[N] acc) => (bool c2, float[N] acc2) {
      c2 = Identity(c)
      acc2 = Add(acc, a)
  }>
}
"""


def test_a_loop_body_capturing_an_earlier_stage_value_gets_it_as_a_stage_input():
    with pytest.raises(UsageError, match=r"x -> a -> y avoids the cut \(add 'a' to it\)"):
        onnxopt.cut(onnx.parser.parse_model(LOOP), at=["b"])
    r = onnxopt.cut(onnx.parser.parse_model(LOOP), at=["b,a"])
    assert r.verification == "ok", r.reason
    assert r.manifest["stages"][1]["inputs"] == [
        {"name": "trip", "from": "input"}, {"name": "b", "from": 0}, {"name": "a", "from": 0}]


SCAN = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[T, 3] x) => (float[3] total, float[T, 3] ys)
{
  a = Relu(x)
  w = Neg(a)
  axes = Constant <value = int64[1] {0}> ()
  init = ReduceSum <keepdims = 0> (w, axes)
  peak = ReduceMax <keepdims = 0> (a, axes)
  total, ys = Scan (init, w) <num_scan_inputs = 1, body = body (float[3] s, float[3] xi) => (float[3] s2, float[3] yi) {
      s2 = Add(s, xi)
      yi = Mul(xi, peak)
  }>
}
"""


def test_a_scan_body_capturing_an_earlier_stage_value_gets_it_as_a_stage_input():
    with pytest.raises(UsageError, match=r"x -> a -> peak -> total avoids the cut"):
        onnxopt.cut(onnx.parser.parse_model(SCAN), at=["w"])  # peak is read only by the body
    r = onnxopt.cut(onnx.parser.parse_model(SCAN), at=["w,peak"])
    assert r.verification == "ok", r.reason
    assert [i["name"] for i in r.manifest["stages"][1]["inputs"]] == ["w", "peak"]


FUNCS = """
<ir_version: 8, opset_import: ["" : 17, "local" : 1, "com.microsoft" : 1]>
g (float[N] x) => (float[N] y) {
  a = local.Twice(x)
  y = local.Plus1(a)
}
<domain: "local", opset_import: ["" : 17]>
Twice (x) => (y) { y = Add(x, x) }
<domain: "local", opset_import: ["" : 17]>
Plus1 (x) => (y) {
  one = Constant <value = float {1.0}>()
  y = Add(x, one)
}
"""


def test_each_stage_keeps_only_the_functions_and_opsets_it_uses():
    r = onnxopt.cut(onnx.parser.parse_model(FUNCS), at=["a"])
    assert r.verification == "ok", r.reason
    s0, s1 = r.stages
    assert list(s0.functions) == [("local", "Twice", "")]
    assert list(s1.functions) == [("local", "Plus1", "")]
    assert s0.opset_imports == s1.opset_imports == {"": 17, "local": 1}  # no com.microsoft
    assert str(s1.graph.inputs[0].type.shape) == "[N]"  # the function's output type, inferred


@pytest.mark.parametrize("model, at", [
    ("gpt2_op17", ["/blocks.0/Add_3_output_0"]),
    ("gpt2_op23", ["/blocks.0/Add_3_output_0", "/blocks.1/Add_3_output_0"]),
    ("bert_op17", ["/layers.0/ln2/Add_1_output_0,/Mul_output_0"]),
    ("vit_op23", ["/layers.0/Add_output_0", "/layers.0/Add_1_output_0",
                  "/layers.1/Add_1_output_0"]),
])
def test_golden_models_cut_at_tensors_compose_exactly(model, at, tmp_path):
    r = onnxopt.cut(str(GOLDEN / f"{model}.onnx"), at=at, output_dir=str(tmp_path / "p"))
    assert r.verification == "ok", r.reason
    assert len(r.stages) == len(at) + 1
    for k, m in enumerate(r.stages):
        assert initializers_unused(m) == []
        onnx.checker.check_model(str(tmp_path / "p" / f"stage_{k}.onnx"), full_check=True)


@pytest.mark.parametrize("path, n", [
    (GOLDEN / "resnet_op17.onnx", 4),
    (GOLDEN / "bert_op23.onnx", 3),
    (MODELS / "magika_v3_3.onnx", 3),
    (MODELS / "ppocr_mobile_v2_cls.onnx", 4),
    (MODELS / "ppocrv4_det.onnx", 2),
])
def test_real_models_cut_into_balanced_stages_compose_exactly(path, n):
    r = onnxopt.cut(str(path), stages=n)
    assert r.verification == "ok", r.reason
    assert len(r.stages) == n
    for m in r.stages:
        assert initializers_unused(m) == []
        assert m.graph.nodes  # no empty stage


def transformer(widths: list[int], d: int = 16) -> onnx.ModelProto:
    """Pre-norm blocks with MLP widths ``widths`` (so blocks cost differently), a mask input read
    by every block, symbolic batch and seq; block i ends at tensor ``block{i}``."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def w(name, *shape):
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Unsqueeze", ["mask", w("ax", 1)], ["m3"]))
    inits[-1] = numpy_helper.from_array(np.array([-1], np.int64), "ax")
    x = "x"
    for i, width in enumerate(widths):
        p = f"b{i}_"
        nodes += [
            helper.make_node("LayerNormalization", [x, w(p + "g", d), w(p + "be", d)], [p + "ln"],
                             axis=-1),
            helper.make_node("MatMul", [p + "ln", w(p + "w1", d, width)], [p + "h"]),
            helper.make_node("Relu", [p + "h"], [p + "a"]),
            helper.make_node("MatMul", [p + "a", w(p + "w2", width, d)], [p + "o"]),
            helper.make_node("Mul", [p + "o", "m3"], [p + "om"]),
            helper.make_node("Add", [x, p + "om"], [f"block{i}"]),
        ]
        x = f"block{i}"
    nodes.append(helper.make_node("MatMul", [x, w("head", d, 8)], ["y"]))
    g = helper.make_graph(
        nodes, "transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_four_balanced_stages_within_ten_percent_of_the_best_block_split():
    widths = [16, 64, 32, 128, 16, 48, 96, 32]
    model = transformer(widths)
    # Per-block FLOPs, as the cut counts them: one stage per block.
    per_block = onnxopt.cut(model, at=[f"block{i},m3" for i in range(len(widths) - 1)],
                            verify=False)
    block = [st["flops_value"] for st in per_block.manifest["stages"]]
    best = min(max(sum(block[a:b]) for a, b in zip((0,) + cuts, cuts + (len(block),)))
               for cuts in itertools.combinations(range(1, len(block)), 3))
    r = onnxopt.cut(model, stages=4)
    assert r.verification == "ok", r.reason
    got = max(st["flops_value"] for st in r.manifest["stages"])
    assert got <= 1.10 * best, (got, best)
    # Symbolic FLOPs stay expressions; the mask every block reads comes from stage 0.
    assert "batch*seq" in r.manifest["stages"][0]["flops"]
    for st in r.manifest["stages"][1:]:
        assert {"name": "m3", "from": 0} in st["inputs"]


def test_balance_by_params_and_memory():
    model = transformer([16, 64, 32, 128])
    for balance in ("params", "memory"):
        r = onnxopt.cut(model, stages=2, balance=balance)
        assert r.verification == "ok" and r.manifest["balance"] == balance
    r = onnxopt.cut(model, stages=2, balance="params")
    weights = [st["params_bytes"] for st in r.manifest["stages"]]
    assert max(weights) < 0.75 * sum(weights)


def test_input_shapes_make_costs_numbers():
    r = onnxopt.cut(transformer([16, 32]), at=["block0,m3"], input_shapes={"x": [2, 10, 16]},
                    verify=False)
    st = r.manifest["stages"][0]
    assert st["flops"] == str(int(st["flops_value"])) and r.manifest["binding"]["seq"] == 10


def test_extract_a_subgraph_between_tensors():
    r = onnxopt.cut(tiny(), extract=("r", "s"))
    assert r.verification == "ok", r.reason
    (m,) = r.stages
    assert [v.name for v in m.graph.inputs] == ["r"]
    assert [v.name for v in m.graph.outputs] == ["s"]
    assert [v.name for v in m.graph.initializers] == ["w2", "b"]
    with pytest.raises(UsageError, match="depends on model input 'x', which is not among"):
        onnxopt.cut(tiny(), extract=("hb", "y"))


def test_a_composition_that_differs_names_the_first_tensor_and_writes_nothing(tmp_path,
                                                                             monkeypatch):
    import onnxopt.cutting.cutter as cut_module
    from onnxopt.ir import Tensor

    real_split = cut_module.split

    def broken_split(*args, **kwargs):
        models, ios = real_split(*args, **kwargs)
        w1 = models[0].graph.initializers[0]
        w1.const_value = Tensor.from_numpy(w1.const_value.numpy() * 2)
        return models, ios

    monkeypatch.setattr(cut_module, "split", broken_split)
    with pytest.raises(VerificationError, match=r"first differing tensor 'r' \(an output of "
                                                r"stage 0\)"):
        onnxopt.cut(tiny(), at=["r"], output_dir=str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


def external_model(folder: Path) -> Path:
    """Three MatMuls whose weights (one shared by the first and last) live in external data."""
    rng = np.random.default_rng(1)
    ws = {n: rng.standard_normal((64, 64)).astype(np.float32) for n in ("wa", "wb")}
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["h1"]),
             helper.make_node("MatMul", ["h1", "wb"], ["h2"]),
             helper.make_node("MatMul", ["h2", "wa"], ["y"])]
    g = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("x", 1, ["n", 64])],
                          [helper.make_tensor_value_info("y", 1, ["n", 64])],
                          [numpy_helper.from_array(a, n) for n, a in ws.items()])
    path = folder / "ext.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path,
              save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    return path


def test_external_data_stays_external_one_file_per_stage(tmp_path):
    src = external_model(tmp_path)
    out = tmp_path / "pipe"
    r = onnxopt.cut(str(src), at=["h1", "h2"], output_dir=str(out))
    assert r.verification == "ok", r.reason
    original = onnx.load(str(src))
    for k, want in enumerate([["wa"], ["wb"], ["wa"]]):
        stage = onnx.load(str(out / f"stage_{k}.onnx"), load_external_data=False)
        assert [t.name for t in stage.graph.initializer] == want
        locations = {e.value for t in stage.graph.initializer for e in t.external_data
                     if e.key == "location"}
        assert locations == {f"stage_{k}.onnx.data"}  # never another stage's or the original's
        full = onnx.load(str(out / f"stage_{k}.onnx"))
        for t in full.graph.initializer:
            ref = next(o for o in original.graph.initializer if o.name == t.name)
            assert hashlib.sha256(t.raw_data).digest() == hashlib.sha256(ref.raw_data).digest()


def test_cli_cut_escapes_the_names_it_prints(tmp_path, capsys):
    model = tiny()
    hostile = "r\x1b]0;pwned\x07"
    for node in model.graph.node:
        node.input[:] = [hostile if n == "r" else n for n in node.input]
        node.output[:] = [hostile if n == "r" else n for n in node.output]
    src = tmp_path / "hostile.onnx"
    onnx.save(model, src)
    assert main(["cut", str(src), "--at", hostile, "-o", str(tmp_path / "pipe")]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x07" not in text and "r\\x1b]0;pwned\\x07" in text


def test_cli_cut_summary_manifest_and_run(tmp_path, capsys):
    out = tmp_path / "pipe"
    assert main(["cut", str(GOLDEN / "gpt2_op17.onnx"), "--at", "/blocks.0/Add_3_output_0",
                 "--at", "/blocks.1/Add_3_output_0", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:4] == ["stage", "nodes", "inputs", "outputs"]
    assert "3 stage(s) written to" in text and "verified: 1 output(s) bitwise equal" in text
    man = json.loads((out / "pipeline.json").read_text())
    assert [s["file"] for s in man["stages"]] == ["stage_0.onnx", "stage_1.onnx", "stage_2.onnx"]
    assert man["verification"]["status"] == "ok"
    ids = np.random.default_rng(0).integers(0, 50, (2, 7)).astype(np.int64)
    np.savez(tmp_path / "x.npz", input_ids=ids)
    assert main(["cut", "--run", str(out), "--inputs", str(tmp_path / "x.npz"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    got = np.load(tmp_path / "y.npz")["logits"]
    import onnxruntime as ort

    want = ort.InferenceSession(str(GOLDEN / "gpt2_op17.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})
    np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-5)
    assert run_pipeline(str(out), {"input_ids": ids}).keys() == {"logits"}


@pytest.mark.parametrize("args, message", [
    (["--at", "nope"], "no tensor of that name"),
    (["--at", "/blocks.0/ln2/Add_1_output_0"], "does not separate the graph: input_ids ->"),
    (["--stages", "1"], "--stages 1: give 2 or more"),
    (["--extract", "--inputs", "input_ids"], "--extract needs --outputs"),
])
def test_cli_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "pipe"
    assert main(["cut", str(GOLDEN / "gpt2_op17.onnx"), *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_ir3_weights_listed_as_inputs_stay_weights(tmp_path):
    """IR 3 lists every initializer among the graph inputs: each stage keeps both roles."""
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", 1, ["N", 4]),
         helper.make_tensor_value_info("W", 1, [4, 4])],
        [helper.make_tensor_value_info("y", 1, ["N", 4])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], ir_version=3)
    r = onnxopt.cut(model, at=["r"], output_dir=str(tmp_path / "p"))
    assert r.verification == "ok", r.reason
    assert r.manifest["inputs"] == ["x"]
    for k, inputs in enumerate([["x", "W"], ["r", "W"]]):
        path = str(tmp_path / "p" / f"stage_{k}.onnx")
        onnx.checker.check_model(path)
        assert [i.name for i in onnx.load(path).graph.input] == inputs
