"""The fuse rules, one block per rule: a positive case checked numerically in onnxruntime, and
near-misses that must not fire (wrong axis, non-constant operand, an extra user of an intermediate
value, broadcasting that differs, an opset that lacks the target op)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Optional

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper
from onnxopt import load
from onnxopt.passes import create
from onnxopt.passes.fuse import ALL_RULES, RULES
from onnxopt.testing import assert_equivalent, golden_text, run_passes, snapshot

rng = np.random.default_rng(0)


def rand(*shape, lo=-1.0, hi=1.0, dtype=np.float32):
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def header(opset: int) -> str:
    return f'<ir_version: {10 if opset < 23 else 11}, opset_import: ["" : {opset}]>'


def build(text: str, inits: Optional[dict] = None):
    """Parse ONNX text; graph inputs named in ``inits`` become initializers with that data."""
    proto = onnx.parser.parse_model(text)
    for name, arr in (inits or {}).items():
        keep = [i for i in proto.graph.input if i.name != name]
        assert len(keep) == len(proto.graph.input) - 1, f"no graph input {name}"
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
        proto.graph.initializer.append(numpy_helper.from_array(np.asarray(arr), name))
    return load(proto)


def fuse(*args, fires: int = 1, ops: Optional[dict] = None, feeds: Optional[dict] = None,
         atol=None, rtol=None):
    """``fuse(text, rule[, inits])`` (or ``fuse(*builder(), rule)``, builders returning (text,
    inits)): run ``fuse.RULE``; assert how often the rule fired, op counts after, and (when it
    fired) numerical equivalence with the original."""
    text = next(a for a in args if isinstance(a, str) and "\n" in a)
    rule = next(a for a in args if isinstance(a, str) and "\n" not in a)
    inits = next((a for a in args if isinstance(a, dict)), None)
    m = build(text, inits)
    before = snapshot(m)
    report = run_passes(m, f"fuse.{rule}")
    got = sum(1 for r in report.records for w in r.rewrites if w.rule == f"fuse.{rule}")
    assert got == fires, f"fuse.{rule} fired {got} times, expected {fires}\n{golden_text(m)}"
    if ops is not None:
        counts = Counter(n.op_type for n in m.graph.all_nodes())
        for op, n in ops.items():
            assert counts[op] == n, f"{op}: {counts[op]} != {n}\n{golden_text(m)}"
    if fires:
        assert_equivalent(before, m, feeds=feeds, atol=atol, rtol=rtol)
    return m


def test_rules_listed_and_documented():
    assert set(RULES) == {r.name for r in ALL_RULES}
    for r in ALL_RULES:
        assert r.summary and r.opset >= 1 and type(r).__doc__
    assert create("fuse.conv_bn").opts["only"] == "conv_bn"


# -- conv_bn ---------------------------------------------------------------------------------------

BN = dict(s=rand(4, lo=0.5, hi=2), bb=rand(4), mu=rand(4), var=rand(4, lo=0.1, hi=2))


def conv_bn(op="Conv", attrs="<pads = [1, 1, 1, 1]>", wshape=(4, 3, 3, 3), opset=17, extra="",
            outs="float[N,4,8,8] y", training=""):
    return (f"""{header(opset)}
        g (float[N,3,8,8] x, float{list(wshape)} w, float[4] b, float[4] s, float[4] bb,
           float[4] mu, float[4] var) => ({outs}) {{
           c = {op} {attrs} (x, w, b)
           y = BatchNormalization {training} (c, s, bb, mu, var)
           {extra}
        }}""", dict(w=rand(*wshape), b=rand(4), **BN))


def test_conv_bn():
    fuse(*conv_bn(), "conv_bn", ops={"Conv": 1, "BatchNormalization": 0})


def test_conv_transpose_bn_grouped():
    t, i = conv_bn("ConvTranspose", "<group = 2, strides = [2, 2]>", (4, 2, 3, 3))
    t = t.replace("float[N,4,8,8] y", "float[N,4,17,17] y").replace("float[N,3,8,8] x",
                                                                      "float[N,4,8,8] x")
    fuse(t, "conv_bn", i, ops={"ConvTranspose": 1, "BatchNormalization": 0})


def test_gemm_bn():
    text = f"""{header(17)}
        g (float[N,5] x, float[4,5] w, float[4] b, float[4] s, float[4] bb, float[4] mu,
           float[4] var) => (float[N,4] y) {{
           c = Gemm <transB = 1, alpha = 0.5, beta = 2.0> (x, w, b)
           y = BatchNormalization (c, s, bb, mu, var)
        }}"""
    fuse(text, "conv_bn", dict(w=rand(4, 5), b=rand(4), **BN), ops={"Gemm": 1})


def test_conv_bn_near_misses():
    t, i = conv_bn()
    fuse(t, "conv_bn", {k: v for k, v in i.items() if k != "var"}, fires=0)  # var not constant
    t, i = conv_bn(outs="float[N,4,8,8] y, float[N,4,8,8] z", extra="z = Relu (c)")
    fuse(t, "conv_bn", i, fires=0)  # the Conv output has another user
    t, i = conv_bn(training="<training_mode = 1>")
    fuse(t, "conv_bn", i, fires=0)  # training mode
    t, i = conv_bn(opset=6)
    fuse(t, "conv_bn", i, fires=0)  # BatchNormalization-6 has training attributes
    t, i = conv_bn()
    i["s"] = rand(1, lo=0.5, hi=2)  # BN parameters of the wrong shape (broadcast)
    fuse(t.replace("float[4] s,", "float[1] s,"), "conv_bn", i, fires=0)


# -- conv_add / conv_mul ---------------------------------------------------------------------------

def conv_op(op: str, cshape, opset=17, bias=True, extra="", outs="float[N,4,8,8] y"):
    b = ", b" if bias else ""
    return (f"""{header(opset)}
        g (float[N,3,8,8] x, float[4,3,3,3] w, float[4] b, float{list(cshape)} k)
          => ({outs}) {{
           c = Conv <pads = [1, 1, 1, 1]> (x, w{b})
           y = {op} (k, c)
           {extra}
        }}""", dict(w=rand(4, 3, 3, 3), k=rand(*cshape, lo=0.5, hi=2),
                    **({"b": rand(4)} if bias else {})))


@pytest.mark.parametrize("op,rule", [("Add", "conv_add"), ("Mul", "conv_mul")])
def test_conv_channel_constant(op, rule):
    t, i = conv_op(op, (4, 1, 1))
    fuse(t, rule, i, ops={"Conv": 1, op: 0})
    t, i = conv_op(op, (1, 4, 1, 1), bias=False)  # no bias: one is created
    fuse(t.replace("float[4] b, ", ""), rule, i, ops={"Conv": 1, op: 0})
    t, i = conv_op(op, ())
    fuse(t, rule, i)


@pytest.mark.parametrize("op,rule", [("Add", "conv_add"), ("Mul", "conv_mul")])
def test_conv_channel_constant_near_misses(op, rule):
    t, i = conv_op(op, (4, 8, 8))  # varies over space: not a bias
    fuse(t, rule, i, fires=0)
    t, i = conv_op(op, (2, 1, 4, 1, 1), outs="float[2,N,4,8,8] y")  # broadcasts the rank up
    fuse(t, rule, i, fires=0)
    t, i = conv_op(op, (4, 1, 1))
    fuse(t, rule, {k: v for k, v in i.items() if k != "k"}, fires=0)  # not constant
    t, i = conv_op(op, (4, 1, 1), outs="float[N,4,8,8] y, float[N,4,8,8] z", extra="z = Neg (c)")
    fuse(t, rule, i, fires=0)


# -- pad_conv / pad_pool ---------------------------------------------------------------------------

def pad_then(op: str, attrs: str, pads, value="", mode="", opset=17, pre="", src="x",
             outs="float[N,3,10,10] y", wdecl=", float[4,3,3,3] w", winput=", w"):
    pv = ", v" if value else ""
    vdecl = ", float v" if value else ""
    return (f"""{header(opset)}
        g (float[N,3,8,8] x, int64[8] p{vdecl}{wdecl}) => ({outs}) {{
           {pre}
           t = Pad {mode} ({src}, p{pv})
           y = {op} {attrs} (t{winput})
        }}""", dict(p=np.array(pads, np.int64), **({"v": np.array(float(value), np.float32)}
                                                      if value else {}),
                    **({"w": rand(4, 3, 3, 3)} if winput else {})))


def test_pad_conv():
    t, i = pad_then("Conv", "<pads = [0, 1, 0, 1]>", [0, 0, 1, 2, 0, 0, 2, 1],
                    outs="float[N,4,9,11] y")
    m = fuse(t, "pad_conv", i, ops={"Pad": 0, "Conv": 1})
    conv = next(n for n in m.graph.nodes if n.op_type == "Conv")
    assert list(conv.attr("pads")) == [1, 3, 2, 2]
    # opset 10: pads and value are attributes
    text = f"""{header(10)}
        g (float[N,3,8,8] x, float[4,3,3,3] w) => (float[N,4,8,8] y) {{
           t = Pad <pads = [0, 0, 1, 1, 0, 0, 1, 1]> (x)
           y = Conv (t, w)
        }}"""
    fuse(text, "pad_conv", dict(w=rand(4, 3, 3, 3)), ops={"Pad": 0})


def test_pad_conv_near_misses():
    args = ("Conv", "", [0, 0, 1, 1, 0, 0, 1, 1])
    fuse(*pad_then(*args, mode='<mode = "reflect">', outs="float[N,4,8,8] y"), "pad_conv",
         fires=0)
    fuse(*pad_then(*args, value="1.0", outs="float[N,4,8,8] y"), "pad_conv", fires=0)
    fuse(*pad_then("Conv", "", [0, 1, 1, 1, 0, 0, 1, 1], outs="float[N,4,8,8] y",
                   wdecl=", float[4,4,3,3] w"), "pad_conv", fires=0)  # pads the channels
    fuse(*pad_then("Conv", "", [0, 0, -1, 1, 0, 0, 1, 1], outs="float[N,4,6,8] y"), "pad_conv",
         fires=0)  # crops
    t, i = pad_then(*args, outs="float[N,4,8,8] y")
    fuse(t, "pad_conv", {k: v for k, v in i.items() if k != "p"}, fires=0)  # dynamic pads


def pool(op, attrs, pads, value="", pre="", src="x"):
    return pad_then(op, attrs, pads, value=value, pre=pre, src=src, wdecl="", winput="",
                    outs="float[N,3,?,?] y")


def test_pad_pool():
    fuse(*pool("AveragePool", "<kernel_shape = [3, 3]>", [0, 0, 1, 1, 0, 0, 1, 1]), "pad_pool",
         ops={"Pad": 0})
    fuse(*pool("AveragePool", "<kernel_shape = [3, 3], count_include_pad = 1, pads = [1, 0, 0, 0]>",
               [0, 0, 1, 1, 0, 0, 1, 1]), "pad_pool", ops={"Pad": 0})
    fuse(*pool("MaxPool", "<kernel_shape = [3, 3]>", [0, 0, 1, 1, 0, 0, 2, 2], pre="r = Relu (x)",
               src="r"), "pad_pool", ops={"Pad": 0})
    fuse(*pool("MaxPool", "<kernel_shape = [2, 2]>", [0, 0, 1, 1, 0, 0, 1, 1], value="-inf"),
         "pad_pool", ops={"Pad": 0})


def test_pad_pool_near_misses():
    # zero padding can win the max of negative inputs
    fuse(*pool("MaxPool", "<kernel_shape = [3, 3]>", [0, 0, 1, 1, 0, 0, 1, 1]), "pad_pool",
         fires=0)
    # a window made only of padding
    fuse(*pool("MaxPool", "<kernel_shape = [2, 2]>", [0, 0, 2, 2, 0, 0, 0, 0], value="-inf"),
         "pad_pool", fires=0)
    fuse(*pool("AveragePool", "<kernel_shape = [3, 3], ceil_mode = 1>", [0, 0, 1, 1, 0, 0, 1, 1]),
         "pad_pool", fires=0)
    # count_include_pad=0 with pads of its own: merged pads would be counted differently
    fuse(*pool("AveragePool", "<kernel_shape = [3, 3], pads = [1, 1, 1, 1]>",
               [0, 0, 1, 1, 0, 0, 1, 1]), "pad_pool", fires=0)
    fuse(*pool("AveragePool", "<kernel_shape = [3, 3]>", [0, 0, 1, 1, 0, 0, 1, 1], value="0.5"),
         "pad_pool", fires=0)


# -- matmul_add, transpose_gemm -------------------------------------------------------------------

def mm_add(a="float[N,5] a", b="float[5,4] b", c="float[4] c", out="float[N,4] y", opset=17,
           extra="", outs=None, inits=True):
    text = f"""{header(opset)}
        g ({a}, {b}, {c}) => ({outs or out}) {{
           m = MatMul (a, b)
           y = Add (c, m)
           {extra}
        }}"""
    return text


def test_matmul_add():
    fuse(mm_add(), "matmul_add", dict(b=rand(5, 4), c=rand(4)), ops={"Gemm": 1, "Add": 0})
    fuse(mm_add(c="float[N,4] c"), "matmul_add", ops={"Gemm": 1})  # C need not be constant
    fuse(mm_add(c="float[N,1] c"), "matmul_add")


def test_matmul_add_near_misses():
    fuse(mm_add(a="float[2,N,5] a", out="float[2,N,4] y"), "matmul_add", fires=0)  # 3-D
    fuse(mm_add(a="float[1,5] a", c="float[3,4] c", out="float[3,4] y"), "matmul_add",
         fires=0)  # C broadcasts the product up
    fuse(mm_add(a="float[N,5] a", c="float[M,4] c", out="float[?,4] y"), "matmul_add",
         fires=0)  # N vs M not provably equal
    fuse(mm_add(a="int32[N,5] a", b="int32[5,4] b", c="int32[4] c", out="int32[N,4] y"),
         "matmul_add", fires=0)
    fuse(mm_add(outs="float[N,4] y, float[N,4] z", extra="z = Relu (m)"), "matmul_add", fires=0)


def test_transpose_gemm():
    text = f"""{header(17)}
        g (float[5,N] a, float[4,5] b) => (float[N,4] y) {{
           ta = Transpose <perm = [1, 0]> (a)
           tb = Transpose (b)
           y = Gemm (ta, tb)
        }}"""
    m = fuse(text, "transpose_gemm", fires=2, ops={"Transpose": 0, "Gemm": 1})
    g = next(n for n in m.graph.nodes)
    assert (g.attr("transA"), g.attr("transB")) == (1, 1)
    fuse(text.replace("=> (float[N,4] y)", "=> (float[N,4] y, float[N,5] z)")
         .replace("y = Gemm", "z = Relu (ta)\n y = Gemm"), "transpose_gemm", fires=1)


def siblings(bias: bool = True, opset: int = 17, kv: int = 8, extra: str = "", outs: str = ""):
    adds = "\n".join(f"           {n} = Add (m{n}, b{n})" for n in "qkv") if bias else ""
    names = "qkv" if bias else ["mq", "mk", "mv"]
    return (f"""{header(opset)}
        g (float[B,S,8] x, float[8,8] wq, float[8,8] wk, float[8,{kv}] wv, float[8] bq,
           float[8] bk, float[{kv}] bv) => (float[B,S,8] {names[0]}, float[B,S,8] {names[1]},
           float[B,S,{kv}] {names[2]}{outs}) {{
           mq = MatMul (x, wq)
           mk = MatMul (x, wk)
           mv = MatMul (x, wv)
{adds}
           {extra}
        }}""", dict(wq=rand(8, 8), wk=rand(8, 8), wv=rand(8, kv), bq=rand(8), bk=rand(8),
                    bv=rand(kv)))


def test_matmul_siblings():
    m = fuse(*siblings(), "matmul_siblings", ops={"MatMul": 1, "Add": 1, "Split": 1})
    assert [v.name for v in m.graph.outputs] == ["q", "k", "v"]
    fuse(*siblings(kv=4), "matmul_siblings", ops={"MatMul": 1, "Split": 1})
    t, i = siblings(bias=False)
    fuse(t, "matmul_siblings", {k: v for k, v in i.items() if not k.startswith("b")},
         ops={"MatMul": 1, "Add": 0, "Split": 1})
    fuse(*siblings(opset=11), "matmul_siblings", ops={"Split": 1})  # split as an attribute


def test_matmul_siblings_near_misses():
    t, i = siblings()
    fuse(t, "matmul_siblings", {k: v for k, v in i.items() if k not in ("wk", "wv")},
         fires=0)  # only one MatMul has constant weights
    # a weight also used elsewhere would be stored twice
    fuse(*siblings(extra="z = Neg (wq)", outs=", float[8,8] z"), "matmul_siblings",
         {**siblings()[1]}, fires=1, ops={"MatMul": 2})


def test_weights_a_rule_does_not_rewrite_stay_undecoded():
    # A decoded weight stays cached beside its proto's bytes: deciding from dtype and dims keeps
    # a model of big weights at one copy of them (the Const pattern, the sibling plan).
    text = f"""{header(17)}
        g (float[B,64] x, float[64,64] w1, float[64,64] w2, float[64] b2) => (float[B,64] y) {{
           h = MatMul (x, w1)
           a = MatMul (h, w2)
           y = Add (a, b2)
        }}"""
    m = fuse(text, "matmul_siblings", dict(w1=rand(64, 64), w2=rand(64, 64), b2=rand(64)),
             fires=0)
    run_passes(m, "default")
    weights = [v.const_value for v in m.graph.initializers if v.name in ("w1", "w2")]
    assert len(weights) == 2 and all(w._array is None for w in weights)


# -- Transposes ------------------------------------------------------------------------------------

def test_transpose_pairs():
    text = f"""{header(17)}
        g (float[2,3,4,5] x) => (float[2,3,4,5] y, float[5,3,2,4] z) {{
           a = Transpose <perm = [0, 2, 3, 1]> (x)
           y = Transpose <perm = [0, 3, 1, 2]> (a)
           b = Transpose <perm = [0, 2, 3, 1]> (x)
           z = Transpose <perm = [3, 2, 0, 1]> (b)
        }}"""
    m = fuse(text, "transpose_transpose", fires=2, ops={"Transpose": 1})
    assert [v.name for v in m.graph.outputs] == ["y", "z"]
    # an inner Transpose with another user stays
    fuse(text.replace("z = Transpose <perm = [3, 2, 0, 1]> (b)", "z = Transpose (a)")
         .replace("float[5,3,2,4] z", "float[3,5,4,2] z"), "transpose_transpose", fires=0)


def test_transpose_binary():
    text = f"""{header(17)}
        g (float[2,3,4] a, float[2,1,4] b) => (float[4,2,3] y) {{
           ta = Transpose <perm = [2, 0, 1]> (a)
           tb = Transpose <perm = [2, 0, 1]> (b)
           y = Sub (ta, tb)
        }}"""
    fuse(text, "transpose_binary", ops={"Transpose": 1})
    fuse(text.replace("tb = Transpose <perm = [2, 0, 1]>", "tb = Transpose <perm = [2, 1, 0]>")
         .replace("float[2,1,4] b", "float[1,2,4] b"), "transpose_binary", fires=0)


def test_transpose_through_elementwise():
    text = f"""{header(17)}
        g (float[2,3,4] x, float[3] c) => (float[2,3,4] y) {{
           a = Transpose <perm = [0, 2, 1]> (x)
           r = Relu (a)
           s = Sub (c, r)
           y = Transpose <perm = [0, 2, 1]> (s)
        }}"""
    m = build(text, dict(c=rand(3)))
    before = snapshot(m)
    run_passes(m, "fuse")
    assert Counter(n.op_type for n in m.graph.nodes) == Counter({"Relu": 1, "Sub": 1})
    assert_equivalent(before, m)
    fuse(text, "transpose_elementwise", dict(c=rand(3)), fires=1, ops={"Transpose": 0})
    fuse(text.replace("perm = [0, 2, 1]> (s)", "perm = [2, 1, 0]> (s)")
         .replace("float[2,3,4] y", "float[3,4,2] y"), "transpose_elementwise", dict(c=rand(3)),
         fires=1, ops={"Transpose": 1})  # merged, not cancelled
    # the other operand is not constant: moving would need another Transpose
    fuse(text.replace("r = Relu (a)\n", "").replace("(c, r)", "(c, a)"), "transpose_elementwise",
         fires=0)
    # a constant of higher rank broadcasts the rank up
    fuse(text.replace("float[3] c", "float[2,1,1,3] c").replace("float[2,3,4] y",
                                                                  "float[2,2,3,4] y")
         .replace("perm = [0, 2, 1]> (s)", "perm = [0, 1, 3, 2]> (s)"),
         "transpose_elementwise", dict(c=rand(2, 1, 1, 3)), fires=0)


# -- Reshape / Flatten / Squeeze -------------------------------------------------------------------

def test_reshape_chain():
    text = f"""{header(17)}
        g (float[N,6,4] x, int64[3] s1, int64[2] s2) => (float[?,8] y) {{
           a = Reshape (x, s1)
           y = Reshape (a, s2)
        }}"""
    fuse(text, "reshape_chain", dict(s1=np.array([-1, 2, 12]), s2=np.array([-1, 8])),
         ops={"Reshape": 1})
    fuse(text, "reshape_chain", dict(s1=np.array([-1, 2, 12]), s2=np.array([0, 8])),
         fires=0)  # 0 copies a dim of the intermediate
    fuse(text, "reshape_chain", dict(s1=np.array([-1, 2, 12])), fires=0)  # dynamic target
    text = f"""{header(17)}
        g (float[N,6,4] x, int64[2] s2) => (float[?,8] y) {{
           a = Flatten <axis = 2> (x)
           y = Reshape (a, s2)
        }}"""
    fuse(text, "reshape_chain", dict(s2=np.array([-1, 8])), ops={"Reshape": 1, "Flatten": 0})


def test_flatten_chain():
    text = f"""{header(17)}
        g (float[2,6,4] x, int64[3] s1) => (float[6,8] y) {{
           a = Reshape (x, s1)
           y = Flatten <axis = 2> (a)
        }}"""
    fuse(text, "flatten_chain", dict(s1=np.array([3, 2, 8])), ops={"Reshape": 1, "Flatten": 0})
    # leading dims of the intermediate unknown (dynamic target)
    fuse(text.replace("float[6,8] y", "float[?,?] y"), "flatten_chain", fires=0)


def test_squeeze_unsqueeze():
    for opset, u, s in ((13, "Unsqueeze (x, ax)", "Squeeze (a, ax2)"),
                        (11, "Unsqueeze <axes = [1, -1]> (x)", "Squeeze <axes = [-3, 3]> (a)")):
        text = f"""{header(opset)}
            g (float[N,3] x, int64[2] ax, int64[2] ax2) => (float[N,3] y) {{
               a = {u}
               y = {s}
            }}"""
        fuse(text, "squeeze_unsqueeze", dict(ax=np.array([1, -1]), ax2=np.array([-3, 3])),
             ops={"Squeeze": 0, "Unsqueeze": 0})
    text = f"""{header(13)}
        g (float[N,1,3,1] x, int64[1] ax) => (float[N,1,3,1] y) {{
           a = Squeeze (x, ax)
           y = Unsqueeze (a, ax)
        }}"""
    fuse(text, "squeeze_unsqueeze", dict(ax=np.array([3])), ops={"Squeeze": 0})
    fuse(text.replace("float[N,1,3,1] y", "float[N,3,1,1] y").replace("(a, ax)", "(a, bx)")
         .replace("int64[1] ax)", "int64[1] ax, int64[1] bx)"), "squeeze_unsqueeze",
         dict(ax=np.array([3]), bx=np.array([2])), fires=0)  # different axes


# -- constant chains -------------------------------------------------------------------------------

def chain(first: str, second: str, dtype="float", c1="float[3]", c2="float[3]"):
    return f"""{header(17)}
        g ({dtype}[N,3] x, {c1} a, {c2} b) => ({dtype}[N,3] y) {{
           t = {first}
           y = {second}
        }}"""


@pytest.mark.parametrize("first,second,rule", [
    ("Mul (x, a)", "Mul (b, t)", "mul_chain"),
    ("Div (x, a)", "Div (t, b)", "mul_chain"),
    ("Mul (a, x)", "Div (t, b)", "mul_chain"),
    ("Add (x, a)", "Sub (t, b)", "add_chain"),
    ("Sub (a, x)", "Add (t, b)", "add_chain"),
    ("Sub (x, a)", "Sub (b, t)", "add_chain"),
])
def test_const_chains(first, second, rule):
    m = fuse(chain(first, second), rule, dict(a=rand(3, lo=0.5, hi=2), b=rand(3, lo=0.5, hi=2)))
    assert len(m.graph.nodes) == 1


def test_int_chains():
    ints = dict(a=np.array([3, -2, 7], np.int32), b=np.array([5, 1, -4], np.int32))
    fuse(chain("Mul (x, a)", "Mul (t, b)", "int32", "int32[3]", "int32[3]"), "mul_chain", ints)
    fuse(chain("Sub (a, x)", "Add (t, b)", "int32", "int32[3]", "int32[3]"), "add_chain", ints)
    fuse(chain("Div (x, a)", "Div (t, b)", "int32", "int32[3]", "int32[3]"), "mul_chain", ints,
         fires=0)  # truncating division does not compose


def test_const_chain_near_misses():
    f = dict(a=rand(3, lo=0.5, hi=2), b=rand(3, lo=0.5, hi=2))
    fuse(chain("Div (a, x)", "Mul (t, b)"), "mul_chain", f, fires=0)  # a / x is not linear
    fuse(chain("Mul (x, a)", "Mul (t, b)"), "mul_chain", {"a": f["a"]}, fires=0)  # b dynamic
    # the combined constant would be [3, 3]: bigger than both
    fuse(chain("Mul (x, a)", "Mul (t, b)", c1="float[3,1]", c2="float[3]")
         .replace("float[N,3] y", "float[3,3] y").replace("float[N,3] x", "float[1,3] x"),
         "mul_chain", dict(a=rand(3, 1), b=rand(3)), fires=0)
    fuse(chain("Mul (x, a)", "Mul (t, b)", c1="float", c2="float"), "mul_chain",
         dict(a=np.float32(1e30), b=np.float32(1e30)), fires=0)  # overflows


# -- layer_norm / rms_norm -------------------------------------------------------------------------

def layer_norm(opset=17, axes="[-1]", sq="Pow (d, two)", div="Div (d, sd)", affine=True,
               xshape="N,S,8", gshape="8", extra="", outs="float[N,S,8] y", keep=""):
    red = (f"ReduceMean <axes = {axes}{keep}> (x)", f"ReduceMean <axes = {axes}{keep}> (sq)")
    if opset >= 18:
        red = (f"ReduceMean {keep.replace(', ', '<').strip() + '>' if keep else ''} (x, ax)",
               f"ReduceMean {keep.replace(', ', '<').strip() + '>' if keep else ''} (sq, ax)")
    tail = """sc = Mul (n, g)
           y = Add (b, sc)""" if affine else "y = Identity (n)"
    if not affine:
        div = div.replace("n =", "")
    return f"""{header(opset)}
        g (float[{xshape}] x, float[{gshape}] g, float[{gshape}] b, int64[1] ax) => ({outs}) {{
           two = Constant <value = float {{2.0}}> ()
           eps = Constant <value = float {{1e-5}}> ()
           mu = {red[0]}
           d = Sub (x, mu)
           sq = {sq}
           var = {red[1]}
           ve = Add (var, eps)
           sd = Sqrt (ve)
           n = {div}
           {tail}
           {extra}
        }}""", dict(g=rand(*map(int, gshape.split(",")), lo=0.5, hi=2),
                    b=rand(*map(int, gshape.split(","))), ax=np.array(eval(axes), np.int64))


def test_layer_norm():
    m = fuse(*layer_norm(), "layer_norm", ops={"LayerNormalization": 1, "ReduceMean": 0})
    ln = next(n for n in m.graph.nodes if n.op_type == "LayerNormalization")
    assert ln.attr("axis") == -1 and abs(ln.attr("epsilon") - 1e-5) < 1e-12
    fuse(*layer_norm(opset=18), "layer_norm", ops={"LayerNormalization": 1})
    fuse(*layer_norm(sq="Mul (d, d)", div="Mul (d, r)", extra="r = Reciprocal (sd)")
         , "layer_norm", ops={"LayerNormalization": 1, "Reciprocal": 0})
    fuse(*layer_norm(axes="[-2, -1]", xshape="N,4,8", gshape="4,8", outs="float[N,4,8] y"),
         "layer_norm", ops={"LayerNormalization": 1})
    t, i = layer_norm(axes="[1, 2]", xshape="N,4,8", gshape="8", outs="float[N,4,8] y")
    fuse(t, "layer_norm", i)  # positive axes with a known rank; gamma broadcast to [4, 8]


def test_layer_norm_without_affine():
    text = f"""{header(17)}
        g (float[N,8] x) => (float[N,8] y) {{
           mu = ReduceMean <axes = [-1]> (x)
           d = Sub (x, mu)
           sq = Mul (d, d)
           var = ReduceMean <axes = [-1]> (sq)
           eps = Constant <value = float {{1e-6}}> ()
           ve = Add (eps, var)
           sd = Sqrt (ve)
           y = Div (d, sd)
        }}"""
    fuse(text, "layer_norm", ops={"LayerNormalization": 1})


def test_layer_norm_near_misses():
    # not the trailing axis
    fuse(*layer_norm(axes="[1]", gshape="8"), "layer_norm", fires=0)
    # opset 16 has no LayerNormalization
    fuse(*layer_norm(opset=16), "layer_norm", fires=0)
    # the centred value has another user
    fuse(*layer_norm(extra="z = Neg (d)", outs="float[N,S,8] y, float[N,S,8] z"), "layer_norm",
         fires=0)
    # gamma varies along a non-normalized axis (broadcasting differs): the normalization fuses,
    # the scale and bias stay outside
    fuse(*layer_norm(gshape="3,1,8", xshape="N,3,8", outs="float[3,3,8] y")[:1], "layer_norm",
         dict(g=rand(3, 1, 8), b=rand(3, 1, 8), ax=np.array([-1])),
         ops={"LayerNormalization": 1, "Mul": 1, "Add": 1})
    # keepdims=0
    fuse(*layer_norm(keep=", keepdims = 0"), "layer_norm", fires=0)
    # the exponent is not 2
    t, i = layer_norm()
    fuse(t.replace("{2.0}", "{3.0}"), "layer_norm", i, fires=0)


def rms_norm(opset=23, axes="[-1]"):
    return f"""{header(opset)}
        g (float[N,S,8] x, float[8] g, int64[1] ax) => (float[N,S,8] y) {{
           two = Constant <value = float {{2.0}}> ()
           eps = Constant <value = float {{1e-6}}> ()
           sq = Pow (x, two)
           ms = ReduceMean (sq, ax)
           me = Add (ms, eps)
           sd = Sqrt (me)
           r = Reciprocal (sd)
           n = Mul (x, r)
           y = Mul (g, n)
        }}""", dict(g=rand(8, lo=0.5, hi=2), ax=np.array(eval(axes), np.int64))


def test_rms_norm():
    fuse(*rms_norm(), "rms_norm", ops={"RMSNormalization": 1, "ReduceMean": 0})
    fuse(*rms_norm(opset=22), "rms_norm", fires=0)
    fuse(*rms_norm(axes="[1]"), "rms_norm", fires=0)


# -- activations -----------------------------------------------------------------------------------

def gelu_erf(opset=20, order=0, sqrt2="1.4142135"):
    inner = f"""c = Constant <value = float {{{sqrt2}}}> ()
           one = Constant <value = float {{1.0}}> ()
           half = Constant <value = float {{0.5}}> ()
           s = Div (x, c)
           e = Erf (s)
           h = Add (one, e)"""
    tail = ["a = Mul (x, half)\n y = Mul (a, h)", "a = Mul (h, x)\n y = Mul (half, a)",
            "a = Mul (h, half)\n y = Mul (x, a)"][order]
    return f"""{header(opset)}
        g (float[N,16] x) => (float[N,16] y) {{
           {inner}
           {tail}
        }}"""


@pytest.mark.parametrize("order", [0, 1, 2])
def test_gelu_erf(order):
    fuse(gelu_erf(order=order), "gelu_erf", ops={"Gelu": 1, "Erf": 0, "Mul": 0})


def test_gelu_erf_near_misses():
    fuse(gelu_erf(opset=19), "gelu_erf", fires=0)
    fuse(gelu_erf(sqrt2="1.7320508"), "gelu_erf", fires=0)  # sqrt(3): another function
    fuse(gelu_erf().replace("y = Mul (a, h)", "y = Mul (a, h)\n z = Neg (e)")
         .replace("=> (float[N,16] y)", "=> (float[N,16] y, float[N,16] z)"), "gelu_erf",
         fires=0)  # erf output used elsewhere


def gelu_tanh(opset=20, k3="0.044715", cube="Pow (x, three)"):
    return f"""{header(opset)}
        g (float[N,16] x) => (float[N,16] y) {{
           half = Constant <value = float {{0.5}}> ()
           three = Constant <value = float {{3.0}}> ()
           c = Constant <value = float {{{k3}}}> ()
           k = Constant <value = float {{0.7978846}}> ()
           one = Constant <value = float {{1.0}}> ()
           a = Mul (x, half)
           p = {cube}
           q = Mul (p, c)
           r = Add (x, q)
           s = Mul (r, k)
           t = Tanh (s)
           h = Add (t, one)
           y = Mul (a, h)
        }}"""


def test_gelu_tanh():
    m = fuse(gelu_tanh(), "gelu_tanh", ops={"Gelu": 1, "Tanh": 0})
    assert next(n for n in m.graph.nodes if n.op_type == "Gelu").attr("approximate") == "tanh"
    fuse(gelu_tanh(cube="Mul (x, xx)\n xx = Mul (x, x)").replace(
        "p = Mul (x, xx)\n xx = Mul (x, x)", "xx = Mul (x, x)\n p = Mul (x, xx)"),
        "gelu_tanh", ops={"Gelu": 1})
    fuse(gelu_tanh(k3="0.05"), "gelu_tanh", fires=0)
    fuse(gelu_tanh(opset=18), "gelu_tanh", fires=0)


def hard(opset: int, body: str, outs="float[N,8] y"):
    return f"""{header(opset)}
        g (float[N,8] x) => ({outs}) {{
           three = Constant <value = float {{3.0}}> ()
           zero = Constant <value = float {{0.0}}> ()
           six = Constant <value = float {{6.0}}> ()
           {body}
        }}"""


def test_hard_sigmoid():
    body = "a = Add (x, three)\n c = Clip (a, zero, six)\n y = Div (c, six)"
    m = fuse(hard(13, body), "hard_sigmoid", ops={"HardSigmoid": 1, "Clip": 0},
             feeds={"x": np.linspace(-5, 5, 16, dtype=np.float32).reshape(2, 8)})
    hs = next(n for n in m.graph.nodes)
    assert abs(hs.attr("alpha") - 1 / 6) < 1e-6 and hs.attr("beta") == 0.5
    body = ("al = Constant <value = float {0.2}> ()\n one = Constant <value = float {1.0}> ()\n"
            "half = Constant <value = float {0.5}> ()\n m = Mul (al, x)\n a = Add (m, half)\n"
            "y = Clip (a, zero, one)")
    fuse(hard(13, body), "hard_sigmoid", ops={"HardSigmoid": 1})
    fuse(hard(13, body.replace("{1.0}", "{2.0}")), "hard_sigmoid", fires=0)  # clips to [0, 2]


def test_hard_swish():
    body = ("a = Add (x, three)\n c = Clip (a, zero, six)\n m = Mul (x, c)\n y = Div (m, six)")
    fuse(hard(14, body), "hard_swish", ops={"HardSwish": 1, "Clip": 0},
         feeds={"x": np.linspace(-5, 5, 16, dtype=np.float32).reshape(2, 8)})
    body = "h = HardSigmoid <alpha = 0.16666667, beta = 0.5> (x)\n y = Mul (h, x)"
    fuse(hard(14, body), "hard_swish", ops={"HardSwish": 1})
    fuse(hard(14, body.replace("0.16666667", "0.2")), "hard_swish", fires=0)
    fuse(hard(13, body), "hard_swish", fires=0)  # no HardSwish before opset 14: already final
    # Below opset 14 the clip form stays whole: OpenVINO fuses it into the Conv before it, and
    # runs x * HardSigmoid(x) 1.5-2x slower (benchmarks/RESULTS.md, issue 21).
    clip = "a = Add (x, three)\n c = Clip (a, zero, six)\n"
    for body in (clip + "m = Mul (x, c)\n y = Div (m, six)", clip + "d = Div (c, six)\n y = Mul (x, d)"):
        fuse(hard(13, body), "hard_swish", fires=0)
        fuse(hard(13, body), "hard_sigmoid", fires=0)
        fuse(hard(14, body), "hard_swish", ops={"HardSwish": 1, "Clip": 0})


def test_mish():
    body = "e = Exp (x)\n one = Constant <value = float {1.0}> ()\n a = Add (e, one)\n" \
           "l = Log (a)\n t = Tanh (l)\n y = Mul (x, t)"
    fuse(hard(18, body), "mish", ops={"Mish": 1, "Exp": 0})
    fuse(hard(18, "s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, x)"), "mish", ops={"Mish": 1})
    fuse(hard(17, "s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, x)"), "mish", fires=0)
    fuse(hard(18, "s = Softplus (x)\n t = Tanh (s)\n y = Mul (t, t)"), "mish", fires=0)


# -- attention -------------------------------------------------------------------------------------

def attention(opset=23, scale="Div (qk, c)", mask="", softmax_axis="-1", mdecl="",
              outs="float[B,2,S,8] y", extra="", kt="kt = Transpose <perm = [0, 1, 3, 2]> (k)"):
    masked = "sc" if not mask else "am"
    return f"""{header(opset)}
        g (float[B,2,S,8] q, float[B,2,S,8] k, float[B,2,S,8] v{mdecl}) => ({outs}) {{
           c = Constant <value = float {{2.828427}}> ()
           {kt}
           qk = MatMul (q, kt)
           sc = {scale}
           {mask}
           p = Softmax <axis = {softmax_axis}> ({masked})
           y = MatMul (p, v)
           {extra}
        }}"""


def test_attention_plain():
    m = fuse(attention(), "attention", ops={"Attention": 1, "Softmax": 0})
    att = next(n for n in m.graph.nodes if n.op_type == "Attention")
    assert abs(att.attr("scale") - 1 / 2.828427) < 1e-6


def test_attention_additive_mask_expanded():
    # a [B,1,1,S] padding mask broadcasts along Sq: onnxruntime needs it expanded
    fuse(attention(mask="am = Add (sc, mask)", mdecl=", float[B,1,1,S] mask"), "attention",
         ops={"Attention": 1, "Expand": 1})
    fuse(attention(mask="am = Add (mask, sc)", mdecl=", float[S,S] mask"), "attention",
         ops={"Attention": 1, "Expand": 0})


def test_attention_causal():
    mask = """ones = ConstantOfShape <value = float[1] {1.0}> (sh)
           tri = Trilu <upper = 0> (ones)
           zero = Constant <value = float {0.0}> ()
           cond = Equal (tri, zero)
           ninf = Constant <value = float {-inf}> ()
           am = Where (cond, ninf, sc)"""
    pre = """shq = Shape (q)
           idx = Constant <value = int64[1] {2}> ()
           s1 = Gather (shq, idx)
           sh = Concat <axis = 0> (s1, s1)"""
    m = fuse(attention(mask=pre + "\n" + mask), "attention",
             ops={"Attention": 1, "Trilu": 0, "Where": 0})
    att = next(n for n in m.graph.nodes if n.op_type == "Attention")
    assert att.attr("is_causal") == 1 and len(att.inputs) == 3
    # a boolean mask that is not provably causal is passed as attn_mask (True = attend); rows
    # masked entirely are NaN before and 0 after (documented), so the feeds keep one key per row
    s = 3
    feeds = {n: rand(2, 2, s, 8) for n in "qkv"}
    feeds["cond"] = np.triu(rng.uniform(size=(s, s)) > 0.5, 1)
    fuse(attention(mask="ninf = Constant <value = float {-inf}> ()\n am = Where (cond, ninf, sc)",
                   mdecl=", bool[S,S] cond"), "attention", ops={"Attention": 1, "Not": 1},
         feeds=feeds)


def test_attention_heads_fold_3d():
    text = f"""{header(23)}
        g (float[B,S,16] xq, float[B,S,16] xk, float[B,S,16] xv, int64[4] s4, int64[3] s3)
          => (float[B,S,16] y) {{
           q4 = Reshape (xq, s4)
           q = Transpose <perm = [0, 2, 1, 3]> (q4)
           k4 = Reshape (xk, s4)
           kt = Transpose <perm = [0, 2, 3, 1]> (k4)
           v4 = Reshape (xv, s4)
           v = Transpose <perm = [0, 2, 1, 3]> (v4)
           qk = MatMul (q, kt)
           c = Constant <value = float {{0.5}}> ()
           sc = Mul (qk, c)
           p = Softmax (sc)
           o = MatMul (p, v)
           ot = Transpose <perm = [0, 2, 1, 3]> (o)
           y = Reshape (ot, s3)
        }}"""
    m = build(text, dict(s4=np.array([0, 0, 4, 4]), s3=np.array([0, 0, 16])))
    before = snapshot(m)
    run_passes(m, "fuse")
    assert Counter(n.op_type for n in m.graph.nodes) == Counter({"Attention": 1})
    att = next(iter(m.graph.nodes))
    assert (att.attr("q_num_heads"), att.attr("kv_num_heads"), att.attr("scale")) == (4, 4, 0.5)
    assert_equivalent(before, m)


def test_attention_near_misses():
    fuse(attention(opset=22), "attention", fires=0)
    fuse(attention(softmax_axis="2"), "attention", fires=0)  # softmax over queries
    fuse(attention(extra="z = Neg (p)", outs="float[B,2,S,8] y, float[B,2,S,S] z"), "attention",
         fires=0)  # probabilities are an output too
    # a mask that broadcasts along the key axis
    fuse(attention(mask="am = Add (sc, mask)", mdecl=", float[B,1,S,1] mask"), "attention",
         fires=0)
    # Where selects a finite value, not -inf
    fuse(attention(mask="ninf = Constant <value = float {-10000.0}> ()\n"
                        "am = Where (cond, ninf, sc)", mdecl=", bool[S,S] cond"), "attention",
         fires=0)
    # K heads broadcast against Q heads
    fuse(attention().replace("float[B,2,S,8] k", "float[B,1,S,8] k"), "attention", fires=0)


# -- the pass: options, opset gating --------------------------------------------------------------

def test_fuse_pass_options_and_gating():
    text = gelu_erf(opset=17)
    m = build(text)
    report = run_passes(m, "fuse")
    assert not any(r.rewrites for r in report.records)  # Gelu is newer than opset 17
    m = build(text)
    before = snapshot(m)
    report = run_passes(m, "opset{target=20},fuse")
    assert [w.rule for r in report.records for w in r.rewrites] == ["fuse.gelu_erf"]
    assert m.opset("") == 20
    assert_equivalent(before, m)
    m = build(gelu_tanh() + "")
    report = run_passes(m, "fuse{max_rewrites=0}")
    assert not any(r.rewrites for r in report.records)
    from onnxopt.errors import PassError, UsageError

    with pytest.raises((UsageError, PassError), match="no rule"):
        run_passes(build(text), "fuse.nope")


# -- an intermediate value with another user stops every rule ------------------------------------

EXTRA_USER = [
    ("pad_conv", f"""{header(17)}
        g (float[N,3,8,8] x, int64[8] p, float[4,3,3,3] w)
          => (float[N,4,8,8] y, float[N,3,10,10] z) {{
           t = Pad (x, p)
           y = Conv (t, w)
           z = Relu (t)
        }}""", dict(p=np.array([0, 0, 1, 1, 0, 0, 1, 1]), w=rand(4, 3, 3, 3))),
    ("pad_pool", f"""{header(17)}
        g (float[N,3,8,8] x, int64[8] p) => (float[N,3,8,8] y, float[N,3,10,10] z) {{
           t = Pad (x, p)
           y = AveragePool <kernel_shape = [3, 3]> (t)
           z = Relu (t)
        }}""", dict(p=np.array([0, 0, 1, 1, 0, 0, 1, 1]))),
    ("transpose_binary", f"""{header(17)}
        g (float[2,3] a, float[2,3] b) => (float[3,2] y, float[3,2] z) {{
           ta = Transpose <perm = [1, 0]> (a)
           tb = Transpose <perm = [1, 0]> (b)
           y = Add (ta, tb)
           z = Relu (tb)
        }}""", None),
    ("transpose_elementwise", f"""{header(17)}
        g (float[2,3] x) => (float[2,3] y, float[3,2] z) {{
           a = Transpose <perm = [1, 0]> (x)
           r = Relu (a)
           y = Transpose <perm = [1, 0]> (r)
           z = Neg (r)
        }}""", None),
    ("reshape_chain", f"""{header(17)}
        g (float[N,6] x, int64[2] s) => (float[?,3] y, float[?] z) {{
           f = Constant <value = int64[1] {{-1}}> ()
           a = Reshape (x, f)
           y = Reshape (a, s)
           z = Relu (a)
        }}""", dict(s=np.array([-1, 3]))),
    ("squeeze_unsqueeze", f"""{header(13)}
        g (float[N,3] x, int64[1] ax) => (float[N,3] y, float[N,1,3] z) {{
           a = Unsqueeze (x, ax)
           y = Squeeze (a, ax)
           z = Relu (a)
        }}""", dict(ax=np.array([1]))),
    ("mul_chain", chain("Mul (x, a)", "Mul (t, b)").replace(
        "=> (float[N,3] y)", "=> (float[N,3] y, float[N,3] z)").replace(
        "y = Mul (t, b)", "y = Mul (t, b)\n z = Neg (t)"), dict(a=rand(3), b=rand(3))),
    ("rms_norm", rms_norm()[0].replace("=> (float[N,S,8] y)",
                                       "=> (float[N,S,8] y, float[N,S,1] z)").replace(
        "y = Mul (g, n)", "y = Mul (g, n)\n z = Neg (sd)"), rms_norm()[1]),
    ("attention_heads", f"""{header(23)}
        g (float[B,S,16] xq, float[B,S,16] xk, float[B,S,16] xv, int64[4] s4, int64[3] s3)
          => (float[B,S,16] y, float[B,S,4,4] z) {{
           q4 = Reshape (xq, s4)
           q = Transpose <perm = [0, 2, 1, 3]> (q4)
           k4 = Reshape (xk, s4)
           k = Transpose <perm = [0, 2, 1, 3]> (k4)
           v4 = Reshape (xv, s4)
           v = Transpose <perm = [0, 2, 1, 3]> (v4)
           o = Attention (q, k, v)
           ot = Transpose <perm = [0, 2, 1, 3]> (o)
           y = Reshape (ot, s3)
           z = Relu (ot)
        }}""", dict(s4=np.array([0, 0, 4, 4]), s3=np.array([0, 0, 16]))),
]


@pytest.mark.parametrize("rule,text,inits", EXTRA_USER, ids=[r for r, _, _ in EXTRA_USER])
def test_extra_user_blocks(rule, text, inits):
    fuse(text, rule, inits, fires=0)
    # and the same graph without the extra user does fuse
    text2 = re.sub(r",\s*\w+\[[^\]]*\] z\)", ")", text)
    text2 = "\n".join(ln for ln in text2.split("\n") if not ln.strip().startswith("z = "))
    m = build(text2, inits)
    report = run_passes(m, f"fuse.{rule}")
    assert any(w.rule == f"fuse.{rule}" for r in report.records for w in r.rewrites), rule
