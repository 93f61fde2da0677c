"""TensorRT: the support matrix as data, the readiness check, the ``trt`` rules and the
``tensorrt`` preset.

Each construct the matrix restricts is a small model: the check flags it (naming the fix), then
``--preset tensorrt`` (verified in onnxruntime by ``onnxopt.optimize``, and again with
``assert_equivalent``) removes the finding where a rule or fold can; constructs no rewrite can
fix keep their finding and say "needs a plugin".
"""

from __future__ import annotations

import inspect
import re

import onnx
import pytest

import onnxopt
from onnxopt.passes.tensorrt import ALL_RULES, RULES_BY_NAME
from onnxopt.passes.tensorrt.matrix import load_matrix, source_url, type_codes
from onnxopt.passes.tensorrt.support import BLOCK, WARN, check_tensorrt
from onnxopt.testing import assert_equivalent, model_from_text, snapshot

H17 = '<ir_version: 10, opset_import: ["" : 17]>\n'
H18 = '<ir_version: 10, opset_import: ["" : 18]>\n'
H19 = '<ir_version: 10, opset_import: ["" : 19]>\n'


def findings(model, rule=None):
    report = check_tensorrt(model_from_text(model) if isinstance(model, str) else model)
    return [f for f in report.findings if rule is None or f.rule == rule]


# -- constructs the preset fixes -------------------------------------------------------------------

FIXABLE = {
    "resize_crop": ("resize-coordinates", "trt.resize_crop_to_align_corners", H18 + """
        g (float[1,2,4,6] x) => (float[1,2,8,9] y)
          <float[8] roi = {0,0,0,0,1,1,1,1}, float[4] sc = {1,1,2,1.5}> {
          y = Resize <mode="linear",
                      coordinate_transformation_mode="tf_crop_and_resize"> (x, roi, sc)
        }"""),
    "resize_symmetric": ("resize-coordinates", "trt.resize_symmetric_to_half_pixel", H19 + """
        g (float[1,1,4,6] x) => (float[1,1,8,3] y) <float[4] sc = {1,1,2,0.5}> {
          y = Resize <mode="linear",
                      coordinate_transformation_mode="half_pixel_symmetric"> (x, , sc)
        }"""),
    "resize_antialias": ("resize-antialias", "trt.resize_drop_antialias", H18 + """
        g (float[1,1,4,6] x) => (float[1,1,8,12] y) <int64[4] sz = {1,1,8,12}> {
          y = Resize <mode="linear", antialias=1> (x, , , sz)
        }"""),
    "resize_aspect": ("resize-aspect", "trt.resize_stretch_policy", H18 + """
        g (float[1,1,4,6] x) => (float[1,1,8,12] y) <int64[2] sz = {8,12}> {
          y = Resize <mode="nearest", axes=[2,3], keep_aspect_ratio_policy="not_larger"> (x, , , sz)
        }"""),
    "resize_axes": ("resize-axes", "trt.resize_full_rank_scales", H18 + """
        g (float[N,2,4,6] x) => (float[N,2,8,3] y) <float[2] sc = {0.5,2}> {
          y = Resize <mode="nearest", axes=[3,2]> (x, , sc)
        }"""),
    "pool_1d": ("pool-2d-3d", "trt.pool_1d_to_2d", H17 + """
        g (float[N,3,16] x) => (float[N,3,8] y) {
          y = AveragePool <kernel_shape=[3], strides=[2], pads=[1,1]> (x)
        }"""),
    "maxpool_indices": ("maxpool-indices", "trt.drop_unused_outputs", H17 + """
        g (float[N,3,8,8] x) => (float[N,3,4,4] y) {
          y, idx = MaxPool <kernel_shape=[2,2], strides=[2,2]> (x)
        }"""),
    "layernorm_outputs": ("layernorm-outputs", "trt.drop_unused_outputs", H17 + """
        g (float[N,5] x) => (float[N,5] y) <float[5] s = {1,2,3,4,5}> {
          y, mean, inv = LayerNormalization (x, s)
        }"""),
    "nonzero_bool": ("op-types", "trt.nonzero_via_float", H17 + """
        g (float[N,5] x) => (int64[2,M] y) {
          m = Greater (x, x)
          y = NonZero (m)
        }"""),
    "equal_bool": ("op-types", "trt.bool_equal_to_xor", H17 + """
        g (bool[N,5] a, bool[5] b) => (bool[N,5] y) { y = Equal (a, b) }"""),
    "clip_int": ("op-types", "trt.int_clip_to_min_max", H17 + """
        g (int64[N,5] x) => (int64[N,5] y) <int64 lo = {-2}, int64 hi = {3}> {
          y = Clip (x, lo, hi)
        }"""),
    "pad_bool": ("op-types", "trt.pad_bool_via_int32", H18 + """
        g (bool[N,5] x) => (bool[N,9] y) <int64[2] p = {1,3}, int64[1] ax = {1}> {
          y = Pad (x, p, , ax)
        }"""),
    "double_round_trip": ("double-downcast", "trt.cast_double_round_trip", H17 + """
        g (float[N,5] x) => (float16[N,5] y) {
          d = Cast <to=11> (x)
          y = Cast <to=10> (d)
        }"""),
    "reduce_axes_computed": ("reduce-axes", "fold", H18 + """
        g (float[2,3,4] x) => (float[2,3] y) <int64[1] last = {-1}> {
          s = Shape (x)
          r = Size (s)
          axes = Add (r, last)
          y = ReduceSum <keepdims=0> (x, axes)
        }"""),
    "if_on_static_dim": ("if-ranks", "fold", H17 + """
        g (float[2,3] x) => (float[6] y)
          <int64[1] zero = {0}, int64 two = {2}, int64[1] flat = {-1}> {
          s = Shape (x)
          n = Gather <axis=0> (s, zero)
          e = Equal (n, two)
          c = Squeeze (e)
          y = If (c) <
            then_branch = t () => (float[6] a) { a = Reshape (x, flat) },
            else_branch = f () => (float[2,3] b) { b = Neg (x) }>
        }"""),
}


@pytest.mark.parametrize("case", sorted(FIXABLE))
def test_check_flags_then_preset_fixes(case):
    rule, fixer, text = FIXABLE[case]
    before = findings(text, rule)
    assert before, f"{case}: the check does not flag {rule}"
    assert before[0].fix.action == "preset" and fixer in before[0].fix.passes, before[0]
    assert "--preset tensorrt" in before[0].fix.text and before[0].source.startswith("https://")
    original = snapshot(model_from_text(text))
    result = onnxopt.optimize(original, "tensorrt")  # verified in onnxruntime, or raises
    assert result.verified
    after = [f for f in check_tensorrt(result.model).findings if f.rule == rule]
    assert after == [], f"{case}: still flagged after --preset tensorrt: {after}"
    assert_equivalent(original, result.model)


# -- constructs no rewrite can fix -----------------------------------------------------------------

UNFIXABLE = {
    "unique": ("unsupported-op", H17 + """
        g (float[N] x) => (float[M] y) { y = Unique (x) }"""),
    "resize_cubic": ("resize-mode", H17 + """
        g (float[1,1,4,4] x) => (float[1,1,8,8] y) <float[4] sc = {1,1,2,2}> {
          y = Resize <mode="cubic"> (x, , sc)
        }"""),
    "crop_partial_roi": ("resize-coordinates", H18 + """
        g (float[1,1,4,6] x) => (float[1,1,8,12] y)
          <float[8] roi = {0,0,0,0,1,1,0.5,1}, float[4] sc = {1,1,2,2}> {
          y = Resize <mode="linear",
                      coordinate_transformation_mode="tf_crop_and_resize"> (x, roi, sc)
        }"""),
    "matmul_int": ("op-types", H17 + """
        g (int32[N,4] a, int32[4,3] b) => (int32[N,3] y) { y = MatMul (a, b) }"""),
    "topk_unsorted": ("topk-sorted", H17 + """
        g (float[N,10] x) => (float[N,3] v, int64[N,3] i) <int64[1] k = {3}> {
          v, i = TopK <sorted=0> (x, k)
        }"""),
    "cumsum_axis_input": ("cumsum-axis", H17 + """
        g (float[N,10] x, int64 axis) => (float[N,10] y) { y = CumSum (x, axis) }"""),
    "if_on_data": ("if-ranks", H17 + """
        g (float[2,3] x, bool c) => (float[6] y) <int64[1] flat = {-1}> {
          y = If (c) <
            then_branch = t () => (float[6] a) { a = Reshape (x, flat) },
            else_branch = f () => (float[2,3] b) { b = Neg (x) }>
        }"""),
    "deformconv_pads": ("deformconv-pads", H19 + """
        g (float[1,2,6,6] x, float[2,2,3,3] w, float[1,18,5,4] off) => (float[1,2,5,4] y) {
          y = DeformConv <pads=[1,0,0,0]> (x, w, off)
        }"""),
    "lstm_layout": ("lstm-layout", H17 + """
        g (float[2,5,3] x, float[1,16,3] w, float[1,16,4] r) => (float[2,5,1,4] y) {
          y = LSTM <hidden_size=4, layout=1> (x, w, r)
        }"""),
    "maxpool_indices_read": ("maxpool-indices", H17 + """
        g (float[N,3,8,8] x) => (float[N,3,4,4] y, int64[N,3,4,4] idx) {
          y, idx = MaxPool <kernel_shape=[2,2], strides=[2,2]> (x)
        }"""),
}


@pytest.mark.parametrize("case", sorted(UNFIXABLE))
def test_unfixable_constructs_need_a_plugin(case):
    rule, text = UNFIXABLE[case]
    hits = findings(text, rule)
    assert hits and hits[0].severity == BLOCK
    assert hits[0].fix.action == "plugin" and hits[0].fix.text == "needs a plugin"


@pytest.mark.parametrize("case", ["resize_cubic", "crop_partial_roi", "topk_unsorted",
                                  "maxpool_indices_read"])
def test_unfixable_constructs_survive_the_preset(case):
    rule, text = UNFIXABLE[case]
    result = onnxopt.optimize(snapshot(model_from_text(text)), "tensorrt")
    assert [f.rule for f in check_tensorrt(result.model).findings if f.rule == rule] == [rule]


def test_custom_domain_op_needs_a_plugin():
    text = ('<ir_version: 10, opset_import: ["" : 17, "com.example" : 1]>\n'
            'g (float[N] x) => (float[N] y) { y = com.example.Swish (x) }')
    (f,) = findings(text, "unknown-op")
    assert f.kind == "op" and f.severity == BLOCK and f.fix.text == "needs a plugin"
    assert "com.example::Swish" in f.reason


def test_model_local_function_is_checked_through_its_body():
    text = ('<ir_version: 10, opset_import: ["" : 17, "local" : 1]>\n'
            'g (float[N] x) => (float[M] y) { y = local.uniq (x) }\n'
            '<domain: "local", opset_import: ["" : 17]>\n'
            'uniq (a) => (b) { b = Unique (a) }')
    fs = findings(text)
    assert [f.rule for f in fs if f.severity == BLOCK] == ["unsupported-op"]
    assert fs[0].graph == "function uniq" or any(f.graph == "function uniq" for f in fs)


def test_subgraph_nodes_are_checked_and_located():
    text = H17 + """
        g (float[N] x, bool c) => (float[M] y) {
          y = If (c) <
            then_branch = t () => (float[M] a) { a = Unique (x) },
            else_branch = f () => (float[M] b) { b = Neg (x) }>
        }"""
    (f,) = findings(text, "unsupported-op")
    assert f.op == "Unique" and f.graph.endswith(".then_branch")


# -- data-dependent and dynamic shapes -------------------------------------------------------------


def test_nonzero_is_a_data_dependent_warning_not_a_block():
    text = H17 + "g (float[N,5] x) => (int64[2,M] y) { y = NonZero (x) }"
    report = check_tensorrt(model_from_text(text))
    (f,) = [f for f in report.findings if f.kind == "data-dependent-shape"]
    assert f.severity == WARN and "IOutputAllocator" in f.fix.text
    assert report.ok


def test_data_dependent_shapes_are_reported():
    # Range whose bound is read from tensor data.
    text = H17 + """
        g (float[N] x) => (int64[M] y) <int64 zero = {0}, int64 one = {1}> {
          m = ReduceMax <keepdims=0> (x)
          n = Cast <to=7> (m)
          y = Range (zero, n, one)
        }"""
    (f,) = [f for f in findings(text) if f.kind == "data-dependent-shape"]
    assert f.op == "Range" and f.severity == WARN and "input 1 (n)" in f.reason
    # An If whose branches give different dims: shape inference names a data-dependent dim.
    text = H17 + """
        g (float[4] x, bool c) => (float[K] y) <int64[1] two = {2}, int64[1] zero = {0}> {
          y = If (c) <
            then_branch = t () => (float[2] a) { a = Slice (x, zero, two) },
            else_branch = f () => (float[4] b) { b = Neg (x) }>
        }"""
    (f,) = [f for f in findings(text) if f.kind == "data-dependent-shape"]
    assert f.op == "If" and "depend on input values" in f.reason
    # Shapes computed from dims only are not data-dependent.
    text = H17 + """
        g (float[N,6] x) => (float[N,2,3] y) <int64[1] zero = {0}, int64[2] tail = {2,3}> {
          s = Shape (x)
          n = Gather (s, zero)
          shape = Concat <axis=0> (n, tail)
          y = Reshape (x, shape)
        }"""
    assert [f for f in findings(text) if f.kind == "data-dependent-shape"] == []


def test_dynamic_inputs_need_an_optimization_profile():
    text = H17 + "g (float[batch,3,H,W] x) => (float[batch,3,H,W] y) { y = Relu (x) }"
    (f,) = findings(text, "optimization-profile")
    assert f.severity == WARN and "batch" in f.reason and "--input-shape x:?,3,?,?" in f.fix.text
    assert findings(H17 + "g (float[1,3,8,8] x) => (float[1,3,8,8] y) { y = Relu (x) }",
                    "optimization-profile") == []


def test_shape_tensor_inputs_are_reported():
    text = H17 + """
        g (float[N,6] x, int64[2] shape) => (float[A,B] y) { y = Reshape (x, shape) }"""
    assert [f.severity for f in findings(text, "shape-tensor-input")] == [WARN]


def test_opset_outside_the_parser_range():
    text = ('<ir_version: 10, opset_import: ["" : 25]>\n'
            'g (float[2] x) => (float[2] y) { y = Relu (x) }')
    (f,) = findings(text, "opset-range")
    assert f.severity == BLOCK and "--target-opset 24" in f.fix.text


# -- the matrix is data, with its version and sources ----------------------------------------------


def test_matrix_has_version_sources_and_a_known_vocabulary():
    m = load_matrix()
    assert m["version"].startswith("10.") and m["opset"] == {**m["opset"], "min": 9, "max": 24}
    for key, src in m["sources"].items():
        assert src["url"].startswith("https://"), key
    checks = set(m["checks"])
    fixers = set(RULES_BY_NAME)
    for op, spec in m["ops"].items():
        type_codes(spec.get("types", []))  # every type name is known
        for r in spec.get("restrictions", ()):
            assert r["check"] in checks, (op, r)
            assert r["source"] in m["sources"], (op, r)
            assert r["kind"] in m["kinds"] and r.get("severity", BLOCK) in (BLOCK, WARN)
            for fx in [*r.get("fix", ()), *spec.get("fix_dtype", ())]:
                assert fx in ("fold", "identity") or fx.split(".", 1)[1] in fixers, (op, fx)
    for fact in m["facts"]:
        assert source_url(fact["source"]).startswith("https://")


def test_matrix_ops_are_onnx_ops():
    legacy = {"ImageScaler", "ParametricSoftplus", "ScaledTanh", "Scatter", "Upsample"}
    unknown = [op for op in load_matrix()["ops"]
               if not onnx.defs.has(op) and op not in legacy]
    assert unknown == []


def test_every_rule_cites_its_source():
    for rule in ALL_RULES:
        doc = (inspect.getmodule(type(rule)).__doc__ or "") + (type(rule).__doc__ or "")
        assert re.search(r"https://github.com/onnx/onnx-tensorrt/\S+", doc), rule.name
        assert "docs/operators.md" in doc or "onnxOpCheckers.cpp" in doc, rule.name


def test_near_misses_are_left_alone():
    # An int64 Reshape shape stays int64 (ONNX requires it; TensorRT 10 has native INT64).
    text = H17 + """
        g (float[N,6] x) => (float[N,2,3] y) <int64[3] s = {0,2,3}> { y = Reshape (x, s) }"""
    m = model_from_text(text)
    from onnxopt.testing import run_passes

    report = run_passes(m, "trt")
    assert not any(r.modified for r in report.records)
    assert [f for f in findings(text) if f.kind != "dynamic-shape"] == []


# -- the rules on more forms, checked numerically ----------------------------------------------

RESIZE_VARIANTS = [
    # (opset, attributes, x dims, roi, scales, sizes, rule that must fire)
    (18, 'mode="nearest", coordinate_transformation_mode="tf_crop_and_resize"', [1, 1, 5, 7],
     "0,0,0,0,1,1,1,1", None, "1,1,3,11", "resize_crop_to_align_corners"),
    (18, 'mode="linear", coordinate_transformation_mode="tf_crop_and_resize", axes=[3]',
     [2, 3, 4, 7], "0,1", None, "3", "resize_crop_to_align_corners"),
    (19, 'mode="nearest", coordinate_transformation_mode="half_pixel_symmetric"', [1, 2, 4, 8],
     None, None, "1,2,12,2", "resize_symmetric_to_half_pixel"),
    (19, 'mode="linear", coordinate_transformation_mode="half_pixel_symmetric"', [1, 1, 6, 6],
     None, "1,1,0.5,3", None, "resize_symmetric_to_half_pixel"),
    (18, 'mode="linear", antialias=1, coordinate_transformation_mode="asymmetric"',
     [1, 1, 3, 4], None, None, "1,1,7,4", "resize_drop_antialias"),
    (18, 'mode="linear", antialias=1, coordinate_transformation_mode="align_corners"',
     [1, 2, 3, 5], None, "1,1,2,1", None, "resize_drop_antialias"),
    (18, 'mode="linear", keep_aspect_ratio_policy="not_smaller", axes=[2,3]', [1, 1, 3, 5], None,
     None, "6,10", "resize_stretch_policy"),
    (18, 'mode="nearest", keep_aspect_ratio_policy="not_larger"', [2, 2, 3, 5], None, None,
     "4,4,6,10", "resize_stretch_policy"),
    (18, 'mode="linear", axes=[-1]', [2, 3, 5], None, "2.5", None, "resize_full_rank_scales"),
]


def _resize_model(opset, attrs, dims, roi, scales, sizes):
    inits, args = [], ["x", "", "", ""]
    if roi is not None:
        inits.append(f"float[{roi.count(',') + 1}] roi = {{{roi}}}")
        args[1] = "roi"
    if scales is not None:
        inits.append(f"float[{scales.count(',') + 1}] sc = {{{scales}}}")
        args[2] = "sc"
    if sizes is not None:
        inits.append(f"int64[{sizes.count(',') + 1}] sz = {{{sizes}}}")
        args[3] = "sz"
    while args[-1] == "":
        args.pop()
    shape = ",".join(map(str, dims))
    return (f'<ir_version: 10, opset_import: ["" : {opset}]>\n'
            f'g (float[{shape}] x) => (float y) <{", ".join(inits)}> {{\n'
            f'   y = Resize <{attrs}> ({", ".join(args)})\n}}')


@pytest.mark.parametrize("variant", RESIZE_VARIANTS, ids=lambda v: v[-1] + ":" + v[1][:30])
def test_resize_rules_on_more_forms(variant):
    *spec, rule = variant
    text = _resize_model(*spec)
    from onnxopt.testing import run_passes

    m = model_from_text(text)
    before = snapshot(m)
    report = run_passes(m, f"trt.{rule}")
    assert sum(r.stats.get(f"trt.{rule}", 0) for r in report.records) == 1, text
    assert_equivalent(before, m)


_CONFORMANCE_PREFIXES = ("test_resize", "test_maxpool_1d", "test_averagepool_1d",
                         "test_nonzero", "test_equal", "test_clip", "test_pad",
                         "test_layer_normalization", "test_cast")


def _constant_parameters(case):
    """The case's model with every input but the first made an initializer from its data."""
    import numpy as np
    import onnx.numpy_helper as nh

    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    ins = case.data_sets[0][0]
    first = m.graph.input[0]
    for vi, val in list(zip(m.graph.input, ins))[1:]:
        m.graph.initializer.append(nh.from_array(np.asarray(val), vi.name))
    del m.graph.input[:]
    m.graph.input.append(first)
    return m, {first.name: ins[0]}


def test_rules_agree_on_onnx_conformance_cases():
    """onnx's node conformance cases of the ops the rules touch, with their parameters made
    constant so the rules can see them: every rewrite computes what the original computes."""
    from _conformance import conformance_cases

    from onnxopt.testing import run_passes

    fired = {}
    for case in conformance_cases():  # loaded once per session, shared with other tests
        if not case.name.startswith(_CONFORMANCE_PREFIXES) or not case.data_sets:
            continue
        try:
            model, feeds = _constant_parameters(case)
        except (NotImplementedError, TypeError, ValueError):
            continue  # an input onnx cannot store as an initializer (sequences, strings)
        m = onnxopt.load(model.SerializeToString())
        report = run_passes(m, "trt")
        if not any(r.modified for r in report.records):
            continue
        for r in report.records:
            fired.update({k: case.name for k in r.stats})
        assert_equivalent(model, m, feeds=feeds)
    assert {"trt.pool_1d_to_2d", "trt.nonzero_via_float", "trt.resize_full_rank_scales"} <= set(
        fired)
