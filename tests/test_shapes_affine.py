"""Dims in one symbol with at most one floor (``passes/shapes/affine.py``): computed without
sympy, and exactly what the sympy path computes, text, comparisons and values alike."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys

import pytest
from onnxopt.ir import SymDim
from onnxopt.ir.shape import parse_dim_expr
from onnxopt.passes.shapes import affine as A
from onnxopt.passes.shapes import dims as D

H = SymDim("H")


def conv(d, k=3, s=2, p=1):
    return D.add(D.floordiv(D.sub(D.add(D.add(d, p), p), k), s), 1)


@pytest.mark.parametrize("build, text", [
    (lambda: conv(H), "floor(H/2 + 1/2)"),
    (lambda: conv(conv(H)), "floor(H/4 + 3/4)"),
    (lambda: conv(H, k=16, s=16, p=0), "floor(H/16)"),
    (lambda: D.ceildiv(D.sub(H, 3), 2), "floor(H/2) - 1"),
    (lambda: D.sub(conv(H), 1), "floor(H/2 + 1/2) - 1"),
    (lambda: D.mul(conv(H), 2), "2*floor(H/2 + 1/2)"),
    (lambda: D.sub(H, conv(H)), "H - floor(H/2 + 1/2)"),
    (lambda: D.sub(3, H), "3 - H"),
    (lambda: D.sub(1, D.mul(conv(H), 2)), "1 - 2*floor(H/2 + 1/2)"),
    (lambda: D.floordiv(D.sub(3, H), 2), "floor(1/2 - H/2) + 1"),
    (lambda: D.neg(D.add(H, 1)), "-H - 1"),
    (lambda: D.mul(D.add(H, 1), 3), "3*H + 3"),
    (lambda: D.add(SymDim("p2o.Dim.1"), 5), "p2o.Dim.1 + 5"),
])
def test_forms_print_as_sympy_prints_them(build, text):
    d = build()
    assert str(d) == text
    assert str(parse_dim_expr(text)) == text  # the text is sympy's own, parsed back unchanged
    assert d._canon == text  # hashing it needs no sympy


def test_what_leaves_the_form_goes_to_sympy():
    w = SymDim("W")
    assert str(D.add(H, w)) == "H + W"  # two symbols
    assert str(D.add(conv(H), conv(conv(H)))) == "floor(H/4 + 3/4) + floor(H/2 + 1/2)"
    assert str(D.truediv(D.add(H, 1), 2)) == "H/2 + 1/2"  # not an integer form
    assert D.truediv(H, 0) is None and D.mod(H, 0) is None  # sympy's zoo and nan are no dims


def test_comparisons():
    a, b = conv(H), conv(conv(H))
    assert D.eq(a, conv(H)) and not D.eq(a, b)
    assert D.le(b, a) is True  # two floors: decided over one period (affine.quasi_nonneg)
    assert D.le(a, b) is None  # equal at H = 1, larger at H = 3
    assert D.le(1, a) is True and D.le(a, 0) is False and D.lt(D.sub(a, 1), a) is True
    assert D.le(D.sub(3, H), 2) is True and D.ne(D.add(H, 1), H)
    assert D.evaluate(b, {"H": 224}) == 56 and D.free_symbols(b) == frozenset({"H"})


def _fpn_dims(rnd: random.Random) -> list:
    """Dims an FPN or U-Net export gives a dynamic H: strided convolutions and pools (kernel
    and padding varied), then 2x upsampling back, as the decoder adds a coarse map to a finer
    one."""
    d, out = H, []
    for _ in range(rnd.randint(1, 5)):
        k = rnd.choice([1, 2, 3, 5, 7])
        d = conv(d, k=k, s=rnd.choice([2, 2, 4]), p=rnd.choice([0, k // 2]))
        out.append(d)
    for _ in range(rnd.randint(0, 3)):
        d = D.mul(d, 2)
        out.append(d)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_two_floors_compare_as_their_values_do(seed, monkeypatch):
    """Every comparison of two such dims, decided over one period, is exactly what their values
    at H = 1..1024 say (True: <= at all of them, False: > at all, None: both), and the sympy
    path decides the same."""
    rnd = random.Random(seed)
    dims = [d for _ in range(6) for d in _fpn_dims(rnd) if not isinstance(d, int)]
    pairs = list(itertools.product(dims, repeat=2))
    pairs = rnd.sample(pairs, min(len(pairs), 80))
    got = [D.le(a, b) for a, b in pairs]
    for (a, b), r in zip(pairs, got):
        x, y = A.of_dim(a), A.of_dim(b)  # a period of these dims is at most 4**5 = 1024
        holds = {A.evaluate(x, v) <= A.evaluate(y, v) for v in range(1, 1025)}
        assert {True: {True}, False: {False}, None: {True, False}}[r] == holds, (a, b, r)
    D.clear_caches()
    monkeypatch.setattr(D, "_affine_binop", lambda *a: D._OUTSIDE)
    monkeypatch.setattr(A, "of_dim", lambda d: None)
    texts = [(SymDim(str(a)), SymDim(str(b))) for a, b in pairs]
    assert [D.le(a, b) for a, b in texts] == got
    monkeypatch.undo()
    D.clear_caches()


def test_an_fpn_sum_of_two_strides_is_the_finer_dim():
    """The broadcast of a stride-16 map upsampled 2x with a stride-8 one is the upsampled dim:
    2*ceil(H/16) >= ceil(H/8) for every H, so no Max is left for sympy."""
    s8, s16 = conv(conv(conv(H))), conv(conv(conv(conv(H))))
    up = D.mul(s16, 2)
    assert str(D.dmax(s8, up)) == "2*floor(H/16 + 15/16)"
    assert D.le(up, s8) is None and D.le(s8, up) is True


NAMES = ["H", "h", "width", "p2o.DynamicDimension.1", "unk_x_2", "Z9", "_q", "a.b"]
OPS = ["add", "sub", "mul", "neg", "floordiv", "ceildiv", "truediv"]


def _chain(seed: int, affine: bool, monkeypatch) -> tuple:
    """A random chain of dim arithmetic, then every comparison and some values of its last dims;
    with ``affine`` False the forms are switched off, so sympy computes everything."""
    D.clear_caches()
    if not affine:
        monkeypatch.setattr(D, "_affine_binop", lambda *a: D._OUTSIDE)
        monkeypatch.setattr(A, "of_dim", lambda d: None)
    rnd = random.Random(seed)
    name = rnd.choice(NAMES)
    dims = [SymDim(name)] + ([SymDim(rnd.choice(NAMES))] if rnd.random() < 0.3 else [])
    log = []
    for _ in range(10):
        op, a = rnd.choice(OPS), rnd.choice(dims)
        n = rnd.choice([-3, -2, -1, 1, 2, 3, 4, 5, 7, 8, 16, 32])
        b = abs(n) if op in ("floordiv", "ceildiv", "truediv") and rnd.random() < 0.8 \
            else rnd.choice(dims + [n, n])
        r = D.neg(a) if op == "neg" else getattr(D, op)(a, b)
        log.append((op, str(a), str(b), str(r)))
        if r is not None:
            dims.append(r)
    for p, q in itertools.product(dims[-4:], repeat=2):
        log.append((str(p), str(q), D.eq(p, q), D.le(p, q), D.ne(p, q)))
    for d in dims:
        log.append((str(d), sorted(D.free_symbols(d)),
                    [D.evaluate(d, {name: v}) for v in (1, 2, 7, 33)]))
    monkeypatch.undo()
    D.clear_caches()
    return tuple(log)


@pytest.mark.parametrize("block", range(4))
def test_random_chains_agree_with_sympy(block, monkeypatch):
    for seed in range(block * 100, block * 100 + 100):
        assert _chain(seed, True, monkeypatch) == _chain(seed, False, monkeypatch), seed


def test_a_cnn_with_dynamic_height_and_width_needs_no_sympy():
    # Strided convolutions, a ceil-mode pool, a residual Add and a patch embedding reshaped
    # ViT-style (batch*heads): every dim is in the affine form or a monomial.
    code = """if True:
        import sys
        from onnxopt.testing import model_from_text
        from onnxopt.passes.shapes import infer_shapes, shape_of
        m = model_from_text('''<ir_version: 8, opset_import: ["" : 17]>
        g (float[N,3,H,W] x, float[8,3,3,3] w, float[8,8,3,3] w2) => (float[] y, float[] z) {
            a = Conv<strides=[2,2], pads=[1,1,1,1]>(x, w)
            b = Conv<pads=[1,1,1,1]>(a, w2)
            r = Add(a, b)
            p = MaxPool<kernel_shape=[3,3], strides=[2,2], ceil_mode=1>(r)
            y = Conv<strides=[2,2], pads=[1,1,1,1]>(p, w2)
            s = Constant<value_ints=[0, 3, -1]>()
            z = Reshape(x, s)
        }''')
        infer_shapes(m)
        print([str(shape_of(v)) for v in m.graph.outputs], 'sympy' in sys.modules)
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split("\n")[-2] == (
        "['[N,8,floor(H/8 + 5/8),floor(W/8 + 5/8)]', '[N,3,H*W]'] False"), r.stderr


@pytest.mark.parametrize("name", ["ppocr_mobile_v2_cls", "ppocrv4_det"])
def test_the_default_pipeline_on_a_cnn_export_imports_no_sympy(tmp_path, name):
    # paddle2onnx exports with dynamic height and width: ppocr_mobile_v2_cls has strided
    # convolutions and pools only; ppocrv4_det's FPN adds upsampled coarse maps to finer ones.
    src = os.path.join(os.path.dirname(__file__), "models", f"{name}.onnx")
    code = ("import sys; from onnxopt.cli.main import main\n"
            f"rc = main([{src!r}, '--no-verify', '-o', {str(tmp_path / 'o.onnx')!r}, '-q'])\n"
            "print(rc, 'sympy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "0 False", r.stderr


def test_a_name_sympy_printed_for_something_else_is_no_symbol():
    import sympy

    assert SymDim("zoo").is_name and A.of_dim(SymDim("zoo")).sym == "zoo"  # a dim named zoo
    d = SymDim("zoo", sympy.zoo)  # sympy's print of a division by zero
    assert not d.is_name and A.of_dim(d) is None


@pytest.mark.parametrize("scale", [2.0, 0.5, 4.0, 1.5, 0.25, 0.1, 3.0, 1.0])
def test_resize_scales_a_dim_as_floor_of_the_exact_float32_product(scale):
    import numpy as np
    import sympy
    from onnxopt.passes.shapes.ops_nn import _scaled

    for d in (H, conv(H), D.mul(conv(conv(H)), 2), D.add(H, 3)):
        exact = D.floor_expr(d.expr * sympy.Rational(float(np.float32(scale))))
        assert str(_scaled(d, scale)) == str(exact), (str(d), scale)
    assert _scaled(7, scale) == int(np.floor(np.float32(7) * np.float32(scale)))


def test_an_upsampled_cnn_dim_needs_no_sympy():
    code = """if True:
        import sys
        from onnxopt.testing import model_from_text
        from onnxopt.passes.shapes import infer_shapes, shape_of
        m = model_from_text('''<ir_version: 8, opset_import: ["" : 17]>
        g (float[N,3,H,W] x, float[8,3,3,3] w) => (float[] y) {
            a = Conv<strides=[2,2], pads=[1,1,1,1]>(x, w)
            s = Constant<value_floats=[1.0, 1.0, 2.0, 0.5]>()
            y = Resize<mode="nearest">(a, , s)
        }''')
        infer_shapes(m)
        print([str(shape_of(v)) for v in m.graph.outputs], 'sympy' in sys.modules)
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split("\n")[-2] == "['[N,8,2*floor(H/2 + 1/2),floor(W/4 + 1/4)]'] False", \
        r.stderr
