"""cse: duplicate nodes, Constants and initializers are merged; anything that may differ is not."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from onnxopt.ir import print_model
from onnxopt.passes import PassContext
from onnxopt.passes.cse import CommonSubexpressionElimination
from onnxopt.testing import assert_equivalent, model_from_text, run_passes, to_proto

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def cse(src: str, pipeline: str = "cse", feeds: tuple = (), verify: bool = True):
    """Run cse on a model in text and check the numbers (on ``feeds`` when given)."""
    m = model_from_text(src)
    report = run_passes(m, pipeline)
    for f in (feeds or (None,)) if verify else ():
        assert_equivalent(src, m, feeds=f)
    return m, report.records[0]


def assert_model(m, expected_src: str) -> None:
    assert print_model(m) == print_model(model_from_text(expected_src))


def assert_unchanged(src: str, **kw) -> None:
    m, rec = cse(src, **kw)
    assert not rec.modified, print_model(m)
    assert_model(m, src)


def test_duplicate_chain_collapses_in_one_run():
    m, rec = cse(H + """
        g (float[4] x, float[4] y) => (float[4] z) {
           a1 = Add (x, y)
           b1 = Exp (a1)
           c1 = Mul (b1, y)
           a2 = Add (x, y)
           b2 = Exp (a2)
           c2 = Mul (b2, y)
           z = Sub (c1, c2)
        }""")
    assert_model(m, H + """
        g (float[4] x, float[4] y) => (float[4] z) {
           a1 = Add (x, y)
           b1 = Exp (a1)
           c1 = Mul (b1, y)
           z = Sub (c1, c1)
        }""")
    assert rec.stats["nodes_merged"] == 3


def test_shapes_stay_valid():
    """Merging keeps every surviving value's shape, also when an Identity has to carry a graph
    output's name: the analysis' next update infers the new node."""
    from onnxopt.passes.shapes import ShapeAnalysis, shape_of

    def run(src: str):
        m = model_from_text(H + src)
        ctx = PassContext(m)
        ctx.analysis(ShapeAnalysis)
        res = CommonSubexpressionElimination().run(m, ctx)
        ctx.invalidate(res.preserved)
        ctx.analysis(ShapeAnalysis)
        return m, res.preserved

    _, kept = run("g (float[4] x) => (float[4] z) { a = Neg (x)\n b = Neg (x)\n z = Add (a, b) }")
    assert "shapes" in kept
    m, kept = run("g (float[4] x) => (float[4] a, float[4] b) { a = Neg (x)\n b = Neg (x) }")
    assert "shapes" in kept
    assert [str(shape_of(v)) for v in m.graph.outputs] == ["[4]", "[4]"]
    assert [n.op_type for n in m.graph.nodes] == ["Neg", "Identity"]


def test_operand_order_and_attributes_must_match():
    assert_unchanged(H + """
        g (float[2,3] x, float[2,3] y) => (float[2,3] z) {
           a = Sub (x, y)
           b = Sub (y, x)
           l1 = LeakyRelu <alpha: float = 0.1> (a)
           l2 = LeakyRelu <alpha: float = 0.2> (a)
           l3 = LeakyRelu (a)
           s1 = Softmax <axis: int = 0> (b)
           s2 = Softmax <axis: int = 1> (b)
           z = Sum (l1, l2, l3, s1, s2)
        }""")


def test_float_attributes_compare_bits():
    # 0.0 and -0.0 are equal as numbers but not as attributes.
    assert_unchanged(H + """
        g (float[4] x) => (float[4] z) {
           a = LeakyRelu <alpha: float = 0.0> (x)
           b = LeakyRelu <alpha: float = -0.0> (x)
           z = Sub (a, b)
        }""")


def test_random_ops_are_never_merged():
    assert_unchanged(H + """
        g (float[4] x) => (float[4] z, float[4] w) {
           r1 = RandomUniformLike <seed: float = 3.0> (x)
           r2 = RandomUniformLike <seed: float = 3.0> (x)
           n1 = RandomNormal <shape: ints = [4], seed: float = 1.0> ()
           n2 = RandomNormal <shape: ints = [4], seed: float = 1.0> ()
           z = Sub (r1, r2)
           w = Sub (n1, n2)
        }""", verify=False)  # random outputs: nothing to compare


def test_training_dropout_is_not_merged_inference_dropout_is():
    assert_unchanged(H + """
        g (float[4] x) => (float[4] z) {
           t = Constant <value: tensor = bool {1}> ()
           d1 = Dropout (x, , t)
           d2 = Dropout (x, , t)
           z = Sub (d1, d2)
        }""", verify=False)
    _, rec = cse(H + """
        g (float[4] x) => (float[4] z) {
           d1 = Dropout (x)
           d2 = Dropout (x)
           z = Sub (d1, d2)
        }""")
    assert rec.stats["nodes_merged"] == 1


def test_used_optional_output_must_match():
    # d1 has no mask output; d2's mask is read, so d2 cannot be replaced by d1.
    assert_unchanged(H + """
        g (float[4] x) => (float[4] z, bool[4] m) {
           d1 = Dropout (x)
           d2, m = Dropout (x)
           z = Sub (d1, d2)
        }""")


def test_multi_output_nodes_merge_output_by_output():
    m, _ = cse(H + """
        g (float[2,4] x) => (float[2,2] z) {
           a1, b1 = Split <axis: int = 1> (x)
           a2, b2 = Split <axis: int = 1> (x)
           s = Sub (a1, b2)
           t = Sub (a2, b1)
           z = Add (s, t)
        }""")
    assert_model(m, H + """
        g (float[2,4] x) => (float[2,2] z) {
           a1, b1 = Split <axis: int = 1> (x)
           s = Sub (a1, b1)
           z = Add (s, s)
        }""")


def test_identical_constants_merge_and_near_identical_do_not():
    m, rec = cse(H + """
        g (float[2] x) => (float[2] z) {
           k1 = Constant <value: tensor = float[2] {0.5, 0.25}> ()
           k2 = Constant <value: tensor = float[2] {0.5, 0.25}> ()
           k3 = Constant <value: tensor = float[2] {0.5, 0.5}> ()
           k4 = Constant <value: tensor = double[2] {0.5, 0.25}> ()
           k5 = Constant <value: tensor = float[1,2] {0.5, 0.25}> ()
           c4 = Cast <to: int = 1> (k4)
           two = Constant <value_ints: ints = [2]> ()
           r5 = Reshape (k5, two)
           a = Add (x, k1)
           b = Add (x, k2)
           z = Sum (a, b, k3, c4, r5)
        }""")
    assert [n.op_type for n in m.graph.nodes].count("Constant") == 5  # k2 went
    assert rec.stats["nodes_merged"] == 2  # k2, then b


def test_string_constants_compare_element_by_element():
    def const(name, items):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            "", TensorProto.STRING, [2], items))

    g = helper.make_graph(
        [const("s1", [b"a\x00", b"b"]), const("s2", [b"a", b"\x00b"]),
         helper.make_node("Concat", ["s1", "s2"], ["y"], axis=0)],
        "g", [], [helper.make_tensor_value_info("y", TensorProto.STRING, [4])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    from onnxopt import load

    m = load(proto)
    assert not run_passes(m, "cse").records[0].modified


def test_byte_identical_initializers_merge():
    m, rec = cse(H + """
        g (float[2] x) => (float[2] z)
          <float[2] w1 = {1.0, 2.0}, float[2] w2 = {1.0, 2.0}, float[2] w3 = {1.0, 3.0},
           int32[2] i1 = {1, 2}> {
           a = Add (x, w1)
           b = Add (x, w2)
           c = Add (x, w3)
           ci = Cast <to: int = 1> (i1)
           z = Sum (a, b, c, ci)
        }""")
    assert [v.name for v in m.graph.initializers] == ["w1", "w3", "i1"]
    assert rec.stats["initializers_merged"] == 1 and rec.stats["nodes_merged"] == 1


def test_each_initializer_is_hashed_once_however_often_cse_runs(monkeypatch):
    from onnxopt.ir.tensor import Tensor

    hashed = []
    sha256 = Tensor._sha256
    monkeypatch.setattr(Tensor, "_sha256", lambda t: hashed.append(t.name) or sha256(t))
    m, _ = cse(H + """
        g (float[2] x) => (float[2] z)
          <float[2] w1 = {1.0, 2.0}, float[2] w2 = {1.0, 3.0}, float[2] w3 = {1.0, 4.0}> {
           a = Add (x, w1)
           b = Mul (a, w2)
           z = Sub (b, w3)
        }""", pipeline="cse,cse,cse")
    assert sorted(hashed) == ["w1", "w2", "w3"]


def test_initializers_over_max_bytes_are_left_alone():
    src = H + """
        g (float[2] x) => (float[2] z) <float[2] w1 = {1.0, 2.0}, float[2] w2 = {1.0, 2.0}> {
           a = Add (x, w1)
           b = Add (x, w2)
           z = Sub (a, b)
        }"""
    _, rec = cse(src, pipeline="cse{max_bytes=4}")
    assert not rec.modified


def test_initializers_that_are_graph_inputs_are_never_merged():
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [2], [1.0, 2.0])
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [2], [1.0, 2.0])
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("x", "w1", "w2")]
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w1"], ["a"]), helper.make_node("Add", ["x", "w2"], ["b"]),
         helper.make_node("Sub", ["a", "b"], ["z"])],
        "g", info, [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])], [w1, w2])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    from onnxopt import load

    m = load(proto)
    assert not run_passes(m, "cse").records[0].modified


def test_nodes_with_subgraphs_are_not_merged_but_their_bodies_are_cleaned():
    src = H + """
        g (bool c, float[4] x) => (float[4] y1, float[4] y2) {
           y1 = If (c) <
              then_branch: graph = t1 () => (float[4] a) {
                 p = Exp (x)
                 q = Exp (x)
                 a = Add (p, q)
              },
              else_branch: graph = e1 () => (float[4] b) { b = Neg (x) }
           >
           y2 = If (c) <
              then_branch: graph = t2 () => (float[4] a2) { a2 = Add (x, x) },
              else_branch: graph = e2 () => (float[4] b2) { b2 = Neg (x) }
           >
        }"""
    x = np.array([0.5, -1.0, 2.0, -3.0], dtype=np.float32)
    m, rec = cse(src, feeds=({"c": np.array(True), "x": x}, {"c": np.array(False), "x": x}))
    assert [n.op_type for n in m.graph.nodes] == ["If", "If"]
    assert rec.stats["nodes_merged"] == 1  # q, inside the first then-branch


def test_custom_domain_nodes_are_not_merged():
    _, rec = cse("""<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>
        g (float[4] x) => (float[4] z) {
           a = com.example.Sample (x)
           b = com.example.Sample (x)
           z = Sub (a, b)
        }""", verify=False)
    assert not rec.modified


def test_duplicate_outputs_keep_both_names():
    m, rec = cse(H + """
        g (float[4] x) => (float[4] y1, float[4] y2, float[4] z) {
           y1 = Exp (x)
           y2 = Exp (x)
           n = Neg (x)
           z = Neg (x)
           w = Abs (n)
        }""")
    assert_model(m, H + """
        g (float[4] x) => (float[4] y1, float[4] y2, float[4] z) {
           y1 = Exp (x)
           z = Neg (x)
           w = Abs (z)
           y2 = Identity (y1)
        }""")
    assert rec.stats["identities_added"] == 1
    assert rec.stats["nodes_merged"] == 2


def test_duplicate_identities_to_outputs_stay_and_fixpoint_settles():
    src = H + """
        g (float[4] x) => (float[4] y1, float[4] y2) {
           y1 = Identity (x)
           y2 = Identity (x)
        }"""
    assert_unchanged(src)
    m = model_from_text(src)
    report = run_passes(m, "fixpoint(identity,dce,cse){max=3}")
    assert not report.capped and not any(r.modified for r in report.records)
    assert to_proto(m).graph.output[1].name == "y2"
