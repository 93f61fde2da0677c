"""Shape inference's memo of shape-function calls and its incremental walk: the same facts and
reports as computing every node, keys that tell apart what equality does not."""

from __future__ import annotations

import onnxopt.passes.shapes.infer as shapes_infer
from onnxopt.ir import Builder, SymDim
from onnxopt.passes import PassContext
from onnxopt.passes.shapes import ShapeAnalysis, memo, shape_of
from onnxopt.passes.shapes.context import NodeCtx
from onnxopt.testing import model_from_text

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'

# Two identical blocks (the second meets the memo), with broadcast constraints, a contradiction
# (MatMul inner dims 8 vs 16) and shape arithmetic on symbolic element values; a3 repeats a1.
BLOCKS = HEAD + """g (float[b,s,8] x, float[s2,8] m, float[16,4] w) => (float[] y, float[] z) {
    a1 = Add(x, m)
    r1 = Relu(a1)
    bad1 = MatMul(r1, w)
    sh1 = Shape(r1)
    two = Constant<value_ints=[2]>()
    d1 = Gather<axis=0>(sh1, two)
    f1 = Reshape(r1, sh1)
    a2 = Add(f1, m)
    r2 = Relu(a2)
    bad2 = MatMul(r2, w)
    sh2 = Shape(r2)
    d2 = Gather<axis=0>(sh2, two)
    f2 = Reshape(r2, sh2)
    y = Identity(f2)
    z = Concat<axis=0>(d1, d2)
    a3 = Add(x, m)
}"""


def _facts(m, info) -> list:
    out = [str(c) for c in info.constraints] + [str(e) for e in info.errors]
    out += [str(u) for u in info.unknown] + [str(h) for h in info.hint_conflicts]
    for n in m.graph.nodes:
        for v in n.outputs:
            out.append((v.name, repr(v.meta.get("shapes_type")),
                        v.meta.get("shapes_hint_dims"), v.meta.get("symval")))
    return out


def test_memoized_calls_give_what_computing_every_node_gives(monkeypatch):
    m = model_from_text(BLOCKS)
    info = shapes_infer.run_inference(m)
    assert len(info.state.root.memo) < sum(1 for _ in m.graph.nodes)  # the memo answered some
    memoized = _facts(m, info)
    # Each MatMul's contradiction names its own node, replayed or not.
    assert [e.node.outputs[0].name for e in info.errors] == ["bad1", "bad2"]
    monkeypatch.setattr(memo, "key", lambda ctx, fn, keys: None)
    m2 = model_from_text(BLOCKS)
    info2 = shapes_infer.run_inference(m2)
    assert info2.state.root.memo == {}
    assert _facts(m2, info2) == memoized


def test_the_key_tells_apart_spellings_and_values_equality_confuses():
    # seq*4/4 == seq as dims, but an Identity keeps its input's spelling.
    m = model_from_text(HEAD + """g (float["seq*4/4"] x, float[seq] y) => (float[] a, float[] b) {
        a = Identity(x)
        b = Identity(y)
    }""")
    shapes_infer.run_inference(m)
    a, b = m.graph.outputs
    assert SymDim("seq*4/4") == SymDim("seq")
    assert str(shape_of(a)) == "[seq*4/4]" and str(shape_of(b)) == "[seq]"
    assert memo._scalar(0.0) != memo._scalar(-0.0)
    assert memo._scalar(True) != memo._scalar(1) and memo._scalar(1.0) != memo._scalar(1)


def test_keys_of_calls_that_depend_on_more_than_their_inputs():
    m = model_from_text(HEAD + """g (float[b,4] x) => (int64[] y) {
        y = NonZero(x)
    }""")
    info = shapes_infer.run_inference(m)
    assert info.state.root.memo == {}  # a fresh symbol per node: never replayed
    n = next(iter(m.graph.nodes))
    inf = info.state
    k1 = memo.key(NodeCtx(n, inf, {"": 17}, None), None, memo.Keys())
    k2 = memo.key(NodeCtx(n, inf, {"": 13}, None), None, memo.Keys())
    assert k1 != k2  # the opset is part of the key


def test_update_walks_only_stamped_nodes_and_readers_of_changed_facts():
    m = model_from_text(HEAD + """g (float[b,4] x, float[b,8] w) => (float[] y) {
        r = Relu(x)
        s = Sigmoid(r)
        t = Neg(s)
        y = Abs(t)
    }""")
    ctx = PassContext(m)
    info = ctx.analysis(ShapeAnalysis)
    ctx.invalidate(frozenset({"shapes"}))
    assert ctx.analysis(ShapeAnalysis) is info
    assert info.stats.get("updated_nodes", 0) == 0  # nothing stamped: nothing inferred
    relu, sig, neg, ab = list(m.graph.nodes)
    w = m.graph.inputs[1]
    sig.set_input(0, w)  # its facts change: Neg and Abs downstream must follow
    info = shapes_infer.update_inference(m, info, replace=True)
    assert info.stats["updated_nodes"] == 3
    assert str(shape_of(ab.outputs[0])) == "[b,8]"
    t = Builder(m.graph, before=neg).op("Exp", [sig.outputs[0]])
    info = shapes_infer.update_inference(m, info)
    assert info.stats["updated_nodes"] == 4 and str(shape_of(t)) == "[b,8]"
