"""The opset pass: decompositions on edge cases (empty tensors, negative axes, broadcasting,
float16), the up-conversion rules, bodies and functions, refusals, bad input, the check report
and a slice of the model matrix. One positive case per rule is in golden/opset (test_golden
runs each in onnxruntime at both opsets)."""

from __future__ import annotations

import os
import sys

import pytest
from onnxopt.errors import PassError, UsageError
from onnxopt.passes import PassContext
from onnxopt.passes.opset import convert
from onnxopt.testing import (
    assert_equivalent,
    assert_golden,
    golden_text,
    model_from_text,
    run_passes,
    snapshot,
)

from _samples import erf_gelu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def header(opset: int) -> str:
    return f'<ir_version: {8 if opset < 21 else 10}, opset_import: ["" : {opset}]>'


def down(text: str, target: int, bindings=None, atol=None, ops_gone=()):
    """Convert with the pass; assert the declared opset, the ops gone and equal numbers."""
    m = model_from_text(text)
    before = snapshot(m)
    run_passes(m, f"opset{{target={target}}}")
    assert m.opset("") == target
    left = {n.op_type for n in m.graph.all_nodes()}
    assert not left & set(ops_gone), golden_text(m)
    assert_equivalent(before, m, bindings=bindings, atol=atol)
    return m


# -- decompositions on edge cases -----------------------------------------------------------------

EMPTY_AND_TWO = [{"N": 0}, {"N": 2}]

DECOMPOSITIONS = {
    "layer_norm_f16_negative_axis": (17, 11, """
        g (float16[N,3,4] x, float16[4] s, float16[4] b) => (float16[N,3,4] y) {
           y = LayerNormalization <axis = -1> (x, s, b)
        }""", 1e-2),
    "layer_norm_broadcast_scale_no_bias": (17, 13, """
        g (float[N,3,4] x, float[1,4] s) => (float[N,3,4] y) {
           y = LayerNormalization <axis = 1> (x, s)
        }""", None),
    "rms_norm_f16": (23, 13, """
        g (float16[N,2,6] x, float16[6] s) => (float16[N,2,6] y) {
           y = RMSNormalization <axis = -1> (x, s)
        }""", 1e-2),
    # no empty case: onnxruntime's own GroupNormalization and Attention refuse an empty batch
    "group_norm_one_group": (21, 11, """
        g (float[N,4,5] x, float[4] s, float[4] b) => (float[N,4,5] y) {
           y = GroupNormalization <num_groups = 1> (x, s, b)
        }""", None),
    "gelu_f16": (20, 11, """
        g (float16[N,3] x) => (float16[N,3] y) {
           y = Gelu (x)
        }""", 1e-2),
    "mish_hardswish_broadcast": (18, 13, """
        g (float[N,3] x, float[3] z) => (float[N,3] y) {
           m = Mish (x)
           h = HardSwish (z)
           y = Add (m, h)
        }""", None),
    "attention_3d_float_mask_softcap": (23, 13, """
        g (float[N,3,8] q, float[N,5,4] k, float[N,5,4] v, float[3,5] mask) => (float[N,3,8] y) {
           y = Attention <q_num_heads = 2, kv_num_heads = 1, softcap = 2.0, scale = 0.3> (q, k, v, mask)
        }""", None),
    "attention_f16_causal": (23, 17, """
        g (float16[N,2,4,8] q, float16[N,2,4,8] k, float16[N,2,4,8] v) => (float16[N,2,4,8] y) {
           y = Attention <is_causal = 1> (q, k, v)
        }""", 1e-2),
    "cumsum_negative_axis": (14, 10, """
        g (float[N,5] x) => (float[N,5] y) {
           ax = Constant <value = int64 {-1}> ()
           y = CumSum <exclusive = 1> (x, ax)
        }""", None),
    "trilu_negative_k_f16": (14, 11, """
        g (float16[N,4,3] x) => (float16[N,4,3] y) {
           k = Constant <value = int64 {-1}> ()
           y = Trilu <upper = 0> (x, k)
        }""", None),
}


@pytest.mark.parametrize("case", sorted(DECOMPOSITIONS))
def test_decomposition_equal_on_random_and_empty_inputs(case):
    source, target, body, atol = DECOMPOSITIONS[case]
    op_gone = {"layer": "LayerNormalization", "rms": "RMSNormalization", "group":
               "GroupNormalization", "gelu": "Gelu", "mish": "Mish", "trilu": "Trilu",
               "attention": "Attention", "cumsum": "CumSum"}
    gone = [v for k, v in op_gone.items() if case.startswith(k)]
    bindings = [{"N": 1}, {"N": 3}] if case.startswith(("group", "attention")) else EMPTY_AND_TWO
    down(header(source) + body, target, bindings=bindings, atol=atol, ops_gone=gone)


def test_statistics_per_op_in_the_report():
    m = model_from_text(header(17) + """
        g (float[N,4] x, float[4] s) => (float[N,4] y) {
           ax = Constant <value = int64[1] {1}> ()
           u = Unsqueeze (x, ax)
           q = Squeeze (u, ax)
           y = LayerNormalization (q, s)
        }""")
    report = run_passes(m, "opset{target=11}")
    stats = report.records[0].stats
    assert stats["LayerNormalization: layer_normalization"] == 1
    assert stats["Unsqueeze: axes_input"] == 1 and stats["Squeeze: axes_input"] == 1


# -- up: the rules where onnx's converter gives up -------------------------------------------------

UP = {
    "reduce_axes": (11, 18, """
        g (float[N,3,4] x) => (float[N,1,4] y) {
           y = ReduceMean <axes = [-2]> (x)
        }"""),
    "squeeze_split": (11, 13, """
        g (float[N,1,6] x) => (float[N,2] a, float[N,4] b) {
           s = Squeeze <axes = [1]> (x)
           a, b = Split <axis = 1, split = [2, 4]> (s)
        }"""),
    "pad_clip": (10, 11, """
        g (float[N,3] x) => (float[N,6] y) {
           p = Pad <pads = [0, 1, 0, 2], value = 0.5> (x)
           y = Clip <min = -0.2, max = 0.3> (p)
        }"""),
    "slice": (9, 10, """
        g (float[N,8] x) => (float[N,5] y) {
           y = Slice <starts = [1], ends = [6], axes = [1]> (x)
        }"""),
    "batchnorm_spatial": (7, 15, """
        g (float[N,2,3] x, float[2] s, float[2] b, float[2] mu, float[2] var) => (float[N,2,3] y) {
           y = BatchNormalization <spatial = 1, epsilon = 0.01> (x, s, b, mu, var)
        }"""),
    "upsample_nearest_linear": (9, 13, """
        g (float[N,1,4,6] x) => (float[N,1,6,15] a, float[N,1,6,15] b) {
           s = Constant <value = float[4] {1.0, 1.0, 1.5, 2.5}> ()
           a = Upsample <mode = "nearest"> (x, s)
           b = Upsample <mode = "linear"> (x, s)
        }"""),
    "resize_10_shrink": (10, 11, """
        g (float[N,1,8,10] x) => (float[N,1,6,6] y) {
           s = Constant <value = float[4] {1.0, 1.0, 0.75, 0.6}> ()
           y = Resize <mode = "nearest"> (x, s)
        }"""),
    "softmax_coerced": (11, 13, """
        g (float[N,3,4] x) => (float[N,3,4] y, float[N,3,4] z) {
           y = Softmax <axis = 1> (x)
           z = LogSoftmax <axis = 2> (x)
        }"""),
}


@pytest.mark.parametrize("case", sorted(UP))
def test_up_rules_without_the_converter(case, update_golden):
    source, target, body = UP[case]
    m = model_from_text(header(source) + body)
    before = snapshot(m)
    convert(m, PassContext(m), source, target)  # the rules alone, as when the converter fails
    assert m.opset("") == target
    assert_golden(m, os.path.join(ROOT, "golden", "opset", f"up_{case}.expected.onnxtxt"),
                  update=update_golden or None)
    assert_equivalent(before, m, bindings=EMPTY_AND_TWO)
    text = golden_text(m)
    assert "axes: ints" not in text and "split: ints" not in text and "pads: ints" not in text


def test_down_then_up_round_trip():
    text = header(20) + """
        g (float[N,6] x, float[6] s) => (float[N,3] a, float[N,3] b) {
           n = LayerNormalization (x, s)
           g = Gelu (n)
           a, b = Split <axis = -1, num_outputs = 2> (g)
        }"""
    m = model_from_text(text)
    before = snapshot(m)
    run_passes(m, "opset{target=11},opset{target=20}")
    assert m.opset("") == 20
    assert_equivalent(before, m)


# -- bodies, functions, the rest of the pipeline -----------------------------------------------------

def test_local_function_body_is_converted():
    m = down("""<ir_version: 9, opset_import: ["" : 20, "local" : 1]>
        g (float[N,3] x) => (float[N,3] y) {
           y = local.act (x)
        }
        <domain: "local", opset_import: ["" : 20]>
        act (a) => (b) {
           b = Gelu (a)
        }""", 17)
    (f,) = m.functions.values()
    assert f.opset_imports[""] == 17
    assert "Gelu" not in {n.op_type for n in f.graph.nodes}


def test_pipeline_after_the_conversion_respects_the_target():
    from onnxopt import optimize

    m = model_from_text(f"""{header(17)}
g (float[N,4] x) => (float[N,4] y) {{
{erf_gelu("x", "y")}
}}""")
    res = optimize(m, "default", target_opset=11)
    assert res.model.opset("") == 11
    assert "Gelu" not in {n.op_type for n in res.model.graph.all_nodes()}


# -- refusals and bad input ------------------------------------------------------------------------

GRID = header(16) + """
    g (float[1,1,4,4] x, float[1,2,2,2] grid) => (float[1,1,2,2] y) {
       y = GridSample (x, grid)
    }"""


def test_op_without_equivalent_is_named_with_its_lowest_opset():
    m = model_from_text(GRID)
    with pytest.raises(PassError) as e:
        run_passes(m, "opset{target=15}")
    msg = str(e.value)
    assert "GridSample" in msg and "opset 15" in msg and "lowest opset that has it is 16" in msg
    assert "\n" not in msg


class _Run:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args, cwd):
    """The command in this process (a subprocess would pay onnxruntime's import each time)."""
    import contextlib
    import io

    from onnxopt.cli.main import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(args))
    finally:
        os.chdir(here)
    return _Run(rc, out.getvalue(), err.getvalue())


@pytest.fixture
def grid_file(tmp_path):
    import onnx

    onnx.save(snapshot_proto(GRID), tmp_path / "grid.onnx")
    return tmp_path


def snapshot_proto(text):
    import onnx

    return onnx.load_from_string(snapshot(model_from_text(text)))


@pytest.mark.parametrize("args, says", [
    (["--target-opset", "6"], "outside 7.."),
    (["--target-opset", "29"], "outside 7.."),
    (["--target-opset", "eleven"], "invalid int value"),
    (["-p", "opset{target=1.5}"], "not an integer"),
    (["--target-opset", "15"], "GridSample"),
])
def test_cli_bad_target_one_line_exit_2_nothing_written(grid_file, args, says):
    r = _cli("grid.onnx", "-o", "out.onnx", *args, cwd=grid_file)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (grid_file / "out.onnx").exists()


def test_model_without_default_domain(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Foo", ["x"], ["y"], domain="my")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("my", 1)]),
              tmp_path / "m.onnx")
    r = _cli("m.onnx", "-o", "out.onnx", "--target-opset", "13", "--no-verify", cwd=tmp_path)
    assert r.returncode == 2 and "no default-domain opset" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.onnx").exists()


def test_api_checks_the_target_first():
    from onnxopt import optimize

    with pytest.raises(UsageError, match="outside"):
        optimize(b"not a model", "dce", target_opset=99)


# -- check, and a slice of the matrix ------------------------------------------------------------

def test_check_reports_the_lowest_opset(grid_file):
    r = _cli("check", "grid.onnx", cwd=grid_file)
    assert "lowest opset it converts to: 16" in r.stdout and "GridSample" in r.stdout


@pytest.mark.parametrize("model, targets", [
    ("golden/models/gpt2_op23.onnx", (11, 17)),
    ("tests/models/silero_vad_op15_ts.onnx", (11, 23)),
])
def test_matrix_slice(model, targets):
    import onnx

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        from opset_matrix import by_onnxopt
    finally:
        sys.path.pop(0)
    proto = onnx.load(os.path.join(ROOT, model))
    for t in targets:
        assert by_onnxopt(proto, t) == "ok", (model, t)


def test_attention_boolean_mask():
    import numpy as np

    m = model_from_text(header(23) + """
        g (float[1,2,3,4] q, float[1,2,5,4] k, float[1,2,5,4] v, bool[3,5] keep) => (float[1,2,3,4] y) {
           y = Attention (q, k, v, keep)
        }""")
    before = snapshot(m)
    run_passes(m, "opset{target=13}")
    rng = np.random.default_rng(1)
    keep = rng.random((3, 5)) < 0.6
    keep[:, 0] = True  # every query attends somewhere (a fully masked row is NaN in both)
    feeds = {n: rng.standard_normal(s).astype(np.float32)
             for n, s in (("q", (1, 2, 3, 4)), ("k", (1, 2, 5, 4)), ("v", (1, 2, 5, 4)))}
    assert_equivalent(before, m, feeds={**feeds, "keep": keep})


def test_resize_to_10_only_where_the_rounding_agrees():
    body = """
        g (float[N,1,8,10] x) => (float[N,1,6,6] y) {
           s = Constant <value = float[4] {1.0, 1.0, 0.75, 0.6}> ()
           y = Resize <mode = "nearest", coordinate_transformation_mode = "asymmetric",
                       nearest_mode = "MODE"> (x, , s)
        }"""
    down(header(13) + body.replace("MODE", "ceil"), 10, ops_gone=())  # shrinking rounds up
    with pytest.raises(PassError, match="Resize"):
        run_passes(model_from_text(header(13) + body.replace("MODE", "floor")), "opset{target=10}")
