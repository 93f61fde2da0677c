"""Tests of the example plugin, written with onnxopt.testing: structure as text, numbers in
onnxruntime, near-misses beside the cases that fire, and the installed entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest
from onnxopt.testing import check_pipeline, model_from_text, run_pass
from onnxopt_example.passes import DropMulOne
from onnxopt_example.rules import ExampleFuse

HEADER = '<ir_version: 8, opset_import: ["" : {opset}]>'


def model(body: str, opset: int = 17) -> str:
    return HEADER.format(opset=opset) + "\n" + body


# -- example:drop-mul-one --------------------------------------------------------------------


def test_mul_and_div_by_one_are_removed():
    m = check_pipeline(model("""
        g (float[N,4] x) => (float[N,4] y) <float one = {1.0}, float[4] ones = {1,1,1,1}> {
            a = Mul (one, x)
            b = Div (a, ones)
            y = Relu (b)
        }"""), "example:drop-mul-one,dce", changed=True)
    assert [n.op_type for n in m.graph.nodes] == ["Relu"]
    assert not m.graph.initializers


@pytest.mark.parametrize("body", [
    # 2 is not 1
    "<float two = {2.0}> { y = Mul (x, two) }",
    # ones([2, 4]) broadcasts x: [4] to [2, 4]
    "<float[2,4] ones = {1,1,1,1,1,1,1,1}> { y = Mul (x, ones) }",
    # 1 / x is not x
    "<float one = {1.0}> { y = Div (one, x) }",
])
def test_near_misses_are_left_alone(body):
    out = "float[2,4] y" if "float[2,4] ones" in body else "float[4] y"
    check_pipeline(model(f"g (float[4] x) => ({out}) " + body), "example:drop-mul-one",
                   changed=False)


def test_a_graph_output_keeps_its_name():
    m = model_from_text(model("""
        g (float[4] x) => (float[4] y) <float one = {1.0}> { y = Mul (x, one) }"""))
    assert run_pass(m, DropMulOne).modified
    assert [v.name for v in m.graph.outputs] == ["y"]


# -- example:fuse (rule gap_flatten) -------------------------------------------------------------

GAP = """
    g (float[N,8,5,5] x) => (float[N,8] y) {
        p = GlobalAveragePool (x)
        y = Flatten <axis = 1> (p)
    }"""


@pytest.mark.parametrize("opset", [13, 18])
def test_gap_flatten_becomes_reduce_mean_at_each_opset(opset):
    m = check_pipeline(model(GAP, opset), "example:fuse", changed=True)
    (node,) = m.graph.nodes
    assert node.op_type == "ReduceMean"
    # opset 18 moved ReduceMean's axes from an attribute to an input
    assert (len(node.inputs) == 2) == (opset >= 18)
    assert node.meta["tag"] == "example:fuse.gap_flatten"


def test_gap_flatten_refuses_a_shared_pool_and_another_axis():
    shared = model("""
        g (float[N,8,5,5] x) => (float[N,8] y, float[N,8,1,1] p) {
            p = GlobalAveragePool (x)
            y = Flatten <axis = 1> (p)
        }""")
    check_pipeline(shared, "example:fuse", changed=False)
    axis2 = model(GAP.replace("axis = 1", "axis = 2").replace("float[N,8] y", "float[M,1] y"))
    check_pipeline(axis2, "example:fuse", changed=False)


def test_gap_flatten_says_why_it_refuses():
    from onnxopt.ir import TensorType
    from onnxopt.passes import PassContext, apply_rules

    m = model_from_text(model(GAP))
    m.graph.inputs[0].type = TensorType(m.graph.inputs[0].dtype, None)  # rank unknown
    events = []
    result = apply_rules(m, ExampleFuse.rules, PassContext(m), tracer=events.append)
    assert not result.rewrites
    assert [str(e) for e in events] == [
        "rule gap_flatten refused at Flatten: the rank of the pooled tensor is unknown"]


# -- installed -------------------------------------------------------------------------------


def test_the_entry_points_name_both_passes():
    out = subprocess.run([sys.executable, "-m", "onnxopt.cli.main", "--list-passes"],
                         capture_output=True, text=True, check=True).stdout
    assert "example:drop-mul-one" in out and "example:fuse.gap_flatten" in out
