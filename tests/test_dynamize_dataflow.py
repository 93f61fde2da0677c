"""Dynamize where the trace sizes alone are ambiguous and the dataflow decides: a patch count
equal to the channel count (MobileViT's unfolding at 32x32), and a Resize baked at the trace
(its sizes computed from the input there, which the file no longer says how)."""

from __future__ import annotations

import numpy as np
import pytest
from onnxopt.errors import OnnxoptError
from onnxopt.passes import PassContext, PassManager
from onnxopt.passes.dynamize.constraints import BOUNDS_KEY
from onnxopt.passes.pipeline import PassSpec
from onnxopt.testing import model_from_text, run_model

IMG = "x:0=batch,2=height,3=width"
W = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)


def floats(a) -> str:
    return ", ".join(repr(float(v)) for v in np.ravel(a))


def repair(text: str, constraint: str = ""):
    model = model_from_text(text)
    ctx = PassContext(model)
    PassManager([PassSpec("dynamize", {"dynamic": IMG, "constraint": constraint})],
                verify_each=True).run(model, ctx)
    return model, "\n".join(ctx.notes)


# 4 channels, a 4x4 map, 2x2 patches: 4 patches, as many as the channels.
UNFOLD = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,4,4,4] x) => (float[12,4,5] y) {{
   s1 = Constant <value = int64[4] {{24, 2, 2, 2}}> ()
   r1 = Reshape (x, s1)
   t1 = Transpose <perm = [0, 2, 1, 3]> (r1)
   s2 = Constant <value = int64[4] {{3, 4, 4, 4}}> ()
   r2 = Reshape (t1, s2)
   t2 = Transpose <perm = [0, 3, 2, 1]> (r2)
   s3 = Constant <value = int64[3] {{12, 4, 4}}> ()
   r3 = Reshape (t2, s3)
   w = Constant <value = float[4,5] {{{floats(W)}}}> ()
   y = MatMul (r3, w)
}}"""


def unfold(x: np.ndarray) -> np.ndarray:
    """MobileViT's unfolding: [B, C, H, W] -> [B * patch area, patches, C], then the weight."""
    b, c, h, w = x.shape
    p = x.reshape(b * c * (h // 2), 2, w // 2, 2).transpose(0, 2, 1, 3)
    p = p.reshape(b, c, (h // 2) * (w // 2), 4).transpose(0, 3, 2, 1)
    return p.reshape(b * 4, (h // 2) * (w // 2), c) @ W


def test_a_patch_count_equal_to_the_channels_follows_the_dataflow() -> None:
    """At the trace, [24, 2, 2, 2] -> [3, 4, 4, 4] reads as channels x patches or patches x
    channels; the factors of the merged dim 0 ([batch, 4, height/2] from the first Reshape)
    put the channels second, so the weight's 4 rows stay the channels."""
    model, notes = repair(UNFOLD, "height%2==0;width%2==0")
    assert "ran at" in notes
    for b, h, w in [(1, 4, 4), (2, 8, 6), (5, 2, 10)]:
        x = np.random.default_rng(h * w).standard_normal((b, 4, h, w)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, unfold(x), rtol=1e-5, atol=1e-5)


def test_counts_alone_would_have_freed_the_weight_rows(monkeypatch) -> None:
    """Without the dataflow (the split by counts alone), the patch count lands where the
    weight's rows are: refused, never wrong. This is what the factors fix."""
    from onnxopt.passes.dynamize import factors

    monkeypatch.setattr(factors, "ordered_elems", lambda *a: None)
    with pytest.raises(OnnxoptError, match="MatMul"):
        repair(UNFOLD, "height%2==0;width%2==0")


# A 4x4 map pooled to 1x1, resized to a baked 2x2 (at the trace: ceil(1/2)*2 whole patches).
RESIZE = """<ir_version: 8, opset_import: ["" : 17]>
g (float[3,2,4,4] x) => (float[3,2] y) {
   p = AveragePool <kernel_shape = [4, 4], strides = [4, 4]> (x)
   roi = Constant <value = float[0] {}> ()
   sc = Constant <value = float[0] {}> ()
   sz = Constant <value = int64[4] {3, 2, 2, 2}> ()
   r = Resize <mode = "linear"> (p, roi, sc, sz)
   ax = Constant <value = int64[2] {2, 3}> ()
   y = ReduceSum <keepdims = 0> (r, ax)
}"""


def test_a_resize_baked_at_the_trace_is_refused_with_the_bound_that_keeps_it_right() -> None:
    with pytest.raises(OnnxoptError, match=r"Resize 'r'|an unnamed Resize") as e:
        repair(RESIZE, "height%4==0;width%4==0")
    assert "to a baked 2" in str(e.value)
    assert "--constraint 'height<=4' --constraint 'width<=4'" in str(e.value)


def test_the_bounded_resize_serves_the_trace_size_and_fails_above_it() -> None:
    model, notes = repair(RESIZE, "height%4==0;width%4==0;height<=4;width<=4")
    assert model.metadata_props[BOUNDS_KEY] == "height<=4; width<=4"
    for b in (1, 5):  # the batch follows the input, through the Resize's sizes too
        x = np.random.default_rng(b).standard_normal((b, 2, 4, 4)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, 4 * x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="Gather|out of bounds|indices"):
        run_model(model, {"x": np.zeros((1, 2, 8, 8), np.float32)})


CW = np.random.default_rng(1).standard_normal((2, 2, 2, 2)).astype(np.float32)
# Swin's windows over a downsampled map: a 2x2 stride-2 patch embedding, 4x4 windows
# partitioned and merged back (window_partition / window_reverse, the windows' batch merged).
WINDOWS = f"""<ir_version: 8, opset_import: ["" : 18]>
g (float[3,2,16,16] x) => (float[3,8,8,2] y) {{
   w = Constant <value = float[2,2,2,2] {{{floats(CW)}}}> ()
   e = Conv <kernel_shape = [2, 2], strides = [2, 2]> (x, w)
   n = Transpose <perm = [0, 2, 3, 1]> (e)
   s1 = Constant <value = int64[6] {{3, 2, 4, 2, 4, 2}}> ()
   r1 = Reshape <allowzero = 1> (n, s1)
   t1 = Transpose <perm = [0, 1, 3, 2, 4, 5]> (r1)
   s2 = Constant <value = int64[3] {{12, 16, 2}}> ()
   win = Reshape <allowzero = 1> (t1, s2)
   h = Softmax <axis = 1> (win)
   s3 = Constant <value = int64[6] {{3, 2, 2, 4, 4, 2}}> ()
   r3 = Reshape <allowzero = 1> (h, s3)
   t3 = Transpose <perm = [0, 1, 3, 2, 4, 5]> (r3)
   s4 = Constant <value = int64[4] {{3, 8, 8, 2}}> ()
   y = Reshape <allowzero = 1> (t3, s4)
}}"""


def windows(x: np.ndarray) -> np.ndarray:
    b, _, hh, ww = x.shape
    e = np.einsum("bchpwq,ocpq->bohw", x.reshape(b, 2, hh // 2, 2, ww // 2, 2), CW)
    n = e.transpose(0, 2, 3, 1)
    h2, w2 = hh // 2, ww // 2
    win = n.reshape(b, h2 // 4, 4, w2 // 4, 4, 2).transpose(0, 1, 3, 2, 4, 5)
    win = win.reshape(-1, 16, 2)
    win = np.exp(win - win.max(1, keepdims=True))
    win = win / win.sum(1, keepdims=True)
    r = win.reshape(b, h2 // 4, w2 // 4, 4, 4, 2).transpose(0, 1, 3, 2, 4, 5)
    return r.reshape(b, h2, w2, 2)


def test_windows_over_a_downsampled_map_merge_back_under_the_constraint() -> None:
    """The windows' batch dim (batch * height/8 * width/8) is split back by its factors, so
    with height%8 and width%8 every element is whole (Swin through the dynamo exporter)."""
    with pytest.raises(OnnxoptError, match="height%8==0"):
        repair(WINDOWS)
    model, notes = repair(WINDOWS, "height%8==0;width%8==0")
    for b, hh, ww in [(1, 16, 16), (2, 8, 24), (4, 32, 8)]:
        x = np.random.default_rng(hh + ww).standard_normal((b, 2, hh, ww)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        np.testing.assert_allclose(y, windows(x), rtol=1e-4, atol=1e-5)


CV = np.random.default_rng(2).standard_normal((2, 2, 1, 1)).astype(np.float32)
# A map pooled, resized back to the input's size (baked) and projected by a 1x1 Conv before it
# meets the input again: MobileViT's fold, whose sizes the walk reaches through the Conv.
RESIZE_BACK = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[3,2,4,4] x) => (float[3,4,4,4] y) {{
   p = AveragePool <kernel_shape = [4, 4], strides = [4, 4]> (x)
   roi = Constant <value = float[0] {{}}> ()
   sc = Constant <value = float[0] {{}}> ()
   sz = Constant <value = int64[4] {{3, 2, 4, 4}}> ()
   r = Resize <mode = "nearest"> (p, roi, sc, sz)
   w = Constant <value = float[2,2,1,1] {{{floats(CV)}}}> ()
   c = Conv <kernel_shape = [1, 1]> (r, w)
   y = Concat <axis = 1> (x, c)
}}"""


def test_a_resize_back_to_the_input_size_is_reached_through_a_1x1_conv() -> None:
    model, notes = repair(RESIZE_BACK)
    for b, h, w in [(1, 4, 4), (5, 7, 5)]:  # the pooled map stays 1x1: the resize broadcasts
        x = np.random.default_rng(h).standard_normal((b, 2, h, w)).astype(np.float32)
        (y,) = run_model(model, {"x": x})
        pooled = x[:, :, :4, :4].mean(axis=(2, 3))
        proj = np.broadcast_to((pooled @ CV[:, :, 0, 0].T)[:, :, None, None], (b, 2, h, w))
        np.testing.assert_allclose(y, np.concatenate([x, proj], 1), rtol=1e-5, atol=1e-5)
