"""Shape rules of onnxruntime's contrib ops (com.microsoft), checked against onnxruntime.

Each case is a one-node model whose inputs have symbolic dims; it runs in onnxruntime at two
bindings of those symbols, and every inferred output dim, evaluated at the binding, must equal the
runtime's. A malformed attribute gives no shape and no exception. An op with no rule at all gets
what the runtime fallback proves (``passes/shapes/runtime_fallback.py``).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from onnxopt.io import load
from onnxopt.passes.shapes import infer_shapes
from onnxopt.passes.shapes.check import compare, input_binding, runtime_shapes

F, U8, I8, I16, I32, I64 = T.FLOAT, T.UINT8, T.INT8, T.INT16, T.INT32, T.INT64
BINDINGS = ({"b": 2, "s": 3, "n": 1, "h": 6, "w": 5}, {"b": 3, "s": 5, "n": 2, "h": 7, "w": 9})
NP = {F: np.float32, U8: np.uint8, I8: np.int8, I16: np.int16, I32: np.int32, I64: np.int64}



def i(name, dims, dtype=F):
    return (name, dims, dtype)


def scale(name):
    return (name, [], F)


def zp(name, dtype=U8):
    return (name, [], dtype)


QBIN = [i("a", ["b", 8], U8), scale("as"), zp("az"), i("c", [8], U8), scale("cs"), zp("cz"),
        scale("ys"), zp("yz")]
QUN = [i("x", ["b", 4, "h"], U8), scale("xs"), zp("xz"), scale("ys"), zp("yz")]
QCONV = [i("x", ["n", 3, "h", "w"], U8), scale("xs"), zp("xz"), i("wt", [4, 3, 3, 3], U8),
         scale("ws"), zp("wz"), scale("ys"), zp("yz")]

# op -> (domain, inputs, attributes, number of outputs)
CASES = {
    "DynamicQuantizeLinear": ("", [i("x", ["b", "s"])], {}, 3),
    "QuantizeLinear": ("com.microsoft", [i("x", ["b", "s"]), scale("s0"), zp("z0")], {}, 1),
    "DequantizeLinear": ("com.microsoft", [i("x", ["b", "s"], U8), scale("s0"), zp("z0")], {}, 1),
    "DynamicQuantizeMatMul": ("com.microsoft", [i("a", ["b", "s", 8]), i("bq", [8, 6], I8),
                                                i("bs", [1])], {}, 1),
    "MatMulInteger16": ("com.microsoft", [i("a", ["b", 8], I16), i("c", [8, 6], I16)], {}, 1),
    "QLinearConv": ("com.microsoft", QCONV, {"pads": [1, 1, 1, 1], "strides": [2, 1]}, 1),
    "QLinearAdd": ("com.microsoft", QBIN, {}, 1),
    "QLinearMul": ("com.microsoft", QBIN, {}, 1),
    "QLinearSigmoid": ("com.microsoft", QUN, {}, 1),
    "QLinearLeakyRelu": ("com.microsoft", QUN, {"alpha": 0.1}, 1),
    "QLinearAveragePool": ("com.microsoft", [i("x", ["n", 3, "h", "w"], U8), scale("xs"),
                                             zp("xz"), scale("ys"), zp("yz")],
                           {"kernel_shape": [2, 2], "strides": [2, 2]}, 1),
    "QLinearGlobalAveragePool": ("com.microsoft", [i("x", ["n", 3, "h", "w"], U8), scale("xs"),
                                                   zp("xz"), scale("ys"), zp("yz")], {}, 1),
    "QLinearConcat": ("com.microsoft", [scale("ys"), zp("yz"), i("a", ["b", 2], U8), scale("as"),
                                        zp("az"), i("c", ["b", 3], U8), scale("cs"), zp("cz")],
                      {"axis": 1}, 1),
    "QAttention": ("com.microsoft", [i("x", ["b", "s", 8], U8), i("wt", [8, 24], U8),
                                     i("bias", [24]), scale("xs"), scale("ws"), ("", None, None),
                                     zp("xz"), zp("wz")], {"num_heads": 2}, 1),
    "MatMulNBits": ("com.microsoft", [i("a", ["b", 16]), i("bq", [8, 1, 8], U8), i("sc", [8])],
                    {"K": 16, "N": 8, "bits": 4, "block_size": 16}, 1),
    "DynamicQuantizeLSTM": ("com.microsoft", [
        i("x", ["s", "b", 4]), i("wq", [1, 4, 12], I8), i("rq", [1, 3, 12], I8), i("bias", [1, 24]),
        ("", None, None), ("", None, None), ("", None, None), ("", None, None),
        i("wsc", [1]), i("wz", [1], I8), i("rsc", [1]), i("rz", [1], I8)], {"hidden_size": 3}, 3),
    "FusedConv": ("com.microsoft", [i("x", ["n", 3, "h", "w"]), i("wt", [4, 3, 3, 3])],
                  {"strides": [2, 2], "pads": [1, 1, 1, 1], "activation": "Relu"}, 1),
    "FusedMatMul": ("com.microsoft", [i("a", ["b", "s", 8]), i("c", ["b", 6, 8])],
                    {"transB": 1}, 1),
    "Attention": ("com.microsoft", [i("x", ["b", "s", 8]), i("wt", [8, 24]), i("bias", [24])],
                  {"num_heads": 2}, 1),
    "SkipLayerNormalization": ("com.microsoft", [i("x", ["b", "s", 8]), i("sk", ["b", "s", 8]),
                                                 i("g", [8]), i("beta", [8])], {}, 1),
    "BiasGelu": ("com.microsoft", [i("x", ["b", "s", 8]), i("bias", [8])], {}, 1),
}


def build(op: str, attrs: dict | None = None, nout: int | None = None) -> onnx.ModelProto:
    domain, ins, default_attrs, n = CASES[op]
    nout = nout or n
    vis = [h.make_tensor_value_info(name, dt, dims) for name, dims, dt in ins if name]
    outs = [f"o{k}" for k in range(nout)]
    node = h.make_node(op, [name for name, _, _ in ins], outs, domain=domain,
                       **(default_attrs if attrs is None else attrs))
    g = h.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in outs])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17),
                                          h.make_opsetid("com.microsoft", 1)])


def feeds(op: str, binding: dict, rng: np.random.Generator) -> dict:
    out = {}
    for name, dims, dt in CASES[op][1]:
        if not name:
            continue
        shape = [binding[d] if isinstance(d, str) else d for d in dims]
        if name.endswith("s") and dt == F and not shape or name in ("bs", "wsc", "rsc"):
            out[name] = np.full(shape, 0.05, np.float32)  # scales: positive
        elif dt == F:
            out[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            info = np.iinfo(NP[dt])
            out[name] = rng.integers(max(info.min, -8), min(info.max, 8) + 1, shape).astype(NP[dt])
    return out


@pytest.mark.parametrize("op", sorted(CASES))
def test_contrib_op_shapes_match_onnxruntime_at_two_bindings(op: str):
    m = build(op)
    ir = load(m)
    infer_shapes(ir)
    rng = np.random.default_rng(0)
    for binding in BINDINGS:
        f = feeds(op, binding, rng)
        actual = runtime_shapes(m, f, expose=False)
        r = compare(ir, actual, input_binding(ir, f), values=list(ir.graph.outputs))
        assert not r.wrong and r.known == len(ir.graph.outputs), (
            binding, r.wrong, [v.type for v in ir.graph.outputs], actual)


MALFORMED = [
    ("DynamicQuantizeLSTM", {"hidden_size": -3}), ("DynamicQuantizeLSTM", {"hidden_size": 3,
                                                                          "direction": "sideways"}),
    ("QAttention", {"num_heads": 0}), ("QLinearConv", {"channels_last": 7}),
    ("QLinearConv", {"channels_last": 1, "strides": [1, 1, 1]}),
]


@pytest.mark.parametrize("op,attrs", MALFORMED, ids=lambda x: str(x))
def test_malformed_attributes_give_no_shape_and_no_crash(op: str, attrs: dict):
    ir = load(build(op, attrs))
    info = infer_shapes(ir)
    assert all(v.shape is None or any(d is None for d in v.shape) for v in ir.graph.outputs)
    assert info.unknown  # reported in the health report


def _one_node(op: str, ins: list, nout: int) -> onnx.ModelProto:
    vis = [h.make_tensor_value_info(name, dt, dims) for name, dims, dt in ins]
    outs = [f"o{k}" for k in range(nout)]
    node = h.make_node(op, [x[0] for x in ins], outs, domain="com.microsoft")
    g = h.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in outs])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17),
                                          h.make_opsetid("com.microsoft", 1)])


def test_runtime_fallback_keeps_symbols_and_static_dims_that_no_run_moves():
    """CDist has no rule: onnxruntime's runs give [b, s] at every binding and on every draw."""
    ir = load(_one_node("CDist", [i("a", ["b", 4]), i("c", ["s", 4])], 1))
    infer_shapes(ir)
    assert str(ir.graph.outputs[0].shape) == "[b,s]"


def test_runtime_fallback_drops_data_dependent_dims():
    """Unique's unique values and counts depend on the data (zeros give one, random data many):
    rank only; the inverse indices follow the input's length."""
    ir = load(_one_node("Unique", [i("x", ["b"])], 3))
    infer_shapes(ir)
    assert [str(v.shape) for v in ir.graph.outputs] == ["[?]", "[b]", "[?]"]
    m = _one_node("Unique", [i("x", ["b"])], 3)
    for n in (3, 8):
        x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        actual = runtime_shapes(m, {"x": x}, expose=False)
        r = compare(ir, actual, {"b": n}, values=list(ir.graph.outputs))
        assert not r.wrong


def test_runtime_fallback_claims_nothing_for_an_op_the_runtime_lacks():
    ir = load(_one_node("NoSuchContribOp", [i("x", ["b", 4])], 1))
    info = infer_shapes(ir)
    assert ir.graph.outputs[0].shape is None and info.unknown
