"""fold: constants, shape arithmetic, the size policy, bad input, control flow, functions.

Each case is a model in textual syntax; positive cases sit beside the near-misses that must not
fold. Every result is also run in onnxruntime against the original.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from onnxopt.passes import PassContext, PassManager
from onnxopt.testing import assert_equivalent, model_from_text

H17 = '<ir_version: 8, opset_import: ["" : 17]>\n'
H11 = '<ir_version: 7, opset_import: ["" : 11]>\n'


def fold(src: str, pipeline: str = "fold", verify: bool = True, feeds=None):
    """Run ``pipeline`` on a model in text; returns (model, fold's stats, notes)."""
    m = model_from_text(src)
    ctx = PassContext(m)
    rep = PassManager(pipeline, verify_each=True, check_modified=True).run(m, ctx)
    if verify:
        assert_equivalent(src, m, feeds=feeds)
    stats = Counter()
    for r in rep.records:
        if r.name == "fold":
            stats.update(r.stats)
    return m, stats, ctx.notes


def ops(m) -> list[str]:
    return [n.op_type for n in m.graph.nodes]


def out_const(m, i: int = 0) -> np.ndarray:
    """The data of graph output ``i``, which must be an initializer."""
    v = m.graph.outputs[i]
    assert v.producer is None and v.const_value is not None, f"output {v.name} is not constant"
    return v.const_value.numpy()


# -- plain constants ------------------------------------------------------------------------------

def test_constant_chain_becomes_one_initializer_named_as_the_output():
    m, st, _ = fold(H17 + """
        g () => (float[2,2] y) <float[2,2] a = {1.0, 2.0, 3.0, 4.0}> {
           b = Constant <value = float[2,2] {1.0, 1.0, 1.0, 1.0}> ()
           c = Add (a, b)
           d = Transpose <perm = [1, 0]> (c)
           y = Mul (d, b)
        }""")
    assert ops(m) == []
    assert m.graph.outputs[0].name == "y"
    np.testing.assert_array_equal(out_const(m), [[2, 4], [3, 5]])
    assert st["folded.Add"] == st["folded.Transpose"] == st["folded.Mul"] == 1


def test_initializer_that_is_a_graph_input_is_not_a_constant():
    src = """<ir_version: 3, opset_import: ["" : 9]>
        g (float[2] a) => (float[2] y) <float[2] a = {1.0, 2.0}> {
           y = Neg (a)
        }"""
    m, st, _ = fold(src)
    assert ops(m) == ["Neg"]
    assert not any(k.startswith("folded.") for k in st)


def test_constant_nodes_move_to_initializers_and_feed_live_nodes():
    m, st, _ = fold(H17 + """
        g (float[2] x) => (float[2] y) {
           k = Constant <value = float[2] {1.0, 2.0}> ()
           k2 = Mul (k, k)
           y = Add (x, k2)
        }""")
    assert ops(m) == ["Add"]
    assert st["constant_to_initializer"] == 0  # k was consumed by the fold, not moved
    np.testing.assert_array_equal(m.graph.nodes.first().inputs[1].const_value.numpy(), [1, 4])


# -- integer semantics and opsets -----------------------------------------------------------------

def test_integer_division_truncates_and_mod_follows_fmod():
    m, _, _ = fold(H17 + """
        g () => (int64[4] q, int64[4] r, int64[4] f)
          <int64[4] a = {-7, 7, -7, 7}, int64[4] b = {2, -2, -2, 2}> {
           q = Div (a, b)
           r = Mod (a, b)
           f = Mod <fmod = 1> (a, b)
        }""")
    np.testing.assert_array_equal(out_const(m, 0), [-3, -3, 3, 3])
    np.testing.assert_array_equal(out_const(m, 1), [1, -1, -1, 1])
    np.testing.assert_array_equal(out_const(m, 2), [-1, 1, -1, 1])


@pytest.mark.parametrize("header, axes", [
    (H11, 'Unsqueeze <axes = [0, -1]> (a)'),
    (H17, 'Unsqueeze (a, ax)'),
])
def test_unsqueeze_axes_as_attribute_or_input(header, axes):
    m, _, _ = fold(header + f"""
        g () => (int64[1,2,1] y) <int64[2] a = {{3, 4}}, int64[2] ax = {{0, -1}}> {{
           y = {axes}
        }}""")
    assert out_const(m).shape == (1, 2, 1)


def test_reduce_sum_axes_attribute_before_13_input_after():
    for header, node in ((H11, "ReduceSum <axes = [-1], keepdims = 0> (a)"),
                         (H17, "ReduceSum <keepdims = 0> (a, ax)")):
        m, _, _ = fold(header + f"""
            g () => (int64[2] y) <int64[2,3] a = {{1, 2, 3, 4, 5, 6}}, int64[1] ax = {{-1}}> {{
               y = {node}
            }}""")
        np.testing.assert_array_equal(out_const(m), [6, 15])


def test_slice_negative_steps_and_clamping():
    m, _, _ = fold(H17 + """
        g () => (int64[3] y, int64[5] z) <int64[5] a = {0, 1, 2, 3, 4}, int64[1] s = {-1},
            int64[1] e = {-9223372036854775807}, int64[1] ax = {0}, int64[1] st = {-2},
            int64[1] s0 = {-100}, int64[1] e0 = {100}> {
           y = Slice (a, s, e, ax, st)
           z = Slice (a, s0, e0)
        }""")
    np.testing.assert_array_equal(out_const(m, 0), [4, 2, 0])
    np.testing.assert_array_equal(out_const(m, 1), [0, 1, 2, 3, 4])


# -- shape arithmetic -----------------------------------------------------------------------------

def test_shape_of_a_static_input_folds_the_whole_chain():
    m, st, _ = fold(H17 + """
        g (float[2,3,4] x) => (float[6,4] y) <int64[1] zero = {0}, int64[1] two = {2},
            int64[1] minus1 = {-1}> {
           s = Shape (x)
           a = Slice (s, zero, two)
           p = ReduceProd <keepdims = 1> (a)
           t = Concat <axis = 0> (p, minus1)
           y = Reshape (x, t)
        }""")
    assert ops(m) == ["Reshape"]
    np.testing.assert_array_equal(m.graph.nodes.first().inputs[1].const_value.numpy(), [6, -1])


def test_gather_of_a_static_dim_folds_while_the_symbolic_dim_stays():
    m, st, _ = fold(H17 + """
        g (float[N,16] x) => (int64[] d1, int64[] d0) {
           s = Shape (x)
           i1 = Constant <value = int64 {1}> ()
           i0 = Constant <value = int64 {0}> ()
           d1 = Gather (s, i1)
           d0 = Gather (s, i0)
        }""")
    assert out_const(m, 0) == 16
    assert m.graph.outputs[1].producer.op_type == "Gather"  # dim 0 is symbolic


def test_slice_of_the_static_part_of_a_shape_folds():
    m, _, _ = fold(H17 + """
        g (float[N,3,4] x) => (int64[2] tail, int64[2] head) <int64[1] a = {1}, int64[1] b = {3},
            int64[1] z = {0}, int64[1] c = {2}> {
           s = Shape (x)
           tail = Slice (s, a, b)
           head = Slice (s, z, c)
        }""")
    np.testing.assert_array_equal(out_const(m, 0), [3, 4])
    assert m.graph.outputs[1].producer.op_type == "Slice"


def test_shape_with_start_end_of_static_dims():
    m, _, _ = fold(H17 + """
        g (float[N,3,4] x) => (int64[2] y) {
           y = Shape <start = -2> (x)
        }""")
    np.testing.assert_array_equal(out_const(m), [3, 4])


# -- bad input ------------------------------------------------------------------------------------

def test_integer_division_by_zero_is_left_alone_and_noted():
    m, st, notes = fold(H17 + """
        g (int64[2] x) => (int64[2] y) <int64[2] a = {4, 5}, int64[2] z = {1, 0}> {
           q = Div (a, z)
           y = Add (x, q)
        }""", verify=False)
    assert "Div" in ops(m)
    assert st["left.error"] == 1
    assert any("division by zero" in n for n in notes)


def test_shape_mismatch_is_left_alone_and_noted():
    m, st, notes = fold(H17 + """
        g (float[3] x) => (float[3] y) <float[2] a = {1.0, 2.0}, float[3] b = {1.0, 2.0, 3.0}> {
           c = Add (a, b)
           y = Add (x, c)
        }""", verify=False)
    assert ops(m) == ["Add", "Add"]
    assert any("left Add" in n for n in notes)


# -- the size policy ------------------------------------------------------------------------------

def test_constant_of_shape_generator_stays_small_one_folds():
    m, st, notes = fold(H17 + """
        g () => (float[64,3,11,11] w, float[2,3] small) <int64[4] s = {64, 3, 11, 11},
            int64[2] s2 = {2, 3}> {
           w = ConstantOfShape <value = float[1] {0.02}> (s)
           small = ConstantOfShape <value = float[1] {0.5}> (s2)
        }""")
    assert m.graph.outputs[0].producer.op_type == "ConstantOfShape"
    np.testing.assert_array_equal(out_const(m, 1), np.full((2, 3), 0.5, np.float32))
    assert st["left.size_policy"] == 1
    assert any("size policy" in n for n in notes)


def test_expand_and_tile_generators_stay_unless_the_growth_bound_allows():
    src = H17 + """
        g () => (float[16,16] e, float[4,16] t) <float[16] a = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
            7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0}, int64[2] s = {16, 16},
            int64[2] r = {4, 1}, float[1,16] b = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
            10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0}> {
           e = Expand (a, s)
           t = Tile (b, r)
        }"""
    m, _, _ = fold(src)
    assert ops(m) == ["Expand"]  # 256 from 18 elements: too much growth; Tile 64 from 18 folds
    m, _, _ = fold(src, "fold{max_growth=100}")
    assert ops(m) == []


def test_max_elements_bounds_every_output():
    m, st, _ = fold(H17 + """
        g () => (float[32,32] y) <float[32,32] a> {
           y = Neg (a)
        }""".replace("<float[32,32] a>", "<float[32,32] a = {" + ", ".join(["1.0"] * 1024) + "}>"),
        "fold{max_elements=1000}")
    assert ops(m) == ["Neg"]
    assert st["left.size_policy"] == 1


# -- what never folds -----------------------------------------------------------------------------

def test_random_ops_and_training_dropout_never_fold():
    m, st, _ = fold(H17 + """
        g () => (float[2] r, float[2] d) <float[2] a = {1.0, 2.0}, float r0 = {0.5},
            bool t = {1}> {
           r = RandomUniformLike (a)
           d = Dropout (a, r0, t)
        }""", verify=False)
    assert ops(m) == ["RandomUniformLike", "Dropout"]
    assert st["left.never_fold"] == 2


def test_dropout_in_inference_mode_folds():
    m, _, _ = fold(H17 + """
        g () => (float[2] d) <float[2] a = {1.0, 2.0}> {
           d = Dropout (a)
        }""")
    np.testing.assert_array_equal(out_const(m), [1, 2])


def test_sequence_values_are_not_folded():
    m, st, _ = fold(H17 + """
        g () => (float[2] y) <float[2] a = {1.0, 2.0}> {
           s = SequenceConstruct (a, a)
           i = Constant <value = int64 {1}> ()
           y = SequenceAt (s, i)
        }""")
    assert ops(m) == ["SequenceConstruct", "SequenceAt"]
    assert st["left.never_fold"] == 1


# -- evaluators beyond numpy ----------------------------------------------------------------------

def test_ops_without_numpy_evaluators_run_in_one_runtime_session():
    m, st, _ = fold(H17 + """
        g (float[2] x) => (float[2] y) <float[2] a = {0.5, 1.0}, float[2,2] w = {1.0, 2.0, 3.0,
            4.0}> {
           e = Exp (a)
           t = Tanh (e)
           mm = MatMul (t, w)
           s = Sigmoid (a)
           z = Add (mm, s)
           y = Mul (x, z)
        }""")
    assert ops(m) == ["Mul"]
    assert st["runtime.sessions"] == 1
    assert st["folded.Exp"] == st["folded.MatMul"] == st["folded.Sigmoid"] == 1


def test_reference_evaluator_is_the_last_resort():
    m, st, _ = fold("""<ir_version: 8, opset_import: ["" : 17, "ai.onnx.preview.training" : 1]>
        g () => (float[2] x_new, float[2] h_new) <float r = {0.1}, int64 t = {0},
            float[2] x = {1.0, 2.0}, float[2] gr = {0.5, 0.5}, float[2] h = {0.0, 0.0}> {
           x_new, h_new = ai.onnx.preview.training.Adagrad <decay_factor = 0.1, epsilon = 1e-6,
               norm_coefficient = 0.0> (r, t, x, gr, h)
        }""", verify=False)
    assert ops(m) == []
    assert st["runtime.single"] == 1
    np.testing.assert_allclose(out_const(m, 1), [0.25, 0.25])


def test_runtime_results_that_break_the_size_policy_are_refused_before_evaluation():
    m, st, _ = fold(H17 + """
        g () => (float[1,1,64,64] y) <float[1,1,2,2] a = {1.0, 2.0, 3.0, 4.0},
            float[4] sc = {1.0, 1.0, 32.0, 32.0}> {
           y = Resize <mode = "nearest"> (a, , sc)
        }""")
    assert ops(m) == ["Resize"]
    assert st["left.size_policy"] == 1


# -- control flow and functions -------------------------------------------------------------------

IF_SRC = H17 + """
    g (float[2] x) => (float[2] y) <float[2] k = {1.0, 2.0}, int64 n = {3}> {
       three = Constant <value = int64 {3}> ()
       c = Equal (n, three)
       y = If (c) <
         then_branch = t () => (float[2] yt) {
            kk = Mul (k, k)
            yt = Add (x, kk)
         },
         else_branch = e () => (float[2] ye) {
            ye = Sub (x, k)
         }>
    }"""


def test_if_with_a_constant_condition_is_inlined_and_its_body_folded():
    m, st, _ = fold(IF_SRC)
    assert ops(m) == ["Add"]
    assert st["inlined.If"] == 1
    assert m.graph.outputs[0].name == "y"
    np.testing.assert_array_equal(m.graph.nodes.first().inputs[1].const_value.numpy(), [1, 4])


def test_if_with_a_runtime_condition_stays_but_its_bodies_fold():
    src = IF_SRC.replace("c = Equal (n, three)", "c = Greater (x0, zero)").replace(
        "g (float[2] x)", "g (float[2] x, float x0)").replace(
        "three = Constant <value = int64 {3}> ()", "zero = Constant <value = float {0.0}> ()")
    m, st, _ = fold(src, feeds={"x": np.ones(2, np.float32), "x0": np.array(1.0, np.float32)})
    assert ops(m) == ["Greater", "If"]
    then_ops = [n.op_type for n in m.graph.nodes.last().attributes["then_branch"].value.nodes]
    assert then_ops == ["Add"]  # k*k folded inside the body, from an outer constant
    assert st["folded.Mul"] == 1


def test_if_branch_returning_an_outer_value_as_a_graph_output():
    m, _, _ = fold(H17 + """
        g (float[2] x) => (float[2] y) <bool c = {1}> {
           y = If (c) <
             then_branch = t () => (float[2] yt) { yt = Identity (x) },
             else_branch = e () => (float[2] ye) { ye = Neg (x) }>
        }""")
    assert ops(m) == ["Identity"]
    assert m.graph.outputs[0].name == "y"


def test_function_bodies_get_constant_nodes():
    src = """<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (float[2] x) => (float[2] y) {
           y = local.addtwo (x)
        }
        <domain: "local", opset_import: ["" : 17]>
        addtwo (a) => (b) {
           one = Constant <value = float {1.0}> ()
           two = Add (one, one)
           b = Add (a, two)
        }"""
    m, st, _ = fold(src)
    f = next(iter(m.functions.values()))
    assert [n.op_type for n in f.graph.nodes] == ["Constant", "Add"]
    assert f.graph.nodes.first().attributes["value"].value.numpy() == 2


def test_nothing_to_fold_reports_no_rewrite():
    src = H17 + "g (float[2] x) => (float[2] y) { y = Relu (x) }"
    m, st, _ = fold(src)
    assert ops(m) == ["Relu"] and not st


def test_overridable_input_defaults_do_not_feed_shape_folds():
    # IR 3: the initializer `s` is also a graph input, so its data is only a default. Neither the
    # Reshape target nor anything computed from it may become a constant.
    src = """<ir_version: 3, opset_import: ["" : 9]>
        g (float[2,6] x, int64[2] s) => (float[?,?] y) <int64[2] s = {3, 4}> {
           y = Reshape (x, s)
        }"""
    m, st, _ = fold(src, feeds={"x": np.ones((2, 6), np.float32)})
    assert m.graph.nodes.first().inputs[1].name == "s"
    assert not st


def test_a_bad_node_in_the_runtime_batch_does_not_stop_the_others():
    # The batch session fails on the GatherElements (index 5 in a dim of 3); each node is then
    # retried alone: Exp and Sin fold, the GatherElements stays, with a note.
    m, st, notes = fold(H17 + """
        g (float[2] x) => (float[2] y, float[2] z) <float[2] a = {0.5, 1.0},
            float[3] p = {1.0, 2.0, 3.0}, int64[2] i = {0, 5}> {
           e = Exp (a)
           s = Sin (e)
           y = Mul (x, s)
           z = GatherElements (p, i)
        }""", verify=False)
    assert ops(m) == ["Mul", "GatherElements"]
    assert st["folded.Exp"] == st["folded.Sin"] == 1 and st["left.error"] == 1
    assert any("GatherElements" in n for n in notes)


def test_loop_body_folds_with_outer_constants():
    src = H17 + """
        g (float[2] x) => (float[2] y) <int64 n = {3}, bool t = {1}, float[2] k = {1.0, 2.0}> {
           y = Loop (n, t, x) <body = b (int64 i, bool c, float[2] acc) => (bool co, float[2] out) {
              kk = Add (k, k)
              co = Identity (c)
              out = Add (acc, kk)
           }>
        }"""
    m, st, _ = fold(src)
    body = m.graph.nodes.first().attributes["body"].value
    assert [n.op_type for n in body.nodes] == ["Identity", "Add"]
    assert st["folded.Add"] == 1
