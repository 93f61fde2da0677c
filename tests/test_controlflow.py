"""controlflow: Ifs resolved by what encloses them or by their inputs' per-branch shapes, merged,
inlined when both branches agree, common work hoisted; Loops of 0 or 1 trip inlined. Every case
is checked in onnxruntime on inputs that take each branch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnxopt.io import load
from onnxopt.ir import print_model
from onnxopt.passes.base import count_ops
from onnxopt.testing import assert_equivalent, model_from_text, run_passes, to_proto

H = '<ir_version: 8, opset_import: ["" : 17]>\n'
MODELS = Path(__file__).resolve().parent / "models"


def run(src: str, feeds: list[dict], pipeline: str = "controlflow,dce"):
    m = model_from_text(src)
    report = run_passes(m, pipeline)
    for f in feeds:
        assert_equivalent(src, m, feeds=f)
    return m, report.records[0]


def ops(m) -> list[str]:
    return sorted(n.op_type for n in m.graph.all_nodes() if n.op_type != "Constant")


def bools(**extra) -> list[dict]:
    x = np.arange(4, dtype=np.float32) - 1.5
    return [{"c": np.array(v), "x": x, **extra} for v in (True, False)]


def test_inner_if_on_the_same_condition_or_its_not_takes_the_known_branch():
    m, rec = run(H + """
        g (bool c, float[4] x) => (float[4] y) {
           y = If (c) <
              then_branch: graph = t () => (float[4] a) {
                 a = If (c) <then_branch: graph = tt () => (float[4] p) { p = Relu (x) },
                             else_branch: graph = te () => (float[4] q) { q = Neg (x) }>
              },
              else_branch: graph = e () => (float[4] b) {
                 nc = Not (c)
                 nnc = Not (nc)
                 b = If (nnc) <then_branch: graph = et () => (float[4] p2) { p2 = Exp (x) },
                               else_branch: graph = ee () => (float[4] q2) { q2 = Abs (x) }>
              }
           >
        }""", bools())
    assert ops(m) == ["Abs", "If", "Relu"]
    assert rec.stats["controlflow.known"] == 2


def test_a_dim_test_inside_a_branch_of_a_test_of_that_dim_is_decided():
    src = H + """
        g (float[N,4] x) => (float[N,4] y) {
           zero = Constant <value: tensor = int64[1] {0}> ()
           one = Constant <value: tensor = int64[1] {1}> ()
           three = Constant <value: tensor = int64[1] {3}> ()
           sx = Shape (x)
           n = Gather <axis: int = 0> (sx, zero)
           c = Equal (n, three)
           y = If (c) <
              then_branch: graph = t () => (float[N,4] a) {
                 s1 = Shape (x)
                 g1 = Gather <axis: int = 0> (s1, zero)
                 inner = Equal (g1, one)
                 a = If (inner) <then_branch: graph = tt () => (float[N,4] p) { p = Relu (x) },
                                 else_branch: graph = te () => (float[N,4] q) { q = Neg (x) }>
              },
              else_branch: graph = e () => (float[N,4] b) {
                 s2 = Shape (x)
                 g2 = Gather <axis: int = 0> (s2, zero)
                 inner2 = Equal (g2, one)
                 b = If (inner2) <then_branch: graph = et () => (float[N,4] p2) { p2 = Exp (x) },
                                  else_branch: graph = ee () => (float[N,4] q2) { q2 = Abs (x) }>
              }
           >
        }"""
    feeds = [{"x": np.ones((k, 4), np.float32)} for k in (1, 3)]
    m, rec = run(src, feeds)
    # then (N == 3): N == 1 is false; else (N != 3): N == 1 stays open
    assert ops(m) == ["Abs", "Equal", "Equal", "Exp", "Gather", "Gather", "If", "If", "Neg",
                      "Shape", "Shape"]
    assert rec.stats["controlflow.known"] == 1


def test_rank_test_of_an_if_result_becomes_that_ifs_condition_and_the_ifs_merge():
    src = H + """
        g (float[N,4] x) => (float[?,4] z) {
           zero = Constant <value: tensor = int64[1] {0}> ()
           one = Constant <value: tensor = int64[1] {1}> ()
           two = Constant <value: tensor = int64 {2}> ()
           sx = Shape (x)
           n = Gather <axis: int = 0> (sx, zero)
           c = Equal (n, one)
           y = If (c) <then_branch: graph = t () => (float[4] a) { a = Squeeze (x, zero) },
                       else_branch: graph = e () => (float[N,4] b) { b = Identity (x) }>
           sy = Shape (y)
           ry = Size (sy)
           is2 = Equal (ry, two)
           z = If (is2) <then_branch: graph = t2 () => (float[N,4] p) { p = Identity (y) },
                         else_branch: graph = e2 () => (float[1,4] q) { q = Unsqueeze (y, zero) }>
        }"""
    feeds = [{"x": np.arange(4 * k, dtype=np.float32).reshape(k, 4)} for k in (1, 3)]
    m, rec = run(src, feeds)
    assert rec.stats["controlflow.derived"] == 1 and rec.stats["controlflow.merge"] == 1
    assert ops(m).count("If") == 1 and "Size" not in ops(m)


def test_merge_waits_for_what_lies_between_and_keeps_order():
    src = H + """
        g (bool c, float[4] x) => (float[4] y, float[4] z) {
           y = If (c) <then_branch: graph = t () => (float[4] a) { a = Relu (x) },
                       else_branch: graph = e () => (float[4] b) { b = Neg (x) }>
           k = Exp (x)
           z = If (c) <then_branch: graph = t2 () => (float[4] a2) { a2 = Add (y, k) },
                       else_branch: graph = e2 () => (float[4] b2) { b2 = Sub (y, k) }>
        }"""
    m, _ = run(src, bools())
    # k is computed between them and read by the second: the merged If stands where the second did
    assert [n.op_type for n in m.graph.nodes if n.op_type != "Constant"] == ["Exp", "If"]


def test_equal_branches_and_hoisting():
    src = H + """
        g (bool c, float[4] x) => (float[4] y, float[4] z) {
           y = If (c) <then_branch: graph = t () => (float[4] a) { a = Tanh (x) },
                       else_branch: graph = e () => (float[4] b) { b = Tanh (x) }>
           z = If (c) <then_branch: graph = t2 () => (float[4] a2) { q = Exp (x)
                                                                    a2 = Neg (q) },
                       else_branch: graph = e2 () => (float[4] b2) { q2 = Exp (x)
                                                                    b2 = Abs (q2) }>
        }"""
    m, rec = run(src, bools())
    assert rec.stats["controlflow.equal"] == 1 and rec.stats["controlflow.hoist"] == 1
    assert ops(m) == ["Abs", "Exp", "If", "Neg", "Tanh"]


@pytest.mark.parametrize("trips,cond,expect", [
    ("int64 {1}", None, "once"), ("int64 {1}", "bool {1}", "once"), ("int64 {0}", None, "zero"),
    ("int64 {7}", "bool {0}", "zero"), ("int64 {2}", None, None), ("int64 {1}", "bool {0}", "zero"),
])
def test_loops_of_zero_or_one_trip(trips, cond, expect):
    cond_def = f"go = Constant <value: tensor = {cond}> ()" if cond else ""
    src = H + f"""
        g (float[3] x) => (float[3] y, float[?,3] s) {{
           m = Constant <value: tensor = {trips}> ()
           {cond_def}
           y, s = Loop (m, {"go" if cond else ""}, x) <
              body: graph = body (int64 i, bool cin, float[3] v) => (bool cout, float[3] v2,
                                                                     float[3] sv) {{
                 cout = Identity (cin)
                 fi = Cast <to: int = 1> (i)
                 v2 = Add (v, fi)
                 sv = Exp (v2)
              }}
           >
        }}"""
    m = model_from_text(src)
    rec = run_passes(m, "controlflow,dce").records[0]
    if expect == "zero":  # the scan output is read: its shape [0, 3] is not rebuilt
        assert not rec.modified
        return
    assert_equivalent(src, m, feeds={"x": np.arange(3, dtype=np.float32)})
    assert ("Loop" in ops(m)) == (expect is None)
    assert rec.stats.get(f"controlflow.loop_{expect}", 0) == (1 if expect else 0)


def test_a_condition_of_two_elements_is_left_alone():
    """onnxruntime refuses such an If at run time; the pass does not pick a branch for it."""
    src = H + """
        g (float[4] x) => (float[4] y) {
           c = Constant <value: tensor = bool[2] {1, 0}> ()
           y = If (c) <then_branch: graph = t () => (float[4] a) { a = Relu (x) },
                       else_branch: graph = e () => (float[4] b) { b = Neg (x) }>
        }"""
    m = model_from_text(src)
    rec = run_passes(m, "controlflow", verify_each=False).records[0]
    assert not rec.modified, print_model(m)


def test_a_branch_whose_condition_breaks_a_node_that_already_ran_is_dropped():
    """When c holds, p has rank 3 and the LSTM (which runs before the second If) fails on it: the
    second If's then-branch never runs. Where c is false both models agree; where it is true both
    fail, at the same LSTM."""
    src = H + """
        g (bool c, float[2,4] x) => (float[2,3] y) {
           zero = Constant <value: tensor = int64[1] {0}> ()
           w = Constant <value: tensor = float[1,12,4] {0.1, -0.2, 0.3, 0.1, 0.2, -0.1, 0.0, 0.4,
              0.1, 0.2, 0.3, -0.3, 0.1, 0.1, 0.2, -0.2, 0.3, 0.1, -0.4, 0.2, 0.1, 0.0, 0.2, 0.1,
              0.3, 0.1, 0.2, -0.1, 0.1, 0.2, 0.3, 0.4, -0.1, 0.2, 0.1, 0.1, 0.2, 0.3, 0.1, 0.0,
              0.1, 0.2, 0.3, 0.1, -0.2, 0.2, 0.1, 0.3}> ()
           r = Constant <value: tensor = float[1,12,3] {0.1, 0.2, 0.3, 0.1, 0.2, 0.1, 0.0, 0.4,
              0.1, 0.2, 0.3, 0.3, 0.1, 0.1, 0.2, 0.2, 0.3, 0.1, 0.4, 0.2, 0.1, 0.0, 0.2, 0.1,
              0.3, 0.1, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.1, 0.1}> ()
           p = If (c) <then_branch: graph = t () => (float[1,2,4] a) { a = Unsqueeze (x, zero) },
                       else_branch: graph = e () => (float[2,4] b) { b = Relu (x) }>
           xs = Unsqueeze (p, zero)
           ys, yh, yc = LSTM <hidden_size: int = 3> (xs, w, r)
           h = Squeeze (yh, zero)
           y = If (c) <then_branch: graph = t2 () => (float[2,3] a2) { a2 = Neg (h) },
                       else_branch: graph = e2 () => (float[2,3] b2) { b2 = Relu (h) }>
        }"""
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8 - 0.4
    m, rec = run(src, [{"c": np.array(False), "x": x}])
    assert rec.stats["controlflow.unreachable"] == 1
    assert ops(m).count("If") == 1 and "Neg" not in ops(m)
    for model in (to_proto(src), to_proto(m)):
        sess = ort.InferenceSession(model.SerializeToString())
        with pytest.raises(Exception, match="LSTM"):
            sess.run(None, {"c": np.array(True), "x": x})


def test_silero_vad_ifs_resolve_in_the_default_preset():
    """The committed silero export: 76 nodes and 7 Ifs without this pass; at most 60 nodes and
    one If with it (the LSTM's unbatching If after it cannot run on the path that would need it),
    same numbers."""
    m = load(MODELS / "silero_vad_op15_ts.onnx")
    before = load(MODELS / "silero_vad_op15_ts.onnx")
    report = run_passes(m, "default")
    assert count_ops(m)["If"] == 1 and sum(count_ops(m).values()) <= 60
    stats = sum((r.stats for r in report.records if r.spec == "controlflow"), start=type(
        report.records[0].stats)())
    assert stats["controlflow.derived"] >= 3 and stats["controlflow.merge"] >= 2
    assert stats["controlflow.unreachable"] >= 1
    rng = np.random.default_rng(0)
    for b, t in ((1, 576), (2, 320)):
        feeds = {"input": rng.uniform(-1, 1, (b, t)).astype(np.float32),
                 "state": (rng.standard_normal((2, b, 128)) * 0.1).astype(np.float32),
                 "sr": np.array(16000, dtype=np.int64)}
        assert_equivalent(before, m, feeds=feeds)
