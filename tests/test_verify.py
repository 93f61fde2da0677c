"""onnxopt.verify: verdicts, input generation that the model can take, and the shared models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnxopt.errors import UsageError
from onnxopt.verify import Verifier, VerifyOptions, verify

MODELS = Path(__file__).resolve().parent / "models"  # committed copies (models/README.md)
HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'


def parse(text: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(HEAD + text)


def unary(op: str) -> onnx.ModelProto:
    return parse(f"g (float[N, S] x) => (float[N, S] y) {{ y = {op}(x) }}")


# ---- verdicts


def test_identical_models_verify_ok_at_two_bindings():
    m = unary("Relu")
    rep = verify(m, m.SerializeToString())
    assert rep.status == "ok" and rep.verified
    assert len(rep.bindings) >= 2
    assert len(rep.diffs) == len(rep.bindings)
    assert all(d.ok and d.max_abs == 0 and d.name == "y" for d in rep.diffs)
    assert rep.seconds > 0


def test_changed_model_fails_naming_the_output():
    rep = verify(unary("Relu"), unary("Abs"))
    assert rep.status == "failed" and not rep.verified
    assert "'y'" in rep.reason and "max abs" in rep.reason and "\n" not in rep.reason
    assert "N=" in rep.reason  # the binding it failed at
    bad = [d for d in rep.diffs if not d.ok]
    assert bad and all(d.max_abs > 0.1 and d.max_rel > 0.1 for d in bad)


def test_small_float_differences_are_within_tolerance_and_overrides_apply():
    base = parse("g (float[N] x) => (float[N] y) { y = Identity(x) }")
    near = parse("g (float[N] x) => (float[N] y) "
                 "{ e = Constant<value = float {0.00001}>() y = Add(x, e) }")
    far = parse("g (float[N] x) => (float[N] y) "
                "{ e = Constant<value = float {0.01}>() y = Add(x, e) }")
    assert verify(base, near).status == "ok"
    assert verify(base, far).status == "failed"
    assert verify(base, far, VerifyOptions(atol_override=0.02)).status == "ok"
    assert verify(base, near, VerifyOptions(atol_override=0.0, rtol_override=0.0)).status \
        == "failed"


def test_integer_outputs_compare_exactly():
    a = parse("g (float[N, 4] x) => (int64[N] y) { y = ArgMax<axis = 1, keepdims = 0>(x) }")
    b = parse("g (float[N, 4] x) => (int64[N] y) { y = ArgMin<axis = 1, keepdims = 0>(x) }")
    assert verify(a, a).status == "ok"
    assert verify(a, b).status == "failed"


def test_nan_in_the_same_positions_is_equal_and_inf_must_match():
    log = unary("Log")  # NaN for the negative half of the standard normal inputs
    assert verify(log, log).status == "ok"
    rec = parse("g (float[N] x) => (float[N] y) "
                "{ z = Constant<value = float {0.0}>() m = Mul(x, z) y = Reciprocal(m) }")
    neg = parse("g (float[N] x) => (float[N] y) "
                "{ z = Constant<value = float {0.0}>() m = Mul(x, z) r = Reciprocal(m) "
                "y = Neg(r) }")
    assert verify(rec, rec).status == "ok"
    rep = verify(rec, neg)
    assert rep.status == "failed" and "inf" in rep.reason


def test_output_interface_changes_fail():
    m = unary("Relu")
    renamed = parse("g (float[N, S] x) => (float[N, S] z) { z = Relu(x) }")
    rep = verify(m, renamed)
    assert rep.status == "failed" and "outputs differ" in rep.reason
    wrong_dtype = parse("g (float[N, S] x) => (double[N, S] y) "
                        "{ r = Relu(x) y = Cast<to = 11>(r) }")
    rep = verify(m, wrong_dtype)
    assert rep.status == "failed" and "dtype" in rep.reason
    wrong_shape = parse("g (float[N, S] x) => (float[N, S, 1] y) "
                        "{ r = Relu(x) a = Constant<value = int64[1] {2}>() y = Unsqueeze(r, a) }")
    assert verify(m, wrong_shape).status == "failed"


def test_optimized_model_that_does_not_load_fails():
    rep = verify(unary("Relu"), b"not a model")
    assert rep.status == "failed" and "optimized" in rep.reason


def test_a_model_opened_before_the_original_is_prepared_gets_the_same_verdict():
    """The CLI opens the optimized model while the original still runs in its child: checking
    what was opened says what checking the model says, a model the runtime refuses still fails
    with the runtime's reason, and an original that cannot be verified still wins."""
    m = unary("Relu")
    for optimized in (unary("Relu"), unary("Abs"), b"not a model"):
        opened = Verifier(m).open(optimized)
        early, late = Verifier(m).check(opened), Verifier(m).check(optimized)
        assert (early.status, early.reason) == (late.status, late.reason)
        assert early.seconds >= opened.seconds
    custom = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>\n'
        "g (float[N] x) => (float[N] y) { y = com.example.Mystery(x) }")
    assert Verifier(custom).check(Verifier(custom).open(b"not a model")).status == "not verified"


def test_custom_op_original_is_not_verified():
    m = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>\n'
                                "g (float[N] x) => (float[N] y) { y = com.example.Mystery(x) }")
    rep = verify(m, m)
    assert rep.status == "not verified" and not rep.verified
    assert "Mystery" in rep.reason and "\n" not in rep.reason


def test_original_failing_at_every_binding_is_not_verified():
    m = parse("g (float[N] x) => (float[N] y) "
              "{ i = Constant<value = int64[1] {1000}>() e = Gather(x, i) y = Add(x, e) }")
    rep = verify(m, m)
    assert rep.status == "not verified" and "out of data bounds" in rep.reason


def test_paths_and_protos_are_accepted(tmp_path):
    m = unary("Tanh")
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert verify(str(path), m).status == "ok"
    assert verify(m, path).status == "ok"


# ---- bindings


def test_symbols_get_different_values_in_each_binding():
    m = parse("g (float[batch, seq, 8] x, float[batch, seq, 8] z) => (float[batch, seq, 8] y) "
              "{ y = Add(x, z) }")
    rep = verify(m, m)
    assert rep.status == "ok"
    b0, b1 = rep.bindings[:2]
    assert set(b0) == {"batch", "seq"}
    assert b0["batch"] != b1["batch"] and b0["seq"] != b1["seq"]
    assert max(b["batch"] for b in rep.bindings) <= 4  # batch-like: small


def test_unknown_and_minus_one_dims_are_bound_as_symbols():
    m = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [-1, 3, None])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    rep = verify(m, m)
    assert rep.status == "ok"
    assert set(rep.bindings[0]) == {"x[0]", "x[2]"}
    assert rep.bindings[0]["x[2]"] != rep.bindings[1]["x[2]"]


def test_only_bindings_the_original_runs_at_are_kept():
    # The reshape needs S to be a multiple of 32: 16 fails, later sizes run.
    m = parse("g (float[S] x) => (float[K, 32] y) "
              "{ s = Constant<value = int64[2] {-1, 32}>() y = Reshape(x, s) }")
    rep = verify(m, m)
    assert rep.status == "ok" and len(rep.bindings) >= 2
    assert all(b["S"] % 32 == 0 for b in rep.bindings)
    assert len({b["S"] for b in rep.bindings}) == len(rep.bindings)


def test_a_pinned_symbol_keeps_its_value_and_the_others_still_move():
    w = ", ".join(["0.5"] * 64)
    m = parse(f"g (float[B, S] x) => (float[B, 4] y) <float[16, 4] w = {{{w}}}> "
              "{ y = MatMul(x, w) }")  # S must be 16
    rep = verify(m, m)
    assert rep.status == "ok" and len(rep.bindings) == 2
    assert [b["S"] for b in rep.bindings] == [16, 16]
    assert rep.bindings[0]["B"] != rep.bindings[1]["B"]


def test_explicit_bindings_and_input_shapes():
    m = unary("Relu")
    rep = verify(m, m, VerifyOptions(bindings=[{"N": 5, "S": 7}, {"N": 6}]))
    assert rep.status == "ok"
    assert rep.bindings[0] == {"N": 5, "S": 7} and rep.bindings[1]["N"] == 6
    rep = verify(m, m, VerifyOptions(input_shapes={"x": [2, "T"]}))
    assert rep.status == "ok" and all(set(b) == {"T"} for b in rep.bindings)
    with pytest.raises(UsageError):
        verify(m, m, VerifyOptions(bindings=[{"nope": 3}]))


def test_broken_dynamic_shape_is_caught():
    dynamic = parse("g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }")
    # "Optimized" with the first binding's batch baked in: right at one binding only.
    v = Verifier(dynamic)
    n0 = v.feeds()[0][0]["N"]
    baked = parse(f"g (float[N, 4] x) => (float[N, 4] y) "
                  f"{{ s = Constant<value = int64[2] {{{n0}, 4}}>() r = Reshape(x, s) "
                  f"y = Relu(r) }}")
    rep = v.check(baked)
    assert rep.status == "failed" and "N=" in rep.reason


# ---- inputs the model can take


def test_gather_indices_stay_inside_the_table():
    # 3 rows: default small ints (0..7) would be out of range and ORT would refuse to run.
    m = parse("g (int32[N, S] ids) => (float[N, S, 2] y) "
              "<float[3, 2] table = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}> "
              "{ c = Cast<to = 7>(ids) y = Gather(table, c) }")
    v = Verifier(m)
    rep = v.check(m)
    assert rep.status == "ok", rep.reason
    for _, feed in v.feeds():
        assert feed["ids"].dtype == np.int32
        assert feed["ids"].min() >= 0 and feed["ids"].max() < 3


def test_gather_on_axis_through_reshape_and_unsqueeze():
    m = parse("g (float[B, 5] x, int64[K] idx) => (float[B, K, 1] y) "
              "{ a = Constant<value = int64[1] {1}>() u = Unsqueeze(idx, a) "
              "s = Constant<value = int64[1] {-1}>() r = Reshape(u, s) "
              "g2 = Gather<axis = 1>(x, r) y = Unsqueeze(g2, a) }")
    v = Verifier(m)
    assert v.check(m).status == "ok"
    # Lengths of 16 and more: random small ints would hit 5..7 and fail these bindings.
    assert all(b["K"] >= 16 and f["idx"].max() < 5 for b, f in v.feeds())


def test_int_tensor_compared_with_a_constant_range_stays_in_it():
    # One-hot written as Equal against 0..9, as tf2onnx exports it (magika).
    m = parse("g (int64[N, 16] ids) => (float[N, 16, 10] y) "
              "{ lim = Constant<value = int64 {10}>() z = Constant<value = int64 {0}>() "
              "one = Constant<value = int64 {1}>() r = Range(z, lim, one) "
              "a = Constant<value = int64[1] {-1}>() u = Unsqueeze(ids, a) "
              "e = Equal(u, r) y = Cast<to = 1>(e) }")
    v = Verifier(m, VerifyOptions(seed=3))
    assert v.check(m).status == "ok"
    values = np.concatenate([f["ids"].ravel() for _, f in v.feeds()])
    assert values.min() >= 0 and values.max() <= 9 and len(np.unique(values)) > 5


def test_int_scalar_compared_with_constants_keeps_one_of_them():
    # Any other value takes the else branch, which fails at run time.
    m = parse("""g (float[N] x, int64 mode) => (float[N] y) {
      a = Constant<value = int64 {16000}>()
      b = Constant<value = int64 {8000}>()
      c = Equal(mode, a)
      d = Equal(b, mode)
      ok = Or(c, d)
      y = If(ok) <then_branch = g1 () => (float[N] t) { t = Identity(x) },
                  else_branch = g2 () => (float[N] e) {
                      bad = Constant<value = int64[1] {1000}>() e = Gather(x, bad) }>
    }""")
    v = Verifier(m)
    assert v.check(m).status == "ok"
    assert {int(f["mode"]) for _, f in v.feeds()} <= {16000, 8000}


def test_masks_are_zero_one_and_bools_are_bools():
    m = parse("g (float[B, S] x, int64[B, S] attention_mask, bool[B, S] keep) => (float[B, S] y) "
              "{ m = Cast<to = 1>(attention_mask) p = Mul(x, m) z = Constant<value = float {0.0}>() "
              "y = Where(keep, p, z) }")
    v = Verifier(m)
    assert v.check(m).status == "ok"
    for _, feed in v.feeds():
        mask = feed["attention_mask"]
        assert set(np.unique(mask)) <= {0, 1} and (mask[..., 0] == 1).all()
        assert feed["keep"].dtype == np.bool_


def test_scalar_inputs_of_every_kind():
    m = parse("g (bool b, float f, int64 i, double d) => (float y, int64 j, double e) "
              "{ y = Where(b, f, f) j = Identity(i) e = Identity(d) }")
    v = Verifier(m)
    assert v.check(m).status == "ok"
    (_, feed), = v.feeds()
    assert all(isinstance(a, np.ndarray) and a.shape == () for a in feed.values())


def test_input_ranges_override():
    m = parse("g (float[N] x, int64[N] k) => (float[N] y) { c = Cast<to = 1>(k) y = Add(x, c) }")
    v = Verifier(m, VerifyOptions(input_ranges={"x": (5.0, 6.0), "k": (100, 102)}))
    assert v.check(m).status == "ok"
    for _, feed in v.feeds():
        assert feed["x"].min() >= 5.0 and feed["x"].max() < 6.0
        assert feed["k"].min() >= 100 and feed["k"].max() <= 102


def test_explicit_feeds_replace_generated_inputs():
    # Relu and Abs agree on non-negative data: the user's feeds are what gets compared.
    x = np.abs(np.random.default_rng(0).standard_normal((3, 5))).astype(np.float32)
    rep = verify(unary("Relu"), unary("Abs"), VerifyOptions(feeds=[{"x": x}]))
    assert rep.status == "ok"
    assert rep.bindings == [{"N": 3, "S": 5}]
    assert verify(unary("Relu"), unary("Abs"), VerifyOptions(feeds=[{"x": -x}])).status \
        == "failed"
    with pytest.raises(UsageError):
        verify(unary("Relu"), unary("Abs"), VerifyOptions(feeds=[{"nope": x}]))


def test_generation_is_deterministic_from_the_seed():
    m = unary("Relu")
    a = Verifier(m, VerifyOptions(seed=7)).feeds()
    b = Verifier(m.SerializeToString(), VerifyOptions(seed=7)).feeds()
    c = Verifier(m, VerifyOptions(seed=8)).feeds()
    assert all(np.array_equal(fa["x"], fb["x"]) for (_, fa), (_, fb) in zip(a, b))
    assert not np.array_equal(a[0][1]["x"], c[0][1]["x"])


# ---- real models (third-party files in tests/models)


@pytest.mark.parametrize("name", ["silero_vad_op15_ts.onnx", "magika_v3_3.onnx",
                                  "ppocrv4_det.onnx", "ppocr_mobile_v2_cls.onnx"])
def test_shared_models_verify_against_themselves(name):
    if not MODELS.is_dir():
        pytest.skip(f"{MODELS} is missing")
    path = MODELS / name
    copy = onnx.load(str(path)).SerializeToString()
    rep = verify(str(path), copy)
    assert rep.status == "ok", rep.reason
    assert len(rep.bindings) >= 2
    for key in rep.bindings[0]:
        assert rep.bindings[0][key] != rep.bindings[1][key]


# ---- cost


def _embedding(tmp_path) -> Path:
    """ids -> Gather from a 3 x 30000 table: big enough that the verifier does not read its data,
    and indices valid only below 3 (the table's dims, which it must still see)."""
    m = parse("g (int64[N] ids) => (float[N, 30000] y) { y = Gather(table, ids) }")
    table = np.arange(90000, dtype=np.float32).reshape(3, 30000)
    m.graph.initializer.append(onnx.numpy_helper.from_array(table, "table"))
    path = tmp_path / "emb.onnx"
    onnx.save(m, str(path))
    return path


def test_the_verifier_reads_the_originals_structure_not_its_weights(tmp_path):
    path = _embedding(tmp_path)
    before = path.read_bytes()
    v = Verifier(str(path))
    assert all(0 <= f["ids"].min() and f["ids"].max() < 3 for _, f in v.feeds())
    assert v._original._proto is None  # not held beside the optimized model's session
    rep = v.check(before)
    assert rep.status == "ok" and len(rep.bindings) >= 2
    assert path.read_bytes() == before


def _weighted(tmp_path, rows: int) -> str:
    """y = x @ w + b with a [rows, 4] weight (float), saved with its data inline."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((rows, 4)).astype(np.float32), "w")
    b = onnx.numpy_helper.from_array(np.ones(4, np.float32), "b")
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["t"]),
         onnx.helper.make_node("Add", ["t", "b"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", rows])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])], [w, b])
    path = str(tmp_path / "m.onnx")
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path


def test_the_structure_of_a_big_file_is_read_without_its_weights(tmp_path):
    """Over 16 MB, the verifier's read steps over large raw_data in the file: the proto it gets
    equals a whole read with the large data dropped."""
    from onnxopt.io import read_model_proto, read_model_structure
    from onnxopt.verify.sources import _without_big_data

    path = _weighted(tmp_path, 1 << 20)  # 16 MB of weight
    got = read_model_structure(path, 1 << 20)
    assert got == _without_big_data(read_model_proto(path))
    assert got.ByteSize() < 1000 and list(got.graph.initializer[0].dims) == [1 << 20, 4]


def test_a_big_file_of_small_weights_is_read_whole_for_its_structure(tmp_path):
    """Over 16 MB with no initializer over the limit, nothing is stepped over: the read is the
    whole file's (it used to parse the closed mapping), and such a model verifies."""
    from onnxopt import optimize
    from onnxopt.io import read_model_proto, read_model_structure

    inits = [onnx.numpy_helper.from_array(np.full((255, 1024), i, np.float32), f"w{i}")
             for i in range(17)]  # 17 MB, each just under the 1 MiB the verifier steps over
    names = ["x"] + [f"y{i}" for i in range(17)]
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", [names[i], f"w{i}"], [names[i + 1]]) for i in range(17)],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [255, 1024])],
        [onnx.helper.make_tensor_value_info("y16", onnx.TensorProto.FLOAT, [255, 1024])], inits)
    path = str(tmp_path / "m.onnx")
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    assert optimize(path).verification.status == "ok"
    assert read_model_structure(path, 1 << 30) == read_model_proto(path)


def test_a_weight_a_pass_made_without_a_name_is_lent_too(tmp_path):
    """A weight created by a pass is anonymous until lowering names it: it is lent like the
    weights read from the file (not serialized into the session's bytes). A weight no node
    reads any more is not lent (onnxruntime drops it, then refuses the loan)."""
    from onnxopt import load
    from onnxopt.ir import Builder, lower_model
    from onnxopt.verify.sources import lower_borrowing

    model = load(_weighted(tmp_path, 1 << 17))
    mm = next(n for n in model.graph.nodes if n.op_type == "MatMul")
    w = Builder(model.graph, before=mm).const(
        np.full((1 << 17, 4), 0.5, np.float32))  # anonymous, like a rewrite's new weight
    assert w.name is None
    mm.set_input(1, w)
    lent = lower_borrowing(model)
    assert list(lent.initializers) == [w.name]  # "w" is left unread
    assert verify(lower_model(model).SerializeToString(), lent).status == "ok"


def test_a_weight_a_contrib_op_reads_stays_an_initializer():
    """Some contrib kernels want their weight constant: a weight one of them reads is not
    turned into a fed input."""
    from onnxopt import load
    from onnxopt.verify.sources import lower_borrowing

    w = onnx.numpy_helper.from_array(np.ones((1 << 17, 4), np.float32), "w")
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("FusedMatMul", ["x", "w"], ["y"], domain="com.microsoft")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 1 << 17])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])], [w])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                 onnx.helper.make_opsetid("com.microsoft", 1)])
    lent = lower_borrowing(load(m.SerializeToString()))
    assert lent.initializers == {}
    assert [t.name for t in onnx.load_from_string(lent.data).graph.initializer] == ["w"]
    assert verify(m.SerializeToString(), lent).status == "ok"


def test_the_optimized_model_borrows_its_weights_and_a_changed_weight_is_caught(tmp_path):
    """onnxopt's own check lowers large initializers as graph inputs and feeds them the IR's
    arrays at every run (onnxruntime would copy a lent initializer): the serialized model is
    small, and the arrays are what is checked."""
    from onnxopt import load
    from onnxopt.verify.sources import lower_borrowing

    path = _weighted(tmp_path, 1 << 17)
    lent = lower_borrowing(load(path))
    assert list(lent.initializers) == ["w"] and len(lent.data) < 1000
    lowered = onnx.load_from_string(lent.data)
    assert [i.name for i in lowered.graph.input] == ["x", "w"]
    assert [t.name for t in lowered.graph.initializer] == ["b"]
    assert verify(path, lent).status == "ok"
    lent.initializers["w"] = lent.initializers["w"] + 1e-2
    report = verify(path, lent)
    assert report.status == "failed" and "'y' differs" in report.reason
