"""simplify: each identity fires where type and shape provably stay, and not one step beyond.

Positive cases sit beside near-misses (a broadcast that grows x, a dtype that differs, axes that
do not cancel...). Every result runs in onnxruntime against the original.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxopt.passes import PassContext, PassManager
from onnxopt.testing import assert_equivalent, model_from_text

H = '<ir_version: 8, opset_import: ["" : 17]>\n'
H11 = '<ir_version: 7, opset_import: ["" : 11]>\n'


def simplify(src: str, pipeline: str = "simplify", feeds=None):
    m = model_from_text(src)
    rep = PassManager(pipeline, verify_each=True, check_modified=True).run(m, PassContext(m))
    assert_equivalent(src, m, feeds=feeds)
    return m, rep.records[0].stats


def ops(m) -> list[str]:
    return [n.op_type for n in m.graph.nodes]


def one_op(op: str, a: str, b: str, out: str = "float[N,4]", x: str = "float[N,4]") -> str:
    """y = Relu(op(a, b)) over input x; a/b name x or the constant c."""
    return H + f"""g ({x} x) => ({out} y) <{{c}}> {{
           t = {op} ({a}, {b})
           y = Relu (t)
        }}"""


@pytest.mark.parametrize("op, a, b, const", [
    ("Mul", "x", "c", "float c = {1.0}"),
    ("Mul", "c", "x", "float[4] c = {1.0, 1.0, 1.0, 1.0}"),
    ("Add", "x", "c", "float[1,4] c = {0.0, 0.0, 0.0, 0.0}"),
    ("Add", "c", "x", "float c = {0.0}"),
    ("Sub", "x", "c", "float c = {0.0}"),
    ("Div", "x", "c", "float[1] c = {1.0}"),
    ("Pow", "x", "c", "float c = {1.0}"),
    ("Pow", "x", "c", "int64 c = {1}"),
])
def test_neutral_operands_go(op, a, b, const):
    m, st = simplify(one_op(op, a, b).replace("{c}", const))
    assert ops(m) == ["Relu"]
    assert sum(st.values()) == 1


@pytest.mark.parametrize("op, a, b, const, x, feed, why", [
    ("Mul", "x", "c", "float[2,4] c = {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0}", "float[N,4]",
     (1, 4), "N may be 1: the constant broadcasts x to [2,4]"),
    ("Mul", "x", "c", "float[4] c = {1.0, 1.0, 1.0, 1.0}", "float[N,1]", (3, 1), "grows dim 1"),
    ("Mul", "x", "c", "float[1] c = {1.0}", "float", (), "grows a scalar to [1]"),
    ("Mul", "x", "c", "float[4] c = {1.0, 2.0, 1.0, 1.0}", "float[N,4]", (3, 4), "not all ones"),
    ("Sub", "c", "x", "float c = {0.0}", "float[N,4]", (3, 4), "0 - x is not x"),
    ("Div", "c", "x", "float c = {1.0}", "float[N,4]", (3, 4), "1 / x is not x"),
    ("Pow", "x", "c", "float c = {2.0}", "float[N,4]", (3, 4), "not one"),
])
def test_near_misses_stay(op, a, b, const, x, feed, why):
    out = "float[?,?]" if x != "float" else "float[?]"
    src = one_op(op, a, b, out=out, x=x).replace("{c}", const)
    m, st = simplify(src, feeds={"x": np.ones(feed, np.float32)})
    assert ops(m) == [op, "Relu"], why
    assert not st


def test_add_zero_with_a_different_dtype_does_not_fire():
    # An Add of float and double is invalid for onnxruntime; the rule must refuse it anyway.
    m = model_from_text(H + """g (float[4] x) => (float[4] y) <double c = {0.0}> {
           t = Add (x, c)
           y = Relu (t)
        }""")
    rep = PassManager("simplify").run(m, PassContext(m))
    assert ops(m) == ["Add", "Relu"]
    assert not rep.records[0].stats


def test_signed_zeros_option_keeps_x_plus_zero_but_not_x_minus_zero():
    src = H + """g (float[4] x) => (float[4] y, float[4] z) <float c = {0.0}> {
           t = Add (x, c)
           y = Relu (t)
           u = Sub (x, c)
           z = Relu (u)
        }"""
    m, st = simplify(src, "simplify{signed_zeros=true}")
    assert ops(m) == ["Add", "Relu", "Relu"]
    assert st == {"simplify.sub_zero": 1}
    m, st = simplify(src)
    assert ops(m) == ["Relu", "Relu"]


def test_graph_output_keeps_its_name_or_the_rule_refuses():
    m, _ = simplify(H + """g (float[4] x) => (float[4] y) <float c = {1.0}> {
           r = Relu (x)
           y = Mul (r, c)
        }""")
    assert ops(m) == ["Relu"] and m.graph.outputs[0].name == "y"
    m, st = simplify(H + """g (float[4] x) => (float[4] y) <float c = {1.0}> {
           y = Mul (x, c)
        }""")
    assert ops(m) == ["Mul"]  # x is a graph input: it cannot become the output `y`


# -- shape ops ------------------------------------------------------------------------------------

def test_reshape_to_own_shape_goes_symbolic_dims_included():
    m, st = simplify(H + """g (float[B,S,64] x) => (float[B,S,64] y) <int64[3] s = {0, 0, 64},
            int64[1] i0 = {0}, int64[1] i1 = {1}, int64[1] k = {64}> {
           t = Reshape (x, s)
           sh = Shape (t)
           b = Gather (sh, i0)
           q = Gather (sh, i1)
           s2 = Concat <axis = 0> (b, q, k)
           t2 = Reshape (t, s2)
           y = Relu (t2)
        }""", "simplify,dce")
    assert ops(m) == ["Relu"]
    assert st["simplify.reshape_same"] == 2


def test_reshape_that_changes_the_shape_stays():
    m, st = simplify(H + """g (float[B,S,64] x) => (float[B,S,4,16] y) <int64[4] s = {0, 0, 4,
            16}> {
           t = Reshape (x, s)
           y = Relu (t)
        }""")
    assert ops(m) == ["Reshape", "Relu"] and not st


def _target_chain(x: str, attrs: str = "", header: str = H) -> str:
    """y = Reshape(x, [x.dim0, x.dim1, 4, 16]), the target computed by Shape/Gather/Concat."""
    return header + f"""g ({x} x) => (float[B,S,4,16] y) <int64[1] i0 = {{0}},
            int64[1] i1 = {{1}}, int64[2] tail = {{4, 16}}> {{
           s = Shape (x)
           b = Gather (s, i0)
           q = Gather (s, i1)
           t = Concat <axis = 0> (b, q, tail)
           y = Reshape {attrs} (x, t)
        }}"""


def test_reshape_target_in_terms_of_the_input_dims_becomes_a_constant():
    m, st = simplify(_target_chain("float[B,S,64]"), "simplify,dce")
    assert st["simplify.reshape_target"] == 1
    assert ops(m) == ["Reshape"]  # the Shape/Gather/Concat chain went dead
    np.testing.assert_array_equal(m.graph.nodes.first().inputs[1].const_value.numpy(),
                                  [0, 0, 4, 16])


def test_reshape_target_with_allowzero_says_minus_one_for_the_one_unknown_dim():
    h14 = '<ir_version: 8, opset_import: ["" : 14]>\n'
    m, st = simplify(_target_chain("float[2,S,64]", "<allowzero = 1>", h14), "simplify,dce")
    assert st["simplify.reshape_target"] == 1  # allowzero: a 0 would mean a 0 dim, not a copy
    np.testing.assert_array_equal(m.graph.nodes.first().inputs[1].const_value.numpy(),
                                  [2, -1, 4, 16])
    m, st = simplify(_target_chain("float[B,S,64]", "<allowzero = 1>", h14),
                     feeds={"x": np.ones((2, 3, 64), np.float32)})
    assert not st  # B and S: two unknowns, and no 0 may copy a dim


def test_reshape_target_with_an_unrelated_symbol_stays():
    m, st = simplify(H + """
        g (float[B,S,64] x, float[K] k) => (float[?,?] y) <int64[1] i0 = {0}> {
           s = Shape (k)
           kk = Gather (s, i0)
           m1 = Constant <value = int64[1] {-1}> ()
           t = Concat <axis = 0> (kk, m1)
           y = Reshape (x, t)
        }""", feeds={"x": np.ones((2, 3, 64), np.float32), "k": np.ones(6, np.float32)})
    assert not st  # K and -1: two unknowns, no constant says it


def test_reshape_target_from_an_overridable_default_stays():
    # IR 3: the initializer `s` is also a graph input, so {3, 4} is only a default a caller may
    # replace by {4, 3}; shape inference reads the default, the rule must not.
    m, st = simplify("""<ir_version: 3, opset_import: ["" : 9]>
        g (float[12] x, int64[2] s) => (float[?,?] y) <int64[2] s = {3, 4}> {
           y = Reshape (x, s)
        }""", feeds={"x": np.ones(12, np.float32)})
    assert m.graph.nodes.first().inputs[1].name == "s" and not st


def test_cast_to_own_type_goes_other_cast_stays():
    m, st = simplify(H + """g (float[4] x, int64[4] i) => (float[4] y, float[4] z) {
           t = Cast <to = 1> (x)
           y = Relu (t)
           u = Cast <to = 1> (i)
           z = Relu (u)
        }""")
    assert ops(m) == ["Relu", "Cast", "Relu"]
    assert st["simplify.cast_same"] == 1


def test_transpose_identity_and_cancelling_pairs():
    m, st = simplify(H + """g (float[2,3,4] x) => (float[2,3,4] y, float[4,2,3] z) {
           a = Transpose <perm = [0, 1, 2]> (x)
           b = Transpose <perm = [2, 0, 1]> (a)
           c = Transpose <perm = [1, 2, 0]> (b)
           y = Relu (c)
           z = Relu (b)
        }""")
    # a is the identity; c undoes b (b stays for z)
    assert ops(m) == ["Transpose", "Relu", "Relu"]
    assert st["simplify.transpose_identity"] == 1 and st["simplify.transpose_pair"] == 1


def test_transposes_that_do_not_cancel_stay():
    m, st = simplify(H + """g (float[2,3,4] x) => (float[3,4,2] y) {
           b = Transpose <perm = [2, 0, 1]> (x)
           c = Transpose <perm = [2, 0, 1]> (b)
           y = Relu (c)
        }""")
    assert ops(m) == ["Transpose", "Transpose", "Relu"] and not st


@pytest.mark.parametrize("header, unsq, sq", [
    (H11, "Unsqueeze <axes = [1]> (x)", "Squeeze <axes = [-2]> (u)"),
    (H, "Unsqueeze (x, a)", "Squeeze (u, a)"),
])
def test_unsqueeze_then_squeeze_of_the_same_axis(header, unsq, sq):
    m, st = simplify(header + f"""g (float[N,4] x) => (float[N,4] y) <int64[1] a = {{1}}> {{
           u = {unsq}
           s = {sq}
           y = Relu (s)
        }}""")
    assert ops(m) == ["Relu"]


def test_squeeze_then_unsqueeze_and_a_mismatch():
    m, st = simplify(H + """g (float[N,1,4] x) => (float[N,1,4] y, float[N,4,1] z)
            <int64[1] a = {1}, int64[1] b = {2}> {
           s = Squeeze (x, a)
           u = Unsqueeze (s, a)
           y = Relu (u)
           w = Unsqueeze (s, b)
           z = Relu (w)
        }""")
    assert ops(m) == ["Squeeze", "Relu", "Unsqueeze", "Relu"]
    assert st["simplify.unsqueeze_squeeze"] == 1


def test_concat_of_one_input():
    m, st = simplify(H + """g (float[4] x) => (float[4] y) {
           c = Concat <axis = 0> (x)
           y = Relu (c)
        }""")
    assert ops(m) == ["Relu"]


def test_slice_covering_everything_and_one_that_does_not():
    m, st = simplify(H + """g (float[N,4] x) => (float[N,4] y, float[N,3] z)
            <int64[1] s = {0}, int64[1] e = {9223372036854775807}, int64[1] ax = {1},
             int64[1] e3 = {3}> {
           a = Slice (x, s, e, ax)
           y = Relu (a)
           b = Slice (x, s, e3, ax)
           z = Relu (b)
        }""")
    assert ops(m) == ["Relu", "Slice", "Relu"]


def test_reversed_slice_has_the_same_shape_but_stays():
    m, st = simplify(H + """g (float[4] x) => (float[4] y) <int64[1] s = {-1},
            int64[1] e = {-9223372036854775807}, int64[1] ax = {0}, int64[1] st = {-1}> {
           a = Slice (x, s, e, ax, st)
           y = Relu (a)
        }""")
    assert ops(m) == ["Slice", "Relu"]


def test_expand_to_same_shape_and_one_that_grows():
    m, st = simplify(H + """g (float[N,4] x) => (float[N,4] y, float[3,N,4] z)
            <int64[2] s = {1, 4}, int64[3] s3 = {3, 1, 4}> {
           a = Expand (x, s)
           y = Relu (a)
           b = Expand (x, s3)
           z = Relu (b)
        }""")
    assert ops(m) == ["Relu", "Expand", "Relu"]


def test_where_with_a_constant_condition():
    m, st = simplify(H + """g (float[4] x, float[4] w) => (float[4] y, float[4] z)
            <bool[4] t = {1, 1, 1, 1}, bool f = {0}, bool[4] mixed = {1, 0, 1, 0}> {
           a = Where (t, x, w)
           y = Relu (a)
           b = Where (f, x, w)
           c = Where (mixed, x, b)
           z = Relu (c)
        }""")
    assert ops(m) == ["Relu", "Where", "Relu"]
    assert st["simplify.where_const"] == 2


def test_where_whose_other_operand_broadcasts_stays():
    m, st = simplify(H + """g (float[1] x, float[4] w) => (float[4] y) <bool t = {1}> {
           a = Where (t, x, w)
           y = Relu (a)
        }""")
    assert ops(m) == ["Where", "Relu"]


# -- merged pairs, checked on generated cases: every result runs against the original ----------

def _ints(v) -> str:
    return ",".join(str(int(i)) for i in v)


def _random_slice(rng, d: int) -> tuple[int, int, int]:
    step = int(rng.choice([1, 1, 2, 3, -1, -2]))
    start, end = (int(v) for v in rng.integers(-d - 2, d + 3, size=2))
    if rng.random() < 0.2:
        end = -(1 << 62) if step < 0 else (1 << 62)
    return start, end, step


@pytest.mark.parametrize("seed", range(24))
def test_slice_of_slice_composes_on_generated_slices(seed):
    rng = np.random.default_rng(seed)
    dims = [int(d) for d in rng.integers(1, 9, size=3)]
    a1 = sorted(rng.choice(3, size=int(rng.integers(1, 3)), replace=False).tolist())
    a2 = sorted(rng.choice(3, size=int(rng.integers(1, 3)), replace=False).tolist())
    s1 = [_random_slice(rng, dims[a]) for a in a1]
    mid = [len(range(d)[slice(*s1[a1.index(i)])]) if i in a1 else d for i, d in enumerate(dims)]
    s2 = [_random_slice(rng, mid[a]) for a in a2]
    if 0 in mid:
        return  # an empty intermediate: onnxruntime refuses nothing, but shapes say nothing new
    inits = []
    for k, (ax, sl) in enumerate(((a1, s1), (a2, s2))):
        for name, col in zip("sep", zip(*sl)):
            inits.append(f"int64[{len(ax)}] {name}{k} = {{{_ints(col)}}}")
        inits.append(f"int64[{len(ax)}] a{k} = {{{_ints(ax)}}}")
    src = H + f"""g (float[{_ints(dims)}] x) => (float[?,?,?] y) <{", ".join(inits)}> {{
           t = Slice (x, s0, e0, a0, p0)
           u = Slice (t, s1, e1, a1, p1)
           y = Relu (u)
        }}"""
    m, st = simplify(src)
    assert ops(m).count("Slice") == 1, st


@pytest.mark.parametrize("seed", range(24))
def test_transpose_view_transpose_on_generated_permutations(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(2, 5))
    dims = [int(d) for d in rng.integers(2, 5, size=rank)]
    p1 = rng.permutation(rank).tolist()
    squeeze = bool(rng.integers(0, 2))
    if squeeze:  # put a 1 where t1 will have it, and squeeze that position
        pos = int(rng.integers(0, rank))
        dims[p1[pos]] = 1
        axes, r2 = [pos - rank if rng.random() < 0.5 else pos], rank - 1
        view = "v = Squeeze (t, k)"
    else:
        n = int(rng.integers(1, 3))
        axes = sorted(rng.choice(rank + n, size=n, replace=False).tolist())
        r2 = rank + n
        view = "v = Unsqueeze (t, k)"
    p2 = rng.permutation(r2).tolist()
    src = H + f"""g (float[{_ints(dims)}] x) => (float[{",".join("?" * r2)}] y)
        <int64[{len(axes)}] k = {{{_ints(axes)}}}> {{
           t = Transpose <perm = [{_ints(p1)}]> (x)
           {view}
           w = Transpose <perm = [{_ints(p2)}]> (v)
           y = Relu (w)
        }}"""
    m, st = simplify(src)
    assert len(m.graph.nodes) <= 3, st  # the view, at most one Transpose, the Relu


@pytest.mark.parametrize("seed", range(16))
def test_squeeze_and_unsqueeze_chains_on_generated_axes(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 4))
    dims = [int(d) for d in rng.integers(2, 5, size=rank)]
    a1 = sorted(rng.choice(rank + 1, size=1).tolist())
    a2 = sorted(rng.choice(rank + 3, size=2, replace=False).tolist())
    neg = lambda axes, r: [a - r if rng.random() < 0.5 else a for a in axes]  # noqa: E731
    src = H + f"""g (float[{_ints(dims)}] x) => (float[{_ints(dims)}] y)
        <int64[1] k1 = {{{_ints(neg(a1, rank + 1))}}}, int64[2] k2 = {{{_ints(neg(a2, rank + 3))}}},
         int64[2] k3 = {{{_ints(neg(a2, rank + 3))}}}, int64[1] k4 = {{{_ints(a1)}}}> {{
           u = Unsqueeze (x, k1)
           v = Unsqueeze (u, k2)
           w = Squeeze (v, k3)
           s = Squeeze (w, k4)
           y = Relu (s)
        }}"""
    m, _ = simplify(src)
    assert ops(m) == ["Relu"]
