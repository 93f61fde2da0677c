"""The peers' own test suites as a measure: python benchmarks/peer_suites.py [--md FILE] [-k TEXT]

    python benchmarks/peer_suites.py --models golden/dynamize/*.onnx    # whole models instead

Rebuilds, in this repo's words, the kinds of graph that onnxoptimizer's ``optimizer_test.py``
and onnxslim's pattern tests (``tests/test_elimination_patterns.py``, ``test_fusion_patterns.py``
...) feed their tools: one function per case family, each family expanded over the op, dtype,
opset or operand variants those tests cover, near-misses included (a broadcast that grows ``x``,
axes that do not match...). Nothing is fetched at run time.

For every case: the original is checked (onnx checker, onnxruntime runs it), onnxopt's default
preset and the peer (onnxoptimizer with the pass the case exercises, or ``onnxslim.slim``) each
optimize it, both results are compared with the original in onnxruntime (graph optimizations off,
inputs at two bindings), and node counts are taken (all nodes, and nodes other than Constant,
subgraphs included). A case where onnxopt ends with more non-Constant nodes than the peer is
listed with the reason: the case's ``why`` when onnxopt refuses on purpose (the peer's rewrite is
not exact, or changes what the model computes), else "missing rewrite".
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

H = '<ir_version: 8, opset_import: ["" : {op}]>\n'


@dataclass
class Case:
    category: str
    name: str
    text: str
    peer: str  # "onnxoptimizer:PASS[,PASS]" or "onnxslim"
    why: Optional[str] = None  # why onnxopt refuses what the peer does, when it does on purpose


@dataclass
class Outcome:
    case: Case
    ours: Optional[tuple[int, int]] = None  # (all nodes, nodes other than Constant)
    peer: Optional[tuple[int, int]] = None
    ours_ok: Optional[bool] = None
    peer_ok: Optional[bool] = None
    error: str = ""
    notes: list = field(default_factory=list)


CASES: list[Case] = []


def family(category: str, peer: str):
    """Register a case family: the function yields (name, text) or (name, text, why)."""

    def deco(fn: Callable):
        for item in fn():
            name, text, why = (*item, None)[:3]
            CASES.append(Case(category, f"{fn.__name__}.{name}", text, peer, why))
        return fn

    return deco


def g(op: int, sig: str, body: str, inits: str = "") -> str:
    """A model at opset ``op``: ``sig`` is "(inputs) => (outputs)", ``body`` the node lines."""
    init = f" <{inits}>" if inits else ""
    return H.replace("{op}", str(op)) + f"g {sig}{init} {{\n{body}\n}}"


OX = "onnxoptimizer:"
F = "float"

# ------------------------------------------------------------------ onnxoptimizer: eliminations


@family("identity", OX + "eliminate_identity")
def identity_chains():
    yield ("chain", g(13, "(float[5] x) => (float[5] y)", "a = Identity (x)\nb = Identity (a)\ny = Relu (b)"))
    yield ("after_add", g(13, "(float[5] x, float[5] z) => (float[5] y)", "a = Add (x, z)\ny = Identity (a)"))
    yield "input_to_output", g(13, "(float[5] x) => (float[5] y)", "y = Identity (x)")
    yield (
        "two_outputs",
        g(13, "(float[5] x) => (float[5] y, float[5] w)", "a = Relu (x)\ny = Identity (a)\nw = Identity (a)"),
    )


@family("if_const", OX + "eliminate_if_with_const_cond")
def if_with_const_cond():
    for val in (1, 0):
        yield (
            f"cond_{val}",
            g(
                13,
                "(float[5] x) => (float[5] y)",
                f"""
c = Constant <value = bool {{{val}}}> ()
y = If (c) <then_branch = t () => (float[5] o) {{ s = Sin (x)
 o = HardSigmoid <alpha = 0.4, beta = 0.6> (s) }}, else_branch = e () => (float[5] o) {{ o = Identity (x) }}>""",
            ),
        )


@family("nop_cast", OX + "eliminate_nop_cast")
def nop_cast():
    for ty, to in ((F, 1), ("int64", 7), ("double", 11), ("int32", 6)):
        yield ty, g(13, f"({ty}[2,3] x) => ({ty}[2,3] y)", f"a = Cast <to = {to}> (x)\ny = Abs (a)")
    yield ("near_miss_changes_type", g(13, "(float[2,3] x) => (double[2,3] y)", "y = Cast <to = 11> (x)"))
    yield (
        "castlike",
        g(15, "(float[2,3] x, float[1] z) => (float[2,3] y)", "a = CastLike (x, z)\ny = Abs (a)"),
    )


@family("nop_dropout", OX + "eliminate_nop_dropout")
def nop_dropout():
    yield (
        "op11_ratio0",
        g(11, "(float[2,3] x) => (float[2,3] y)", "a = Dropout <ratio = 0.0> (x)\ny = Relu (a)"),
    )
    yield (
        "op11_ratio05",
        g(11, "(float[2,3] x) => (float[2,3] y)", "a = Dropout <ratio = 0.5> (x)\ny = Relu (a)"),
    )
    yield ("op13_inference", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Dropout (x)\ny = Relu (a)"))


@family("nop_flatten", OX + "eliminate_nop_flatten")
def nop_flatten():
    yield (
        "rank2_axis1",
        g(13, "(float[4,5] x) => (float[4,5] y)", "a = Flatten <axis = 1> (x)\ny = Relu (a)"),
    )
    yield (
        "lead1_axis0",
        g(13, "(float[1,20] x) => (float[1,20] y)", "a = Flatten <axis = 0> (x)\ny = Relu (a)"),
    )
    yield (
        "rank2_axis_m1",
        g(13, "(float[4,5] x) => (float[4,5] y)", "a = Flatten <axis = -1> (x)\ny = Relu (a)"),
    )
    yield (
        "near_miss_rank3",
        g(13, "(float[2,3,4] x) => (float[2,12] y)", "a = Flatten <axis = 1> (x)\ny = Relu (a)"),
    )


@family("monotone_argmax", OX + "eliminate_nop_monotone_argmax")
def monotone_argmax():
    why = (
        "not exact: Exp/Log/Softmax are monotone over the reals but not injective in floating "
        "point (underflow to 0, overflow to inf, rounding ties), and ArgMax picks the first of "
        "equal values"
    )
    yield ("exp", g(13, "(float[3,4] x) => (int64[3,1] y)", "a = Exp (x)\ny = ArgMax <axis = 1> (a)"), why)
    yield (
        "log",
        g(13, "(float[3,4] x) => (int64[3,1] y)", "p = Abs (x)\na = Log (p)\ny = ArgMax <axis = 1> (a)"),
        why,
    )
    yield (
        "softmax",
        g(13, "(float[3,4] x) => (int64[3,1] y)", "a = Softmax <axis = 1> (x)\ny = ArgMax <axis = 1> (a)"),
        why,
    )
    yield (
        "exp_underflow",
        g(
            13,
            "(float[3,4] x) => (int64[3,1] y)",
            "z = Mul (x, zero)\nv = Add (z, c)\na = Exp (v)\ny = ArgMax <axis = 1> (a)",
            "float zero = {0.0}, float[4] c = {-200.0, -150.0, -120.0, -110.0}",
        ),
        why,
    )
    yield (
        "near_miss_other_axis",
        g(13, "(float[3,4] x) => (int64[1,4] y)", "a = Softmax <axis = 1> (x)\ny = ArgMax <axis = 0> (a)"),
    )


@family("nop_pad", OX + "eliminate_nop_pad")
def nop_pad():
    yield (
        "op11_zero",
        g(
            11,
            "(float[1,3,4,4] x) => (float[1,3,4,4] y)",
            "p = Constant <value = int64[8] {0,0,0,0,0,0,0,0}> ()\na = Pad (x, p)\ny = Relu (a)",
        ),
    )
    yield (
        "op10_zero_attr",
        g(
            10,
            "(float[1,3,4,4] x) => (float[1,3,4,4] y)",
            "a = Pad <pads = [0,0,0,0,0,0,0,0]> (x)\ny = Relu (a)",
        ),
    )
    yield (
        "near_miss_pads",
        g(
            11,
            "(float[1,3,4,4] x) => (float[1,3,6,6] y)",
            "p = Constant <value = int64[8] {0,0,1,1,0,0,1,1}> ()\na = Pad (x, p)\ny = Relu (a)",
        ),
    )


@family("nop_concat", OX + "eliminate_nop_concat")
def nop_concat():
    yield ("single", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Concat <axis = 0> (x)\ny = Relu (a)"))
    yield (
        "near_miss_two",
        g(13, "(float[2,3] x) => (float[4,3] y)", "a = Concat <axis = 0> (x, x)\ny = Relu (a)"),
    )


@family("nop_split", OX + "eliminate_nop_split")
def nop_split():
    yield (
        "op13_one_output",
        g(
            13,
            "(float[2,6] x) => (float[2,6] y)",
            "s = Constant <value = int64[1] {6}> ()\na = Split <axis = 1> (x, s)\ny = Relu (a)",
        ),
    )
    yield (
        "op11_one_output",
        g(11, "(float[2,6] x) => (float[2,6] y)", "a = Split <axis = 1> (x)\ny = Relu (a)"),
    )
    yield (
        "near_miss_two",
        g(13, "(float[2,6] x) => (float[2,3] y, float[2,3] z)", "y, z = Split <axis = 1> (x)"),
    )


@family("nop_expand", OX + "eliminate_nop_expand")
def nop_expand():
    for shp in ("{1}", "{3}", "{1,1}", "{2,3}", "{1,3}"):
        n = shp.count(",") + 1
        yield (
            f"to_{shp.strip('{}').replace(',', 'x')}",
            g(
                13,
                "(float[2,3] x) => (float[2,3] y)",
                f"s = Constant <value = int64[{n}] {shp}> ()\na = Expand (x, s)\ny = Relu (a)",
            ),
        )
    yield (
        "near_miss_grows",
        g(
            13,
            "(float[2,3] x) => (float[4,2,3] y)",
            "s = Constant <value = int64[3] {4,2,3}> ()\na = Expand (x, s)\ny = Relu (a)",
        ),
    )


@family("shape_gather", OX + "eliminate_shape_gather")
def shape_gather():
    for idx in (0, 1, -1):
        yield (
            f"index_{idx}".replace("-", "m"),
            g(
                13,
                "(float[2,3,4] x) => (int64 y)",
                f"s = Shape (x)\ni = Constant <value = int64 {{{idx}}}> ()\na = Gather (s, i)\ny = Mul (a, a)",
            ),
        )
    yield (
        "vector_index",
        g(
            13,
            "(float[2,3,4] x) => (int64[2] y)",
            "s = Shape (x)\ni = Constant <value = int64[2] {0,2}> ()\na = Gather (s, i)\ny = Mul (a, a)",
        ),
    )


@family("slice_after_shape", OX + "eliminate_slice_after_shape")
def slice_after_shape():
    for st, en in ((0, 2), (1, 3), (-2, 100)):
        yield (
            f"{st}_{en}".replace("-", "m"),
            g(
                13,
                "(float[2,3,4] x) => (int64[?] y)",
                f"s = Shape (x)\nb = Constant <value = int64[1] {{{st}}}> ()\n"
                f"e = Constant <value = int64[1] {{{en}}}> ()\na = Slice (s, b, e)\ny = Mul (a, a)",
            ),
        )


@family("nop_transpose", OX + "eliminate_nop_transpose")
def nop_transpose():
    yield (
        "identity_perm",
        g(13, "(float[2,3,4] x) => (float[2,3,4] y)", "a = Transpose <perm = [0,1,2]> (x)\ny = Relu (a)"),
    )
    yield (
        "near_miss",
        g(13, "(float[2,3,4] x) => (float[2,4,3] y)", "a = Transpose <perm = [0,2,1]> (x)\ny = Relu (a)"),
    )


@family("nop_reshape", OX + "eliminate_nop_reshape")
def nop_reshape():
    for shp in ("{2,3,4}", "{0,0,4}", "{2,-1,4}", "{0,3,-1}"):
        yield (
            shp.strip("{}").replace(",", "_").replace("-", "m"),
            g(
                13,
                "(float[2,3,4] x) => (float[2,3,4] y)",
                f"s = Constant <value = int64[3] {shp}> ()\na = Reshape (x, s)\ny = Relu (a)",
            ),
        )
    yield (
        "near_miss",
        g(
            13,
            "(float[2,3,4] x) => (float[6,4] y)",
            "s = Constant <value = int64[2] {6,4}> ()\na = Reshape (x, s)\ny = Relu (a)",
        ),
    )


@family("nop_with_unit", OX + "eliminate_nop_with_unit")
def nop_with_unit():
    units = {"Add": 0, "Mul": 1, "Sub": 0, "Div": 1, "Pow": 1}
    for op, u in units.items():
        for ty in (F, "int32", "int64") if op != "Pow" else (F,):
            lit = f"{u}.0" if ty == F else str(u)
            for cshape, label in (
                ("", "scalar"),
                ("[3]", "row"),
                ("[2,3]", "full"),
                ("[1,1,3]", "grows_rank"),
            ):
                n = {"": 1, "[3]": 3, "[2,3]": 6, "[1,1,3]": 3}[cshape]
                vals = ",".join([lit] * n)
                out = "[1,2,3]" if label == "grows_rank" else "[2,3]"
                yield (
                    f"{op}_{ty}_{label}",
                    g(
                        13,
                        f"({ty}[2,3] x) => ({ty}{out} y)",
                        f"a = {op} (x, c)\ny = Abs (a)",
                        f"{ty}{cshape} c = {{{vals}}}",
                    ),
                )
        if op in ("Add", "Mul"):
            yield (
                f"{op}_left",
                g(
                    13,
                    "(float[2,3] x) => (float[2,3] y)",
                    f"a = {op} (c, x)\ny = Abs (a)",
                    f"float c = {{{u}.0}}",
                ),
            )
    for op, u in (("And", 1), ("Or", 0)):
        yield (
            f"{op}_bool",
            g(13, "(bool[2,3] x) => (bool[2,3] y)", f"a = {op} (x, c)\ny = Not (a)", f"bool c = {{{u}}}"),
        )
        yield (
            f"{op}_bool_left",
            g(
                13,
                "(bool[2,3] x) => (bool[2,3] y)",
                f"a = {op} (c, x)\ny = Not (a)",
                f"bool[3] c = {{{u},{u},{u}}}",
            ),
        )
        yield (
            f"{op}_near_miss_absorbing",
            g(13, "(bool[2,3] x) => (bool[2,3] y)", f"a = {op} (x, c)\ny = Not (a)", f"bool c = {{{1 - u}}}"),
        )
    yield (
        "near_miss_not_unit",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Mul (x, c)\ny = Abs (a)", "float c = {2.0}"),
    )


@family("cse", OX + "eliminate_common_subexpression")
def common_subexpression():
    yield (
        "two_relu",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Relu (x)\nb = Relu (x)\ny = Add (a, b)"),
    )
    yield (
        "two_add",
        g(
            13,
            "(float[2,3] x, float[2,3] z) => (float[2,3] y)",
            "a = Add (x, z)\nb = Add (x, z)\ny = Mul (a, b)",
        ),
    )
    yield (
        "attrs_differ",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = LeakyRelu <alpha = 0.1> (x)\nb = LeakyRelu <alpha = 0.2> (x)\ny = Add (a, b)",
        ),
    )
    yield (
        "constants",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "c1 = Constant <value = float {2.0}> ()\nc2 = Constant <value = float {2.0}> ()\n"
            "a = Mul (x, c1)\nb = Mul (x, c2)\ny = Add (a, b)",
        ),
    )
    yield (
        "commuted",
        g(
            13,
            "(float[2,3] x, float[2,3] z) => (float[2,3] y)",
            "a = Add (x, z)\nb = Add (z, x)\ny = Mul (a, b)",
        ),
    )


@family("deadend", OX + "eliminate_deadend")
def deadend():
    yield ("dead_chain", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Relu (x)\nb = Exp (a)\ny = Abs (x)"))
    yield (
        "dead_const",
        g(13, "(float[2,3] x) => (float[2,3] y)", "c = Constant <value = float {1.0}> ()\ny = Abs (x)"),
    )


@family("shape_op", OX + "eliminate_shape_op")
def shape_op():
    yield "static", g(13, "(float[2,3] x) => (int64[2] y)", "s = Shape (x)\ny = Mul (s, s)")
    yield (
        "start_end",
        g(15, "(float[2,3,4] x) => (int64[2] y)", "s = Shape <start = 1> (x)\ny = Mul (s, s)"),
    )
    yield "size", g(13, "(float[2,3,4] x) => (int64 y)", "s = Size (x)\ny = Mul (s, s)")
    yield ("near_miss_dynamic", g(13, "(float[N,3] x) => (int64[2] y)", "s = Shape (x)\ny = Mul (s, s)"))


# ------------------------------------------------------------------ onnxoptimizer: fusions


@family("conv_add_bias", OX + "fuse_add_bias_into_conv")
def conv_add_bias():
    w = "float[4,3,3,3] w = {" + ",".join(str((i % 7) * 0.1) for i in range(108)) + "}"
    for bshape in ("[1,4,1,1]", "[4,1,1]", "[1]", "[1,4,1,1]:conv_bias"):
        sh, _, has_b = bshape.partition(":")
        n = 4 if "4" in sh else 1
        b = f"float{sh} b = {{" + ",".join(str(0.5 + i) for i in range(n)) + "}"
        conv = "a = Conv (x, w, cb)" if has_b else "a = Conv (x, w)"
        inits = f"{w}, {b}" + (", float[4] cb = {1.0,2.0,3.0,4.0}" if has_b else "")
        yield (
            sh.strip("[]").replace(",", "_") + ("_with_bias" if has_b else ""),
            g(13, "(float[1,3,5,5] x) => (float[1,4,3,3] y)", f"{conv}\ny = Add (a, b)", inits),
        )
    yield (
        "near_miss_spatial_bias",
        g(
            13,
            "(float[1,3,5,5] x) => (float[1,4,3,3] y)",
            "a = Conv (x, w)\ny = Add (a, b)",
            f"{w}, float[3,3] b = {{1,2,3,4,5,6,7,8,9}}",
        ),
    )


@family("conv_bn", OX + "fuse_bn_into_conv")
def conv_bn():
    w = "float[4,3,3,3] w = {" + ",".join(str((i % 5) * 0.2 - 0.3) for i in range(108)) + "}"
    bn = (
        "float[4] s = {1.0,0.5,2.0,1.5}, float[4] bb = {0.1,0.2,0.3,0.4}, "
        "float[4] mu = {0.0,0.1,-0.1,0.2}, float[4] var = {1.0,0.5,0.25,2.0}"
    )
    for has_b in (False, True):
        conv = "a = Conv (x, w, cb)" if has_b else "a = Conv (x, w)"
        extra = ", float[4] cb = {1.0,2.0,3.0,4.0}" if has_b else ""
        yield (
            f"bias_{has_b}",
            g(
                13,
                "(float[1,3,5,5] x) => (float[1,4,3,3] y)",
                f"{conv}\ny = BatchNormalization (a, s, bb, mu, var)",
                f"{w}, {bn}{extra}",
            ),
        )
    yield (
        "op9",
        g(
            9,
            "(float[1,3,5,5] x) => (float[1,4,3,3] y)",
            "a = Conv (x, w)\ny = BatchNormalization (a, s, bb, mu, var)",
            f"{w}, {bn}",
        ),
    )


@family("concats", OX + "fuse_consecutive_concats")
def consecutive_concats():
    yield (
        "same_axis",
        g(
            13,
            "(float[2,3] a, float[2,4] b, float[2,5] c) => (float[2,12] y)",
            "t = Concat <axis = 1> (a, b)\ny = Concat <axis = 1> (t, c)",
        ),
    )
    yield (
        "negative_axis",
        g(
            13,
            "(float[2,3] a, float[2,4] b, float[2,5] c) => (float[2,12] y)",
            "t = Concat <axis = -1> (a, b)\ny = Concat <axis = 1> (c, t)",
        ),
    )
    yield (
        "nested_twice",
        g(
            13,
            "(float[2,3] a, float[2,4] b) => (float[2,21] y)",
            "t = Concat <axis = 1> (a, b)\nu = Concat <axis = 1> (t, a, b)\ny = Concat <axis = 1> (u, t)",
        ),
    )
    yield (
        "near_miss_axis",
        g(
            13,
            "(float[2,3] a, float[2,3] b) => (float[4,6] y)",
            "t = Concat <axis = 0> (a, b)\ny = Concat <axis = 1> (t, t)",
        ),
    )
    yield (
        "near_miss_shared",
        g(
            13,
            "(float[2,3] a, float[2,3] b) => (float[2,9] y, float[2,6] t)",
            "t = Concat <axis = 1> (a, b)\ny = Concat <axis = 1> (t, a)",
        ),
    )


@family("log_softmax", OX + "fuse_consecutive_log_softmax")
def log_softmax():
    why = (
        "not exact: Log(Softmax(x)) is -inf where Softmax underflows to 0, LogSoftmax stays "
        "finite; the rounding differs elsewhere"
    )
    yield ("axis1", g(13, "(float[2,5] x) => (float[2,5] y)", "a = Softmax <axis = 1> (x)\ny = Log (a)"), why)
    yield (
        "axis_m1",
        g(13, "(float[2,3,5] x) => (float[2,3,5] y)", "a = Softmax <axis = -1> (x)\ny = Log (a)"),
        why,
    )


def _reduce_axes(op: int, reducer: str, axes: list, keep: int) -> tuple[str, str]:
    """(node lines, name of the reduced value) for a Reduce with ``axes`` at opset ``op``."""
    as_input = op >= (13 if reducer == "ReduceSum" else 18)
    if as_input:
        vals = ",".join(map(str, axes))
        return (
            f"ra = Constant <value = int64[{len(axes)}] {{{vals}}}> ()\nr = {reducer} <keepdims = {keep}> (x, ra)"
        ), "r"
    return f"r = {reducer} <axes = [{','.join(map(str, axes))}], keepdims = {keep}> (x)", "r"


def _unsqueeze(op: int, src: str, axes: list, out: str = "y") -> str:
    if op >= 13:
        vals = ",".join(map(str, axes))
        return f"ua = Constant <value = int64[{len(axes)}] {{{vals}}}> ()\n{out} = Unsqueeze ({src}, ua)"
    return f"{out} = Unsqueeze <axes = [{','.join(map(str, axes))}]> ({src})"


@family("reduce_unsqueeze", OX + "fuse_consecutive_reduce_unsqueeze")
def reduce_unsqueeze():
    for op in (11, 13, 18):
        for reducer in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceProd"):
            for axes, uax, ok in (
                ([1], [1], True),
                ([0, 2], [0, 2], True),
                ([-1], [2], True),
                ([1], [0], False),
            ):
                red, r = _reduce_axes(op, reducer, axes, 0)
                shape = [2, 3, 4]
                kept = [1 if i in [a % 3 for a in axes] else d for i, d in enumerate(shape)]
                out = kept if ok else [1, 2, 4]
                name = f"op{op}_{reducer}_{'_'.join(map(str, axes))}_to_{'_'.join(map(str, uax))}"
                yield (
                    name.replace("-", "m"),
                    g(op, f"(float[2,3,4] x) => (float{out} y)", red + "\n" + _unsqueeze(op, r, uax)),
                )


@family("squeezes", OX + "fuse_consecutive_squeezes")
def consecutive_squeezes():
    for op in (11, 13):

        def sq(src, axes, out):
            if op >= 13:
                return (
                    f"{out}_a = Constant <value = int64[{len(axes)}] {{{','.join(map(str, axes))}}}> ()\n"
                    f"{out} = Squeeze ({src}, {out}_a)"
                )
            return f"{out} = Squeeze <axes = [{','.join(map(str, axes))}]> ({src})"

        yield (
            f"op{op}_simple",
            g(op, "(float[1,1,2,3] x) => (float[2,3] y)", sq("x", [0], "a") + "\n" + sq("a", [0], "y")),
        )
        yield (
            f"op{op}_interleaved",
            g(op, "(float[1,2,1,3,1] x) => (float[2,3] y)", sq("x", [0, 4], "a") + "\n" + sq("a", [1], "y")),
        )
        yield (
            f"op{op}_negative",
            g(op, "(float[2,1,3,1] x) => (float[2,3] y)", sq("x", [-1], "a") + "\n" + sq("a", [-2], "y")),
        )
        yield (
            f"op{op}_three",
            g(
                op,
                "(float[1,2,1,3,1] x) => (float[2,3] y)",
                sq("x", [0], "a") + "\n" + sq("a", [1], "b") + "\n" + sq("b", [-1], "y"),
            ),
        )


@family("unsqueezes", OX + "fuse_consecutive_unsqueezes")
def consecutive_unsqueezes():
    for op in (11, 13):
        yield (
            f"op{op}_last_last",
            g(
                op,
                "(float[3,4] x) => (float[3,4,1,1] y)",
                _unsqueeze(op, "x", [-1], "a").replace("ua", "ua1") + "\n" + _unsqueeze(op, "a", [-1]),
            ),
        )
        yield (
            f"op{op}_front",
            g(
                op,
                "(float[3,4] x) => (float[1,1,3,4] y)",
                _unsqueeze(op, "x", [0], "a").replace("ua", "ua1") + "\n" + _unsqueeze(op, "a", [0]),
            ),
        )
        yield (
            f"op{op}_mixed",
            g(
                op,
                "(float[3,4] x) => (float[1,3,1,4,1] y)",
                _unsqueeze(op, "x", [0, 3], "a").replace("ua", "ua1") + "\n" + _unsqueeze(op, "a", [2]),
            ),
        )
        yield (
            f"op{op}_unsqueeze_squeeze",
            g(
                op,
                "(float[3,4,5] x) => (float[3,4,5] y)",
                _unsqueeze(op, "x", [0], "a").replace("ua", "ua1")
                + "\n"
                + ("y = Squeeze (a, ua1)" if op >= 13 else "y = Squeeze <axes = [0]> (a)"),
            ),
        )


@family("transposes", OX + "fuse_consecutive_transposes")
def consecutive_transposes():
    yield (
        "cancel",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,4] y)",
            "a = Transpose <perm = [1,0,2]> (x)\nb = Transpose <perm = [1,0,2]> (a)\ny = Relu (b)",
        ),
    )
    yield (
        "merge",
        g(
            13,
            "(float[2,3,4] x) => (float[4,2,3] y)",
            "a = Transpose <perm = [1,0,2]> (x)\ny = Transpose <perm = [2,1,0]> (a)",
        ),
    )
    yield (
        "default_perm",
        g(13, "(float[2,3,4] x) => (float[2,3,4] y)", "a = Transpose (x)\nb = Transpose (a)\ny = Relu (b)"),
    )
    yield (
        "three",
        g(
            13,
            "(float[2,3,4] x) => (float[3,4,2] y)",
            "a = Transpose <perm = [1,0,2]> (x)\nb = Transpose <perm = [0,2,1]> (a)\ny = Transpose <perm = [0,1,2]> (b)",
        ),
    )


@family("matmul_add_gemm", OX + "fuse_matmul_add_bias_into_gemm")
def matmul_add_gemm():
    w = "float[4,5] w = {" + ",".join(str(i * 0.1) for i in range(20)) + "}"
    for bshape, n in (("[5]", 5), ("[1,5]", 5), ("[3,5]", 15), ("[1]", 1)):
        b = f"float{bshape} b = {{" + ",".join(str(i * 0.5) for i in range(n)) + "}"
        yield (
            "bias" + bshape.strip("[]").replace(",", "_"),
            g(13, "(float[3,4] x) => (float[3,5] y)", "a = MatMul (x, w)\ny = Add (a, b)", f"{w}, {b}"),
        )
    yield (
        "near_miss_rank3",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,5] y)",
            "a = MatMul (x, w)\ny = Add (a, b)",
            f"{w}, float[5] b = {{1,2,3,4,5}}",
        ),
    )
    yield (
        "reshape_2d",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,5] y)",
            "s = Constant <value = int64[2] {6,4}> ()\nr = Reshape (x, s)\na = MatMul (r, w)\n"
            "c = Add (a, b)\ns2 = Constant <value = int64[3] {2,3,5}> ()\ny = Reshape (c, s2)",
            f"{w}, float[5] b = {{1,2,3,4,5}}",
        ),
    )


def _pad(op: int, pads: list, value: Optional[str] = None) -> str:
    vals = ",".join(map(str, pads))
    if op >= 11:
        v = f"\npv = Constant <value = float {{{value}}}> ()" if value is not None else ""
        return (
            f"p = Constant <value = int64[{len(pads)}] {{{vals}}}> (){v}\n"
            f"a = Pad (x, p{', pv' if value is not None else ''})"
        )
    return f"a = Pad <pads = [{vals}]{f', value = {value}' if value is not None else ''}> (x)"


@family("pad_conv", OX + "fuse_pad_into_conv")
def pad_conv():
    w = "float[2,3,3,3] w = {" + ",".join(str((i % 4) * 0.25) for i in range(54)) + "}"
    for op in (2, 11):
        ver = 11 if op == 11 else 9
        yield (
            f"op{ver}_zero",
            g(
                ver,
                "(float[1,3,4,4] x) => (float[1,2,4,4] y)",
                _pad(op, [0, 0, 1, 1, 0, 0, 1, 1]) + "\ny = Conv (a, w)",
                w,
            ),
        )
        yield (
            f"op{ver}_with_own_pads",
            g(
                ver,
                "(float[1,3,4,4] x) => (float[1,2,6,6] y)",
                _pad(op, [0, 0, 1, 1, 0, 0, 1, 1]) + "\ny = Conv <pads = [1,1,1,1]> (a, w)",
                w,
            ),
        )
        yield (
            f"op{ver}_near_miss_value",
            g(
                ver,
                "(float[1,3,4,4] x) => (float[1,2,4,4] y)",
                _pad(op, [0, 0, 1, 1, 0, 0, 1, 1], "1.0") + "\ny = Conv (a, w)",
                w,
            ),
        )
        yield (
            f"op{ver}_near_miss_channel",
            g(
                ver,
                "(float[1,3,4,4] x) => (float[1,2,2,2] y)",
                _pad(op, [0, 1, 0, 0, 0, 1, 0, 0]).replace("float[1,3", "float[1,3")
                + "\nw5 = Concat <axis = 1> (w, w2)\ny = Conv (a, w5)",
                w + ", float[2,2,3,3] w2 = {" + ",".join(["0.5"] * 36) + "}",
            ),
        )


@family("pad_pool", OX + "fuse_pad_into_pool")
def pad_pool():
    why = (
        "not exact: the peer folds a 0-valued Pad into MaxPool's pads, which pad with -inf: on a "
        "window of negative inputs the original's max is 0, the fused one's is negative"
    )
    yield (
        "avg_include",
        g(
            11,
            "(float[1,2,4,4] x) => (float[1,2,4,4] y)",
            _pad(11, [0, 0, 1, 1, 0, 0, 1, 1])
            + "\ny = AveragePool <kernel_shape = [3,3], count_include_pad = 1> (a)",
        ),
    )
    yield (
        "avg_exclude",
        g(
            11,
            "(float[1,2,4,4] x) => (float[1,2,4,4] y)",
            _pad(11, [0, 0, 1, 1, 0, 0, 1, 1]) + "\ny = AveragePool <kernel_shape = [3,3]> (a)",
        ),
    )
    yield (
        "max_zero_pad",
        g(
            11,
            "(float[1,2,4,4] x) => (float[1,2,4,4] y)",
            _pad(11, [0, 0, 1, 1, 0, 0, 1, 1]) + "\ny = MaxPool <kernel_shape = [3,3]> (a)",
        ),
        why,
    )
    yield (
        "max_after_relu",
        g(
            11,
            "(float[1,2,4,4] x) => (float[1,2,4,4] y)",
            "r = Relu (x)\n"
            + _pad(11, [0, 0, 1, 1, 0, 0, 1, 1]).replace("(x", "(r")
            + "\ny = MaxPool <kernel_shape = [3,3]> (a)",
        ),
    )


@family("transpose_gemm", OX + "fuse_transpose_into_gemm")
def transpose_gemm():
    yield (
        "a",
        g(
            13,
            "(float[4,3] x, float[4,5] w) => (float[3,5] y)",
            "t = Transpose <perm = [1,0]> (x)\ny = Gemm (t, w)",
        ),
    )
    yield ("b", g(13, "(float[3,4] x, float[5,4] w) => (float[3,5] y)", "t = Transpose (w)\ny = Gemm (x, t)"))
    yield (
        "b_flag",
        g(
            13,
            "(float[3,4] x, float[4,5] w) => (float[3,5] y)",
            "t = Transpose (w)\ny = Gemm <transB = 1> (x, t)",
        ),
    )


@family("concat_reshape", OX + "fuse_concat_into_reshape")
def concat_reshape():
    yield (
        "shape_gather",
        g(
            13,
            "(float[2,3,4] x) => (float[2,12] y)",
            """
s = Shape (x)
i = Constant <value = int64 {0}> ()
d = Gather (s, i)
k = Constant <value = int64[1] {0}> ()
du = Unsqueeze (d, k)
m = Constant <value = int64[1] {-1}> ()
t = Concat <axis = 0> (du, m)
y = Reshape (x, t)""",
        ),
    )
    yield (
        "consts_only",
        g(
            13,
            "(float[2,3,4] x) => (float[6,4] y)",
            """
a = Constant <value = int64[1] {6}> ()
b = Constant <value = int64[1] {4}> ()
t = Concat <axis = 0> (a, b)
y = Reshape (x, t)""",
        ),
    )


@family("slices", OX + "fuse_consecutive_slices")
def consecutive_slices():
    def sl(src, out, st, en, ax, sp=None):
        k = len(st)
        lines = [
            f"{out}_s = Constant <value = int64[{k}] {{{','.join(map(str, st))}}}> ()",
            f"{out}_e = Constant <value = int64[{k}] {{{','.join(map(str, en))}}}> ()",
            f"{out}_a = Constant <value = int64[{k}] {{{','.join(map(str, ax))}}}> ()",
        ]
        args = f"{src}, {out}_s, {out}_e, {out}_a"
        if sp:
            lines.append(f"{out}_p = Constant <value = int64[{k}] {{{','.join(map(str, sp))}}}> ()")
            args += f", {out}_p"
        return "\n".join(lines + [f"{out} = Slice ({args})"])

    yield (
        "disjoint_axes",
        g(
            13,
            "(float[6,8] x) => (float[?,?] y)",
            sl("x", "a", [1], [5], [0]) + "\n" + sl("a", "y", [2], [6], [1]),
        ),
    )
    yield (
        "same_axis",
        g(
            13,
            "(float[6,8] x) => (float[?,?] y)",
            sl("x", "a", [1], [7], [1]) + "\n" + sl("a", "y", [1], [3], [1]),
        ),
    )
    yield (
        "same_axis_steps",
        g(
            13,
            "(float[6,8] x) => (float[?,?] y)",
            sl("x", "a", [0], [8], [1], [2]) + "\n" + sl("a", "y", [1], [4], [1], [2]),
        ),
    )
    yield (
        "negative_indices",
        g(
            13,
            "(float[6,8] x) => (float[?,?] y)",
            sl("x", "a", [-5], [-1], [0]) + "\n" + sl("a", "y", [-3], [100], [0]),
        ),
    )
    yield (
        "dynamic_same_axis",
        g(
            13,
            "(float[N,8] x) => (float[?,?] y)",
            sl("x", "a", [1], [100], [0]) + "\n" + sl("a", "y", [0], [-1], [0]),
        ),
    )


@family("rewrite_where", OX + "rewrite_where")
def rewrite_where():
    yield (
        "not_cond",
        g(
            13,
            "(bool[2,3] c, float[2,3] a, float[2,3] b) => (float[2,3] y)",
            "n = Not (c)\ny = Where (n, a, b)",
        ),
    )
    yield (
        "broadcast",
        g(13, "(bool[3] c, float[2,3] a, float[1] b) => (float[2,3] y)", "n = Not (c)\ny = Where (n, a, b)"),
    )
    yield (
        "near_miss_shared_not",
        g(
            13,
            "(bool[2,3] c, float[2,3] a, float[2,3] b) => (float[2,3] y, bool[2,3] n)",
            "n = Not (c)\ny = Where (n, a, b)",
        ),
    )


@family("idempotent", OX + "eliminate_consecutive_idempotent_ops")
def idempotent_ops():
    for op in ("Relu", "Sign", "Floor", "Ceil", "Round", "Abs"):
        yield (op, g(13, "(float[2,3] x) => (float[2,3] y)", f"a = {op} (x)\nb = {op} (a)\ny = Neg (b)"))
        yield (
            f"{op}_three",
            g(13, "(float[2,3] x) => (float[2,3] y)", f"a = {op} (x)\nb = {op} (a)\ny = {op} (b)"),
        )
    yield ("near_miss_mixed", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Floor (x)\ny = Ceil (a)"))


@family("qkv", OX + "fuse_qkv")
def qkv():
    ws = ", ".join(
        f"float[4,4] w{k} = {{" + ",".join(str((i + j) * 0.05) for i in range(16)) + "}"
        for j, k in enumerate("qkv")
    )
    yield (
        "three_matmuls",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,4] q, float[2,3,4] k, float[2,3,4] v)",
            "q = MatMul (x, wq)\nk = MatMul (x, wk)\nv = MatMul (x, wv)",
            ws,
        ),
    )


# ------------------------------------------------------------------ onnxslim's pattern tests
SL = "onnxslim"


@family("slim_elimination", SL)
def slim_elimination():
    yield (
        "concat_of_concat_single",
        g(
            11,
            "(float[1,3,8,8] x) => (float[1,3,8,8] y)",
            "a = Concat <axis = 1> (x)\ny = Concat <axis = 1> (a)",
        ),
    )
    yield (
        "concat_intermediate_output",
        g(
            11,
            "(float[1,3,4,4] x) => (float[1,3,4,4] a, float[1,3,4,4] y)",
            "a = Concat <axis = 1> (x)\ny = Concat <axis = 1> (a)",
        ),
    )
    yield (
        "reshape_reshape",
        g(
            11,
            "(float[1,3,8,8] x) => (float[1,12,4,4] y)",
            "y0 = Reshape (x, s1)\ny = Reshape (y0, s2)",
            "int64[3] s1 = {1,24,8}, int64[4] s2 = {1,12,4,4}",
        ),
    )
    yield (
        "reshape_intermediate_output",
        g(
            11,
            "(float[2,3] x) => (float[3,2] a, float[6] y)",
            "a = Reshape (x, s1)\ny = Reshape (a, s2)",
            "int64[2] s1 = {3,2}, int64[1] s2 = {6}",
        ),
    )
    yield (
        "reshape_to_self",
        g(
            11,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Reshape (x, s1)\nb = Reshape (a, s2)\ny = Relu (b)",
            "int64[1] s1 = {6}, int64[2] s2 = {2,3}",
        ),
    )
    yield (
        "slice_not_all",
        g(
            11,
            "(float[10,10] x) => (float[9,9] y)",
            "y = Slice (x, st, en, ax)",
            "int64[2] st = {0,0}, int64[2] en = {9,9}, int64[2] ax = {0,1}",
        ),
    )
    yield (
        "slice_all",
        g(
            11,
            "(float[10,10] x) => (float[10,10] y)",
            "a = Slice (x, st, en, ax)\ny = Relu (a)",
            "int64[2] st = {0,0}, int64[2] en = {10,2147483647}, int64[2] ax = {0,1}",
        ),
    )
    yield (
        "unsqueeze_squeeze",
        g(
            14,
            "(float[3,4,5] x) => (float[3,4,5] y)",
            "a = Unsqueeze (x, a1)\nb = Squeeze (a, a2)\ny = Relu (b)",
            "int64[1] a1 = {0}, int64[1] a2 = {0}",
        ),
    )
    for op in (11, 13):
        yield (
            f"unsqueeze_pair_op{op}",
            g(
                op,
                "(float[3,4] x) => (float[3,4,1,1] y)",
                _unsqueeze(op, "x", [-1], "a").replace("ua", "ua1") + "\n" + _unsqueeze(op, "a", [-1]),
            ),
        )
    yield (
        "transpose_reshape_transpose",
        g(
            13,
            "(float[2,3,4] a) => (float[2,3,4,1] y)",
            "t = Transpose <perm = [0,2,1]> (a)\nu = Unsqueeze (t, k)\ny = Transpose <perm = [0,2,1,3]> (u)",
            "int64[1] k = {-1}",
        ),
    )


@family("slim_fusion", SL)
def slim_fusion():
    w = "float[4,3,3,3] w = {" + ",".join(str((i % 5) * 0.2 - 0.3) for i in range(108)) + "}"
    bn = (
        "float[4] s = {1.0,0.5,2.0,1.5}, float[4] bb = {0.1,0.2,0.3,0.4}, "
        "float[4] mu = {0.0,0.1,-0.1,0.2}, float[4] var = {1.0,0.5,0.25,2.0}"
    )
    yield (
        "conv_bn",
        g(
            13,
            "(float[1,3,6,6] x) => (float[1,4,4,4] y)",
            "a = Conv (x, w)\ny = BatchNormalization (a, s, bb, mu, var)",
            f"{w}, {bn}",
        ),
    )
    yield (
        "conv_add",
        g(
            13,
            "(float[1,3,6,6] x) => (float[1,4,4,4] y)",
            "a = Conv (x, w)\ny = Add (a, b)",
            f"{w}, float[1,4,1,1] b = {{1,2,3,4}}",
        ),
    )
    yield (
        "conv_mul",
        g(
            13,
            "(float[1,3,6,6] x) => (float[1,4,4,4] y)",
            "a = Conv (x, w)\ny = Mul (a, b)",
            f"{w}, float[1,4,1,1] b = {{1,2,3,4}}",
        ),
    )
    yield (
        "pad_conv",
        g(
            13,
            "(float[1,3,6,6] x) => (float[1,4,6,6] y)",
            "a = Pad (x, p)\ny = Conv (a, w)",
            f"{w}, int64[8] p = {{0,0,1,1,0,0,1,1}}",
        ),
    )
    yield (
        "gelu_erf",
        g(
            13,
            "(float[2,8] x) => (float[2,8] y)",
            """
d = Div (x, sq)
e = Erf (d)
a = Add (e, one)
m = Mul (x, a)
y = Mul (m, half)""",
            "float sq = {1.4142135}, float one = {1.0}, float half = {0.5}",
        ),
    )
    wm = "float[8,6] w = {" + ",".join(str(i * 0.01) for i in range(48)) + "}, float[6] b = {1,2,3,4,5,6}"
    yield ("gemm_2d", g(13, "(float[4,8] x) => (float[4,6] y)", "a = MatMul (x, w)\ny = Add (a, b)", wm))
    yield ("gemm_3d", g(13, "(float[2,4,8] x) => (float[2,4,6] y)", "a = MatMul (x, w)\ny = Add (a, b)", wm))
    yield (
        "reduce_sum_unsqueeze",
        g(
            13,
            "(float[2,3,4] x) => (float[2,1,4] y)",
            "r = ReduceSum <keepdims = 0> (x, ax)\ny = Unsqueeze (r, ax)",
            "int64[1] ax = {1}",
        ),
    )
    yield (
        "reduce_mean_unsqueeze",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,1] y)",
            "r = ReduceMean <axes = [-1], keepdims = 0> (x)\ny = Unsqueeze (r, ax)",
            "int64[1] ax = {-1}",
        ),
    )


@family("slim_dead_nodes", SL)
def slim_dead_nodes():
    yield "identity", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Identity (x)\ny = Relu (a)")
    yield "dropout", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Dropout (x)\ny = Relu (a)")
    yield ("cast_same", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Cast <to = 1> (x)\ny = Relu (a)"))
    yield (
        "pad_zero",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Pad (x, p)\ny = Relu (a)", "int64[4] p = {0,0,0,0}"),
    )
    yield (
        "reshape_same",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Reshape (x, s)\ny = Relu (a)", "int64[2] s = {2,3}"),
    )
    yield (
        "expand_ones",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Expand (x, s)\ny = Relu (a)", "int64[2] s = {1,1}"),
    )
    yield ("split_one", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Split <axis = 0> (x)\ny = Relu (a)"))
    yield (
        "slice_full",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Slice (x, s, e)\ny = Relu (a)",
            "int64[1] s = {0}, int64[1] e = {2}",
        ),
    )
    yield (
        "add_zero_const",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Add (x, z)\ny = Relu (a)", "float[1] z = {0.0}"),
    )
    yield (
        "mul_one_const",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Mul (x, z)\ny = Relu (a)",
            "float[3] z = {1.0,1.0,1.0}",
        ),
    )
    yield ("dead_branch", g(13, "(float[2,3] x) => (float[2,3] y)", "a = Exp (x)\nb = Log (a)\ny = Relu (x)"))


@family("slim_cse", SL)
def slim_cse():
    yield (
        "shared_input",
        g(13, "(float[2,3] x) => (float[2,3] y)", "a = Sigmoid (x)\nb = Sigmoid (x)\ny = Mul (a, b)"),
    )
    yield (
        "graph_outputs",
        g(13, "(float[2,3] x) => (float[2,3] a, float[2,3] b)", "a = Sigmoid (x)\nb = Sigmoid (x)"),
    )
    yield (
        "chains",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Exp (x)\nb = Exp (x)\nc = Relu (a)\nd = Relu (b)\ny = Add (c, d)",
        ),
    )


@family("slim_shape_folding", SL)
def slim_shape_folding():
    yield (
        "reshape_from_shape",
        g(
            13,
            "(float[2,3,4] x) => (float[2,12] y)",
            """
s = Shape (x)
i0 = Constant <value = int64[1] {0}> ()
d0 = Gather (s, i0)
m = Constant <value = int64[1] {-1}> ()
t = Concat <axis = 0> (d0, m)
y = Reshape (x, t)""",
        ),
    )
    yield (
        "constant_of_shape",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "s = Shape (x)\nz = ConstantOfShape <value = float[1] {1.0}> (s)\ny = Mul (x, z)",
        ),
    )
    yield (
        "expand_like",
        g(
            13,
            "(float[2,3] x, float[3] b) => (float[2,3] y)",
            "s = Shape (x)\ne = Expand (b, s)\ny = Add (x, e)",
        ),
    )
    yield (
        "causal_mask",
        g(
            13,
            "(float[1,8,8] x) => (float[1,8,8] y)",
            """
s = Shape (x)
i = Constant <value = int64 {1}> ()
n = Gather (s, i)
z = Constant <value = int64 {0}> ()
o = Constant <value = int64 {1}> ()
r = Range (z, n, o)
u0 = Constant <value = int64[1] {0}> ()
u1 = Constant <value = int64[1] {1}> ()
rr = Unsqueeze (r, u1)
rc = Unsqueeze (r, u0)
m = Less (rr, rc)
ninf = Constant <value = float {-10000.0}> ()
zf = Constant <value = float {0.0}> ()
w = Where (m, ninf, zf)
y = Add (x, w)""",
        ),
    )


# ------------------------------------------------------------------ more variants of both suites


@family("conv_bn_variants", OX + "fuse_bn_into_conv")
def conv_bn_variants():
    bn = (
        "float[4] s = {1.0,0.5,2.0,1.5}, float[4] bb = {0.1,0.2,0.3,0.4}, "
        "float[4] mu = {0.0,0.1,-0.1,0.2}, float[4] var = {1.0,0.5,0.25,2.0}"
    )
    for attrs, wshape, n, out in (
        ("strides = [2,2]", "[4,3,3,3]", 108, "[1,4,2,2]"),
        ("pads = [1,1,1,1]", "[4,3,3,3]", 108, "[1,4,5,5]"),
        ("group = 1, dilations = [2,2]", "[4,3,2,2]", 48, "[1,4,3,3]"),
        ("kernel_shape = [1,1]", "[4,3,1,1]", 12, "[1,4,5,5]"),
    ):
        w = f"float{wshape} w = {{" + ",".join(str((i % 7) * 0.1 - 0.2) for i in range(n)) + "}"
        yield (
            attrs.split(" ")[0],
            g(
                13,
                f"(float[1,3,5,5] x) => (float{out} y)",
                f"a = Conv <{attrs}> (x, w)\ny = BatchNormalization (a, s, bb, mu, var)",
                f"{w}, {bn}",
            ),
        )
    yield (
        "near_miss_bn_input",
        g(13, "(float[1,4,5,5] x) => (float[1,4,5,5] y)", "y = BatchNormalization (x, s, bb, mu, var)", bn),
    )


@family("transpose_fanout", OX + "fuse_consecutive_transposes")
def transpose_fanout():
    yield (
        "two_readers",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,4] y, float[4,3,2] z)",
            "a = Transpose <perm = [1,0,2]> (x)\ny = Transpose <perm = [1,0,2]> (a)\n"
            "z = Transpose <perm = [2,0,1]> (a)",
        ),
    )
    yield (
        "elementwise_between",
        g(
            13,
            "(float[2,3,4] x) => (float[2,3,4] y)",
            "a = Transpose <perm = [2,0,1]> (x)\nb = Relu (a)\ny = Transpose <perm = [1,2,0]> (b)",
        ),
    )


@family("duplicate_initializers", OX + "eliminate_duplicate_initializer")
def duplicate_initializers():
    yield (
        "same_values",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Add (x, c1)\nb = Add (x, c2)\ny = Mul (a, b)",
            "float[3] c1 = {1,2,3}, float[3] c2 = {1,2,3}",
        ),
    )
    yield (
        "near_miss_values",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Add (x, c1)\nb = Add (x, c2)\ny = Mul (a, b)",
            "float[3] c1 = {1,2,3}, float[3] c2 = {1,2,4}",
        ),
    )
    yield (
        "near_miss_dtype",
        g(
            13,
            "(float[2,3] x, double[2,3] z) => (float[2,3] y, double[2,3] w)",
            "y = Add (x, c1)\nw = Add (z, c2)",
            "float[3] c1 = {1,2,3}, double[3] c2 = {1,2,3}",
        ),
    )


@family("if_variants", OX + "eliminate_if_with_const_cond")
def if_variants():
    yield (
        "nested",
        g(
            13,
            "(float[4] x) => (float[4] y)",
            """
c = Constant <value = bool {1}> ()
y = If (c) <then_branch = t () => (float[4] o) { d = Constant <value = bool {0}> ()
 o = If (d) <then_branch = t2 () => (float[4] p) { p = Neg (x) }, else_branch = e2 () => (float[4] p) { p = Abs (x) }> },
 else_branch = e () => (float[4] o) { o = Relu (x) }>""",
        ),
    )
    yield (
        "initializer_cond",
        g(
            13,
            "(float[4] x) => (float[4] y)",
            """
y = If (c) <then_branch = t () => (float[4] o) { o = Neg (x) }, else_branch = e () => (float[4] o) { o = Abs (x) }>""",
            "bool c = {0}",
        ),
    )
    yield (
        "near_miss_input_cond",
        g(
            13,
            "(float[4] x, bool c) => (float[4] y)",
            """
y = If (c) <then_branch = t () => (float[4] o) { o = Neg (x) }, else_branch = e () => (float[4] o) { o = Abs (x) }>""",
        ),
    )


@family("slim_more", SL)
def slim_more():
    yield (
        "concat_empty_input",
        g(
            13,
            "(float[2,3] x) => (float[2,3] y)",
            "a = Concat <axis = 0> (x, e)\ny = Relu (a)",
            "float[0,3] e = {}",
        ),
    )
    yield (
        "reshape_as_static",
        g(
            13,
            "(float[2,3,4] x, float[6,4] z) => (float[6,4] y)",
            "s = Shape (z)\nr = Reshape (x, s)\ny = Add (r, z)",
        ),
    )
    yield (
        "gelu_tanh",
        g(
            13,
            "(float[2,8] x) => (float[2,8] y)",
            """
p = Pow (x, three)
m = Mul (p, k)
a = Add (x, m)
s = Mul (a, c)
t = Tanh (s)
o = Add (t, one)
h = Mul (x, o)
y = Mul (h, half)""",
            "float three = {3.0}, float k = {0.044715}, float c = {0.7978845608}, float one = {1.0}, float half = {0.5}",
        ),
    )
    yield (
        "layer_norm",
        g(
            17,
            "(float[2,8] x) => (float[2,8] y)",
            """
mu = ReduceMean <axes = [-1]> (x)
d = Sub (x, mu)
p = Pow (d, two)
v = ReduceMean <axes = [-1]> (p)
e = Add (v, eps)
s = Sqrt (e)
n = Div (d, s)
w = Mul (n, g1)
y = Add (w, b1)""",
            "float two = {2.0}, float eps = {1e-5}, float[8] g1 = {1,1,1,1,2,2,2,2}, float[8] b1 = {0,0,0,0,1,1,1,1}",
        ),
    )
    yield ("swish_mul_sigmoid", g(13, "(float[2,8] x) => (float[2,8] y)", "s = Sigmoid (x)\ny = Mul (x, s)"))
    yield (
        "double_reshape_flatten",
        g(
            13,
            "(float[2,3,4] x) => (float[2,12] y)",
            "a = Reshape (x, s)\ny = Flatten <axis = 1> (a)",
            "int64[3] s = {2,12,1}",
        ),
    )
    yield (
        "squeeze_of_unsqueeze_other_axis",
        g(
            13,
            "(float[3,1,4] x) => (float[1,3,4] y)",
            "a = Unsqueeze (x, k0)\ny = Squeeze (a, k2)",
            "int64[1] k0 = {0}, int64[1] k2 = {2}",
        ),
    )


_DEAD_OPS = {  # op -> (node text reading r, initializers): each leaves r unchanged
    "Identity": ("t = Identity (r)", ""),
    "Dropout": ("t = Dropout (r)", ""),
    "Pad": ("t = Pad (r, p)", "int64[8] p = {0,0,0,0,0,0,0,0}"),
    "Mul": ("t = Mul (r, c)", "float[1] c = {1.0}"),
    "Add": ("t = Add (r, c)", "float[1] c = {0.0}"),
    "Sub": ("t = Sub (r, c)", "float c = {0.0}"),
    "Div": ("t = Div (r, c)", "float[5] c = {1.0,1.0,1.0,1.0,1.0}"),
    "Concat": ("t = Concat <axis = 0> (r)", ""),
    "Split": ("t = Split <axis = 0> (r, s)", "int64[1] s = {2}"),
    "Slice": ("t = Slice (r, st, en, ax)", "int64[2] st = {0,0}, int64[2] en = {4,5}, int64[2] ax = {2,3}"),
    "Reshape": ("t = Reshape (r, s)", "int64[4] s = {2,3,4,5}"),
    "ReshapeShape": ("sh = Shape (r)\nt = Reshape (r, sh)", ""),
    "Cast": ("t = Cast <to = 1> (r)", ""),
    "Expand": ("t = Expand (r, s)", "int64[4] s = {1,1,1,1}"),
    "Flatten": ("t = Flatten <axis = 1> (v)", ""),
}


@family("slim_dead_nodes_as_output", SL)
def slim_dead_nodes_as_output():
    """The target op produces the graph output from a Relu's result (which can take its name),
    and, as a near-miss, bridges the graph input to the graph output directly (it must stay)."""
    for op, (node, inits) in _DEAD_OPS.items():
        if op == "Flatten":
            body = "v = Relu (x)\n" + node.replace("t =", "y =")
            yield op, g(14, "(float[6,5] x) => (float[6,5] y)", body, inits)
            continue
        yield (
            op,
            g(
                14,
                "(float[2,3,4,5] x) => (float[2,3,4,5] y)",
                "r = Relu (x)\n" + node.replace("t =", "y ="),
                inits,
            ),
        )
        yield (
            f"{op}_bridging",
            g(
                14,
                "(float[2,3,4,5] x) => (float[2,3,4,5] y)",
                node.replace("(r", "(x").replace("t =", "y ="),
                inits,
            ),
        )


@family("nop_with_unit_double", OX + "eliminate_nop_with_unit")
def nop_with_unit_double():
    for op, u in (("Add", 0), ("Mul", 1), ("Sub", 0), ("Div", 1)):
        for side in ("right", "left") if op in ("Add", "Mul") else ("right",):
            args = "x, c" if side == "right" else "c, x"
            yield (
                f"{op}_{side}",
                g(
                    13,
                    "(double[2,3] x) => (double[2,3] y)",
                    f"a = {op} ({args})\ny = Abs (a)",
                    f"double[1,3] c = {{{u}.0,{u}.0,{u}.0}}",
                ),
            )


@family("subgraphs", OX + "eliminate_identity,eliminate_nop_with_unit,fuse_consecutive_squeezes")
def subgraphs():
    """The same rewrites inside If branches and Loop bodies (values of the outer graph are read
    there as they are)."""
    branch = "(float[5] o) {{ {body} }}"
    for name, body in (
        ("identity", "t = Identity (x)\n o = Relu (t)"),
        ("mul_one", "k = Constant <value = float {1.0}> ()\n t = Mul (x, k)\n o = Relu (t)"),
        ("relu_relu", "t = Relu (x)\n o = Relu (t)"),
    ):
        b = branch.format(body=body)
        yield (
            f"if_{name}",
            g(
                13,
                "(float[5] x, bool c) => (float[5] y)",
                f"y = If (c) <then_branch = t1 () => {b}, else_branch = e1 () => (float[5] o) {{ o = Neg (x) }}>",
            ),
        )
    yield (
        "loop_squeezes",
        g(
            13,
            "(float[1,1,5] x) => (float[5] y)",
            """
n = Constant <value = int64 {2}> ()
c = Constant <value = bool {1}> ()
y = Loop (n, c, x5) <body = b (int64 i, bool ci, float[5] v) => (bool co, float[5] w) {
 co = Identity (ci)
 a0 = Constant <value = int64[1] {0}> ()
 s = Squeeze (x, a0)
 s2 = Squeeze (s, a0)
 w = Add (v, s2) }>
""".replace("x5", "z5"),
            "float[5] z5 = {1,2,3,4,5}",
        ),
    )


# ------------------------------------------------------------------ generated variants (seeded)


def _ints(v) -> str:
    return ",".join(str(int(i)) for i in v)


def _const_line(name: str, vals) -> str:
    return f"{name} = Constant <value = int64[{len(vals)}] {{{_ints(vals)}}}> ()"


@family("slices_generated", OX + "fuse_consecutive_slices")
def slices_generated():
    """Slice of a Slice on random static shapes: axes shared or not, negative and clamped
    indices, steps of either sign."""
    import numpy as np

    rng = np.random.default_rng(16)
    for k in range(60):
        dims = [int(d) for d in rng.integers(2, 9, size=3)]
        body = []
        for j, src in enumerate(("x", "a")):
            axes = sorted(rng.choice(3, size=int(rng.integers(1, 3)), replace=False).tolist())
            steps = [int(rng.choice([1, 1, 2, -1])) for _ in axes]
            starts = [int(rng.integers(-9, 9)) for _ in axes]
            ends = [int(rng.choice([-9, -1, 3, 6, 100])) for _ in axes]
            body += [
                _const_line(f"s{j}", starts),
                _const_line(f"e{j}", ends),
                _const_line(f"a{j}", axes),
                _const_line(f"p{j}", steps),
                f"{'a' if j == 0 else 'y'} = Slice ({src}, s{j}, e{j}, a{j}, p{j})",
            ]
        yield f"seed{k}", g(13, f"(float[{_ints(dims)}] x) => (float[?,?,?] y)", "\n".join(body))


@family("transposes_generated", OX + "fuse_consecutive_transposes")
def transposes_generated():
    import numpy as np

    rng = np.random.default_rng(17)
    for k in range(40):
        rank = int(rng.integers(2, 6))
        p1, p2 = rng.permutation(rank), rng.permutation(rank)
        if k % 4 == 0:
            p2 = np.argsort(p1)  # cancelling pairs
        dims = [int(d) for d in rng.integers(1, 5, size=rank)]
        yield (
            f"seed{k}",
            g(
                13,
                f"(float[{_ints(dims)}] x) => (float[{','.join('?' * rank)}] y)",
                f"a = Transpose <perm = [{_ints(p1)}]> (x)\nb = Transpose <perm = [{_ints(p2)}]> (a)\ny = Relu (b)",
            ),
        )


@family("unsqueezes_generated", OX + "fuse_consecutive_unsqueezes,fuse_consecutive_squeezes")
def unsqueezes_generated():
    """Unsqueeze, Unsqueeze, Squeeze, Squeeze over random axes (negative half the time), at
    opsets 11 (attributes) and 13 (inputs)."""
    import numpy as np

    rng = np.random.default_rng(18)
    for k in range(40):
        op = 11 if k % 2 else 13
        rank = int(rng.integers(1, 4))
        dims = [int(d) for d in rng.integers(2, 5, size=rank)]
        a1 = rng.choice(rank + 1, size=1).tolist()
        a2 = sorted(rng.choice(rank + 3, size=2, replace=False).tolist())
        sq = a2[::-1] if k % 3 == 0 else a2  # the two new dims of 1, in either order
        r2 = rank + 3

        def neg(axes, r):
            return [a - r if rng.random() < 0.5 else a for a in axes]

        steps = (
            ("Unsqueeze", "x", "u", neg(a1, rank + 1)),
            ("Unsqueeze", "u", "v", neg(a2, r2)),
            ("Squeeze", "v", "w", neg(sq, r2)),
            ("Squeeze", "w", "t", neg(a1, rank + 1)),
        )
        body = []
        for j, (kind, src, out, axes) in enumerate(steps):
            if op >= 13:
                body += [_const_line(f"k{j}", axes), f"{out} = {kind} ({src}, k{j})"]
            else:
                body.append(f"{out} = {kind} <axes = [{_ints(axes)}]> ({src})")
        body.append("y = Relu (t)")
        yield (
            f"op{op}_seed{k}",
            g(op, f"(float[{_ints(dims)}] x) => (float[{_ints(dims)}] y)", "\n".join(body)),
        )


# ------------------------------------------------------------------ running


def count_nodes(graph) -> tuple[int, int]:
    """(all nodes, nodes other than Constant), subgraphs included."""
    import onnx

    total = non_const = 0
    for n in graph.node:
        total += 1
        non_const += n.op_type != "Constant"
        for a in n.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for sg in subs:
                t, c = count_nodes(sg)
                total, non_const = total + t, non_const + c
    return total, non_const


def run_peer(peer: str, model):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    if peer == SL:
        import onnxslim

        return onnxslim.slim(m)
    import onnxoptimizer

    return onnxoptimizer.optimize(m, peer[len(OX) :].split(","))


def equivalent(original, optimized) -> tuple[bool, str]:
    from onnxopt.testing import assert_equivalent

    try:
        assert_equivalent(original, optimized)
        return True, ""
    except AssertionError as e:
        return False, str(e)[:200]


def run_case(case: Case) -> Outcome:
    import onnx
    import onnx.parser

    import onnxopt
    from onnxopt.testing import to_proto

    out = Outcome(case)
    try:
        model = onnx.parser.parse_model(case.text)
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the case itself is broken: report it, do not count it
        out.error = f"bad case: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        return out
    ok, why = equivalent(model, model)
    if not ok:
        out.error = f"bad case: {why}"
        return out
    try:
        ours = to_proto(onnxopt.optimize(model, "default", verify=False).model)
        out.ours = count_nodes(ours.graph)
        out.ours_ok, why = equivalent(model, ours)
        if why:
            out.notes.append(f"onnxopt: {why}")
    except Exception as e:
        out.ours_ok = False
        out.notes.append(f"onnxopt raised {type(e).__name__}: {e}"[:200])
    try:
        theirs = run_peer(case.peer, model)
        out.peer = count_nodes(theirs.graph)
        out.peer_ok, why = equivalent(model, theirs)
        if why:
            out.notes.append(f"peer: {why}")
    except Exception as e:
        out.notes.append(f"peer raised {type(e).__name__}: {str(e)[:160]}")
    return out


def more_than_peer(o: Outcome) -> bool:
    return bool(o.ours and o.peer and o.peer_ok and o.ours[1] > o.peer[1])


def reason(o: Outcome) -> str:
    if o.case.why:
        return o.case.why
    return "missing rewrite"


def table(outcomes: list[Outcome]) -> str:
    cats: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if not o.error:
            cats.setdefault(f"{o.case.category} ({o.case.peer})", []).append(o)
    lines = [
        "| category (peer) | cases | onnxopt correct | peer correct | onnxopt <= peer | "
        "onnxopt < peer | onnxopt > correct peer | nodes onnxopt / peer (non-Constant) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    tot = [0] * 6
    for cat, os_ in sorted(cats.items()):
        n = len(os_)
        ok = sum(bool(o.ours_ok) for o in os_)
        pok = sum(bool(o.peer_ok) for o in os_)
        cmp = [o for o in os_ if o.ours and o.peer]
        le = sum(o.ours[1] <= o.peer[1] for o in cmp)
        lt = sum(o.ours[1] < o.peer[1] for o in cmp)
        gt = sum(more_than_peer(o) for o in cmp)
        ours = sum(o.ours[1] for o in cmp)
        theirs = sum(o.peer[1] for o in cmp)
        for i, v in enumerate((n, ok, pok, le, lt, gt)):
            tot[i] += v
        lines.append(f"| {cat} | {n} | {ok} | {pok} | {le} | {lt} | {gt} | {ours} / {theirs} |")
    lines.append(f"| **all** | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} | {tot[4]} | {tot[5]} | |")
    return "\n".join(lines)


def details(outcomes: list[Outcome]) -> str:
    lines = []
    wrong = [o for o in outcomes if o.ours_ok is False]
    lines.append(f"onnxopt wrong: {len(wrong)}" + "".join(f"\n- {o.case.name}: {o.notes}" for o in wrong))
    pw = [o for o in outcomes if o.peer_ok is False]
    lines.append(
        f"\npeer wrong (its rewrite is not exact): {len(pw)}"
        + "".join(f"\n- {o.case.name} ({o.case.peer}): {'; '.join(o.notes)[:160]}" for o in pw)
    )
    crashed = [o for o in outcomes if not o.error and o.peer is None]
    lines.append(
        f"\npeer failed to run: {len(crashed)}"
        + "".join(f"\n- {o.case.name}: {'; '.join(o.notes)[:120]}" for o in crashed)
    )
    more = [o for o in outcomes if more_than_peer(o)]
    lines.append(
        f"\nonnxopt above a correct peer: {len(more)}"
        + "".join(f"\n- {o.case.name}: {o.ours[1]} vs {o.peer[1]} nodes: {reason(o)}" for o in more)
    )
    bad = [o for o in outcomes if o.error]
    if bad:
        lines.append(
            f"\nbroken cases (not counted): {len(bad)}"
            + "".join(f"\n- {o.case.name}: {o.error}" for o in bad)
        )
    return "\n".join(lines)


def _tools() -> dict[str, Callable]:
    """Each tool as ModelProto -> ModelProto (peers imported when first used)."""

    def onnxopt_default(m):
        import onnxopt
        from onnxopt.testing import to_proto

        return to_proto(onnxopt.optimize(m, "default", verify=False).model)

    def onnxsim(m):
        import onnxsim as sim

        return sim.simplify(m)[0]

    def onnxslim(m):
        import onnxslim as slim

        return slim.slim(m)

    def onnxoptimizer(m):
        import onnxoptimizer as opt

        return opt.optimize(m, opt.get_fuse_and_elimination_passes())

    def onnxscript(m):  # measured only: never a dependency of onnxopt
        import onnxscript.optimizer as opt

        return opt.optimize(m)

    return {
        "onnxopt": onnxopt_default,
        "onnxsim": onnxsim,
        "onnxslim": onnxslim,
        "onnxoptimizer": onnxoptimizer,
        "onnxscript": onnxscript,
    }


def measure_models(paths: list[str]) -> str:
    """Whole models: (all nodes, non-Constant) per tool, subgraphs included; a result that
    differs from the original in onnxruntime is marked wrong, a tool that fails says so."""
    import onnx

    tools = _tools()
    lines = ["| model | original | " + " | ".join(tools) + " |", "| --- | ---: |" + " ---: |" * len(tools)]
    for p in paths:
        model = onnx.load(p)
        cells = []
        for fn in tools.values():
            m = onnx.ModelProto()
            m.CopyFrom(model)
            try:
                out = fn(m)
                ok, _ = equivalent(model, out)
                a, c = count_nodes(out.graph)
                cells.append(f"{a} / {c}" + ("" if ok else " WRONG"))
            except Exception as e:
                cells.append(f"fails ({type(e).__name__})")
        a, c = count_nodes(model.graph)
        lines.append(f"| {p.rsplit('/', 1)[-1]} | {a} / {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only cases whose name contains this text")
    ap.add_argument("--md", help="also write the table and details to this file")
    ap.add_argument(
        "--models",
        nargs="+",
        metavar="ONNX",
        help="instead: every tool on these model files (nodes all / non-Constant)",
    )
    args = ap.parse_args(argv)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.models:
        text = measure_models(args.models)
        print(text)
        if args.md:
            with open(args.md, "w") as f:
                f.write(text + "\n")
        return 0
    cases = [c for c in CASES if args.k in c.name]
    t0 = time.time()
    outcomes = []
    for c in cases:
        outcomes.append(run_case(c))
    text = (
        f"{len(cases)} cases in {time.time() - t0:.0f} s\n\n" + table(outcomes) + "\n\n" + details(outcomes)
    )
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    return 1 if any(o.ours_ok is False for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
