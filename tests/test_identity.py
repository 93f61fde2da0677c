"""identity: nodes that return an input unchanged are removed; near-misses stay; outputs keep names."""

from __future__ import annotations

import numpy as np
import pytest

from onnxopt.ir import print_model
from onnxopt.testing import assert_equivalent, model_from_text, run_passes


def header(opset: int = 17) -> str:
    return f'<ir_version: 8, opset_import: ["" : {opset}]>\n'


H = header()


def identity(src: str, feeds: tuple = (), verify: bool = True):
    """Run identity on a model in text and check the numbers (on ``feeds`` when given)."""
    m = model_from_text(src)
    report = run_passes(m, "identity")
    for f in (feeds or (None,)) if verify else ():
        assert_equivalent(src, m, feeds=f)
    return m, report.records[0]


def assert_model(m, expected_src: str) -> None:
    assert print_model(m) == print_model(model_from_text(expected_src))


def assert_removed(body: str, sig: str = "(float[2,3] x) => (float[2,3] y)", opset: int = 17):
    """The one no-op node in ``body`` (reading x, writing t) goes: y reads x."""
    src = header(opset) + f"g {sig} {{\n{body}\n y = Relu (t) }}"
    m, rec = identity(src)
    assert [n.op_type for n in m.graph.nodes if n.op_type != "Constant"] == ["Relu"], \
        print_model(m)
    assert m.graph.nodes.last().inputs[0] is m.graph.inputs[0]
    assert rec.modified and rec.stats["nodes_removed"] == 1


def assert_kept(body: str, sig: str = "(float[2,3] x) => (float[?,?] y)", opset: int = 17):
    """Nothing in ``body`` is a provable no-op: the model comes out unchanged."""
    src = header(opset) + f"g {sig} {{\n{body}\n y = Relu (t) }}"
    m, rec = identity(src)
    assert not rec.modified, print_model(m)
    assert_model(m, src)


# -- Identity and Dropout ------------------------------------------------------------------------

def test_identity_chain_collapses_and_the_output_keeps_its_name():
    m, rec = identity(H + """
        g (float[4] x) => (float[4] y) {
           a = Identity (x)
           r = Relu (a)
           y = Identity (r)
        }""")
    assert_model(m, H + "g (float[4] x) => (float[4] y) { y = Relu (x) }")
    assert rec.stats["nodes_removed"] == 2


def test_identity_from_input_or_initializer_to_output_stays():
    src = H + """
        g (float[4] x) => (float[4] x_out, float[2] c_out, float[4] r, float[4] r2)
          <float[2] c = {1.0, 2.0}> {
           x_out = Identity (x)
           c_out = Identity (c)
           r = Relu (x)
           r2 = Identity (r)
        }"""
    m, rec = identity(src)
    assert not rec.modified
    assert_model(m, src)
    # and a fixed-point pipeline settles at once instead of spinning
    report = run_passes(m, "fixpoint(identity,dce,cse){max=3}")
    assert not report.capped and not any(r.modified for r in report.records)


def test_noop_on_a_graph_input_feeding_an_output_becomes_the_identity():
    m, rec = identity(H + """
        g (int64[4] i) => (int64[4] o) { o = Cast <to: int = 7> (i) }""")
    assert_model(m, H + "g (int64[4] i) => (int64[4] o) { o = Identity (i) }")
    assert rec.stats["replaced_by_identity"] == 1


def test_output_keeps_its_declared_type_when_the_source_has_none():
    # t has no value_info: after the rewrite the output still says int64[2].
    m, _ = identity(H + """
        g (float[2] x) => (int64[2] y) {
           t = Cast <to: int = 7> (x)
           y = Identity (t)
        }""")
    assert print_model(m).count("int64[2] y") == 1


@pytest.mark.parametrize("body, opset", [
    ("t = Dropout (x)", 17),
    ("t = Dropout <ratio: float = 0.7> (x)", 10),
    ("t, unused_mask = Dropout (x)", 17),
    (("f = Constant <value: tensor = bool {0}> ()\n"
      " r = Constant <value: tensor = float {0.5}> ()\n t = Dropout (x, r, f)"), 17),
])
def test_inference_dropout_is_removed(body, opset):
    src = header(opset) + f"g (float[2,3] x) => (float[2,3] y) {{\n{body}\n y = Relu (t) }}"
    m, _ = identity(src)
    assert [n.op_type for n in m.graph.nodes if n.op_type != "Constant"] == ["Relu"]


def test_dropout_whose_mask_is_used_stays():
    src = H + """
        g (float[2,3] x) => (float[2,3] y, bool[2,3] m) {
           t, m = Dropout (x)
           y = Relu (t)
        }"""
    _, rec = identity(src)
    assert not rec.modified


def test_training_dropout_stays():
    src = H + """
        g (float[2,3] x, bool train) => (float[2,3] y) {
           t = Dropout (x, , train)
           y = Relu (t)
        }"""
    m = model_from_text(src)
    assert not run_passes(m, "identity").records[0].modified
    src_const = src.replace("float[2,3] x, bool train", "float[2,3] x").replace(
        "t = Dropout", "train = Constant <value: tensor = bool {1}> ()\n t = Dropout")
    m = model_from_text(src_const)
    assert not run_passes(m, "identity").records[0].modified


# -- Cast ------------------------------------------------------------------------------------------

def test_cast_to_the_same_dtype_is_removed():
    assert_removed("t = Cast <to: int = 1> (x)")
    assert_removed("like = Constant <value: tensor = float {0.0}> ()\n t = CastLike (x, like)")


def test_cast_to_another_dtype_stays():
    assert_kept("t = Cast <to: int = 11> (x)", "(float[2,3] x) => (double[2,3] y)")


def test_cast_of_a_value_with_unknown_dtype_stays():
    assert_kept("a = Relu (x)\n t = Cast <to: int = 1> (a)")


# -- Reshape ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ["{2, 3}", "{0, 3}", "{2, -1}", "{0, 0}", "{-1, 3}"])
def test_reshape_to_the_same_shape_is_removed(shape):
    assert_removed(f"s = Constant <value: tensor = int64[2] {shape}> ()\n t = Reshape (x, s)")


def test_reshape_keeping_symbolic_dims_is_removed():
    src = H + """
        g (float[N,S,4] x) => (float[N,S,4] y) {
           s = Constant <value: tensor = int64[3] {0, 0, -1}> ()
           t = Reshape (x, s)
           y = Relu (t)
        }"""
    m, _ = identity(src)
    assert [n.op_type for n in m.graph.nodes] == ["Constant", "Relu"]


@pytest.mark.parametrize("body", [
    "s = Constant <value: tensor = int64[2] {3, 2}> ()\n t = Reshape (x, s)",
    "s = Constant <value: tensor = int64[3] {2, 3, 1}> ()\n t = Reshape (x, s)",
    "s = Constant <value: tensor = int64[1] {-1}> ()\n t = Reshape (x, s)",
    # allowzero: 0 means a zero-sized dim, not "copy"
    "s = Constant <value: tensor = int64[2] {0, 3}> ()\n t = Reshape <allowzero: int = 1> (x, s)",
])
def test_reshape_to_another_shape_stays(body):
    src = H + f"g (float[2,3] x) => (float[?] y) {{\n{body}\n y = Relu (t) }}"
    m = model_from_text(src)
    assert not run_passes(m, "identity").records[0].modified


def test_reshape_with_a_symbolic_dim_and_a_literal_target_stays():
    assert_kept("s = Constant <value: tensor = int64[2] {2, 3}> ()\n t = Reshape (x, s)",
                "(float[N,3] x) => (float[2,3] y)")


# -- Transpose, Expand, Slice, Pad, Concat -------------------------------------------------------

def test_identity_transpose_is_removed():
    assert_removed("t = Transpose <perm: ints = [0, 1]> (x)")
    assert_removed("t = Transpose (x)", "(float[5] x) => (float[5] y)")


def test_real_transpose_stays():
    assert_kept("t = Transpose <perm: ints = [1, 0]> (x)", "(float[2,3] x) => (float[3,2] y)")
    assert_kept("t = Transpose (x)", "(float[2,3] x) => (float[3,2] y)")


@pytest.mark.parametrize("target", ["int64[1] {1}", "int64[2] {2, 3}", "int64[2] {1, 1}",
                                    "int64[0] {}"])
def test_expand_that_cannot_grow_is_removed(target):
    assert_removed(f"s = Constant <value: tensor = {target}> ()\n t = Expand (x, s)")


@pytest.mark.parametrize("sig, target", [
    ("(float[2,3] x) => (float[1,2,3] y)", "int64[3] {1, 2, 3}"),  # adds a dim
    ("(float[2,1] x) => (float[2,3] y)", "int64[2] {2, 3}"),  # 1 -> 3
    ("(float[N,3] x) => (float[?,3] y)", "int64[2] {4, 3}"),  # N might be 1
])
def test_expand_that_may_grow_stays(sig, target):
    src = header() + f"g {sig} {{ s = Constant <value: tensor = {target}> ()\n" \
                     " t = Expand (x, s)\n y = Relu (t) }"
    m = model_from_text(src)
    assert not run_passes(m, "identity").records[0].modified


@pytest.mark.parametrize("consts", [
    "st = {0, 0}, en = {2, 3}",
    "st = {0, 0}, en = {100, 9223372036854775807}",
    "st = {-2, -9}, en = {2, 3}",  # starts at or below -dim clamp to 0
])
def test_slice_covering_everything_is_removed(consts):
    st, en = (c.split("=")[1].strip() for c in consts.split(", en"))
    assert_removed(f"st = Constant <value: tensor = int64[2] {st}> ()\n"
                   f" en = Constant <value: tensor = int64[2] {en}> ()\n t = Slice (x, st, en)")


def test_slice_with_axes_steps_and_symbolic_dims_is_removed():
    src = H + """
        g (float[N,3] x) => (float[N,3] y) {
           st = Constant <value: tensor = int64[1] {0}> ()
           en = Constant <value: tensor = int64[1] {2147483647}> ()
           ax = Constant <value: tensor = int64[1] {-2}> ()
           sp = Constant <value: tensor = int64[1] {1}> ()
           t = Slice (x, st, en, ax, sp)
           y = Relu (t)
        }"""
    m, _ = identity(src)
    assert [n.op_type for n in m.graph.nodes if n.op_type != "Constant"] == ["Relu"]


@pytest.mark.parametrize("st, en, extra", [
    ("{0, 0}", "{2, 2}", ""),  # drops a column
    ("{1, 0}", "{2, 3}", ""),  # drops a row
    ("{0, 0}", "{2, 3}", "sp = Constant <value: tensor = int64[2] {1, 2}> ()"),  # step 2
    ("{0, 0}", "{2, 3}", "sp = Constant <value: tensor = int64[2] {1, -1}> ()"),  # reversed
])
def test_partial_slice_stays(st, en, extra):
    call = "Slice (x, st, en, , sp)" if extra else "Slice (x, st, en)"
    src = header() + f"""g (float[2,3] x) => (float[?,?] y) {{
        st = Constant <value: tensor = int64[2] {st}> ()
        en = Constant <value: tensor = int64[2] {en}> ()
        {extra}
        t = {call}
        y = Relu (t) }}"""
    m = model_from_text(src)
    assert not run_passes(m, "identity").records[0].modified


def test_slice_to_a_constant_end_on_a_symbolic_dim_stays():
    assert_kept("st = Constant <value: tensor = int64[1] {0}> ()\n"
                " en = Constant <value: tensor = int64[1] {8}> ()\n t = Slice (x, st, en)",
                "(float[N,3] x) => (float[?,3] y)")


def test_slice_with_runtime_bounds_stays():
    assert_kept("st = Constant <value: tensor = int64[1] {0}> ()\n t = Slice (x, st, en)",
                "(float[2,3] x, int64[1] en) => (float[?,3] y)")


def test_zero_pad_is_removed():
    assert_removed("p = Constant <value: tensor = int64[4] {0, 0, 0, 0}> ()\n t = Pad (x, p)")
    assert_removed("t = Pad <pads: ints = [0, 0, 0, 0]> (x)", opset=10)


def test_real_pad_stays():
    assert_kept("p = Constant <value: tensor = int64[4] {0, 1, 0, 0}> ()\n t = Pad (x, p)",
                "(float[2,3] x) => (float[2,4] y)")


def test_single_input_concat_is_removed_and_two_stay():
    assert_removed("t = Concat <axis: int = 0> (x)")
    assert_kept("t = Concat <axis: int = 0> (x, x)", "(float[2,3] x) => (float[4,3] y)")


# -- scopes ---------------------------------------------------------------------------------------

def test_subgraph_outputs_keep_their_identities_when_they_return_outer_values():
    src = H + """
        g (bool c, float[4] x) => (float[4] y) {
           r = Relu (x)
           y = If (c) <
              then_branch: graph = th () => (float[4] t) { t = Identity (r) },
              else_branch: graph = el () => (float[4] e) {
                 n = Neg (r)
                 e = Identity (n)
              }
           >
        }"""
    x = np.array([0.5, -1.0, 2.0, -3.0], dtype=np.float32)
    m, _ = identity(src, feeds=({"c": np.array(True), "x": x}, {"c": np.array(False), "x": x}))
    assert_model(m, src.replace("n = Neg (r)\n                 e = Identity (n)", "e = Neg (r)"))


def test_loop_carried_identity_stays():
    src = H + """
        g (int64 n, bool c, float[4] x) => (float[4] y) {
           y = Loop (n, c, x) <
              body: graph = body (int64 i, bool cin, float[4] v) => (bool cout, float[4] vout) {
                 cout = Identity (cin)
                 vout = Identity (v)
              }
           >
        }"""
    _, rec = identity(src, feeds=({"n": np.array(2), "c": np.array(True),
                                   "x": np.ones(4, np.float32)},))
    assert not rec.modified


def test_function_bodies_are_cleaned_with_their_own_opset():
    # Pad with a pads attribute is opset 10 style: the function imports opset 10. (onnxruntime
    # inlines functions with the model's opset, so it cannot run this model.)
    m, _ = identity("""<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (float[2,3] x) => (float[2,3] y) { y = local.f (x) }
        <domain: "local", opset_import: ["" : 10]>
        f (a) => (b) {
           p = Pad <pads: ints = [0, 0, 0, 0]> (a)
           b = Relu (p)
        }""", verify=False)
    assert [n.op_type for n in m.functions[("local", "f", "")].graph.nodes] == ["Relu"]
