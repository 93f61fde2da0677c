"""The numpy evaluators against onnx's reference evaluator, case by case.

Each case is one node with constant inputs chosen to hit the spec's corners: negative integer
division, negative axes, broadcasting, clamped and reversed slices, axes as attribute (old opsets)
and as input (new ones). The numpy result must equal the reference's exactly (ints and bools) or
to the last bit for the float ops that are correctly rounded in both.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from onnxopt import load
from onnxopt.passes.fold import EVALUATORS
from onnxopt.passes.fold.evaluators import Unsupported, evaluate

I64 = np.int64
rng = np.random.default_rng(0)
A23 = rng.standard_normal((2, 3)).astype(np.float32)
N = np.array([-7, -6, -1, 0, 1, 5, 7], dtype=I64)


def _i(values) -> np.ndarray:
    return np.array(values, dtype=I64)


D = np.array([2, -2, 3, -3, 4, -4, 2], dtype=I64)

# (op, inputs, attrs, opset)
CASES = [
    ("Add", [A23, np.float32(2.5)], {}, 17),
    ("Sub", [np.arange(6, dtype=np.int32).reshape(2, 3), np.array([1, 2, 3], np.int32)], {}, 17),
    ("Mul", [A23, A23[:1]], {}, 17),
    ("Div", [N, D], {}, 17),
    ("Div", [A23, np.float32(3.0)], {}, 17),
    ("Mod", [N, D], {}, 17),
    ("Mod", [N, D], {"fmod": 1}, 17),
    ("Mod", [A23, np.float32(0.7)], {"fmod": 1}, 17),
    ("Neg", [N], {}, 17),
    ("Abs", [N.astype(np.int32)], {}, 17),
    ("Floor", [A23], {}, 17),
    ("Ceil", [A23], {}, 17),
    ("Sqrt", [np.abs(A23)], {}, 17),
    ("Min", [N, D, np.array(0, I64)], {}, 17),
    ("Max", [A23, np.float32(0.0)], {}, 17),
    ("Equal", [N, D], {}, 17),
    ("Less", [N, np.array(0, I64)], {}, 17),
    ("GreaterOrEqual", [A23, A23[:, :1]], {}, 17),
    ("Greater", [N, D], {}, 17),
    ("LessOrEqual", [N, np.array(1, I64)], {}, 17),
    ("Or", [np.array([True, False]), np.array([False, False])], {}, 17),
    ("Not", [np.array([True, False])], {}, 17),
    ("And", [np.array([True, False, True]), np.array(True)], {}, 17),
    ("Xor", [np.array([True, False]), np.array([True, True])], {}, 17),
    ("Where", [np.array([True, False, True]), N[:3], np.array(9, I64)], {}, 17),
    ("Shape", [A23], {}, 13),
    ("Shape", [np.zeros((2, 3, 4, 5), np.float32)], {"start": -3, "end": -1}, 17),
    ("Shape", [np.zeros((2, 3, 4, 5), np.float32)], {"start": 10}, 17),
    ("Size", [A23], {}, 17),
    ("Gather", [A23, np.array([-1, 0], I64)], {"axis": 1}, 17),
    ("Gather", [N, np.array([[0, -1], [2, 3]], I64)], {}, 17),
    ("Slice", [N, _i([-2]), _i([-100]), _i([0]), _i([-2])], {}, 17),
    ("Slice", [A23, _i([1, -100]), _i([100, 2]), _i([-1, 0])], {}, 17),
    ("Slice", [N], {"starts": [1], "ends": [-1]}, 9),
    ("Concat", [N[:2], D[:3]], {"axis": -1}, 17),
    ("Unsqueeze", [N], {"axes": [0, -1]}, 11),
    ("Unsqueeze", [N, np.array([-1, 0], I64)], {}, 17),
    ("Squeeze", [np.zeros((1, 3, 1), np.float32)], {}, 11),
    ("Squeeze", [np.zeros((1, 3, 1), np.float32), np.array([-1], I64)], {}, 17),
    ("Reshape", [np.arange(24, dtype=I64).reshape(2, 3, 4), np.array([0, -1, 2], I64)], {}, 17),
    ("Reshape", [np.zeros((0, 3), np.float32), np.array([0, 3], I64)], {"allowzero": 1}, 17),
    ("Flatten", [np.zeros((2, 3, 4), np.float32)], {"axis": -1}, 17),
    ("Cast", [A23 * 100], {"to": onnx.TensorProto.INT32}, 17),
    ("Cast", [N], {"to": onnx.TensorProto.FLOAT16}, 17),
    ("Cast", [N], {"to": onnx.TensorProto.BOOL}, 17),
    ("CastLike", [N, np.float32(0)], {}, 17),
    ("Transpose", [np.zeros((2, 3, 4), np.float32)], {"perm": [2, 0, 1]}, 17),
    ("Transpose", [A23], {}, 17),
    ("Expand", [N[:3].reshape(3, 1), np.array([2, 1, 4], I64)], {}, 17),
    ("Tile", [A23, np.array([2, 1], I64)], {}, 17),
    ("ConstantOfShape", [np.array([2, 3], I64)],
     {"value": numpy_helper.from_array(np.array([7], np.int32))}, 17),
    ("ConstantOfShape", [np.array([], I64)], {}, 17),
    ("Range", [np.array(10, I64), np.array(-3, I64), np.array(-4, I64)], {}, 17),
    ("Range", [np.array(1, np.int32), np.array(2, np.int32), np.array(5, np.int32)], {}, 17),
    ("ReduceSum", [np.arange(24, dtype=I64).reshape(2, 3, 4)], {"axes": [-1, 0], "keepdims": 0},
     11),
    ("ReduceSum", [np.arange(24, dtype=np.int32).reshape(2, 3, 4), np.array([1], I64)], {}, 17),
    ("ReduceSum", [A23, np.array([], I64)], {"noop_with_empty_axes": 1}, 17),
    ("ReduceProd", [np.arange(1, 7, dtype=I64).reshape(2, 3)], {"keepdims": 0}, 17),
    ("ReduceMin", [A23, np.array([0], I64)], {}, 18),
    ("ReduceMax", [A23], {"axes": [1]}, 13),
    ("Identity", [N], {}, 17),
    ("Dropout", [A23], {}, 17),
]


def _model(op, inputs, attrs, opset):
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, ["y"], **attrs)
    inits = [numpy_helper.from_array(np.asarray(a), n) for a, n in zip(inputs, names)]
    g = helper.make_graph([node], "g", [], [onnx.ValueInfoProto(name="y")], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.mark.parametrize("op, inputs, attrs, opset", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_numpy_evaluator_matches_the_reference(op, inputs, attrs, opset):
    proto = _model(op, inputs, attrs, opset)
    want = ReferenceEvaluator(proto).run(None, {})[0]
    node = load(proto).graph.nodes.first()
    got = evaluate(node, [np.asarray(a) for a in inputs], opset)[0]
    assert got.shape == np.asarray(want).shape
    assert got.dtype == np.asarray(want).dtype, (got.dtype, np.asarray(want).dtype)
    np.testing.assert_array_equal(got, want)


def test_every_evaluator_has_a_case():
    covered = {c[0] for c in CASES}
    assert {op for _, op in EVALUATORS} - covered == {"Constant"}


@pytest.mark.parametrize("op, inputs, attrs", [
    ("Div", [N, np.array(0, I64)], {}),
    ("Gather", [N, np.array([7], I64)], {}),
    ("Reshape", [N, np.array([2, -1], I64)], {}),
    ("Add", [N, D[:2]], {}),
    ("Squeeze", [A23, np.array([0], I64)], {}),
])
def test_invalid_inputs_raise_instead_of_guessing(op, inputs, attrs):
    node = load(_model(op, inputs, attrs, 17)).graph.nodes.first()
    with pytest.raises(Exception) as e:
        evaluate(node, inputs, 17)
    assert not isinstance(e.value, Unsupported)


def test_cases_numpy_cannot_do_exactly_go_to_a_runtime():
    f = np.array(1.5, np.float32)
    node = load(_model("Range", [f, f, f], {}, 17)).graph.nodes.first()
    with pytest.raises(Unsupported):
        evaluate(node, [f, f, f], 17)
