"""The dynamize pass on the patterns common exports are built from, each as a tiny model of its
own (not one real model): indexed padding masks (a GatherND meshgrid, a Gather through merged
Reshape(-1) dims), buffers gathered by an arange, rotary tables arange(T) x inv_freq, tables
folded at the trace length (refused, or served up to it with --constraint 'seq<=T'), and the
constraints' bad input. Each repaired model is checked against numpy at sizes other than the
trace."""

from __future__ import annotations

import numpy as np
import pytest
from onnxopt.errors import OnnxoptError
from onnxopt.ir import SymDim
from onnxopt.passes import PassContext, PassManager
from onnxopt.passes.dynamize.algebra import Algebra
from onnxopt.passes.dynamize.constraints import BOUNDS_KEY, METADATA_KEY, suggest_modulus
from onnxopt.passes.dynamize.structure import recognise
from onnxopt.passes.pipeline import PassSpec
from onnxopt.testing import model_from_text, run_model

BS = "mask:0=batch,1=seq;x:0=batch,1=seq"


def ints(a) -> str:
    return ", ".join(str(int(v)) for v in np.ravel(a))


def floats(a) -> str:
    return ", ".join(repr(float(v)) for v in np.ravel(a))


def repair(text: str, spec: str, constraint: str = ""):
    model = model_from_text(text)
    ctx = PassContext(model)
    opts = {"dynamic": spec, "constraint": constraint}
    PassManager([PassSpec("dynamize", opts)], verify_each=True).run(model, ctx)
    return model, "\n".join(ctx.notes)


def padding_mask(b: int, t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.ones((b, t), np.int64)
    for i in range(1, b):
        m[i, rng.integers(1, t + 1):] = 0
    return m


# -- 1. padding masks built by indexing -----------------------------------------------------

B, T = np.meshgrid(np.arange(3), np.arange(7), indexing="ij")
GATHER_ND = f"""<ir_version: 8, opset_import: ["" : 18]>
g (int64[3,7] mask, float[3,7,4] x) => (float[3,7,4] y) {{
   idx = Constant <value = int64[3,1,1,7,2] {{{ints(np.stack([B, T], -1))}}}> ()
   m = GatherND (mask, idx)
   mf = Cast <to = 1> (m)
   sq = Constant <value = int64[2] {{1, 2}}> ()
   m3 = Squeeze (mf, sq)
   ax = Constant <value = int64[1] {{-1}}> ()
   mu = Unsqueeze (m3, ax)
   y = Mul (x, mu)
}}"""


def test_gathernd_meshgrid_index_is_regenerated() -> None:
    model, notes = repair(GATHER_ND, BS)
    assert "int64[3, 1, 1, 7, 2] constant 'idx' -> an affine index grid (base + i0*step0 + " \
           "i3*step3), of shape [batch, 1, 1, seq, 2]" in notes
    for b, t in [(1, 7), (5, 4), (2, 12)]:
        x = np.random.default_rng(b).standard_normal((b, t, 4)).astype(np.float32)
        mask = padding_mask(b, t, t)
        (y,) = run_model(model, {"mask": mask, "x": x})
        np.testing.assert_allclose(y, x * mask[:, :, None], rtol=1e-6)


MERGED = f"""<ir_version: 8, opset_import: ["" : 17]>
g (int64[3,7] mask, float[3,2,7,7] x) => (float[3,2,7,7] y) {{
   flat_shape = Constant <value = int64[1] {{-1}}> ()
   flat = Reshape (mask, flat_shape)
   s = Shape (mask)
   one = Constant <value = int64 {{1}}> ()
   t = Gather <axis = 0> (s, one)
   rows = Constant <value = int64[3,1] {{0, 1, 2}}> ()
   kv = Constant <value = int64[1,7] {{{ints(range(7))}}}> ()
   bt = Mul (rows, t)
   idx = Add (kv, bt)
   g = Gather (flat, idx)
   r = Reshape (g, flat_shape)
   tgt = Constant <value = int64[4] {{3, 1, 1, 7}}> ()
   m4 = Reshape (r, tgt)
   mf = Cast <to = 1> (m4)
   y = Mul (x, mf)
}}"""


def test_a_merged_index_dim_is_split_into_its_factors() -> None:
    """``attention_mask[batch_idx, kv_idx]`` as the tracer writes it: the flat index's rows
    arange is batch, its columns arange is seq, though the walk meets them as one dim of 21."""
    model, notes = repair(MERGED, "mask:0=batch,1=seq;x:0=batch,2=seq,3=seq")
    assert "int64[3, 1] constant 'rows' -> an arange 0 + 1*i, of shape [batch, 1]" in notes
    assert "int64[1, 7] constant 'kv' -> an arange 0 + 1*i, of shape [1, seq]" in notes
    for b, t in [(1, 7), (5, 4), (2, 12)]:
        x = np.random.default_rng(t).standard_normal((b, 2, t, t)).astype(np.float32)
        mask = padding_mask(b, t, b)
        (y,) = run_model(model, {"mask": mask, "x": x})
        np.testing.assert_allclose(y, x * mask[:, None, None, :], rtol=1e-6)


def test_a_flat_index_with_a_folded_size_step_is_not_regenerated() -> None:
    """``kv + b * T`` folded into one constant: the step 7 is the trace length, not a number;
    regenerating it as 7 would be right only at the trace, so it is refused."""
    at = {"batch": 3, "seq": 7}
    arr = (np.arange(3)[:, None] * 7 + np.arange(7)[None, :]).astype(np.int64)
    dims = [SymDim("batch"), SymDim("seq")]
    assert recognise(arr, dims, lambda d: d if type(d) is int else at[str(d)]) is None


# -- 2. tables indexed by the traced length -------------------------------------------------

TOKEN_TYPES = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,4] x) => (float[3,7,4] y) {{
   buf = Constant <value = int64[1,16] {{{ints([0] * 8 + [1] * 8)}}}> ()
   bshape = Constant <value = int64[2] {{3, 16}}> ()
   wide = Expand (buf, bshape)
   pos = Constant <value = int64[3,7] {{{ints(np.tile(np.arange(7), 3))}}}> ()
   tt = GatherElements <axis = 1> (wide, pos)
   table = Constant <value = float[2,4] {{{floats(np.arange(8) * 0.5)}}}> ()
   e = Gather (table, tt)
   y = Add (x, e)
}}"""


def test_gather_elements_follows_its_indices_and_its_data() -> None:
    """``torch.gather(buffer.expand(B, -1), 1, position_ids)``: the output dims are the index
    dims (an arange), and the expanded buffer must follow the batch too."""
    model, notes = repair(TOKEN_TYPES, "x:0=batch,1=seq")
    assert "Expand '' shape [3, 16] -> [batch, 16]" in notes or "shape [3, 16] -> [batch, 16]" \
        in notes
    table = (np.arange(8) * 0.5).astype(np.float32).reshape(2, 4)
    for b, t in [(1, 7), (5, 4), (2, 12)]:
        x = np.random.default_rng(b).standard_normal((b, t, 4)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        tt = np.array([0] * 8 + [1] * 8)[:t]
        np.testing.assert_allclose(y, x + table[tt][None], rtol=1e-6)


INV = (1.0 / 10000 ** (np.arange(0, 8, 2) / 8)).astype(np.float32)
ANGLES = np.arange(7, dtype=np.float32)[:, None] * INV[None, :]
ROTARY = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,8] x) => (float[3,7,8] y) {{
   ang = Constant <value = float[1,7,8] {{{floats(np.concatenate([ANGLES, ANGLES], -1))}}}> ()
   c = Cos (ang)
   y = Mul (x, c)
}}"""


def test_rotary_angles_are_an_arange_times_a_frequency_per_column() -> None:
    model, notes = repair(ROTARY, "x:0=batch,1=seq")
    assert "float[1, 7, 8] constant 'ang' -> an affine index grid (base + i1*step1)" in notes
    for b, t in [(1, 7), (2, 12), (3, 3)]:
        x = np.random.default_rng(t).standard_normal((b, t, 8)).astype(np.float32)
        ang = np.arange(t, dtype=np.float32)[:, None] * INV[None, :]
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, x * np.cos(np.concatenate([ang, ang], -1)), rtol=1e-5,
                                   atol=1e-6)


# -- 3. tables folded at the trace length: the bounded repair -------------------------------

POS = np.random.default_rng(3).standard_normal((1, 7, 4)).astype(np.float32)
FOLDED = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,4] x) => (float[3,7,4] y) {{
   pos = Constant <value = float[1,7,4] {{{floats(POS)}}}> ()
   y = Add (x, pos)
}}"""


def test_a_folded_table_is_refused_and_the_bounded_repair_suggested() -> None:
    with pytest.raises(OnnxoptError, match=r"float\[1, 7, 4\] constant 'pos'.*--constraint "
                                           r"'seq<=7'"):
        repair(FOLDED, "x:0=batch,1=seq")


def test_the_bounded_repair_serves_lengths_up_to_the_folded_rows() -> None:
    model, notes = repair(FOLDED, "x:0=batch,1=seq", "seq<=7")
    assert "the first rows of the folded table (sliced to seq at run time)" in notes
    assert "seq <= 7: given by --constraint" in notes
    assert model.metadata_props[METADATA_KEY] == "seq<=7"
    assert model.metadata_props[BOUNDS_KEY] == "seq<=7"  # the largest size the model serves
    for b, t in [(1, 7), (5, 4), (2, 1)]:
        x = np.random.default_rng(t).standard_normal((b, t, 4)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, x + POS[:, :t], rtol=1e-6)
    with pytest.raises(Exception, match="out of bounds|invalid|INVALID"):  # an error, never wrong
        run_model(model, {"x": np.zeros((1, 9, 4), np.float32)})


def test_a_bound_above_the_folded_rows_is_still_refused() -> None:
    with pytest.raises(OnnxoptError, match="constant 'pos'"):
        repair(FOLDED, "x:0=batch,1=seq", "seq<=12")


# -- 4. constraints -------------------------------------------------------------------------

def test_the_refusal_suggests_the_modulus_that_makes_a_size_whole() -> None:
    import sympy

    alg = Algebra({"height": 32})
    h = sympy.Symbol("height", integer=True, positive=True)
    assert suggest_modulus(alg, SymDim.from_expr(sympy.floor(h / 4) / 4)) == "height%16==0"
    assert alg.modulus == {}  # asking changes nothing


@pytest.mark.parametrize("constraint,message", [
    ("depth%16==0", "depth is not a freed dim (freed: batch, seq)"),
    ("seq%2==0", "the trace seq is 7, not a multiple of 2"),
    ("seq%0==0", "a modulus must be a positive whole number, not 0"),
    ("seq%-4==0", "a modulus must be a positive whole number, not -4"),
    ("seq<=3", "the trace seq is 7, above 3"),
    ("seq==7", "expected NAME%M==0 (a multiple of M) or NAME<=N (at most N)"),
])
def test_bad_constraints_are_one_line_exit_2_nothing_written(tmp_path, capsys, constraint,
                                                             message) -> None:
    from onnxopt.cli.main import main

    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    import onnxopt

    onnxopt.save(model_from_text(FOLDED), src)
    rc = main([str(src), "-p", "dynamize", "--dynamic", "x:0=batch,1=seq", "--constraint",
               constraint, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and message in err, err


def test_cli_constraint_end_to_end(tmp_path, capsys) -> None:
    import onnxopt
    from onnxopt.cli.main import main

    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnxopt.save(model_from_text(FOLDED), src)
    rc = main([str(src), "-p", "dynamize", "--dynamic", "x:0=batch,1=seq", "--constraint",
               "seq<=7", "-o", str(out), "--report"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "assumes seq<=7 (--constraint; recorded in the model's metadata" in text
    assert onnxopt.load(out).metadata_props[METADATA_KEY] == "seq<=7"


@pytest.mark.parametrize("text,constraint", [
    ('dynamize{dynamic="x:0=batch,1=seq",constraint=seq<=7}', "seq<=7"),
    ('dynamize{dynamic="x:0=batch,1=seq",constraint=seq <= 7; seq%7==0,check=false}',
     "seq<=7;seq%7==0"),
])
def test_pipeline_text_takes_constraints_unquoted(text, constraint) -> None:
    """``%``, ``<=`` and ``==`` join the tokens of one option value; the value prints quoted,
    so the pipeline round-trips through its text."""
    from onnxopt.passes.pipeline import format_pipeline, parse_pipeline

    (spec,) = parse_pipeline(text)
    assert spec.options["constraint"] == constraint
    assert parse_pipeline(format_pipeline([spec])) == [spec]


def test_pipeline_text_constraint_end_to_end(tmp_path, capsys) -> None:
    import onnxopt
    from onnxopt.cli.main import main

    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnxopt.save(model_from_text(FOLDED), src)
    rc = main([str(src), "-p", 'dynamize{dynamic="x:0=batch,1=seq",constraint=seq<=7}', "-o",
               str(out)])
    assert rc == 0, capsys.readouterr().err
    assert onnxopt.load(out).metadata_props[METADATA_KEY] == "seq<=7"


# -- 5. walk gaps ---------------------------------------------------------------------------

STRIDED = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,4] x) => (float[3,2] y) {{
   flat_shape = Constant <value = int64[1] {{-1}}> ()
   flat = Reshape (x, flat_shape)
   idx = Constant <value = int64[3,2] {{{ints([0, 2, 4, 6, 8, 10])}}}> ()
   y = Gather (flat, idx)
}}"""


def test_a_freed_size_lost_in_a_flat_baked_index_is_reported_before_the_run_check() -> None:
    """``x.as_strided((3, 2), (4, 2))`` as an export writes it: the model would run at every
    batch and return the trace's elements; it is refused, naming the Gather."""
    with pytest.raises(OnnxoptError, match=r"an unnamed Gather reads fixed elements \[3, 2\] of a "
                                           r"flattened axis of size 4\*batch"):
        repair(STRIDED, "x:0=batch")


SHARED = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,7] x) => (float[3,7,7] y) {{
   i = Constant <value = int64[7,1] {{{ints(range(7))}}}> ()
   j = Constant <value = int64[1,7] {{{ints(range(7))}}}> ()
   d = Sub (j, i)
   a = Abs (d)
   four = Constant <value = int64 {{4}}> ()
   near = Less (a, four)
   af = Cast <to = 1> (a)
   zero = Constant <value = float {{0.0}}> ()
   bias = Where (near, af, zero)
   y = Add (x, bias)
}}"""


def test_a_value_with_several_consumers_is_followed_through_each() -> None:
    """``|j - i|`` feeds Less and Cast: both paths lead to the same aranges, and the second
    visit is not reported as a dim that comes from nowhere."""
    model, _notes = repair(SHARED, "x:1=seq,2=seq")
    for t in (3, 10):
        x = np.random.default_rng(t).standard_normal((3, t, t)).astype(np.float32)
        a = np.abs(np.arange(t)[None, :] - np.arange(t)[:, None])
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, x + np.where(a < 4, a, 0).astype(np.float32), rtol=1e-6)


def test_max_and_floor_sizes_are_computed_at_run_time() -> None:
    """Frame counts of strided convolutions: ``Max(0, floor(n/4) - 1)``."""
    import sympy
    from onnxopt.ir.shape import symbol
    from onnxopt.passes.dynamize.emit import Emitter

    model = model_from_text("""<ir_version: 8, opset_import: ["" : 17]>
g (float[n] x) => (float[n] y) { y = Identity (x) }""")
    g = model.graph
    em = Emitter(model, g, {"n": (g.inputs[0], 0)}, next(iter(g.nodes)))
    n = symbol("n")
    frames = em.size(SymDim.from_expr(sympy.Max(0, sympy.floor(n / 4) - 1)))
    frames.name = "frames"
    g.outputs = [*g.outputs, frames]
    for size, want in [(3, 0), (7, 0), (8, 1), (21, 4)]:
        _, got = run_model(model, {"x": np.zeros(size, np.float32)})
        assert got.tolist() == [want]


MEM = (np.arange(4, dtype=np.float32) * 0.1).reshape(1, 1, 4)
W = (np.arange(16, dtype=np.float32) * 0.05).reshape(4, 4)
CAT_MEMORY = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7,4] x) => (float[3,8,4] y) {{
   memp = Constant <value = float[1,1,4] {{{floats(MEM)}}}> ()
   ms = Constant <value = int64[3] {{3, 1, 4}}> ()
   mem = Expand (memp, ms)
   c = Concat <axis = 1> (mem, x)
   s1 = Constant <value = int64[2] {{24, 4}}> ()
   f = Reshape (c, s1)
   w = Constant <value = float[4,4] {{{floats(W)}}}> ()
   h = MatMul (f, w)
   s2 = Constant <value = int64[3] {{3, 8, 4}}> ()
   y = Reshape (h, s2)
}}"""


def test_a_product_with_a_sum_is_grouped_before_it_is_split() -> None:
    """``torch.cat([mem, x], 1).reshape(B*(T+1), C)`` and back: B*T + B is B*(T+1), not a
    multiple of the traced T+1 = 8."""
    model, notes = repair(CAT_MEMORY, "x:0=batch,1=seq")
    assert "shape [3, 8, 4] -> [batch, seq + 1, 4]" in notes
    for b, t in [(1, 7), (2, 5), (4, 12)]:
        x = np.random.default_rng(t).standard_normal((b, t, 4)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        want = np.concatenate([np.broadcast_to(MEM, (b, 1, 4)), x], 1) @ W
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


WINDOWS = """<ir_version: 8, opset_import: ["" : 17]>
g (float[3,8,4] x) => (float[3,2,4,4] y) {
   s = Constant <value = int64[4] {3, 2, 4, 4}> ()
   y = Reshape (x, s)
}"""


def test_a_modulus_constraint_is_proved_recorded_and_enforced_at_run_time() -> None:
    model, notes = repair(WINDOWS, "x:0=batch,1=seq", "seq%4==0")
    assert "assumes seq%4==0" in notes and model.metadata_props[METADATA_KEY] == "seq%4==0"
    assert "ran at batch=4, seq=12" in notes  # the run check picks multiples of 4
    x = np.arange(2 * 12 * 4, dtype=np.float32).reshape(2, 12, 4)
    (y,) = run_model(model, {"x": x})
    np.testing.assert_array_equal(y, x.reshape(2, 3, 4, 4))  # windows of 4 (outer first)
    with pytest.raises(Exception, match="Reshape"):  # seq = 6 breaks the promise: an error
        run_model(model, {"x": np.zeros((2, 6, 4), np.float32)})


SCATTER = """<ir_version: 8, opset_import: ["" : 18]>
g (float[3,7] x) => (float[3,7] y) {
   idx = Constant <value = int64[3,1] {0, 0, 0}> ()
   upd = Constant <value = float[3,1] {2.0, 2.0, 2.0}> ()
   y = ScatterElements <axis = 1> (x, idx, upd)
}"""


def test_a_scatter_covers_every_row_of_its_data() -> None:
    """``shifted[:, 0] = start``: with the batch freed, baked [3, 1] indices and updates would
    leave rows 3.. untouched (a model that runs and is wrong); they follow the data instead."""
    model, notes = repair(SCATTER, "x:0=batch,1=seq")
    assert "int64[3, 1] constant 'idx' -> a fill of 0, of shape [batch, 1]" in notes
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    (y,) = run_model(model, {"x": x})
    want = x.copy()
    want[:, 0] = 2.0
    np.testing.assert_array_equal(y, want)


def test_a_block_repeated_per_batch_is_regenerated_for_any_batch() -> None:
    """A relative-position table expanded to batch * heads rows (dim 2*batch): one block of 2
    rows, repeated; a table whose blocks differ is not."""
    from onnxopt.ir.shape import symbol

    block = np.arange(6, dtype=np.float32).reshape(2, 3)
    dims = [SymDim.from_expr(2 * symbol("batch")), 3]
    at = lambda d: d if type(d) is int else int(d.expr.subs(symbol("batch"), 3))
    rec = recognise(np.concatenate([block] * 3), dims, at)
    assert rec is not None and rec.what == "a block of 2 rows repeated batch times"
    rows = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    assert recognise(rows, dims, at) is None


def test_api_constraint_through_a_pass_spec(tmp_path) -> None:
    import onnxopt

    src = tmp_path / "in.onnx"
    onnxopt.save(model_from_text(FOLDED), src)
    spec = PassSpec("dynamize", {"dynamic": "x:0=batch,1=seq", "constraint": "seq<=7"})
    result = onnxopt.optimize(str(src), [spec])
    assert result.model.metadata_props[METADATA_KEY] == "seq<=7"
    with pytest.raises(OnnxoptError, match="the trace seq is 7, above 5"):
        onnxopt.optimize(str(src), [PassSpec("dynamize", {"dynamic": "x:0=batch,1=seq",
                                                          "constraint": "seq<=5"})])


POS2 = np.random.default_rng(4).standard_normal((1, 4, 2)).astype(np.float32)
FOLDED_DERIVED = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,8] x) => (float[3,4,2] y) {{
   s = Constant <value = int64[3] {{3, 4, 2}}> ()
   r = Reshape (x, s)
   pos = Constant <value = float[1,4,2] {{{floats(POS2)}}}> ()
   y = Add (r, pos)
}}"""


def test_the_bounded_repair_slices_a_table_folded_along_a_derived_dim() -> None:
    """A table folded over a size derived from the input (a feature map of seq/2 rows, as a
    position embedding over a downsampled image): bounded by the input size it comes from."""
    with pytest.raises(OnnxoptError, match="--constraint 'seq<=8'"):
        repair(FOLDED_DERIVED, "x:0=batch,1=seq")
    model, _ = repair(FOLDED_DERIVED, "x:0=batch,1=seq", "seq<=8")
    for b, t in [(1, 8), (2, 6), (5, 2)]:
        x = np.random.default_rng(t).standard_normal((b, t)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, x.reshape(b, t // 2, 2) + POS2[:, :t // 2], rtol=1e-6)


# -- fills of an input's trace shape ----------------------------------------------------------

BI, TI = np.meshgrid(np.arange(3), np.arange(1, 7), indexing="ij")
SHIFT_RIGHT = f"""<ir_version: 8, opset_import: ["" : 17]>
g (int64[3,7] ids) => (int64[3,7] y) {{
   canvas = Constant <value = int64[3,7] {{{ints(np.zeros(21))}}}> ()
   idx = Constant <value = int64[3,6,2] {{{ints(np.stack([BI, TI], -1))}}}> ()
   st = Constant <value = int64[1] {{0}}> ()
   en = Constant <value = int64[1] {{-1}}> ()
   ax = Constant <value = int64[1] {{1}}> ()
   upd = Slice (ids, st, en, ax)
   y = ScatterND (canvas, idx, upd)
}}"""


def test_a_scatter_canvas_shaped_like_an_input_follows_it() -> None:
    """``ids.new_zeros(ids.shape); shifted[:, 1:] = ids[:, :-1]`` (BART's shift_tokens_right):
    the tracer folds the canvas into zeros of the trace shape while the indices grow with the
    sizes; the canvas, a pure fill of exactly the input's shape, is regenerated from it."""
    model, notes = repair(SHIFT_RIGHT, "ids:0=batch,1=seq")
    assert "int64[3, 7] constant 'canvas' -> a fill of 0, of shape [batch, seq]" in notes
    for b, t in [(1, 7), (5, 4), (2, 12)]:
        ids = np.random.default_rng(t).integers(1, 50, (b, t))
        (y,) = run_model(model, {"ids": ids})
        want = np.zeros_like(ids)
        want[:, 1:] = ids[:, :-1]
        np.testing.assert_array_equal(y, want)


FLAT_FILL = f"""<ir_version: 8, opset_import: ["" : 17]>
g (int64[3,7] ids, float[3,1,7,7] x) => (float[3,1,7,7] y) {{
   ones = Constant <value = bool[3,7] {{{ints(np.ones(21))}}}> ()
   flat = Flatten <axis = 2> (ones)
   idx = Constant <value = int64[3,1,1,7] {{{ints(np.arange(21))}}}> ()
   g = Gather (flat, idx)
   sq = Constant <value = int64[1] {{-1}}> ()
   m = Squeeze (g, sq)
   mf = Cast <to = 1> (m)
   y = Mul (x, mf)
}}"""


def test_a_flat_index_into_a_flattened_input_shaped_fill_is_a_position() -> None:
    """A decoder mask defaulted to ``ones(ids.shape)`` and read as ``mask[b_idx, t_idx]``: the
    fill is flattened and gathered with ``b*T + t``. Read there (and only there), the step 7
    is the size T: both the fill and the flat index are regenerated."""
    model, notes = repair(FLAT_FILL, "ids:0=batch,1=seq;x:0=batch,2=seq,3=seq")
    assert "bool[3, 7] constant 'ones' -> a fill of True, of shape [batch, seq]" in notes
    assert "int64[3, 1, 1, 7] constant 'idx' -> a flat row-major index, of shape " \
           "[batch, 1, 1, seq]" in notes
    for b, t in [(1, 7), (5, 4), (2, 12)]:
        x = np.random.default_rng(t).standard_normal((b, 1, t, t)).astype(np.float32)
        (y,) = run_model(model, {"ids": np.zeros((b, t), np.int64), "x": x})
        np.testing.assert_array_equal(y, x)


def test_a_flat_index_is_regenerated_only_where_its_reader_proves_the_layout() -> None:
    at = {"batch": 3, "seq": 7}
    arr = np.arange(21, dtype=np.int64).reshape(3, 7)
    dims = [SymDim("batch"), SymDim("seq")]
    ev = lambda d: d if type(d) is int else at[str(d)]
    assert recognise(arr, dims, ev) is None
    rec = recognise(arr, dims, ev, flat=True)
    assert rec is not None and rec.what == "a flat row-major index"
    assert recognise(arr + (arr > 9), dims, ev, flat=True) is None


# -- asymmetric pads on a strided axis (TF-style "same" padding) -------------------------------

W3 = ints(np.ones(9))
TF_SAME = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[2,1,8,8] x) => (float[2,1,4,4] y) {{
   w = Constant <value = float[1,1,3,3] {{{W3}}}> ()
   y = Conv <pads = [0, 0, 1, 1], strides = [2, 2], kernel_shape = [3, 3]> (x, w)
}}"""
TF_SAME_PAD = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[2,1,8,8] x) => (float[2,1,4,4] y) {{
   pads = Constant <value = int64[8] {{0, 0, 0, 0, 0, 0, 1, 1}}> ()
   p = Pad (x, pads)
   w = Constant <value = float[1,1,3,3] {{{W3}}}> ()
   y = Conv <strides = [2, 2], kernel_shape = [3, 3]> (p, w)
}}"""
HW = "x:0=batch,2=height,3=width"


@pytest.mark.parametrize("text", [TF_SAME, TF_SAME_PAD], ids=["conv-pads", "pad-node"])
def test_asymmetric_pads_on_a_stride_hold_only_at_its_multiples(text) -> None:
    """Pads ``0, 1`` at stride 2 are TF "same" padding at an even size or a fixed ``F.pad``:
    the two differ at odd sizes and the file cannot tell which, so the repair is refused and
    the constraint that makes both agree suggested (in the Conv's pads or a Pad before it)."""
    with pytest.raises(OnnxoptError, match=r"asymmetric pads \[0, 0, 1, 1\] on a stride-2 axis"
                       r".* --constraint 'height%2==0' --constraint 'width%2==0'"):
        repair(text, HW)


def test_under_the_constraint_the_pads_are_kept_and_other_sizes_fail() -> None:
    """Under ``height%2==0`` the baked pads are right at every allowed size; no size
    computation reads height, so the input passes a guard and an odd size is an error, not a
    result computed with the wrong padding."""
    model, notes = repair(TF_SAME, HW, "height%2==0;width%2==0")
    x = np.random.default_rng(0).standard_normal((1, 1, 6, 10)).astype(np.float32)
    (y,) = run_model(model, {"x": x})
    xp = np.pad(x, [(0, 0), (0, 0), (0, 1), (0, 1)])
    want = np.array([[xp[0, 0, i:i + 3, j:j + 3].sum() for j in range(0, 9, 2)]
                     for i in range(0, 5, 2)], np.float32)
    np.testing.assert_allclose(y[0, 0], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="Reshape"):
        run_model(model, {"x": np.zeros((1, 1, 7, 10), np.float32)})


def test_a_failure_found_only_by_the_run_check_names_its_pattern() -> None:
    """onnxruntime names the node that failed at another size; the refusal adds the pattern
    (here an index past a mask folded at the trace size) and the constants it read."""
    from onnxopt.passes.dynamize.runcheck import describe_failure
    from onnxopt.testing import model_from_text

    model = model_from_text(f"""<ir_version: 8, opset_import: ["" : 17]>
    g (int64[3,7] idx) => (bool[3,7,1] y) {{
       ones = Constant <value = bool[21,1] {{{ints(np.ones(21))}}}> ()
       y = Gather (ones, idx)
    }}""")
    gather = [n for n in model.graph.nodes if n.op_type == "Gather"][0]
    gather.name = "mask_gather"
    msg = ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while "
           "running Gather node. Name:'mask_gather' Status Message: indices element out of data "
           "bounds, idx=21 must be within the inclusive range [-21,20]")
    assert describe_failure(model, msg) == (
        " (pattern at Gather 'mask_gather': indices that reach past data kept at its trace size"
        " (a folded table, mask or canvas); constant operands: 'ones' [21, 1])")
    assert describe_failure(model, "no node named") == ""
