"""The dynamize pass: the traced corpus in golden/dynamize repaired and checked against
PyTorch's own outputs at every saved shape, the coincidence cases, structure recognition, bad
input, and the command line end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxopt
import pytest
from onnxopt.errors import OnnxoptError, UsageError
from onnxopt.ir import SymDim
from onnxopt.passes import PassContext, PassManager
from onnxopt.passes.pipeline import PassSpec
from onnxopt.testing import model_from_text, run_model

CORPUS = Path(__file__).resolve().parent.parent / "golden" / "dynamize"
CASES = sorted(p.stem for p in CORPUS.glob("*.onnx"))


def spec_of(meta: dict) -> str:
    return ";".join(f"{name}:" + ",".join(f"{ax}={sym}" for ax, sym in dims.items())
                    for name, dims in meta["dynamic"].items())


def dynamize(model, spec: str, **opts):
    """Run the pass through the manager (IR verified after it); returns (model, notes)."""
    ctx = PassContext(model)
    PassManager([PassSpec("dynamize", {"dynamic": spec, **opts})], verify_each=True).run(model, ctx)
    return model, ctx.notes


def saved_shapes(case: str):
    exp = np.load(CORPUS / f"{case}.expected.npz")
    k = 0
    while any(f.startswith(f"shape{k}/") for f in exp.files):
        pre = f"shape{k}/"
        feeds = {f[len(pre) + 6:]: exp[f] for f in exp.files if f.startswith(pre + "input:")}
        outs = {f[len(pre) + 7:]: exp[f] for f in exp.files if f.startswith(pre + "output:")}
        yield k, feeds, outs
        k += 1


def assert_matches_torch(model, case: str, only=None) -> int:
    """The repaired model against PyTorch's saved outputs; returns how many shapes ran."""
    names = [v.name for v in model.graph.outputs]
    ran = 0
    for k, feeds, outs in saved_shapes(case):
        if only is not None and k not in only:
            continue
        got = run_model(model, feeds)
        for name, g in zip(names, got):
            want = outs[name]
            assert g.shape == want.shape, f"{case} shape{k}: {name} is {g.shape}, want {want.shape}"
            np.testing.assert_allclose(g, want, atol=1e-4, rtol=1e-3,
                                       err_msg=f"{case} shape{k}: {name}")
        ran += 1
    return ran


def note_text(notes) -> str:
    return "\n".join(notes)


# -- the corpus ---------------------------------------------------------------------------------

REPAIRABLE = [c for c in CASES if c != "gpt2_tril"]


@pytest.mark.parametrize("case", REPAIRABLE)
def test_corpus_repaired_matches_torch(case: str) -> None:
    meta = json.loads((CORPUS / f"{case}.json").read_text())
    values = case.startswith("seq_mean_div")
    model, notes = dynamize(onnxopt.load(CORPUS / f"{case}.onnx"), spec_of(meta), values=values)
    # every freed dim is symbolic in the interface, and the outputs follow
    for inp in model.graph.inputs:
        for ax, sym in meta["dynamic"].get(inp.name, {}).items():
            assert inp.type.shape[int(ax)] == SymDim(sym)
    assert any(isinstance(d, SymDim) for v in model.graph.outputs for d in v.type.shape)
    assert assert_matches_torch(model, case) == 4
    assert "every output has the shape inference predicts" in note_text(notes)


def test_gpt2_tril_folded_table_is_reported_and_batch_still_frees() -> None:
    meta = json.loads((CORPUS / "gpt2_tril.json").read_text())
    with pytest.raises(OnnxoptError) as err:
        dynamize(onnxopt.load(CORPUS / "gpt2_tril.onnx"), spec_of(meta))
    msg = str(err.value)
    first = msg.splitlines()[0]
    assert "seq cannot be freed" in first and "'onnx::Add_128'" in first
    assert "float[7, 32]" in first and "not recoverable" in first and "nothing was written" in first
    model, _ = dynamize(onnxopt.load(CORPUS / "gpt2_tril.onnx"), "input_ids:0=batch")
    assert [str(d) for d in model.graph.outputs[0].type.shape] == ["batch", "7", "50"]
    assert assert_matches_torch(model, "gpt2_tril", only={0, 1}) == 2  # the shapes with seq = 7


def test_seq_mean_div_is_reported_and_rewritten_only_on_request() -> None:
    model, notes = dynamize(onnxopt.load(CORPUS / "seq_mean_div.onnx"), "x:0=batch,1=seq")
    text = note_text(notes)
    assert "Div '/Div' divides by 7.0" in text and "--dynamize-values" in text
    assert assert_matches_torch(model, "seq_mean_div", only={0, 1}) == 2
    with pytest.raises(AssertionError):  # left as is: wrong at seq 12
        assert_matches_torch(model, "seq_mean_div", only={2})
    model, notes = dynamize(onnxopt.load(CORPUS / "seq_mean_div.onnx"), "x:0=batch,1=seq",
                            values=True)
    assert "rewritten to use the runtime seq" in note_text(notes)
    assert assert_matches_torch(model, "seq_mean_div") == 4


# -- coincidences: soundness from shapes, not numbers -----------------------------------------

@pytest.mark.parametrize("case,before", [
    ("batch2_heads2", "[2, 7, 2, 16]"),       # batch 2 and 2 heads
    ("seq16_headdim16", "[3, 16, 2, 16]"),    # seq 16 and head size 16
])
def test_coincident_sizes(case: str, before: str) -> None:
    model, notes = dynamize(onnxopt.load(CORPUS / f"{case}.onnx"), "x:0=batch,1=seq")
    text = note_text(notes)
    assert f"shape {before} -> [batch, seq, 2, 16] (emitted as [0, 0, 2, 16])" in text
    assert "-> [batch, seq, 32] (emitted as [0, 0, 32])" in text
    assert [str(d) for d in model.graph.outputs[0].type.shape] == ["batch", "seq", "32"]


HEADS = """<ir_version: 8, opset_import: ["" : 17]>
g (float[2,16,64] x) => (float[2,4,16,16] y) {
   s = Constant <value = int64[4] {2, 16, 4, 16}> ()
   r = Reshape (x, s)
   y = Transpose <perm = [0, 2, 1, 3]> (r)
}"""


def test_reshape_head_size_equal_to_trace_seq_stays_static() -> None:
    model, notes = dynamize(model_from_text(HEADS), "x:0=batch,1=seq")
    assert "shape [2, 16, 4, 16] -> [batch, seq, 4, 16] (emitted as [0, 0, 4, 16])" in \
        note_text(notes)
    assert [str(d) for d in model.graph.outputs[0].type.shape] == ["batch", "4", "seq", "16"]
    x = np.random.default_rng(0).standard_normal((3, 5, 64)).astype(np.float32)
    (y,) = run_model(model, {"x": x})
    np.testing.assert_array_equal(y, x.reshape(3, 5, 4, 16).transpose(0, 2, 1, 3))


UNRELATED = """<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,32] x) => (float[3,7,32] y) {
   w = Constant <value = float[1,1,32] {""" + ", ".join(["0.5"] * 32) + """}> ()
   s = Constant <value = int64[2] {3, 32}> ()
   k = Constant <value = float[3,32] {""" + ", ".join(["1.0"] * 96) + """}> ()
   a = Mul (x, w)
   t = Reshape (k, s)
   y = Add (a, w)
}"""


def test_constants_not_derived_from_a_freed_size_are_left_alone() -> None:
    """The [3, 32] Reshape target has batch's trace size 3, but nothing freed reaches it."""
    model, notes = dynamize(model_from_text(UNRELATED), "x:0=batch")
    text = note_text(notes)
    assert "Reshape" not in text and "constant" not in text
    assert [str(d) for d in model.graph.outputs[0].type.shape] == ["batch", "7", "32"]


def _floats(n: int, scale: float = 0.1) -> str:
    return ", ".join(f"{scale * ((i * 7) % 13 - 6):.2f}" for i in range(n))


TABLE = np.asarray([0.1 * ((i * 7) % 13 - 6) for i in range(32 * 8)], np.float32).reshape(32, 8)
Q = np.asarray([0.1 * ((i * 7) % 13 - 6) for i in range(32)], np.float32).reshape(4, 8)

SIZE_SINKS = {
    # x.repeat(B, 1) of a parameter: Tile repeats [3, 1] -> [batch, 1]
    "tile": ("""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,8] x) => (float[3,4,7] y) {
   q = Constant <value = float[4,8] {""" + _floats(32) + """}> ()
   reps = Constant <value = int64[2] {3, 1}> ()
   t = Tile (q, reps)
   s = Constant <value = int64[3] {3, 4, 8}> ()
   r = Reshape (t, s)
   xt = Transpose <perm = [0, 2, 1]> (x)
   y = MatMul (r, xt)
}""", "x:0=batch", {"x": (5, 7, 8)},
        lambda x: np.tile(Q, (x.shape[0], 1)).reshape(-1, 4, 8) @ x.transpose(0, 2, 1),
        "Tile repeats [3, 1] -> [batch, 1]"),
    # pos[:, :T] of a table the graph still holds: the Slice end becomes seq (at most 32)
    "slice": ("""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,8] x) => (float[3,7,8] y) {
   pos = Constant <value = float[1,32,8] {""" + _floats(256) + """}> ()
   st = Constant <value = int64[1] {0}> ()
   en = Constant <value = int64[1] {7}> ()
   ax = Constant <value = int64[1] {1}> ()
   p = Slice (pos, st, en, ax)
   y = Add (x, p)
}""", "x:0=batch,1=seq", {"x": (2, 12, 8)}, lambda x: x + TABLE[None, : x.shape[1]],
        "seq <= 32"),
    # arange(T) kept as a Range: its limit becomes seq
    "range": ("""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,8] x) => (float[3,7,8] y) {
   table = Constant <value = float[32,8] {""" + _floats(256) + """}> ()
   a = Constant <value_int = 0> ()
   b = Constant <value_int = 7> ()
   c = Constant <value_int = 1> ()
   r = Range (a, b, c)
   p = Gather (table, r)
   y = Add (x, p)
}""", "x:0=batch,1=seq", {"x": (2, 12, 8)}, lambda x: x + TABLE[: x.shape[1]][None],
        "Range limit [7] -> [seq]"),
}


@pytest.mark.parametrize("case", sorted(SIZE_SINKS))
def test_size_sinks(case: str) -> None:
    text, spec, shapes, reference, note = SIZE_SINKS[case]
    model, notes = dynamize(model_from_text(text), spec)
    assert note in note_text(notes)
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    (y,) = run_model(model, feeds)
    np.testing.assert_allclose(y, reference(*feeds.values()), rtol=1e-5, atol=1e-5)


# -- structure recognition ---------------------------------------------------------------------

def _recognise(arr, dims, binding):
    from onnxopt.passes.dynamize.algebra import Algebra
    from onnxopt.passes.dynamize.structure import recognise

    alg = Algebra(binding)
    return recognise(arr, [SymDim(d) if isinstance(d, str) else d for d in dims], alg.evaluate)


@pytest.mark.parametrize("arr,dims,what", [
    (np.arange(7, dtype=np.int64).reshape(1, 7), [1, "seq"], "an arange 0 + 1*i"),
    (np.tril(np.ones((7, 7), bool)).reshape(1, 1, 7, 7), [1, 1, "seq", "seq"],
     "a triangle (j - i <= 0 is True, else False)"),
    (np.triu(np.full((7, 7), -1e9, np.float32), 1), ["seq", "seq"],
     "a triangle (j - i <= 0 is 0.0, else -1000000000.0)"),
    (np.arange(7)[None, :] - np.arange(7)[:, None], ["seq", "seq"],
     "an affine grid 0 + -1*i + 1*j"),
    (np.zeros((2, 3, 16), np.float32), [2, "batch", 16], "a fill of 0.0"),
    (np.tile(np.arange(4, dtype=np.float32), (3, 1)), ["batch", 4], "the slice [1, 4], broadcast"),
    (np.tile(np.arange(7), (3, 1)), ["batch", "seq"], "an arange 0 + 1*i, broadcast"),
])
def test_structures_are_recognised_and_proved(arr, dims, what) -> None:
    rec = _recognise(arr, dims, {"seq": 7, "batch": 3})
    assert rec is not None and rec.what == what


def test_learned_tables_are_not_regenerable() -> None:
    table = np.random.default_rng(0).standard_normal((7, 32)).astype(np.float32)
    assert _recognise(table, ["seq", 32], {"seq": 7}) is None


OPSET13 = """<ir_version: 7, opset_import: ["" : 13]>
g (int64[3,7] ids) => (float[3,7,4] y) {
   pos = Constant <value = int64[1,7] {0, 1, 2, 3, 4, 5, 6}> ()
   tgt = Constant <value = int64[2] {3, 7}> ()
   p = Expand (pos, tgt)
   table = Constant <value = float[16,4] {""" + ", ".join(str(0.25 * i) for i in range(64)) + """}> ()
   e = Gather (table, ids)
   q = Gather (table, p)
   y = Add (e, q)
}"""


def test_older_opset_uses_shape_and_gather() -> None:
    """Opset 13: Shape has no start/end (opset 15); every created op must exist at 13."""
    model, notes = dynamize(model_from_text(OPSET13), "ids:0=batch,1=seq")
    assert model.opset("") == 13
    ops = {n.op_type for n in model.graph.nodes}
    assert {"Shape", "Gather", "Range"} <= ops
    assert all("start" not in n.attributes for n in model.graph.nodes if n.op_type == "Shape")
    assert "seq <= 16" in note_text(notes)
    ids = np.random.default_rng(0).integers(0, 16, (2, 5))
    table = np.arange(64, dtype=np.float32).reshape(16, 4) * 0.25
    (y,) = run_model(model, {"ids": ids})
    np.testing.assert_array_equal(y, table[ids] + table[np.arange(5)][None])


# -- bad input ------------------------------------------------------------------------------

WEIGHT = """<ir_version: 8, opset_import: ["" : 17]>
g (float[2,7] x) => (float[2,4] y) {
   w = Constant <value = float[7,4] {""" + ", ".join(str(0.1 * i) for i in range(28)) + """}> ()
   y = MatMul (x, w)
}"""

DYNAMIC = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N,7] x) => (float[N,7] y) { y = Relu (x) }"""


@pytest.mark.parametrize("text,spec,message", [
    (DYNAMIC, "z:0=batch", "the model has no input 'z' (inputs: x)"),
    (DYNAMIC, "x:5=seq", "input 'x' has rank 2; it has no dim 5"),
    (DYNAMIC, "x:0=batch", "dim 0 of input 'x' is already dynamic (N)"),
    (DYNAMIC, "x:1=", "symbol '' must be an identifier"),
    (DYNAMIC, "x:one=seq", "'one' is not a dim index"),
    (DYNAMIC, "", "nothing to free"),
])
def test_bad_specs_are_one_line_usage_errors(text, spec, message) -> None:
    with pytest.raises(UsageError) as err:
        dynamize(model_from_text(text), spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_weight_shaped_by_a_freed_size_is_an_error() -> None:
    with pytest.raises(OnnxoptError) as err:
        dynamize(model_from_text(WEIGHT), "x:0=batch,1=seq")
    first = str(err.value).splitlines()[0]
    assert "seq cannot be freed" in first and "float[7, 4] constant 'w'" in first
    assert "MatMul" in first and "nothing was written" in first


def test_a_static_input_that_must_be_freed_too_is_named() -> None:
    with pytest.raises(OnnxoptError) as err:
        dynamize(onnxopt.load(CORPUS / "bert_mask.onnx"), "input_ids:0=batch,1=seq")
    assert "input 'attention_mask' is a static" in str(err.value)
    assert "--dynamic attention_mask:" in str(err.value)


# -- the command line -------------------------------------------------------------------------

def test_cli_end_to_end(tmp_path, capsys) -> None:
    from onnxopt.cli.main import main

    out = tmp_path / "bert.onnx"
    rc = main([str(CORPUS / "bert_mask.onnx"), "-p", "dynamize", "--dynamic",
               "input_ids:0=batch,1=seq", "--dynamic", "attention_mask:0=batch,1=seq", "-o",
               str(out), "--report"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verification: ok" in text
    assert "note: dynamize: Expand '/Expand' shape [3, 7] -> [batch, seq]" in text
    model = onnxopt.load(out)
    assert [str(d) for d in model.graph.inputs[0].type.shape] == ["batch", "seq"]
    assert assert_matches_torch(model, "bert_mask") == 4

    bare = tmp_path / "cnn.onnx"
    assert main([str(CORPUS / "cnn_flatten.onnx"), "-p", "dynamize", "--dynamic", "batch",
                 "-o", str(bare), "-q"]) == 0
    assert assert_matches_torch(onnxopt.load(bare), "cnn_flatten") == 4


def test_cli_writes_nothing_on_failure(tmp_path, capsys) -> None:
    from onnxopt.cli.main import main

    out = tmp_path / "gpt2.onnx"
    rc = main([str(CORPUS / "gpt2_tril.onnx"), "-p", "dynamize", "--dynamic",
               "input_ids:0=batch,1=seq", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and "seq cannot be freed" in err
    rc = main([str(CORPUS / "cnn_flatten.onnx"), "-p", "dynamize", "--dynamic", "nope:0=batch",
               "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err == "onnxopt: error: dynamize: the model has no input 'nope' (inputs: x)\n"


def test_rounds_updated_incrementally_equal_whole_inferences(monkeypatch) -> None:
    """Each round updates the shape inference (only what the last rewrites reach) instead of
    inferring the whole model again: the repaired models and the notes are the same."""
    import onnxopt.passes.shapes.infer as shapes_infer
    from onnxopt.ir import print_model

    def run(case: str):
        meta = json.loads((CORPUS / f"{case}.json").read_text())
        try:
            model, notes = dynamize(onnxopt.load(CORPUS / f"{case}.onnx"), spec_of(meta),
                                    values=case.startswith("seq_mean_div"))
        except OnnxoptError as e:
            return str(e)
        return print_model(model), note_text(notes)

    def traced_transformer():
        """A synthetic 6-block transformer with batch 2 baked in by folding (many rounds)."""
        import importlib.util

        from onnxopt.ir import lift_model
        spec = importlib.util.spec_from_file_location(
            "synth", CORPUS.parent.parent / "benchmarks" / "synth.py")
        synth = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(synth)
        proto = synth.build(500)
        for v in list(proto.graph.input) + list(proto.graph.output):
            for d in v.type.tensor_type.shape.dim:
                if d.dim_param in ("batch", "seq"):
                    d.dim_value = 2 if d.dim_param == "batch" else 16
        m = lift_model(proto)
        PassManager("fold,dce").run(m)
        model, notes = dynamize(m, "input_ids:0=batch;attention_mask:0=batch")
        return print_model(model), note_text(notes)

    incremental = {case: run(case) for case in CASES}
    incremental["synth"] = traced_transformer()
    monkeypatch.setattr(shapes_infer, "update_inference",
                        lambda model, info, *a, **k: shapes_infer.run_inference(model))
    for case in CASES:
        assert run(case) == incremental[case], case
    assert traced_transformer() == incremental["synth"]
