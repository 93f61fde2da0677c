"""Symbolic shape inference: small models in textual syntax with exact expected shapes."""

from __future__ import annotations

import subprocess
import sys

import onnx
import onnxopt.passes.shapes.infer as shapes_infer
import pytest
from onnxopt.errors import ShapeError
from onnxopt.ir import SymDim, lower_model, print_model
from onnxopt.passes import PassContext
from onnxopt.passes.shapes import (
    ShapeAnalysis,
    dims_equal,
    infer_shapes,
    shape_of,
    sym_value,
)
from onnxopt.passes.shapes import dims as D
from onnxopt.testing import model_from_text, run_passes

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'



def infer(text: str, head: str = HEAD):
    m = model_from_text(head + text)
    return m, infer_shapes(m)


def values(m) -> dict:
    out = {}
    for g in m.graphs():
        for v in g.inputs:
            out[v.name] = v
        for n in g.nodes:
            for v in n.outputs:
                out[v.name] = v
    return out


def shp(m, name: str) -> str:
    s = shape_of(values(m)[name])
    return "None" if s is None else str(s)


# -- broadcasting ------------------------------------------------------------------------------


def test_broadcast_symbolic_and_static():
    m, info = infer("""g (float[batch,1,seq] a, float[seq] b, float[1,16] c, float[batch,seq] d,
          float[seq,batch] e) => (float[] y, float[] z, float[] w) {
        y = Add(a, b)
        z = Mul(d, c)
        w = Sub(d, e)
    }""")
    assert shp(m, "y") == "[batch,1,seq]"
    # seq against 16: the output is 16 whatever seq is (16 or 1), and the fact is recorded.
    assert shp(m, "z") == "[batch,16]"
    assert any("seq == 16 or seq == 1" in str(c) for c in info.constraints)
    # Two symbolic dims that are not provably equal: Max is exact for every valid binding.
    assert shp(m, "w") == "[Max(batch, seq),Max(batch, seq)]"
    assert not info.errors


def test_broadcast_static_mismatch_is_an_error_naming_the_node():
    _, info = infer("""g (float[2,3] a, float[4] b) => (float[] y) {
        y = Add(a, b)
    }""")
    assert info.errors and "Add" in str(info.errors[0]) and "3 vs 4" in str(info.errors[0])


# -- reshape and the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain ------------------------


def test_reshape_zero_and_minus_one_with_symbols():
    m, _ = infer("""g (float[batch,seq,768] x) => (float[] y, float[] z, float[] w) {
        t = Constant<value_ints=[0, 0, 12, -1]>()
        y = Reshape(x, t)
        u = Constant<value_ints=[-1, 64]>()
        z = Reshape(x, u)
        v = Constant<value_ints=[0, -1]>()
        w = Reshape(x, v)
    }""")
    assert shp(m, "y") == "[batch,seq,12,64]"
    assert shp(m, "z") == "[12*batch*seq,64]"
    assert shp(m, "w") == "[batch,768*seq]"


def test_shape_gather_unsqueeze_concat_reshape_chain():
    m, info = infer("""g (float[batch,seq,768] x) => (float[] y) {
        s = Shape(x)
        i0 = Constant<value_int=0>()
        i1 = Constant<value_int=1>()
        b = Gather<axis=0>(s, i0)
        q = Gather<axis=0>(s, i1)
        ax = Constant<value_ints=[0]>()
        bu = Unsqueeze(b, ax)
        qu = Unsqueeze(q, ax)
        c = Constant<value_ints=[12, 64]>()
        t = Concat<axis=0>(bu, qu, c)
        y = Reshape(x, t)
    }""")
    v = values(m)
    assert sym_value(v["s"]) == (SymDim("batch"), SymDim("seq"), 768)
    assert sym_value(v["b"]) == (SymDim("batch"),)
    assert sym_value(v["t"]) == (SymDim("batch"), SymDim("seq"), 12, 64)
    assert shp(m, "y") == "[batch,seq,12,64]"
    assert info.stats["known"] == len(v) - 1  # every node output (x is an input)


def test_shape_arithmetic_and_range():
    m, _ = infer("""g (float[batch,seq] x, float[batch,past] p) => (float[] y, int64[] r, bool[] e) {
        s = Shape(x)
        sp = Shape(p)
        one = Constant<value_int=1>()
        zero = Constant<value_int=0>()
        two = Constant<value_int=2>()
        n = Gather<axis=0>(s, one)
        k = Gather<axis=0>(sp, one)
        tot = Add(n, k)
        half = Div(tot, two)
        r = Range(zero, tot, one)
        e = Equal(n, n)
        st = Constant<value_ints=[0]>()
        ax1 = Constant<value_ints=[1]>()
        a0 = Constant<value_ints=[0]>()
        hu = Unsqueeze(half, a0)
        y = Slice(x, st, hu, ax1)
    }""")
    v = values(m)
    assert sym_value(v["tot"]) == (SymDim("past + seq"),)
    assert str(sym_value(v["half"])[0]) == "floor(past/2 + seq/2)"
    assert shp(m, "r") == "[past + seq]"
    assert sym_value(v["e"]) is None and v["e"].type.dtype == 9  # bool: kept internal


def test_where_on_shape_tensors():
    m, _ = infer("""g (float[batch,seq] x) => (float[] y) {
        s = Shape(x)
        one = Constant<value_ints=[1, 1]>()
        c = Equal(s, one)
        neg = Constant<value_ints=[-1, -1]>()
        t = Where(c, neg, s)
        y = Reshape(x, t)
    }""")
    v = values(m)
    # Equal(batch, 1) is undecided, so Where's elements are too: the rank is still known.
    assert shp(m, "y") == "[?,?]"
    m, _ = infer("""g (float[batch,16] x) => (float[] y) {
        s = Shape(x)
        ones = Constant<value_ints=[0, 16]>()
        c = Equal(s, ones)
        neg = Constant<value_ints=[-1, 4]>()
        t = Where(c, neg, s)
        y = Reshape(x, t)
    }""")
    v = values(m)
    assert sym_value(v["t"]) == (SymDim("batch"), 4)
    assert shp(m, "y") == "[batch,4]"


# -- convolution and pooling --------------------------------------------------------------------------


def test_conv_and_pool_floor_expressions():
    m, _ = infer("""g (float[N,3,H,W] x, float[8,3,3,3] w, float[8,8,3,3] w2) => (float[] a, float[] b, float[] c,
                                                                    float[] d) {
        a = Conv<strides=[2,2], pads=[1,1,1,1]>(x, w)
        b = Conv<strides=[2,2], pads=[1,1,1,1]>(a, w2)
        c = MaxPool<kernel_shape=[3,3], strides=[2,2], ceil_mode=1>(x)
        d = AveragePool<kernel_shape=[2,2], strides=[2,2], auto_pad="SAME_UPPER">(x)
    }""")
    # floor((H + 2 - 3)/2) + 1, canonical: the integer part pulled out of the floor.
    assert shp(m, "a") == "[N,8,floor(H/2 + 1/2),floor(W/2 + 1/2)]"
    # Nested floors are flattened: floor((floor(H/2 + 1/2) - 1)/2) + 1 is floor(H/4 + 3/4).
    assert shp(m, "b") == "[N,8,floor(H/4 + 3/4),floor(W/4 + 3/4)]"
    # ceil_mode: ceil((H-3)/2) + 1, clipped so that the last window starts inside the input.
    assert shp(m, "c") == "[N,3,floor(H/2),floor(W/2)]"
    assert shp(m, "d") == "[N,3,floor(H/2 + 1/2),floor(W/2 + 1/2)]"
    assert "ceiling" not in print_model(m)


def test_conv_static_exact():
    m, _ = infer("""g (float[1,3,7,7] x, float[4,3,3,3] w, float[3,2,3,3] wt) => (float[] a, float[] b, float[] c) {
        a = Conv<strides=[2,2]>(x, w)
        b = MaxPool<kernel_shape=[2,2], strides=[2,2], ceil_mode=1>(x)
        c = ConvTranspose<strides=[2,2], pads=[1,1,1,1], output_padding=[1,1]>(x, wt)
    }""")
    assert shp(m, "a") == "[1,4,3,3]"
    assert shp(m, "b") == "[1,3,4,4]"
    assert shp(m, "c") == "[1,2,14,14]"


# -- slice --------------------------------------------------------------------------------------------


def test_slice_clamping_and_symbolic_ends():
    m, _ = infer("""g (float[seq,8] x, float[n] y) => (float[] a, float[] b, float[] c, float[] d) {
        s3 = Constant<value_ints=[-3]>()
        big = Constant<value_ints=[9223372036854775807]>()
        a = Slice(x, s3, big)
        z = Constant<value_ints=[0]>()
        ny = Shape(y)
        b = Slice(x, z, ny)
        ax1 = Constant<value_ints=[1]>()
        two = Constant<value_ints=[2]>()
        hundred = Constant<value_ints=[100]>()
        c = Slice(x, two, hundred, ax1)
        st = Constant<value_ints=[-1]>()
        en = Constant<value_ints=[-9223372036854775807]>()
        d = Slice(x, st, en, z, st)
    }""")
    assert shp(m, "a") == "[Min(3, seq),8]"
    assert shp(m, "b") == "[Min(n, seq),8]"
    assert shp(m, "c") == "[seq,6]"
    assert shp(m, "d") == "[seq,8]"


# -- data-dependent and unnamed dims -------------------------------------------------------------------


def test_fresh_symbols_for_unnamed_and_data_dependent_dims():
    m, info = infer("""g (float[?,4] x) => (int64[] y, float[] z) {
        y = NonZero<>(x)
        z = Unique(x)
    }""".replace("NonZero<>", "NonZero"))
    v = values(m)
    assert str(shape_of(v["x"])) == "[unk_x_0,4]"
    nz = next(iter(m.graph.nodes)).outputs[0]
    s = shape_of(nz)
    assert s[0] == 2 and isinstance(s[1], SymDim) and s[1].text.startswith("nz_")
    assert s[1].text in info.symbols and "data-dependent" in info.symbols[s[1].text]
    assert shape_of(v["z"])[0].text.startswith("uniq_")


def test_canonical_dims():
    seq = SymDim("seq")
    assert D.truediv(D.mul(seq, 4), 4) == seq
    assert dims_equal(SymDim("seq*4/4"), seq)
    assert dims_equal(SymDim("2*(seq+1)"), SymDim("2*seq + 2"))
    assert not dims_equal(seq, 16) and not dims_equal(seq, None) and not dims_equal(None, None)
    assert D.ceildiv(SymDim("H"), 2) == SymDim("floor(H/2 + 1/2)")
    assert D.evaluate(D.ceildiv(SymDim("H"), 2), {"H": 7}) == 4


# -- contradictions ----------------------------------------------------------------------------------------


def test_matmul_inner_dims_disagree_pass_reports_and_leaves_model():
    text = HEAD + """g (float[2,3] a, float[4,5] b) => (float[] y) {
        y = MatMul(a, b)
    }"""
    m = model_from_text(text)
    before = print_model(m)
    info = infer_shapes(model_from_text(text))
    assert "3 != 4" in str(info.errors[0])
    m2 = model_from_text(text)
    with pytest.raises(Exception) as e:
        run_passes(m2, "shapes")
    msg = str(e.value)
    assert "MatMul" in msg and "3 != 4" in msg and "\n" not in msg
    assert print_model(m2) == before
    with pytest.raises(ShapeError):
        from onnxopt.passes.shapes import ShapesPass

        ShapesPass().run(m2, PassContext(m2))
    assert print_model(m2) == before


def test_symbolic_inner_dim_is_a_constraint_not_an_error():
    m, info = infer("""g (float[b,k] a, float[16,5] w) => (float[] y) {
        y = MatMul(a, w)
    }""")
    assert not info.errors
    assert shp(m, "y") == "[b,5]"
    assert [str(c).split(" (")[0] for c in info.constraints] == ["k == 16"]


def test_declared_shapes_are_hints():
    m, info = infer("""g (float[b,4] x) => (float[1,7] y) {
        y = Relu(x)
    }""")
    # The declaration is wrong: what the graph proves wins, the conflict is reported.
    assert shp(m, "y") == "[b,4]"
    assert info.hint_conflicts and "y" in str(info.hint_conflicts[0])
    assert not info.errors


def test_unknown_op_is_left_unknown_and_reported():
    m, info = infer("""g (float[b,4] x) => (float[] y) {
        y = foo.Bar(x)
    }""", head='<ir_version: 8, opset_import: ["" : 17, "foo" : 1]>\n')
    assert shp(m, "y") == "None"
    assert any("no shape function for foo::Bar" in str(u) for u in info.unknown)


# -- control flow and functions --------------------------------------------------------------------------


def test_if_branches_join_with_fresh_symbols_and_loop_trip_count():
    m, _ = infer("""g (bool c, float[n] x) => (float[] y, int64[] w) {
        y = If(c) <then_branch = t () => (float[n] a) { a = Identity(x) },
                   else_branch = e () => (float[n] b) { k = Constant<value_ints=[2]>()
                                                        b = Tile(x, k) }>
        m = Constant<value_int=5>()
        w = Loop(m, "") <body = body (int64 i, bool cin) => (bool[] cout, int64[] sq) {
            cout = Identity(cin)
            sq = Mul(i, i)
        }>
    }""")
    v = values(m)
    s = shape_of(v["y"])
    assert len(s) == 1 and s[0].text.startswith("if_")
    # The else branch proves b is [2*n] even though the branch declares [n]: a warning-free hint.
    assert shp(m, "b") == "[2*n]"
    assert shp(m, "w") == "[5]"


def test_function_call_is_inferred_per_call_site():
    m, _ = infer("""g (float[b,8] x, float[3] y) => (float[] u, float[] v) {
        u = local.Twice(x)
        v = local.Twice(y)
    }
    <domain: "local", opset_import: ["" : 17]>
    Twice (a) => (r) {
        r = Concat<axis=0>(a, a)
    }""", head='<ir_version: 8, opset_import: ["" : 17, "local" : 1]>\n')
    assert shp(m, "u") == "[2*b,8]"
    assert shp(m, "v") == "[6]"


def test_function_attribute_references_resolve_per_call():
    m, info = infer("""g (float[b,8] x) => (float[] u, float[] v) {
        u = local.Twice<ax = 1>(x)
        v = local.Twice(x)
    }
    <domain: "local", opset_import: ["" : 17]>
    Twice <ax: int = 0> (a) => (r) {
        r = Concat<axis: int = @ax>(a, a)
    }""", head='<ir_version: 8, opset_import: ["" : 17, "local" : 1]>\n')
    assert shp(m, "u") == "[b,16]"
    assert shp(m, "v") == "[2*b,8]"
    assert not info.unknown
    # The body is annotated with what both calls agree on.
    body = next(iter(m.functions.values())).graph
    assert str(shape_of(body.outputs[0])) == "[?,?]"


# -- the pass and the API -----------------------------------------------------------------------------------


def test_pass_writes_value_info_with_expressions_and_strip_removes_them():
    m = model_from_text(HEAD + """g (float[N,3,H,W] x, float[8,3,3,3] w) => (float[] y) {
        c = Conv<strides=[2,2], pads=[1,1,1,1]>(x, w)
        y = Relu(c)
    }""")
    run_passes(m, "shapes")
    vi = {x.name: x for x in lower_model(m).graph.value_info}
    dims = [d.dim_param or d.dim_value for d in vi["c"].type.tensor_type.shape.dim]
    assert dims == ["N", 8, "floor(H/2 + 1/2)", "floor(W/2 + 1/2)"]
    # Nothing changes on a second run.
    rep = run_passes(m, "shapes")
    assert not rep.records[0].modified
    run_passes(m, "shapes{strip=true}")
    assert not lower_model(m).graph.value_info
    out = lower_model(m).graph.output[0]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim][:2] == ["N", 8]


def test_pass_is_idempotent_across_save_and_load():
    m = model_from_text(HEAD + """g (float[batch,seq,16] x) => (float[] y) {
        s = Shape(x)
        k = Constant<value_ints=[0, 0, 2, 8]>()
        r = Reshape(x, k)
        y = Transpose<perm=[0, 2, 1, 3]>(r)
    }""")
    run_passes(m, "shapes")
    from onnxopt.io import load

    m2 = load(lower_model(m))
    assert not run_passes(m2, "shapes").records[0].modified
    assert str(shape_of(m2.graph.outputs[0])) == "[batch,2,seq,8]"


def test_strip_restores_unnamed_input_dims():
    m = model_from_text(HEAD + """g (float[?,4] x) => (float[] y) { y = Relu(x) }""")
    run_passes(m, "shapes")
    assert str(shape_of(m.graph.inputs[0])) == "[unk_x_0,4]"
    run_passes(m, "shapes{strip=true}")
    assert str(shape_of(m.graph.inputs[0])) == "[?,4]"


def test_analysis_through_the_context_is_cached():
    m = model_from_text(HEAD + """g (float[b,4] x) => (float[] y) { y = Relu(x) }""")
    ctx = PassContext(m)
    info = ctx.analysis(ShapeAnalysis)
    assert ctx.analysis(ShapeAnalysis) is info
    assert infer_shapes(m, ctx) is info
    assert str(shape_of(next(iter(m.graph.nodes)).outputs[0])) == "[b,4]"


def test_symbolic_dims_round_trip_through_onnxruntime():
    """The annotated model loads in onnxruntime (value_info with expression dim_params)."""
    import numpy as np
    from onnxopt.testing import run_model

    m = model_from_text(HEAD + """g (float[N,3,H,W] x, float[8,3,3,3] w) => (float[] y) {
        c = Conv<strides=[2,2], pads=[1,1,1,1]>(x, w)
        s = Shape(c)
        k = Constant<value_ints=[0, -1]>()
        y = Reshape(c, k)
    }""")
    run_passes(m, "shapes")
    assert str(shape_of(m.graph.outputs[0])) == "[N,8*floor(H/2 + 1/2)*floor(W/2 + 1/2)]"
    x = np.zeros((2, 3, 9, 6), np.float32)
    w = np.zeros((8, 3, 3, 3), np.float32)
    (y,) = run_model(lower_model(m), {"x": x, "w": w})
    got = D.evaluate(shape_of(m.graph.outputs[0])[1], {"N": 2, "H": 9, "W": 6})
    assert y.shape == (2, got)


def test_import_does_not_import_sympy():
    code = ("import sys, onnxopt.passes.shapes as s; assert 'sympy' not in sys.modules; "
            "from onnxopt.testing import model_from_text; "
            "m = model_from_text('<ir_version: 8, opset_import: [\"\" : 17]> "
            "g (float[b,4] x) => (float[] y) { y = Relu(x) }'); s.infer_shapes(m); "
            "assert 'sympy' not in sys.modules, 'lone symbols need no sympy'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resize_scales_and_sizes():
    m, _ = infer("""g (float[N,C,H,W] x) => (float[] a, float[] b) {
        sc = Constant<value_floats=[1.0, 1.0, 2.0, 0.5]>()
        a = Resize(x, , sc)
        sz = Constant<value_ints=[1, 3, 32, 32]>()
        b = Resize(x, , , sz)
    }""")
    assert shp(m, "a") == "[N,C,2*H,floor(W/2)]"
    assert shp(m, "b") == "[1,3,32,32]"


def test_onnx_checker_accepts_annotated_model():
    m = model_from_text(HEAD + """g (float[b,s,8] x) => (float[] y) {
        t = Transpose<perm=[0,2,1]>(x)
        y = MatMul(x, t)
    }""")
    run_passes(m, "shapes")
    onnx.checker.check_model(lower_model(m), full_check=True)
    assert str(shape_of(m.graph.outputs[0])) == "[b,s,s]"


# -- com.microsoft ops against onnxruntime ----------------------------------------------------------


def _ms_cases():
    import numpy as np
    from onnx import TensorProto as T

    rng = np.random.default_rng(0)

    def f(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    I32, U8 = T.INT32, T.UINT8
    return {
        "FusedMatMul": ([("a", ["b", "m", 8]), ("c", ["b", 6, 8])], {'transB': 1},
                        {'a': f(2, 5, 8), 'c': f(2, 6, 8)}, 1),
        "Gelu": ([("a", ["b", 8])], {}, {'a': f(3, 8)}, 1),
        "FastGelu": ([("a", ["b", "s", 8]), ("bias", [8])], {}, {'a': f(2, 3, 8), 'bias': f(8)}, 1),
        "BiasGelu": ([("a", ["b", "s", 8]), ("bias", [8])], {}, {'a': f(2, 3, 8), 'bias': f(8)}, 1),
        "QuickGelu": ([("a", ["b", 8])], {}, {'a': f(3, 8)}, 1),
        "SkipLayerNormalization": (
            [("a", ["b", "s", 8]), ("skip", ["b", "s", 8]), ("g", [8]), ("beta", [8])], {},
            {'a': f(2, 3, 8), 'skip': f(2, 3, 8), 'g': f(8), 'beta': f(8)}, 4),
        "SkipSimplifiedLayerNormalization": (
            [("a", ["b", "s", 8]), ("skip", ["b", "s", 8]), ("g", [8])], {},
            {'a': f(2, 3, 8), 'skip': f(2, 3, 8), 'g': f(8)}, 4),
        "Attention": ([("x", ["b", "s", 8]), ("w", [8, 24]), ("bias", [24])], {'num_heads': 2},
                      {'x': f(2, 3, 8), 'w': f(8, 24), 'bias': f(24)}, 2),
        "MultiHeadAttention": ([("q", ["b", "s", 8]), ("k", ["b", "l", 8]), ("v", ["b", "l", 8])],
                               {'num_heads': 2}, {'q': f(2, 3, 8), 'k': f(2, 5, 8), 'v': f(2, 5, 8)},
                               1),
        "RotaryEmbedding": ([("x", ["b", "s", 8]), ("pos", ["b", "s"], T.INT64), ("cos", [16, 2]),
                             ("sin", [16, 2])], {},
                            {'x': f(2, 3, 8), 'pos': np.zeros((2, 3), np.int64), 'cos': f(16, 2),
                                 'sin': f(16, 2)}, 1),
        "FusedConv": ([("x", ["n", 3, "H", "W"]), ("w", [4, 3, 3, 3])],
                      {'strides': [2, 2], 'pads': [1, 1, 1, 1], 'activation': "Relu"},
                      {'x': f(1, 3, 9, 7), 'w': f(4, 3, 3, 3)}, 1),
        "EmbedLayerNormalization": (
            [("ids", ["b", "s"], I32), ("seg", ["b", "s"], I32), ("we", [10, 8]), ("pe", [16, 8]),
             ("se", [2, 8]), ("g", [8]), ("beta", [8])], {},
            {'ids': np.zeros((2, 3), np.int32), 'seg': np.zeros((2, 3), np.int32), 'we': f(10, 8),
                 'pe': f(16, 8), 'se': f(2, 8), 'g': f(8), 'beta': f(8)}, 2),
        "QLinearAdd": ([("a", ["b", 8], U8), ("as", []), ("az", [], U8), ("c", [8], U8),
                        ("cs", []), ("cz", [], U8), ("ys", []), ("yz", [], U8)], {},
                       {"a": np.zeros((3, 8), np.uint8), "as": np.float32(0.1),
                        "az": np.uint8(0), "c": np.zeros(8, np.uint8), "cs": np.float32(0.1),
                        "cz": np.uint8(0), "ys": np.float32(0.1), "yz": np.uint8(0)}, 1),
        "MatMulNBits": ([("a", ["b", 16]), ("bq", [8, 1, 8], U8), ("sc", [8])],
                        {'K': 16, 'N': 8, 'bits': 4, 'block_size': 16},
                        {'a': f(3, 16), 'bq': np.zeros((8, 1, 8), np.uint8), 'sc': f(8)}, 1),
    }


@pytest.mark.parametrize("op", sorted(_ms_cases()))
def test_com_microsoft_ops_match_onnxruntime(op: str):
    import numpy as np
    from onnx import TensorProto
    from onnx import helper as h
    from onnxopt.io import load
    from onnxopt.passes.shapes.check import compare, input_binding, runtime_shapes

    ins, attrs, feeds, nout = _ms_cases()[op]
    vis = [h.make_tensor_value_info(i[0], i[2] if len(i) > 2 else TensorProto.FLOAT, i[1])
           for i in ins]
    outs = [f"o{i}" for i in range(nout)]
    node = h.make_node(op, [i[0] for i in ins], outs, domain="com.microsoft", **attrs)
    g = h.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in outs])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    actual = runtime_shapes(m, feeds, expose=False)
    ir = load(m)
    infer_shapes(ir)
    r = compare(ir, actual, input_binding(ir, feeds), values=list(ir.graph.outputs))
    assert not r.wrong and r.known == nout, (r.wrong, [v.type for v in ir.graph.outputs], actual)


def test_declared_value_info_is_kept_but_not_propagated():
    m, info = infer("""g (float[b,4] x) => (float[] y) <float[b,4] t> {
        t = foo.Bar(x)
        y = Relu(t)
    }""", head='<ir_version: 8, opset_import: ["" : 17, "foo" : 1]>\n')
    t, y = values(m)["t"], values(m)["y"]
    # The declaration stays on the value (nothing gets less precise) but it is no proof:
    assert str(t.type.shape) == "[b,4]" and t.meta["shapes_hint_dims"] == "*"
    assert shape_of(t) is None
    # ... and nothing downstream is derived from it; the declared dtype does flow.
    assert shape_of(y) is None and y.type.dtype == 1


def test_dim_algebra_agrees_with_integer_arithmetic():
    """Random conv/pool/reshape-like chains over two symbols, evaluated at many bindings."""
    import random

    rng = random.Random(0)
    H, W = SymDim("H"), SymDim("W")
    for _ in range(40):
        d, ref = H, (lambda b: b["H"])
        for _ in range(rng.randint(1, 4)):
            k, s, p = rng.choice([1, 3, 5]), rng.choice([1, 2, 3]), rng.choice([0, 1, 2])
            op = rng.choice(["conv", "ceil", "mul", "div"])
            if op == "conv":
                d = D.add(D.floordiv(D.sub(D.add(d, 2 * p), k), s), 1)
                ref = (lambda f, k, s, p: lambda b: (f(b) + 2 * p - k) // s + 1)(ref, k, s, p)
            elif op == "ceil":
                d = D.ceildiv(d, s)
                ref = (lambda f, s: lambda b: -(-f(b) // s))(ref, s)
            elif op == "mul":
                d = D.mul(d, W)
                ref = (lambda f: lambda b: f(b) * b["W"])(ref)
            else:
                d = D.floordiv(d, s)
                ref = (lambda f, s: lambda b: f(b) // s)(ref, s)
        for h in range(20, 80, 7):
            for w in (1, 2, 5):
                b = {"H": h, "W": w}
                assert D.evaluate(d, b) == ref(b), (d, b)
        if isinstance(d, SymDim):
            assert str(d.expr) == d.text  # the canonical text is sympy's own


# -- the analysis records facts; updates are incremental ------------------------------------------


def test_analysis_records_facts_and_leaves_types_alone():
    from onnxopt.passes.manager import fingerprint

    m = model_from_text(HEAD + """g (float[b,4] x) => (float[] y) {
        r = Relu(x)
        y = Neg(r)
    }""")
    before = print_model(m)
    fp = fingerprint(m)
    PassContext(m).analysis(ShapeAnalysis)
    r = next(iter(m.graph.nodes)).outputs[0]
    assert r.type is None and str(shape_of(r)) == "[b,4]"
    assert print_model(m) == before and fingerprint(m) == fp


def test_update_infers_only_new_and_rewired_nodes():
    from onnxopt.ir import Builder

    m = model_from_text(HEAD + """g (float[b,4] x) => (float[] y) {
        r = Relu(x)
        s = Sigmoid(r)
        y = Neg(s)
    }""")
    ctx = PassContext(m)
    info = ctx.analysis(ShapeAnalysis)
    relu, sig, neg = list(m.graph.nodes)
    t = Builder(m.graph, before=sig).op("Abs", [relu.outputs[0]])
    sig.set_input(0, t)  # every value keeps its shape: the pass preserves "shapes"
    ctx.invalidate(frozenset({"shapes"}))
    assert ctx.analysis(ShapeAnalysis) is info
    assert str(shape_of(t)) == "[b,4]" and t.type is None
    # The new Abs and the rewired Sigmoid are inferred; Neg, whose input's fact did not change,
    # is not visited.
    assert info.stats["updated_nodes"] == 2


def test_not_preserving_drops_the_facts():
    m = model_from_text(HEAD + """g (float[b,4] x) => (float[] y) { y = Relu(x) }""")
    ctx = PassContext(m)
    ctx.analysis(ShapeAnalysis)
    y = m.graph.outputs[0]
    assert str(shape_of(y)) == "[b,4]"
    ctx.invalidate(frozenset())
    assert shape_of(y) is None  # back to the declaration (rank unknown)
    assert str(shape_of(ctx.analysis(ShapeAnalysis) and y)) == "[b,4]"


def test_pipeline_facts_equal_a_fresh_inference():
    """After the default pipeline (one whole inference, then updates), every fact equals what a
    whole inference of the result proves."""
    import importlib.util
    from pathlib import Path

    from onnxopt.ir import lift_model
    from onnxopt.passes import PassManager
    from onnxopt.passes.shapes.infer import proven_type

    spec = importlib.util.spec_from_file_location(
        "synth", Path(__file__).resolve().parent.parent / "benchmarks" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    m = lift_model(synth.build(1200))
    ctx = PassContext(m)
    PassManager("default").run(m, ctx)
    info = ctx.analysis(ShapeAnalysis)
    assert info.stats.get("updated_nodes", 0) > 0
    values = [v for n in m.graph.nodes for v in n.outputs]
    incremental = [(str(proven_type(v)), sym_value(v)) for v in values]
    shapes_infer.run_inference(m)
    fresh = [(str(proven_type(v)), sym_value(v)) for v in values]
    assert incremental == fresh


def test_expand_and_tile_know_their_values_while_the_result_is_small():
    m, _ = infer("""g (float[batch] x) => (float[] y) {
        s = Shape(x)
        two = Constant<value_ints=[2]>()
        e = Expand(s, two)
        t = Tile(s, two)
        huge = Constant<value_ints=[1000000, 1000000, 1000]>()
        h = Expand(s, huge)
        y = Reshape(x, s)
    }""")
    v = values(m)
    assert sym_value(v["e"]) == (SymDim("batch"), SymDim("batch"))
    assert sym_value(v["t"]) == (SymDim("batch"), SymDim("batch"))
    # 1e15 elements: the shape is known, the values are not even counted out
    assert sym_value(v["h"]) is None and shp(m, "h") == "[1000000,1000000,1000]"
