"""dce: dead nodes, unused initializers and unused functions go; the interface and live code stay."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxopt.ir import print_model
from onnxopt.testing import assert_equivalent, model_from_text, run_passes

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def dce(src: str, verify: bool = True, feeds: tuple = ()):
    """Run dce on a model in text; check the numbers (on ``feeds`` when given) unless ``verify``
    is False."""
    m = model_from_text(src)
    report = run_passes(m, "dce")
    if verify and not feeds:
        assert_equivalent(src, m)
    for f in feeds:
        assert_equivalent(src, m, feeds=f)
    return m, report.records[0]


X4 = np.array([0.5, -1.0, 2.0, -3.0], dtype=np.float32)
BRANCHES = ({"c": np.array(True), "x": X4}, {"c": np.array(False), "x": X4})


def assert_model(m, expected_src: str) -> None:
    """``m`` prints exactly like the model written in ``expected_src``."""
    assert print_model(m) == print_model(model_from_text(expected_src))


def test_removes_dead_chain_and_its_initializer():
    m, rec = dce(H + """
        g (float[4] x) => (float[4] y) <float[4] w = {1.0, 2.0, 3.0, 4.0}> {
           y = Relu (x)
           d1 = Mul (x, w)
           d2 = Neg (d1)
           d3 = Exp (d2)
        }""")
    assert_model(m, H + "g (float[4] x) => (float[4] y) { y = Relu (x) }")
    assert rec.modified
    assert rec.stats["nodes_removed"] == 3
    assert rec.stats["initializers_removed"] == 1


def test_keeps_graph_inputs_outputs_and_live_code():
    src = H + """
        g (float[4] x, float[4] unused) => (float[4] y, float[4] x_out, float[4] c_out)
          <float[4] c = {1.0, 2.0, 3.0, 4.0}> {
           y = Relu (x)
           x_out = Identity (x)
           c_out = Identity (c)
        }"""
    m, rec = dce(src)
    assert not rec.modified and not rec.stats
    assert_model(m, src)


def test_node_with_one_used_output_stays():
    src = H + """
        g (float[2,4] x) => (float[2,2] y) {
           a, b = Split <axis: int = 1> (x)
           y = Relu (a)
        }"""
    m, rec = dce(src)
    assert not rec.modified
    assert_model(m, src)


def test_values_captured_by_if_bodies_keep_their_producers():
    m, rec = dce(H + """
        g (bool c, float[4] x) => (float[4] y) {
           sx = Sigmoid (x)
           nx = Neg (x)
           y = If (c) <
              then_branch: graph = th () => (float[4] t) {
                 dead_inner = Abs (sx)
                 t = Add (sx, nx)
              },
              else_branch: graph = el () => (float[4] e) { e = Identity (nx) }
           >
        }""", feeds=BRANCHES)
    assert_model(m, H + """
        g (bool c, float[4] x) => (float[4] y) {
           sx = Sigmoid (x)
           nx = Neg (x)
           y = If (c) <
              then_branch: graph = th () => (float[4] t) { t = Add (sx, nx) },
              else_branch: graph = el () => (float[4] e) { e = Identity (nx) }
           >
        }""")
    assert rec.stats["nodes_removed"] == 1


def test_dead_if_takes_its_bodies_and_what_only_they_read():
    m, rec = dce(H + """
        g (bool c, float[4] x) => (float[4] y) {
           y = Relu (x)
           ex = Exp (x)
           z = If (c) <
              then_branch: graph = th () => (float[4] t) { t = Add (ex, ex) },
              else_branch: graph = el () => (float[4] e) { e = Identity (ex) }
           >
        }""", feeds=BRANCHES)
    assert_model(m, H + "g (bool c, float[4] x) => (float[4] y) { y = Relu (x) }")
    assert rec.stats["nodes_removed"] == 4  # If, its two body nodes, and Exp


def test_loop_body_inputs_are_positional_and_stay():
    src = H + """
        g (int64 n, bool c, float[4] x) => (float[4] y) {
           y = Loop (n, c, x) <
              body: graph = body (int64 i, bool cin, float[4] v) => (bool cout, float[4] vout) {
                 cout = Identity (cin)
                 vout = Relu (v)
                 dead = Neg (v)
              }
           >
        }"""
    m, _ = dce(src, feeds=[{"n": np.array(3), "c": np.array(True), "x": X4}])
    assert_model(m, src.replace("dead = Neg (v)", ""))
    assert [v.name for v in m.graph.nodes.first().attributes["body"].value.inputs] == \
        ["i", "cin", "v"]


def test_dead_custom_domain_nodes_are_removed():
    # ONNX ops have no side effects, custom ones included (onnxruntime cannot run this model).
    m, _ = dce("""<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>
        g (float[4] x) => (float[4] y) {
           y = Relu (x)
           d = com.example.Anything (x)
        }""", verify=False)
    assert [n.op_type for n in m.graph.nodes] == ["Relu"]


def test_unused_functions_go_and_function_bodies_are_cleaned():
    m, rec = dce("""<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (float[4] x) => (float[4] y) {
           y = local.used (x)
           d = local.only_dead_calls (x)
        }
        <domain: "local", opset_import: ["" : 17, "local" : 1]>
        used (a) => (b) {
           dead = Neg (a)
           b = local.helper (a)
        }
        <domain: "local", opset_import: ["" : 17]>
        helper (a) => (b) { b = Relu (a) }
        <domain: "local", opset_import: ["" : 17]>
        only_dead_calls (a) => (b) { b = Abs (a) }
        <domain: "local", opset_import: ["" : 17]>
        never_called (a) => (b) { b = Abs (a) }""")
    assert sorted(f.name for f in m.functions.values()) == ["helper", "used"]
    assert [n.op_type for n in m.functions[("local", "used", "")].graph.nodes] == ["helper"]
    assert rec.stats["functions_removed"] == 2
    assert rec.stats["nodes_removed"] == 2  # the dead call and Neg in `used`


def test_initializer_that_is_also_an_input_stays():
    # IR < 4 style: an initializer listed as a graph input is a default the caller may override.
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [w])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    m = model_from_text(onnx.printer.to_text(proto))
    report = run_passes(m, "dce")
    assert not report.records[0].modified
    assert [v.name for v in m.graph.initializers] == ["w"]


def test_long_dead_chain_needs_one_run():
    body = "\n".join(f"d{i + 1} = Neg (d{i})" for i in range(2000))
    m, rec = dce(H + f"g (float[4] x) => (float[4] y) {{ y = Relu (x)\n d0 = Abs (x)\n{body} }}",
                 verify=False)
    assert len(m.graph.nodes) == 1
    assert rec.stats["nodes_removed"] == 2001
