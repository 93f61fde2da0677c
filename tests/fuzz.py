"""Differential fuzzing: random valid ONNX graphs through a pipeline, checked in onnxruntime.

    python -m tests.fuzz --minutes 30 [--seed N] [--pipeline default] [--no-save]
    python -m tests.fuzz --examples 200 --seed 7
    python -m tests.fuzz --minutes 10 --hostile      # names and dims a terminal would act on

A hypothesis strategy (:func:`models`) builds random models from the ops the passes touch
(elementwise math, MatMul/Gemm/Conv/BatchNormalization, shape ops, reductions, Softmax), with
broadcasting, symbolic dims (``N``, ``S``), random opsets (11 to 23), constants as
initializers or Constant nodes, and patterns planted on purpose for the passes to find: Conv+BN,
MatMul+Add, decomposed LayerNorm, erf GELU, Shape->Gather->Unsqueeze->Concat->Reshape chains,
x*1 and friends, double Transpose, duplicated subexpressions, constant-only regions.

Each model runs through ``onnxopt.optimize(model, pipeline, verify=True)`` with the IR verified
and modification claims checked after every pass. A finding is a pass that raises or breaks an
invariant ("crash"), an output that differs or does not run ("miscompile"), or an output
``onnx.checker`` rejects ("invalid-output"). Findings are shrunk by hypothesis (for a bounded
time), and saved to ``tests/regressions/`` in ONNX textual syntax, which
``tests/test_fuzz.py`` replays through the default pipeline.

With ``--hostile`` every name (values, initializers, nodes) gets a suffix of control, C1 or bidi
characters and the symbolic dims become ~250-character products of symbols or names with escape
sequences. Besides the differential check, the optimized model's text (``onnxopt show``) must
hold no raw control character and parse back ("unsafe-text").
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import onnx
import onnx.printer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from onnx import TensorProto, helper, numpy_helper

REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")
F32 = TensorProto.FLOAT
OPSETS = (11, 13, 17, 18, 20, 23)
STATIC_DIMS = (1, 2, 3, 4, 6, 8)
SYMBOLS = ("N", "S")
BIG = 2**62  # "to the end" in Slice
# onnxruntime's CPU provider runs these in float only (Clip: below opset 12)
NO_DOUBLE_KERNEL = {"Conv", "Erf", "Softplus", "Clip"}


# -- the model generator -----------------------------------------------------------------------


@dataclass
class V:
    """A float value in the pool: its name, tracked shape, and what is known about its range."""

    name: str
    shape: tuple  # dims: int, symbol (str) or None (unknown)
    pos: bool = False  # every element > 0
    bounded: bool = False  # |x| <= ~1


class Unfit(Exception):
    """The drawn op does not apply to the drawn operand; draw another op."""


def _prod(dims) -> Optional[object]:
    """Product of dims as a dim: int when static, the one symbol when the rest are 1, else None."""
    sym = [d for d in dims if not isinstance(d, int)]
    n = math.prod(d for d in dims if isinstance(d, int))
    if not sym:
        return n
    if len(sym) == 1 and n == 1 and sym[0] is not None:
        return sym[0]
    return None


def _bcast(a: tuple, b: tuple) -> Optional[tuple]:
    """Numpy broadcasting of two tracked shapes; None when it is not certain to hold."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or (x == y and x is not None):
            out.append(x)
        else:
            return None
    return tuple(reversed(out))


class Gen:
    """Builds one model from hypothesis draws; numbers come from a numpy rng seeded by a draw."""

    def __init__(self, draw, opset: int, elem: int = F32):
        self.draw = draw
        self.opset = opset
        self.elem = elem  # the model's float type: FLOAT or DOUBLE
        self.np_float = np.float64 if elem == TensorProto.DOUBLE else np.float32
        self.rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1), label="data seed"))
        self.nodes: list = []
        self.inits: list = []
        self.inputs: list = []
        self.pool: list[V] = []
        self.n = 0
        self.const_nodes = draw(st.sampled_from(["init", "node", "mixed"]), label="constants")

    # -- building blocks
    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"  # the "_": prefix "sqrt2" + 8 must not meet "sqrt" + 28

    def node(self, op: str, inputs: list, n_out: int = 1, **attrs) -> list:
        outs = [self.name(op.lower()[:5]) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name("n_" + op), **attrs))
        return outs

    def const(self, arr: np.ndarray, prefix: str = "c") -> str:
        """A constant (float data in the model's float type): initializer or Constant node."""
        arr = np.asarray(arr)
        if arr.dtype == np.float32:
            arr = arr.astype(self.np_float)
        as_node = self.const_nodes == "node" or (
            self.const_nodes == "mixed" and self.draw(st.booleans(), label="const node"))
        name = self.name(prefix)
        if as_node:
            self.nodes.append(self.constant_node(arr, name))
        else:
            self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def constant_node(self, arr: np.ndarray, name: str):
        """A Constant node, sometimes with value_float / value_ints instead of a tensor."""
        if self.opset < 12:  # value_float / value_ints came with opset 12
            pass
        elif arr.dtype == np.float32 and arr.ndim == 0 and self.flag("value_float"):
            return helper.make_node("Constant", [], [name], value_float=float(arr),
                                    name=self.name("n_Constant"))
        elif arr.dtype == np.int64 and arr.ndim == 1 and arr.size and self.flag("value_ints"):
            return helper.make_node("Constant", [], [name], value_ints=[int(x) for x in arr],
                                    name=self.name("n_Constant"))
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name),
                                name=self.name("n_Constant"))

    def ints(self, vals, scalar: bool = False) -> str:
        return self.const(np.array(vals if not scalar else vals, dtype=np.int64), "i")

    def fvals(self, shape, lo: int = -8, hi: int = 8, nonzero: bool = False) -> np.ndarray:
        """Float32 eighths in [lo/8, hi/8]: exact in text, well conditioned."""
        k = self.rng.integers(lo, hi + 1, size=shape)
        if nonzero:
            k = np.where(k == 0, hi, k)
        return (k / 8.0).astype(np.float32)

    def fconst(self, shape, **kw) -> str:
        return self.const(self.fvals(shape, **kw), "w")

    def add(self, name: str, shape, **flags) -> V:
        v = V(name, tuple(shape), **flags)
        self.pool.append(v)
        return v

    def try_op(self, op) -> bool:
        """Run one op; on Unfit undo whatever it added and return False."""
        mark = (len(self.nodes), len(self.inits), len(self.pool))
        try:
            op(self)
            return True
        except Unfit:
            del self.nodes[mark[0]:], self.inits[mark[1]:], self.pool[mark[2]:]
            return False

    def expose(self, name: str, shape, label: str = "expose") -> None:
        """Sometimes put a planted pattern's intermediate in the pool: a later op or a graph
        output may then use it, and a fusion must keep it (or not fire)."""
        if self.draw(st.integers(0, 3), label=label) == 0:
            self.add(name, shape)

    def pick(self, pred: Callable[[V], bool] = lambda v: True, label: str = "operand") -> V:
        cands = [v for v in self.pool if pred(v)]
        if not cands:
            raise Unfit(label)
        k = self.draw(st.integers(0, len(cands) - 1), label=label)
        return cands[-1 - k]  # shrinks toward the most recent value

    def cpu_kernel(self, op: str) -> None:
        """Unfit when onnxruntime's CPU provider has no double kernel for ``op``."""
        if self.elem == TensorProto.DOUBLE and op in NO_DOUBLE_KERNEL:
            raise Unfit(op)

    def choice(self, options, label: str = "choice"):
        return self.draw(st.sampled_from(list(options)), label=label)

    def flag(self, label: str) -> bool:
        return self.draw(st.booleans(), label=label)

    def partner_shape(self, shape: tuple) -> tuple:
        """A constant's shape that broadcasts against ``shape`` (a suffix, some dims set to 1)."""
        k = self.draw(st.integers(0, len(shape)), label="partner rank")
        out = []
        for d in shape[len(shape) - k:]:
            out.append(d if isinstance(d, int) and not self.flag("to 1") else 1)
        return tuple(out)

    def positive(self, v: V) -> V:
        """v itself when known positive, else Abs(v) + c (c in [0.25, 1])."""
        if v.pos:
            return v
        (a,) = self.node("Abs", [v.name])
        c = self.const(np.array(self.choice([0.25, 0.5, 1.0], "shift"), np.float32), "c")
        (s,) = self.node("Add", [a, c])
        return V(s, v.shape, pos=True)

    # -- axes inputs/attributes, by opset
    def axes_op(self, op: str, inputs: list, axes: Optional[list], attr_until: int, **attrs):
        """Unsqueeze/Squeeze/Reduce*: ``axes`` an attribute below ``attr_until``, else an input."""
        if axes is None:
            return self.node(op, inputs, **attrs)
        if self.opset < attr_until:
            return self.node(op, inputs, axes=axes, **attrs)
        return self.node(op, inputs + [self.ints(axes)], **attrs)


# Each op takes the generator, adds zero or more values to the pool, or raises Unfit.

def op_unary(g: Gen) -> None:
    op = g.choice(["Relu", "Sigmoid", "Tanh", "Erf", "Neg", "Abs", "Identity"], "unary")
    g.cpu_kernel(op)
    v = g.pick()
    (y,) = g.node(op, [v.name])
    g.add(y, v.shape, pos=op == "Sigmoid" or (op == "Identity" and v.pos),
          bounded=op in ("Sigmoid", "Tanh", "Erf") or (op in ("Identity", "Neg") and v.bounded))


def op_sqrt(g: Gen) -> None:
    v = g.positive(g.pick())
    (y,) = g.node("Sqrt", [v.name])
    g.add(y, v.shape, pos=True)


def op_exp(g: Gen) -> None:
    v = g.pick(lambda v: v.bounded)
    (y,) = g.node("Exp", [v.name])
    g.add(y, v.shape, pos=True)


def op_binary(g: Gen) -> None:
    op = g.choice(["Add", "Sub", "Mul"], "binary")
    a = g.pick()
    how = g.choice(["const", "value", "scalar", "self"], "partner")
    if how == "const":
        bshape = g.partner_shape(a.shape)
        b = g.fconst(bshape)
    elif how == "scalar":
        b, bshape = g.fconst(()), ()
    elif how == "self":
        b, bshape = a.name, a.shape
    else:
        other = g.pick(lambda v: _bcast(a.shape, v.shape) is not None, "other")
        b, bshape = other.name, other.shape
    shape = a.shape if how == "self" else _bcast(a.shape, bshape)
    ins = [a.name, b] if g.flag("order") else [b, a.name]
    (y,) = g.node(op, ins)
    g.add(y, shape)


def op_div(g: Gen) -> None:
    a = g.pick()
    if g.flag("const denominator"):
        shape = g.partner_shape(a.shape)
        den = g.const(np.asarray(g.rng.choice([-4, -2, -1, -0.5, -0.25, 0.25, 0.5, 1, 2, 4],
                                              size=shape), np.float32), "d")
        out = _bcast(a.shape, shape)
    else:
        b = g.positive(g.pick(lambda v: _bcast(a.shape, v.shape) is not None, "denominator"))
        den, out = b.name, _bcast(a.shape, b.shape)
    (y,) = g.node("Div", [a.name, den])
    g.add(y, out)


def op_pow(g: Gen) -> None:
    a = g.pick()
    e = g.choice([2.0, 3.0, 1.0, 0.5, -1.0, 1.5], "exponent")
    base = a if e in (2.0, 3.0, 1.0) else g.positive(a)
    eshape = () if g.flag("scalar exponent") else (1,)
    exp = g.const(np.full(eshape, e, np.float32), "e")
    (y,) = g.node("Pow", [base.name, exp])
    g.add(y, _bcast(base.shape, eshape), pos=base.pos)


def op_matmul(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1 and isinstance(v.shape[-1], int))
    k = a.shape[-1]
    if len(a.shape) >= 2 and g.flag("vector rhs"):  # [.., K] @ [K] drops the last dim
        (y,) = g.node("MatMul", [a.name, g.const(g.fvals((k,)), "W")])
        g.add(y, a.shape[:-1])
        return
    m = g.choice([1, 2, 3, 4, 8], "M")
    w = g.const(g.fvals((k, m)), "W")
    ins = [a.name, w]
    (y,) = g.node("MatMul", ins)
    shape = a.shape[:-1] + (m,)
    if g.flag("bias"):  # MatMul+Add: fusible into Gemm when rank 2
        g.expose(y, shape)
        b = g.fconst((m,))
        (y,) = g.node("Add", [y, b] if g.flag("bias order") else [b, y])
    g.add(y, shape)


def op_matmul_values(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 2 and isinstance(v.shape[-1], int))
    b = g.pick(lambda v: len(v.shape) == 2 and v.shape[0] == a.shape[-1], "rhs")
    (y,) = g.node("MatMul", [a.name, b.name])
    g.add(y, a.shape[:-1] + (b.shape[1],))


def op_gemm(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1 and isinstance(_prod(v.shape[1:]), int))
    if len(a.shape) != 2:  # Flatten -> Gemm, as CNN classifiers do
        (f,) = g.node("Flatten", [a.name], axis=1)
        a = V(f, (_prod(a.shape[:1]), _prod(a.shape[1:])))
    k, m = a.shape[1], g.choice([1, 2, 3, 5], "M")
    trans_b = g.flag("transB")
    w = g.const(g.fvals((m, k) if trans_b else (k, m)), "W")
    attrs = {}
    if trans_b:
        attrs["transB"] = 1
    if g.flag("alpha"):
        attrs["alpha"] = g.choice([0.5, 2.0], "alpha value")
    ins = [a.name, w]
    if g.flag("C") or g.opset < 11:
        cshapes = [(m,), (1, m), ()] + ([(a.shape[0], 1), (a.shape[0], m)]
                                        if isinstance(a.shape[0], int) else [])
        ins.append(g.fconst(g.choice(cshapes, "C shape")))
        if g.flag("beta"):
            attrs["beta"] = g.choice([0.5, 2.0], "beta value")
    (y,) = g.node("Gemm", ins, **attrs)
    g.add(y, (a.shape[0], m))


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def op_conv(g: Gen) -> None:
    g.cpu_kernel("Conv")
    a = g.pick(lambda v: len(v.shape) in (3, 4) and isinstance(v.shape[1], int)
               and all(isinstance(d, str) or (isinstance(d, int) and d >= 3)
                       for d in v.shape[2:]))
    c = a.shape[1]
    groups = g.choice([d for d in (1, 2, 3, 4) if c % d == 0], "group")
    co = groups * g.choice([1, 2], "out per group")
    k = g.choice([1, 2, 3], "kernel")
    s = g.choice([1, 1, 2], "stride")
    p = g.choice([0, 1], "pad")
    d = g.choice([1, 1, 2], "dilation")
    spatial = len(a.shape) - 2
    same = k == 1 and s == 1 and p == 0  # a symbolic spatial dim stays itself, else unknown
    out_sp = tuple(_conv_out(x, k, s, p, d) if isinstance(x, int) else (x if same else None)
                   for x in a.shape[2:])
    if min((x for x in out_sp if isinstance(x, int)), default=1) < 1:
        raise Unfit("conv window")
    src = a.name
    if g.flag("pad first"):  # Pad -> Conv: a zero Pad folds into the Conv's pads
        begin = [g.choice([0, 1, 2], "pad begin") for _ in range(spatial)]
        end = [g.choice([0, 1], "pad end") for _ in range(spatial)]
        pads = [0, 0] + begin + [0, 0] + end
        mode_zero = g.flag("zero pad")
        ins = [a.name, g.ints(pads)]
        if not mode_zero or g.flag("explicit zero"):
            ins.append(g.const(np.array(0.0 if mode_zero else 0.5, np.float32), "pv"))
        (src,) = g.node("Pad", ins)
        out_sp = tuple(_conv_out(x + b + e, k, s, p, d) if isinstance(x, int) else None
                       for x, b, e in zip(a.shape[2:], begin, end, strict=True))
        if min((x for x in out_sp if isinstance(x, int)), default=1) < 1:
            raise Unfit("conv window")
    w = g.const(g.fvals((co, c // groups) + (k,) * spatial, -4, 4), "W")
    ins = [src, w]
    if g.flag("conv bias"):
        ins.append(g.fconst((co,)))
    attrs = dict(kernel_shape=[k] * spatial, strides=[s] * spatial, pads=[p] * 2 * spatial)
    if d != 1:
        attrs["dilations"] = [d] * spatial
    if groups != 1:
        attrs["group"] = groups
    (y,) = g.node("Conv", ins, **attrs)
    shape = (a.shape[0], co) + out_sp
    g.expose(y, shape)
    if g.flag("then BN"):  # Conv+BN, fusible
        y = _bn(g, y, co)
    if g.flag("then per-channel op"):  # Conv+Add / Conv*Mul by a constant, and near-misses
        op = g.choice(["Add", "Mul"], "channel op")
        cshape = g.choice([(co,) + (1,) * spatial, (1, co) + (1,) * spatial, (1,) * (spatial + 2),
                           tuple(x if isinstance(x, int) else 1 for x in out_sp[-1:]), ()],
                          "channel shape")
        (y,) = g.node(op, [y, g.fconst(cshape, nonzero=op == "Mul")])
        shape = _bcast(shape, cshape)
    g.add(y, shape)


def _bn(g: Gen, x: str, c: int) -> str:
    scale = g.fconst((c,), nonzero=True)
    bias = g.fconst((c,))
    mean = g.fconst((c,))
    var = g.const((g.rng.integers(1, 16, size=c) / 8.0).astype(np.float32), "var")
    eps = g.choice([1e-5, 1e-3, 0.0], "epsilon")
    (y,) = g.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=eps)
    return y


def op_bn(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 2 and isinstance(v.shape[1], int))
    g.add(_bn(g, a.name, a.shape[1]), a.shape)


def _factor(n: int, g: Gen) -> tuple[int, int]:
    if n < 1:
        raise Unfit("empty dim")
    pairs = [(p, n // p) for p in range(1, n + 1) if n % p == 0]
    return g.choice(pairs, "factors")


def op_reshape_split(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1 and isinstance(v.shape[-1], int))
    p, q = _factor(a.shape[-1], g)
    lead = [0] * (len(a.shape) - 1)
    if lead and g.flag("static lead") and all(isinstance(d, int) for d in a.shape[:-1]):
        lead = list(a.shape[:-1])
    (y,) = g.node("Reshape", [a.name, g.ints(lead + [p, q])])
    g.add(y, a.shape[:-1] + (p, q))


def op_reshape_merge(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 2)
    (y,) = g.node("Reshape", [a.name, g.ints([0] * (len(a.shape) - 2) + [-1])])
    g.add(y, a.shape[:-2] + (_prod(a.shape[-2:]),))


def op_shape_chain(g: Gen) -> None:
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape: split the last dim, keep the others."""
    a = g.pick(lambda v: len(v.shape) >= 2 and isinstance(v.shape[-1], int))
    p, q = _factor(a.shape[-1], g)
    (s,) = g.node("Shape", [a.name])
    parts = []
    if g.flag("slice the shape"):
        (sl,) = g.node("Slice", [s, g.ints([0]), g.ints([len(a.shape) - 1])])
        parts.append(sl)
    else:
        for i in range(len(a.shape) - 1):
            if g.flag("1-d index"):
                (gi,) = g.node("Gather", [s, g.ints([i])], axis=0)
            else:
                (gi,) = g.node("Gather", [s, g.const(np.array(i, np.int64), "i")], axis=0)
                (gi,) = g.axes_op("Unsqueeze", [gi], [0], 13)
            parts.append(gi)
    parts.append(g.ints([p, q]))
    (c,) = g.node("Concat", parts, axis=0)
    (y,) = g.node("Reshape", [a.name, c])
    g.add(y, a.shape[:-1] + (p, q))


def op_transpose(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 2)
    r = len(a.shape)
    perm = g.draw(st.permutations(range(r)), label="perm")
    (y,) = g.node("Transpose", [a.name], perm=list(perm))
    shape = tuple(a.shape[i] for i in perm)
    if g.flag("double"):  # Transpose(Transpose(x)): the inverse, or another perm
        g.expose(y, shape)
        perm2 = list(np.argsort(perm)) if g.flag("inverse") else list(
            g.draw(st.permutations(range(r)), label="perm2"))
        (y,) = g.node("Transpose", [y], perm=[int(i) for i in perm2])
        shape = tuple(shape[i] for i in perm2)
    g.add(y, shape, bounded=a.bounded, pos=a.pos)


def op_unsqueeze(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) <= 4)
    r = len(a.shape)
    ax = g.draw(st.integers(-(r + 1), r), label="axis")
    (y,) = g.axes_op("Unsqueeze", [a.name], [ax], 13)
    shape = list(a.shape)
    shape.insert(ax if ax >= 0 else r + 1 + ax, 1)
    g.add(y, shape, bounded=a.bounded, pos=a.pos)


def op_squeeze(g: Gen) -> None:
    a = g.pick(lambda v: 1 in v.shape)
    ones = [i for i, d in enumerate(a.shape) if d == 1]
    ax = g.choice(ones, "axis")
    axes = [ax - len(a.shape) if g.flag("negative") else ax]
    (y,) = g.axes_op("Squeeze", [a.name], axes, 13)
    g.add(y, a.shape[:ax] + a.shape[ax + 1:], bounded=a.bounded, pos=a.pos)


def op_flatten(g: Gen) -> None:
    a = g.pick()
    r = len(a.shape)
    ax = g.draw(st.integers(0, r), label="axis")
    (y,) = g.node("Flatten", [a.name], axis=ax)
    g.add(y, (_prod(a.shape[:ax]), _prod(a.shape[ax:])), bounded=a.bounded, pos=a.pos)


def op_concat(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1)
    op = g.choice(["Relu", "Neg", "Tanh", "Identity"], "sibling")
    (b,) = g.node(op, [a.name])
    r = len(a.shape)
    ax = g.draw(st.integers(0, r - 1), label="axis")
    ins = [a.name, b] if g.flag("order") else [b, a.name, a.name]
    (y,) = g.node("Concat", ins, axis=ax - r if g.flag("negative") else ax)
    d = a.shape[ax]
    shape = list(a.shape)
    shape[ax] = d * len(ins) if isinstance(d, int) else None
    g.add(y, shape)


def op_slice(g: Gen) -> None:
    a = g.pick(lambda v: any(isinstance(d, int) and d >= 2 for d in v.shape))
    axes = [i for i, d in enumerate(a.shape) if isinstance(d, int) and d >= 2]
    ax = g.choice(axes, "axis")
    dim = a.shape[ax]
    step = g.choice([1, 1, 2, -1], "step")
    start = g.draw(st.integers(-dim, dim - 1), label="start")
    end = g.choice([BIG, -BIG] + list(range(-dim, dim + 1)), "end")
    n = len(range(dim)[slice(start, end, step)])
    if n == 0 and g.draw(st.integers(0, 7), label="allow empty") != 0:
        raise Unfit("empty slice")  # mostly; sometimes an empty tensor flows on
    ins = [a.name, g.ints([start]), g.ints([end])]
    if step != 1 or ax != 0 or g.flag("explicit axes"):
        ins.append(g.ints([ax - len(a.shape) if g.flag("negative") else ax]))
        if step != 1 or g.flag("explicit steps"):
            ins.append(g.ints([step]))
    (y,) = g.node("Slice", ins)
    shape = list(a.shape)
    shape[ax] = n
    g.add(y, shape, bounded=a.bounded, pos=a.pos)


def op_gather(g: Gen) -> None:
    a = g.pick(lambda v: any(isinstance(d, int) and d >= 1 for d in v.shape))
    axes = [i for i, d in enumerate(a.shape) if isinstance(d, int) and d >= 1]
    ax = g.choice(axes, "axis")
    dim = a.shape[ax]
    ishape = g.choice([(), (1,), (2,), (2, 2)], "indices shape")
    idx = g.rng.integers(-dim, dim, size=ishape).astype(np.int64)
    (y,) = g.node("Gather", [a.name, g.const(idx, "idx")], axis=ax)
    g.add(y, a.shape[:ax] + ishape + a.shape[ax + 1:], bounded=a.bounded, pos=a.pos)


def op_expand(g: Gen) -> None:
    if g.flag("expand to a value's shape"):
        b = g.pick(lambda v: len(v.shape) >= 1, "target")
        a = g.pick(lambda v: _bcast(v.shape, b.shape) == b.shape and len(v.shape) <= len(b.shape))
        (s,) = g.node("Shape", [b.name])
        (y,) = g.node("Expand", [a.name, s])
        g.add(y, b.shape, bounded=a.bounded, pos=a.pos)
        return
    a = g.pick(lambda v: all(isinstance(d, int) for d in v.shape) and len(v.shape) <= 3)
    target = [d if d != 1 else g.choice([1, 2, 3], "grow") for d in a.shape]
    if g.flag("new leading dim"):
        target.insert(0, g.choice([1, 2], "lead"))
    (y,) = g.node("Expand", [a.name, g.ints(target)])
    g.add(y, tuple(target), bounded=a.bounded, pos=a.pos)


def op_cast(g: Gen) -> None:
    a = g.pick()
    kind = g.choice(["same", "other float", "half", "int"], "cast")
    if kind == "same":
        (y,) = g.node("Cast", [a.name], to=g.elem)
    else:
        other = TensorProto.DOUBLE if g.elem == F32 else F32
        to = {"other float": other, "half": TensorProto.FLOAT16, "int": TensorProto.INT32}[kind]
        (m,) = g.node("Cast", [a.name], to=to)
        if to == TensorProto.DOUBLE:
            # onnxruntime drops a float->double->float pair even with optimizations off, and
            # then loses the value when an If branch reads it ("Missing Input"): keep them apart
            (m,) = g.node("Neg", [m])
        (y,) = g.node("Cast", [m], to=g.elem)
    g.add(y, a.shape, bounded=a.bounded, pos=a.pos and kind in ("same", "half"))


def op_identity(g: Gen) -> None:
    a = g.pick()
    (y,) = g.node("Identity", [a.name])
    if g.flag("chain"):
        (y,) = g.node("Identity", [y])
    g.add(y, a.shape, bounded=a.bounded, pos=a.pos)


def op_dropout(g: Gen) -> None:
    a = g.pick()
    ins = [a.name]
    attrs = {}
    if g.opset >= 12:
        if g.flag("ratio"):
            ins.append(g.const(np.array(0.25, np.float32), "ratio"))
    else:
        attrs["ratio"] = 0.25
    n_out = 2 if g.flag("mask output") else 1
    outs = g.node("Dropout", ins, n_out=n_out, **attrs)
    g.add(outs[0], a.shape, bounded=a.bounded, pos=a.pos)


def op_reduce(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1)
    op = g.choice(["ReduceMean", "ReduceSum"], "reduce")
    r = len(a.shape)
    axes = sorted(g.draw(st.sets(st.integers(0, r - 1), min_size=1, max_size=r), label="axes"))
    if g.flag("negative axes"):
        axes = [x - r for x in axes]
    keep = g.choice([0, 1], "keepdims")
    until = 18 if op == "ReduceMean" else 13
    (y,) = g.axes_op(op, [a.name], axes, until, keepdims=keep)
    norm = {x % r for x in axes}
    shape = tuple(1 if i in norm else d for i, d in enumerate(a.shape) if keep or i not in norm)
    g.add(y, shape, bounded=a.bounded and op == "ReduceMean", pos=a.pos)


def op_softmax(g: Gen) -> None:
    a = g.pick(lambda v: len(v.shape) >= 1)
    r = len(a.shape)
    ax = g.draw(st.integers(-r, r - 1), label="axis")
    (y,) = g.node("Softmax", [a.name], axis=ax)
    g.add(y, a.shape, pos=True, bounded=True)


def op_layernorm(g: Gen) -> None:
    """Decomposed LayerNorm over the last axis (the pattern exporters emit)."""
    a = g.pick(lambda v: len(v.shape) >= 1 and isinstance(v.shape[-1], int))
    last = a.shape[-1]
    r = len(a.shape)
    axes = [-1]
    if r >= 2 and g.flag("other axes"):  # near-misses (and LayerNorm over the last two axes)
        axes = g.choice([[-2], [-2, -1], [r - 1], [0]] if r >= 2 else [[-1]], "norm axes")
    (mean,) = g.axes_op("ReduceMean", [a.name], axes, 18, keepdims=1)
    (d,) = g.node("Sub", [a.name, mean])
    g.expose(d, a.shape)
    if g.flag("pow"):
        (sq,) = g.node("Pow", [d, g.const(np.array(2.0, np.float32), "two")])
    else:
        (sq,) = g.node("Mul", [d, d])
    (var,) = g.axes_op("ReduceMean", [sq], axes if g.flag("same axes") else [-1], 18,
                       keepdims=1)
    # eps >= 1e-5: over a constant row (a padded border, say) the result is rounding noise
    # amplified by 1/sqrt(eps), which any reassociation changes; that is no miscompile.
    (ve,) = g.node("Add", [var, g.const(np.array(g.choice([1e-5, 1e-3], "eps"), np.float32))])
    (std,) = g.node("Sqrt", [ve])
    (y,) = g.node("Div", [d, std])
    if g.flag("gamma"):
        g.expose(y, a.shape)
        (y,) = g.node("Mul", [y, g.fconst((last,))])
        if g.flag("beta"):
            (y,) = g.node("Add", [y, g.fconst((last,))])
    g.add(y, a.shape)


def op_gelu(g: Gen) -> None:
    """x * 0.5 * (1 + erf(x / sqrt(2))), in the arrangements exporters use."""
    g.cpu_kernel("Erf")
    a = g.pick()
    if g.flag("div"):
        (h,) = g.node("Div", [a.name, g.const(np.array(1.4142135, np.float32), "sqrt2")])
    else:
        (h,) = g.node("Mul", [a.name, g.const(np.array(0.70710677, np.float32), "rsqrt2")])
    (e,) = g.node("Erf", [h])
    g.expose(e, a.shape)
    (p,) = g.node("Add", [e, g.const(np.array(1.0, np.float32), "one")])
    half = g.const(np.array(0.5, np.float32), "half")
    if g.flag("half first"):
        (xh,) = g.node("Mul", [a.name, half])
        (y,) = g.node("Mul", [xh, p])
    else:
        (xp,) = g.node("Mul", [a.name, p])
        (y,) = g.node("Mul", [xp, half])
    g.add(y, a.shape)


def op_neutral(g: Gen) -> None:
    """x*1, x+0, x-0, x/1, x^1, sometimes with a constant that broadcasts the shape up."""
    a = g.pick()
    op, val = g.choice([("Mul", 1.0), ("Add", 0.0), ("Sub", 0.0), ("Div", 1.0), ("Pow", 1.0)],
                       "neutral")
    kind = g.choice(["scalar", "[1]", "suffix", "grow"], "neutral shape")
    shape = {"scalar": (), "[1]": (1,), "suffix": tuple(d if isinstance(d, int) else 1 for d in
                                                        a.shape[-1:])}.get(kind)
    if kind == "grow":
        shape = (2,) + tuple(d if isinstance(d, int) else 1 for d in a.shape)
    c = g.const(np.full(shape, val, np.float32), "k")
    left = op in ("Mul", "Add") and g.flag("constant first")
    (y,) = g.node(op, [c, a.name] if left else [a.name, c])
    g.add(y, _bcast(a.shape, shape), bounded=a.bounded, pos=a.pos)


def op_duplicate(g: Gen) -> None:
    """The same computation twice (CSE), then both used."""
    a = g.pick()
    op = g.choice(["Relu", "Sigmoid", "Tanh", "Neg"], "dup op")
    (y1,) = g.node(op, [a.name])
    (y2,) = g.node(op, [a.name])
    g.expose(y1, a.shape)
    (y,) = g.node(g.choice(["Add", "Mul", "Sub"], "combine"), [y1, y2])
    g.add(y, a.shape)


def op_const_region(g: Gen) -> None:
    """A computation on constants only (foldable), then combined with a value."""
    a = g.pick()
    shape = g.partner_shape(a.shape)
    c1, c2 = g.fconst(shape), g.fconst(shape)
    (t,) = g.node(g.choice(["Add", "Mul", "Sub"], "const op"), [c1, c2])
    if g.flag("const unary"):
        (t,) = g.node(g.choice(["Relu", "Neg", "Tanh", "Identity"], "const unary op"), [t])
    if len(shape) >= 2 and g.flag("const transpose"):
        perm = list(range(len(shape)))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        (t,) = g.node("Transpose", [t], perm=perm)
        (t,) = g.node("Transpose", [t], perm=perm)
    (y,) = g.node(g.choice(["Add", "Mul"], "combine"), [a.name, t])
    g.add(y, _bcast(a.shape, shape))


def op_const_chain(g: Gen) -> None:
    """x (+|-) c1 (+|-) c2 ... or x (*|/) c1 (*|/) c2: chains fuse combines into one."""
    a = g.pick()
    family = g.choice([("Add", "Sub"), ("Mul", "Div")], "chain")
    y, shape = a.name, a.shape
    for _ in range(g.draw(st.integers(2, 3), label="chain length")):
        cshape = g.partner_shape(a.shape)
        op = g.choice(family, "chain op")
        c = g.fconst(cshape, nonzero=op in ("Mul", "Div"))
        (y,) = g.node(op, [y, c] if op in ("Sub", "Div") or g.flag("order") else [c, y])
        shape = _bcast(shape, cshape)
        g.expose(y, shape)
    g.add(y, shape)


def op_matmul_siblings(g: Gen) -> None:
    """Two or three MatMuls reading the same value (Q/K/V projections)."""
    a = g.pick(lambda v: len(v.shape) >= 2 and isinstance(v.shape[-1], int))
    outs = []
    for _ in range(g.draw(st.integers(2, 3), label="siblings")):
        m = g.choice([2, 4], "M")
        (y,) = g.node("MatMul", [a.name, g.const(g.fvals((a.shape[-1], m)), "W")])
        outs.append((y, m))
    for y, m in outs:
        g.add(y, a.shape[:-1] + (m,))


def op_attention(g: Gen) -> None:
    """softmax(Q @ K^T * scale (+ mask)) @ V from one value [.., S, D] (Attention, opset 23)."""
    a = g.pick(lambda v: len(v.shape) in (3, 4) and isinstance(v.shape[-1], int)
               and v.shape[-1] >= 1)
    d = a.shape[-1]
    proj = []
    for _ in range(3):
        (y,) = g.node("MatMul", [a.name, g.const(g.fvals((d, d)), "W")])
        proj.append(y)
    q, k, v = proj
    r = len(a.shape)
    perm = list(range(r - 2)) + [r - 1, r - 2]
    (kt,) = g.node("Transpose", [k], perm=perm)
    (s,) = g.node("MatMul", [q, kt])
    scale = g.const(np.array(1 / np.sqrt(d) if g.flag("mul scale") else np.sqrt(d), np.float32),
                    "scale")
    (s,) = g.node("Mul" if g.flag("scale by mul") else "Div", [s, scale])
    if g.flag("mask") and isinstance(a.shape[-2], int):
        n = a.shape[-2]
        mask = np.triu(np.full((n, n), -1e4, np.float32), 1)
        (s,) = g.node("Add", [s, g.const(mask, "mask")])
    (p,) = g.node("Softmax", [s], axis=-1)
    if isinstance(a.shape[-2], int):
        g.expose(p, a.shape[:-1] + (a.shape[-2],))
    (y,) = g.node("MatMul", [p, v])
    g.add(y, a.shape)


def op_clip(g: Gen) -> None:
    """Clip, HardSigmoid from Clip(a*x+b, 0, 1), HardSwish from x*Clip(x+3, 0, 6)/6."""
    if g.opset < 12:
        g.cpu_kernel("Clip")  # double Clip kernels start at opset 12
    a = g.pick()
    kind = g.choice(["clip", "hard_sigmoid", "hard_swish"], "clip kind")
    lo, hi = (0.0, 6.0) if kind == "hard_swish" else (0.0, 1.0)
    if kind == "clip":
        lo, hi = g.choice([(-1.0, 1.0), (0.0, 6.0), (0.5, 0.25)], "bounds")
    src = a.name
    if kind == "hard_sigmoid":
        (m,) = g.node("Mul", [src, g.const(np.array(0.2, np.float32), "alpha")])
        (src,) = g.node("Add", [m, g.const(np.array(0.5, np.float32), "beta")])
    elif kind == "hard_swish":
        (src,) = g.node("Add", [src, g.const(np.array(3.0, np.float32), "three")])
    if src != a.name:
        g.expose(src, a.shape)
    (y,) = g.node("Clip", [src, g.const(np.array(lo, np.float32), "lo"),
                           g.const(np.array(hi, np.float32), "hi")])
    if kind == "hard_swish":
        (y,) = g.node("Div", [y, g.const(np.array(6.0, np.float32), "six")])
        (y,) = g.node("Mul", [a.name, y])
    g.add(y, a.shape)


def op_gelu_tanh(g: Gen) -> None:
    """0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))."""
    a = g.pick()
    (x3,) = g.node("Pow", [a.name, g.const(np.array(3.0, np.float32), "three")])
    (t,) = g.node("Mul", [x3, g.const(np.array(0.044715, np.float32), "k")])
    (t,) = g.node("Add", [a.name, t])
    (t,) = g.node("Mul", [t, g.const(np.array(np.sqrt(2 / np.pi), np.float32), "c")])
    (t,) = g.node("Tanh", [t])
    (t,) = g.node("Add", [t, g.const(np.array(1.0, np.float32), "one")])
    g.expose(t, a.shape)
    (t,) = g.node("Mul", [a.name, t])
    (y,) = g.node("Mul", [t, g.const(np.array(0.5, np.float32), "half")])
    g.add(y, a.shape)


def op_mish(g: Gen) -> None:
    """x * tanh(softplus(x))."""
    g.cpu_kernel("Softplus")
    a = g.pick()
    (sp,) = g.node("Softplus", [a.name])
    g.expose(sp, a.shape)
    (t,) = g.node("Tanh", [sp])
    (y,) = g.node("Mul", [a.name, t] if g.flag("order") else [t, a.name])
    g.add(y, a.shape)


def op_rms_norm(g: Gen) -> None:
    """x / sqrt(mean(x^2) + eps) * gamma (RMSNormalization, opset 23)."""
    a = g.pick(lambda v: len(v.shape) >= 1 and isinstance(v.shape[-1], int))
    (sq,) = g.node("Pow", [a.name, g.const(np.array(2.0, np.float32), "two")])
    (ms,) = g.axes_op("ReduceMean", [sq], [-1], 18, keepdims=1)
    (ve,) = g.node("Add", [ms, g.const(np.array(1e-5, np.float32), "eps")])
    (sd,) = g.node("Sqrt", [ve])
    if g.flag("reciprocal"):
        (r,) = g.node("Reciprocal", [sd])
        (y,) = g.node("Mul", [a.name, r])
    else:
        (y,) = g.node("Div", [a.name, sd])
    g.expose(y, a.shape)
    (y,) = g.node("Mul", [y, g.fconst((a.shape[-1],))])
    g.add(y, a.shape)


def op_transpose_around(g: Gen) -> None:
    """Transposes around elementwise ops (they cancel, merge, or move)."""
    a = g.pick(lambda v: len(v.shape) >= 2)
    r = len(a.shape)
    perm = list(g.draw(st.permutations(range(r)), label="perm"))
    (t,) = g.node("Transpose", [a.name], perm=perm)
    tshape = tuple(a.shape[i] for i in perm)
    if g.flag("binary"):
        b = g.pick(lambda v: v.shape == a.shape, "same shape")
        (tb,) = g.node("Transpose", [b.name], perm=perm)
        (y,) = g.node(g.choice(["Add", "Mul", "Sub"], "binary"), [t, tb])
    else:
        (y,) = g.node(g.choice(["Relu", "Sigmoid", "Neg"], "unary"), [t])
    if g.flag("back"):
        inv = [int(i) for i in np.argsort(perm)]
        (y,) = g.node("Transpose", [y], perm=inv)
        tshape = a.shape
    g.add(y, tshape)


def op_transpose_gemm(g: Gen) -> None:
    """Gemm of a transposed 2-D operand (transA/transB fold)."""
    a = g.pick(lambda v: len(v.shape) == 2 and all(isinstance(d, int) for d in v.shape))
    m, k = a.shape
    (t,) = g.node("Transpose", [a.name], perm=[1, 0])
    n = g.choice([2, 3], "N")
    if g.flag("transposed A"):  # Gemm(transA=1) of Transpose(a) is a @ W
        (y,) = g.node("Gemm", [t, g.const(g.fvals((k, n)), "W")], transA=1)
        g.add(y, (m, n))
    else:
        (y,) = g.node("Gemm", [t, g.const(g.fvals((m, n)), "W")])
        g.add(y, (k, n))


def op_squeeze_unsqueeze(g: Gen) -> None:
    """Unsqueeze then Squeeze (same or other axes)."""
    a = g.pick(lambda v: len(v.shape) <= 4)
    r = len(a.shape)
    ax = g.draw(st.integers(0, r), label="axis")
    (u,) = g.axes_op("Unsqueeze", [a.name], [ax], 13)
    ushape = a.shape[:ax] + (1,) + a.shape[ax:]
    ones = [i for i, d in enumerate(ushape) if d == 1]
    ax2 = ax if g.flag("same axis") else g.choice(ones, "other axis")
    (y,) = g.axes_op("Squeeze", [u], [ax2], 13)
    g.add(y, ushape[:ax2] + ushape[ax2 + 1:], bounded=a.bounded, pos=a.pos)


def op_if(g: Gen) -> None:
    """If whose branches read outer values: a constant condition (inlined by fold) or not."""
    a = g.pick()
    if g.flag("constant condition"):
        cond = g.const(np.array(g.flag("true"), np.bool_), "cond")
    else:  # a bool graph input: a condition computed from float data can sit on a knife's
        # edge (the sum of a normalized row is 0 up to rounding), which reassociation flips
        cond = g.name("cond")
        g.inputs.append(helper.make_tensor_value_info(cond, TensorProto.BOOL, []))
    rank = [""] * len(a.shape)
    branches = {}
    for br in ("then_branch", "else_branch"):
        op = g.choice(["Relu", "Neg", "Identity", "Sigmoid", "AddConst"], "branch op")
        out = g.name("b")
        if op == "AddConst":
            c = g.name("bc")
            cnode = g.constant_node(np.asarray(g.fvals(()), g.np_float), c)
            nodes = [cnode, helper.make_node("Add", [a.name, c], [out], name=g.name("n_Add"))]
        else:
            nodes = [helper.make_node(op, [a.name], [out], name=g.name("n_" + op))]
        branches[br] = helper.make_graph(nodes, g.name(br), [],
                                         [helper.make_tensor_value_info(out, g.elem, rank)])
    (y,) = g.node("If", [cond], **branches)
    g.add(y, a.shape)


def op_shape_arith(g: Gen) -> None:
    """Reshape targets computed with integer arithmetic on Shape: [d0, d1 * d2], [d0, -1]..."""
    a = g.pick(lambda v: len(v.shape) >= 3)
    (s,) = g.node("Shape", [a.name])

    def dim(i: int) -> str:
        (d,) = g.node("Gather", [s, g.ints([i])], axis=0)
        return d

    kind = g.choice(["merge", "neg", "div"], "arith")
    if kind == "merge":  # [d0, .., d(r-2) * d(r-1)]
        r = len(a.shape)
        (prod,) = g.node("Mul", [dim(r - 2), dim(r - 1)])
        parts = [dim(i) for i in range(r - 2)] + [prod]
        shape = a.shape[:-2] + (_prod(a.shape[-2:]),)
    elif kind == "neg":  # [d0, -1]
        parts = [dim(0), g.ints([-1])]
        shape = (a.shape[0], _prod(a.shape[1:]))
    else:  # [d0, .., d(r-1) / p, p] with d(r-1) divisible by p
        if not isinstance(a.shape[-1], int) or a.shape[-1] % 2:
            raise Unfit("odd")
        r = len(a.shape)
        (half,) = g.node("Div", [dim(r - 1), g.ints([2])])
        parts = [dim(i) for i in range(r - 1)] + [half, g.ints([2])]
        shape = a.shape[:-1] + (a.shape[-1] // 2, 2)
    (c,) = g.node("Concat", parts, axis=0)
    (y,) = g.node("Reshape", [a.name, c])
    g.add(y, shape, bounded=a.bounded, pos=a.pos)


def op_squeeze_all(g: Gen) -> None:
    """Squeeze without axes (every dim of size 1) on a value whose dims are all static."""
    a = g.pick(lambda v: 1 in v.shape and all(isinstance(d, int) for d in v.shape))
    (y,) = g.node("Squeeze", [a.name])
    g.add(y, tuple(d for d in a.shape if d != 1), bounded=a.bounded, pos=a.pos)


def op_slice_symbolic(g: Gen) -> None:
    """Slice all of a symbolic dim (start 0, end "to the end"): a no-op."""
    a = g.pick(lambda v: any(isinstance(d, str) for d in v.shape))
    ax = g.choice([i for i, d in enumerate(a.shape) if isinstance(d, str)], "axis")
    end = g.choice([BIG, 2**31 - 1, 2**63 - 1], "end")
    (y,) = g.node("Slice", [a.name, g.ints([0]), g.ints([end]), g.ints([ax])])
    g.add(y, a.shape, bounded=a.bounded, pos=a.pos)


def op_expand_keep(g: Gen) -> None:
    """Expand to a shape that cannot grow the input (1s and fewer dims): a no-op."""
    a = g.pick(lambda v: len(v.shape) >= 1)
    k = g.draw(st.integers(0, len(a.shape)), label="target rank")
    target = [1 if not isinstance(d, int) or g.flag("1") else d
              for d in a.shape[len(a.shape) - k:]]
    (y,) = g.node("Expand", [a.name, g.ints(target)])
    g.add(y, a.shape, bounded=a.bounded, pos=a.pos)


def op_same_constants(g: Gen) -> None:
    """The same constant twice (byte-identical initializers / Constant nodes), both used."""
    a = g.pick()
    shape = g.partner_shape(a.shape)
    vals = g.fvals(shape)
    c1, c2 = g.const(vals, "dup"), g.const(vals.copy(), "dup")
    (y1,) = g.node("Mul", [a.name, c1])
    (y2,) = g.node("Add", [y1, c2])
    g.add(y2, _bcast(a.shape, shape))


def op_const_subgraph(g: Gen) -> None:
    """Random ops on constants only (what fold evaluates, numpy against onnxruntime), the result
    combined with a value."""
    a = g.pick()
    outer = g.pool
    g.pool = []
    try:
        for _ in range(g.draw(st.integers(1, 2), label="constants")):
            shape = tuple(g.choice([1, 2, 3, 4], "const dim")
                          for _ in range(g.draw(st.integers(0, 3), label="const rank")))
            g.add(g.fconst(shape), shape)
        for _ in range(g.draw(st.integers(1, 4), label="const ops")):
            ops = [o for o in OPS if o not in (op_if, op_const_subgraph)]
            g.try_op(g.draw(st.sampled_from(ops), label="const op"))
        c = g.pool[-1]
    finally:
        g.pool = outer
    if _bcast(a.shape, c.shape) is None:
        (r,) = g.axes_op("ReduceMean", [c.name], list(range(len(c.shape))) or None, 18,
                         keepdims=0)
        c = V(r, ())
    (y,) = g.node(g.choice(["Add", "Mul"], "combine"), [a.name, c.name])
    g.add(y, _bcast(a.shape, c.shape))


OPS = [op_unary, op_unary, op_sqrt, op_exp, op_binary, op_binary, op_div, op_pow, op_matmul,
       op_matmul, op_matmul_values, op_gemm, op_conv, op_conv, op_bn, op_reshape_split,
       op_reshape_merge, op_shape_chain, op_transpose, op_unsqueeze, op_squeeze, op_flatten,
       op_concat, op_slice, op_gather, op_expand, op_cast, op_identity, op_dropout, op_reduce,
       op_softmax, op_layernorm, op_gelu, op_neutral, op_duplicate, op_const_region,
       op_const_chain, op_matmul_siblings, op_attention, op_clip, op_gelu_tanh, op_mish,
       op_rms_norm, op_transpose_around, op_transpose_gemm, op_squeeze_unsqueeze, op_if,
       op_shape_arith, op_squeeze_all, op_slice_symbolic, op_expand_keep, op_same_constants,
       op_const_subgraph, op_const_subgraph]


def _input_shape(g: Gen, first: Optional[tuple]) -> tuple:
    if first is not None and g.flag("like the first input"):
        shape = list(first)
        for i in range(len(shape)):
            if isinstance(shape[i], int) and g.flag("to 1"):
                shape[i] = 1
        k = g.draw(st.integers(0, len(shape)), label="suffix")
        return tuple(shape[len(shape) - k:])
    if g.flag("image"):
        return (g.choice(["N", 1, 2], "batch"), g.choice([1, 2, 3, 4], "channels"),
                g.choice([3, 5, 8, 8, "S"], "H"), g.choice([3, 4, 6], "W"))
    rank = g.draw(st.integers(1, 4), label="rank")
    dims = []
    for i in range(rank):
        kind = g.choice(["static", "static", "static", "symbol"], "dim kind")
        if kind == "symbol" and i < rank - 1:
            dims.append(g.choice(SYMBOLS, "symbol"))
        else:
            dims.append(g.choice(STATIC_DIMS, "dim"))
    return tuple(dims)


def _type_dims(shape: tuple):
    return [d if d is not None else "" for d in shape]  # "" leaves the dim unknown


HOSTILE_SUFFIXES = ("\x1b]0;t\x07", "\x1b[2J", "\r", "\x9b1m", "\u202e", "\t", "\x7f", "\x00",
                    "\u2028")
# Products of 64 symbols (about 250 characters): each is >= 1, so the verifier's bindings of the
# whole product stay values the model allows.
LONG_DIMS = {s: "*".join(f"{s.lower()}{k}" for k in range(64)) for s in SYMBOLS}


def _rename_graph(g, rename: Callable[[str], str], suffix: str) -> None:
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = rename(vi.name)
    for t in g.initializer:
        t.name = rename(t.name)
    for n in g.node:
        n.input[:] = [rename(x) for x in n.input]
        n.output[:] = [rename(x) for x in n.output]
        n.name += suffix
        for a in n.attribute:
            if a.HasField("g"):
                _rename_graph(a.g, rename, suffix)
            for sub in a.graphs:
                _rename_graph(sub, rename, suffix)


def make_hostile(draw, m: onnx.ModelProto) -> onnx.ModelProto:
    """Every name with a drawn hostile suffix; symbolic dims long products or escape names."""
    suffix = draw(st.sampled_from(HOSTILE_SUFFIXES), label="hostile suffix")
    names: dict = {}

    def rename(name: str) -> str:
        return name and names.setdefault(name, name + suffix)

    _rename_graph(m.graph, rename, suffix)
    m.graph.name += suffix
    long = draw(st.booleans(), label="long dims")
    dims = {s: LONG_DIMS[s] if long else s + suffix for s in SYMBOLS}
    for vi in list(m.graph.input) + list(m.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in dims:
                d.dim_param = dims[d.dim_param]
    return m


@st.composite
def hostile_models(draw, max_ops: int = 16) -> onnx.ModelProto:
    """:func:`models` with hostile names and dims (see the module docstring)."""
    return make_hostile(draw, draw(models(max_ops)))


@st.composite
def models(draw, max_ops: int = 16) -> onnx.ModelProto:
    """A random valid float model (see the module docstring)."""
    opset = draw(st.sampled_from(OPSETS), label="opset")
    elem = draw(st.sampled_from([F32, F32, F32, TensorProto.DOUBLE]), label="float type")
    g = Gen(draw, opset, elem)
    first = None
    for i in range(draw(st.integers(1, 3), label="inputs")):
        shape = _input_shape(g, first)
        first = first or shape
        name = f"x{i}"
        g.inputs.append(helper.make_tensor_value_info(name, g.elem, _type_dims(shape)))
        g.add(name, shape)
    n_ops = draw(st.integers(1, max_ops), label="ops")
    done = 0
    for _ in range(n_ops * 3):
        if done >= n_ops:
            break
        if g.try_op(draw(st.sampled_from(OPS), label="op")):
            done += 1
    made = [v for v in g.pool if not v.name.startswith("x")] or g.pool[-1:]
    outs = [made[-1]]
    for _ in range(draw(st.integers(0, 2), label="extra outputs")):
        v = made[-1 - draw(st.integers(0, len(made) - 1), label="output")]
        if v not in outs:
            outs.append(v)
    declare = draw(st.booleans(), label="declare output shapes")
    out_names = []
    outputs = []
    for v in outs:
        name = v.name
        if v.name.startswith("x") or name in out_names:  # a graph input as output: via Identity
            (name,) = g.node("Identity", [v.name])
        out_names.append(name)
        outputs.append(helper.make_tensor_value_info(
            name, g.elem, _type_dims(v.shape) if declare else [""] * len(v.shape)))
    graph = helper.make_graph(g.nodes, "fuzz", g.inputs, outputs, initializer=g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="onnxopt-fuzz")
    m.ir_version = max(7, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    return m


# -- checking one model -----------------------------------------------------------------------


@dataclass
class Finding:
    """Something the pipeline got wrong on one model."""

    kind: str  # "crash" | "miscompile" | "invalid-output"
    message: str
    signature: str
    model: onnx.ModelProto = field(repr=False)

    def text(self) -> str:
        return model_text(self.model)


@dataclass
class Stats:
    tried: int = 0
    checked: int = 0  # the original is valid and runs, so the result was compared
    invalid: int = 0  # generator output onnx or onnxruntime refuses (a generator bug)
    invalid_reasons: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)  # signature -> smallest Finding
    generator_errors: dict = field(default_factory=dict)  # message -> count (bugs in this file)
    seen: dict = field(default_factory=dict)  # signature -> count
    seconds: float = 0.0


def model_text(m: onnx.ModelProto) -> str:
    return onnx.printer.to_text(m)


def _signature(kind: str, where: str, message: str) -> str:
    msg = re.sub(r"'[^']*'", "'_'", message)
    msg = re.sub(r"\d+", "#", msg)
    return f"{kind}|{where}|{msg[:80]}"


def check(m: onnx.ModelProto, pipeline: str = "default",
          text: bool = False) -> tuple[str, Optional[Finding]]:
    """("ok" | "invalid" | "finding", the finding). Never raises for a pass's failure. With
    ``text``, the optimized model's printed text is checked too (see :func:`text_problem`)."""
    import onnxopt
    from onnxopt.errors import OnnxoptError, PassError

    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001 - the generator made something onnx refuses
        return "invalid", Finding("invalid", f"onnx.checker: {_line(e)}", "", m)
    try:
        r = onnxopt.optimize(m, pipeline, verify=True, raise_on_failure=False, verify_each=True,
                             check_modified=True)
    except PassError as e:
        where = re.match(r"pass '([^']+)'", str(e))
        return "finding", Finding("crash", _line(e), _signature(
            "crash", where.group(1) if where else "?", str(e)), m)
    except OnnxoptError as e:
        return "finding", Finding("crash", f"{type(e).__name__}: {_line(e)}",
                                  _signature("crash", type(e).__name__, str(e)), m)
    except Exception as e:  # noqa: BLE001 - any exception is a finding
        return "finding", Finding("crash", f"{type(e).__name__}: {_line(e)}",
                                  _signature("crash", type(e).__name__, str(e)), m)
    v = r.verification
    if v.status == "not verified":
        return "invalid", Finding("invalid", v.reason, "", m)
    if v.status == "failed":
        where = f"{r.culprit.pass_spec}:{r.culprit.rule}" if r.culprit else "?"
        msg = f"{v.reason}" + (f"; first divergence after {r.culprit}" if r.culprit else "")
        return "finding", Finding("miscompile", msg, _signature("miscompile", where, ""), m)
    from onnxopt.ir import lower_model

    try:
        onnx.checker.check_model(lower_model(r.model))
    except Exception as e:  # noqa: BLE001
        return "finding", Finding("invalid-output", f"onnx.checker: {_line(e)}",
                                  _signature("invalid-output", "", str(e)), m)
    problem = text_problem(r.model) if text else None
    if problem:
        return "finding", Finding("unsafe-text", problem, _signature("unsafe-text", "", problem),
                                  m)
    return "ok", None


# What a terminal acts on (C0 but newline, DEL, C1, bidi controls, separators).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     "\u202a-\u202e\u2066-\u2069\ufeff]")


def text_problem(model) -> Optional[str]:
    """Why the IR model's printed text is unsafe on a terminal or unparseable; None if fine."""
    import onnx.parser
    from onnxopt.ir import print_model

    text = print_model(model)
    bad = _UNSAFE.search(text.replace("\n", ""))
    if bad:
        return f"printed text holds raw {bad.group()!r}"
    try:
        onnx.parser.parse_model(text)
    except Exception as e:  # noqa: BLE001 - the text syntax must stay readable
        return f"printed text does not parse: {_line(e)}"
    return None


def _line(e: BaseException) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:300]


# -- running ----------------------------------------------------------------------------------


class FindingRaised(AssertionError):
    """Raised inside the property so that hypothesis shrinks the model."""


def run(examples: Optional[int] = None, seconds: Optional[float] = None, seed: int = 0,
        pipeline: str = "default", derandomize: bool = False, shrink_seconds: float = 60.0,
        round_size: int = 25, log: Callable[[str], None] = lambda s: None,
        hostile: bool = False) -> Stats:
    """Fuzz until ``examples`` models were tried or ``seconds`` passed; returns what happened.
    ``hostile``: names and dims from :func:`hostile_models`, and the printed text checked."""
    stats = Stats()
    start = time.monotonic()
    end = start + seconds if seconds is not None else math.inf
    cache: dict = {}

    def out_of_budget() -> bool:
        return time.monotonic() > end or (examples is not None and stats.tried >= examples)

    rnd = 0
    idle = 0
    first_failure: list = [None]  # when the current round first failed (shrinking since)
    while not out_of_budget() and idle < 3:
        before = stats.tried
        first_failure[0] = None
        size = round_size if examples is None else min(round_size, examples - stats.tried)

        @settings(max_examples=size, deadline=None, database=None, derandomize=derandomize,
                  report_multiple_bugs=False, print_blob=False,
                  suppress_health_check=list(HealthCheck),
                  phases=[Phase.generate, Phase.shrink])
        @hseed(seed * 100003 + rnd)
        @given(hostile_models() if hostile else models())
        def prop(m):
            if first_failure[0] is None and out_of_budget():
                return
            if first_failure[0] is not None and time.monotonic() - first_failure[0] > \
                    shrink_seconds:
                return  # shrinking took long enough: keep the smallest failure found so far
            key = hashlib.blake2b(m.SerializeToString(), digest_size=16).digest()
            if key in cache:
                status, f = cache[key]
            else:
                stats.tried += 1
                status, f = check(m, pipeline, text=hostile)
                cache[key] = (status, f)
                if status == "invalid":
                    stats.invalid += 1
                    r = f.message[-240:]
                    stats.invalid_reasons[r] = stats.invalid_reasons.get(r, 0) + 1
                elif status == "ok":
                    stats.checked += 1
                else:
                    stats.checked += 1
                    stats.seen[f.signature] = stats.seen.get(f.signature, 0) + 1
                    if f.signature not in stats.findings:
                        log(f"finding: {f.kind}: {f.message}")
            if status == "finding":
                old = stats.findings.get(f.signature)
                if old is None or f.model.ByteSize() < old.model.ByteSize():
                    stats.findings[f.signature] = f
                if first_failure[0] is None:
                    first_failure[0] = time.monotonic()
                raise FindingRaised(f.message)

        try:
            prop()
        except (FindingRaised, Flaky):  # recorded in stats by prop itself; Flaky: the shrink
            pass  # cut-off let a failing example pass when replayed
        except Exception as e:  # noqa: BLE001 - the generator itself failed: a bug here
            msg = f"{type(e).__name__}: {_line(e)}"
            stats.generator_errors[msg] = stats.generator_errors.get(msg, 0) + 1
            log(f"generator error: {msg}")
        rnd += 1
        idle = idle + 1 if stats.tried == before else 0  # nothing new: the space is exhausted
        log(f"round {rnd}: {stats.tried} tried, {stats.checked} checked, {stats.invalid} "
            f"invalid, {len(stats.findings)} distinct finding(s), "
            f"{time.monotonic() - start:.0f} s")
    stats.seconds = time.monotonic() - start
    return stats


def save_finding(f: Finding, folder: str = REGRESSIONS, note: str = "") -> str:
    """Write the finding's model as ``<kind>-<hash>.onnxtxt`` with a comment header."""
    os.makedirs(folder, exist_ok=True)
    text = model_text(f.model)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    path = os.path.join(folder, f"{f.kind}-{digest}.onnxtxt")
    header = [f"# fuzz finding ({f.kind}): {f.message}"[:400]]
    if note:
        header.append(f"# {note}")
    with open(path, "w") as fh:
        fh.write("\n".join(header) + "\n" + text + ("" if text.endswith("\n") else "\n"))
    return path


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=None, help="run this long (default 1)")
    p.add_argument("--examples", type=int, default=None, help="or: try this many models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pipeline", default="default")
    p.add_argument("--shrink-seconds", type=float, default=60.0)
    p.add_argument("--no-save", action="store_true", help="do not write tests/regressions/")
    p.add_argument("--save-dir", default=REGRESSIONS, help="where findings go")
    p.add_argument("--hostile", action="store_true",
                   help="control characters in every name, long products of symbols as dims")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    minutes = a.minutes if a.minutes is not None or a.examples is not None else 1.0
    from onnxopt.ir.escape import escape  # findings quote hostile names: never raw

    log = (lambda s: None) if a.quiet else (lambda s: print(escape(s), flush=True))
    stats = run(examples=a.examples, seconds=None if minutes is None else minutes * 60,
                seed=a.seed, pipeline=a.pipeline, shrink_seconds=a.shrink_seconds, log=log,
                hostile=a.hostile)
    print(f"tried {stats.tried} graphs in {stats.seconds / 60:.1f} min (seed {a.seed}, pipeline "
          f"{a.pipeline!r}{', hostile' if a.hostile else ''}): {stats.checked} checked, {stats.invalid} invalid (generator), "
          f"{len(stats.findings)} distinct finding(s)")
    for reason, n in sorted(stats.invalid_reasons.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  invalid x{n}: {reason}")
    for msg, n in stats.generator_errors.items():
        print(f"  generator error x{n}: {msg}")
    for sig, f in stats.findings.items():
        note = f"python -m tests.fuzz --seed {a.seed}; seen {stats.seen.get(sig, 1)} time(s)"
        where = "" if a.no_save else " -> " + save_finding(f, a.save_dir, note=note)
        print(escape(f"  {f.kind} (x{stats.seen.get(sig, 1)}): {f.message}{where}"))
    return 1 if stats.findings else 0


if __name__ == "__main__":
    sys.exit(main())
