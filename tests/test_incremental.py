"""Incremental passes: a second run of fold, cse, dce or simplify after a local edit looks only near
the edit (its node visits stay far below the graph's size) and leaves the graph a full sweep would
leave; a fixed-point group skips a pass that found nothing until another pass changes the IR."""

from __future__ import annotations

import numpy as np
import pytest

from onnxopt.ir import Builder, print_model
from onnxopt.ir.nodelist import node_visits
from onnxopt.passes import PassContext, PassManager, create
from onnxopt.passes.shapes import ShapeAnalysis
from onnxopt.testing import assert_equivalent, model_from_text, to_proto

N = 300  # nodes in the chain: a full sweep visits at least this many
H = '<ir_version: 8, opset_import: ["" : 17]>\n'
FULL = {"rewrite.memo": False}  # the context option that turns every pass's memory off


def chain_model():
    """x -> Add(., c) -> Add(., c) ... (N times) -> y, c an initializer."""
    body = ["c = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()", "a0 = Add (x, c)"]
    body += [f"a{i} = Add (a{i - 1}, c)" for i in range(1, N)]
    body.append(f"y = Identity (a{N - 1})")
    return model_from_text(H + "g (float[4] x) => (float[4] y) {\n" + "\n".join(body) + "\n}")


def node_named(m, out: str):
    return next(n for n in m.graph.nodes if n.outputs[0].name == out)


def edit_dead(m) -> None:
    """A node nothing reads, in the middle."""
    a = node_named(m, f"a{N // 2}")
    Builder(m.graph, after=a).op("Neg", [a.outputs[0]])


def edit_twin(m) -> None:
    """A duplicate of a node in the middle, read by the node after the original."""
    a = node_named(m, f"a{N // 2}")
    twin = Builder(m.graph, after=a).op("Add", list(a.inputs))
    node_named(m, f"a{N // 2 + 1}").set_input(0, twin)


def edit_constant(m) -> None:
    """A node computed from constants only, read in the middle of the chain."""
    a = node_named(m, f"a{N // 2}")
    c = a.inputs[1]
    k = Builder(m.graph, before=a).op("Mul", [c, c])
    a.set_input(1, k)


def edit_unit(m) -> None:
    """``x * 1`` in the middle of the chain."""
    a = node_named(m, f"a{N // 2}")
    one = Builder(m.graph).const(np.ones(4, np.float32))
    b = Builder(m.graph, after=a)
    k = b.op("Mul", [a.outputs[0], one])
    node_named(m, f"a{N // 2 + 1}").set_input(0, k)


def twice(pipeline: str, edit, options: dict):
    """Run ``pipeline`` until it finds nothing, make ``edit``, run it again with ``options`` on
    the same context: the model, the last run's node visits and the edited model. (The next run
    may look again at what a run changed; after a clean run only the edit is new.)"""
    m = chain_model()
    ctx = PassContext(m, options=options)
    ctx.analysis(ShapeAnalysis)  # simplify remembers its last sweep for facts of a generation
    pm = PassManager(pipeline)
    while any(r.modified for r in pm.run(m, ctx).records):
        pass
    edit(m)
    edited = to_proto(m)
    # As after a pass that made the edit and kept shapes; the analysis' own update (a walk
    # of its own) is done before counting the passes' visits.
    ctx.invalidate(frozenset({"shapes"}))
    if ctx.has_analysis("shapes"):
        ctx.analysis(ShapeAnalysis)
    visits = node_visits()
    pm.run(m, ctx)
    return m, node_visits() - visits, edited


@pytest.mark.parametrize("pipeline, edit", [
    ("dce", edit_dead), ("cse", edit_twin), ("fold", edit_constant),
    ("fold,simplify", edit_unit), ("fold,cse", edit_twin), ("fold,dce", edit_dead)])
def test_second_run_looks_near_the_edit_and_matches_a_full_sweep(pipeline, edit):
    m, visits, edited = twice(pipeline, edit, {})
    full, full_visits, _ = twice(pipeline, edit, FULL)
    assert print_model(m) == print_model(full)
    assert visits < N // 4 < full_visits, (visits, full_visits)
    assert_equivalent(edited, m)


def test_each_edit_is_acted_on():
    """The edits above are changes a pass makes something of (the comparison means something)."""
    for pipeline, edit, op in [("dce", edit_dead, "Neg"), ("fold", edit_constant, "Mul"),
                               ("fold,simplify", edit_unit, "Mul")]:
        m, _, _ = twice(pipeline, edit, {})
        assert all(n.op_type != op for n in m.graph.nodes), pipeline
    m, _, _ = twice("cse", edit_twin, {})
    assert m.num_nodes() == chain_model().num_nodes()


def test_a_chain_of_twins_merges_in_one_run():
    """cse after an edit that makes two chains equal: the merge rewires users whose twins come
    before them, and the run still merges the whole chain (as a full sweep does)."""
    src = H + """
        g (float[4] x, float[4] z) => (float[4] y) {
           a1 = Add (x, x)
           b1 = Exp (a1)
           c1 = Neg (b1)
           a2 = Add (x, z)
           b2 = Exp (a2)
           c2 = Neg (b2)
           y = Sub (c1, c2)
        }"""
    results = []
    for options in ({}, FULL):
        m = model_from_text(src)
        ctx = PassContext(m, options=options)
        create("cse").run(m, ctx)
        node_named(m, "a2").set_input(1, m.graph.inputs[0])  # now a2 == a1
        rec = create("cse").run(m, ctx)
        assert rec.stats["nodes_merged"] == 3
        results.append(print_model(m))
    assert results[0] == results[1]


TWIN_NEGS = H + """
    g (float[4] x) => (float[4] y) {
       a = Neg (x)
       b = Neg (x)
       y = Add (a, b)
    }"""  # one duplicate: cse merges it, nothing else finds anything


def test_fixpoint_skips_a_pass_that_found_nothing_until_the_ir_changes():
    """Round 1: cse merges a duplicate, dce and identity find nothing after it. Round 2: cse
    finds nothing, and nothing changed since dce and identity looked: both are skipped."""
    m = model_from_text(TWIN_NEGS)
    report = PassManager("fixpoint(cse,dce,identity)").run(m)
    runs = [(r.name, r.iteration, r.modified) for r in report.records]
    assert runs == [("cse", 1, True), ("dce", 1, False), ("identity", 1, False),
                    ("cse", 2, False)]
    assert report.records[1].stats["fixpoint.skipped"] == 1
    assert report.records[2].stats["fixpoint.skipped"] == 1


def test_fixpoint_runs_a_clean_pass_again_after_another_changes_the_ir():
    """dce found nothing in round 1, then cse merged: dce runs again in round 2."""
    m = model_from_text(TWIN_NEGS)
    report = PassManager("fixpoint(dce,cse)").run(m)
    runs = [(r.name, r.iteration, r.modified) for r in report.records]
    assert runs == [("dce", 1, False), ("cse", 1, True), ("dce", 2, False), ("cse", 2, False)]
    assert "fixpoint.skipped" not in report.records[0].stats


def test_folded_constants_equal_to_an_initializer_read_it_and_leave_cse_nothing():
    """Two equal shape computations fold to the same small tensor: the second reads the first's
    initializer, so cse merges nothing, and no pass revisits the readers a merge would rewire."""
    src = H + """
        g (float[2,6] x, float[3,4] z) => (float[3,4] y) {
           s = Constant <value = int64[2] {3, 4}> ()
           t = Constant <value = int64[2] {3, 4}> ()
           p = Reshape (x, s)
           q = Reshape (z, t)
           y = Add (p, q)
        }"""
    m = model_from_text(src)
    report = PassManager("fixpoint(fold,cse)").run(m)
    runs = [(r.name, r.iteration, r.modified) for r in report.records]
    assert runs == [("fold", 1, True), ("cse", 1, False), ("fold", 2, False)]
    assert [v.name for v in m.graph.initializers] == ["s"]
    assert node_named(m, "p").inputs[1] is node_named(m, "q").inputs[1]
    assert_equivalent(to_proto(model_from_text(src)), to_proto(m))


def test_a_new_twin_constant_is_merged():
    """A Constant is stamped whenever a reader comes or goes; a new Constant equal to an old one
    is still found (nodes without inputs are compared with all the others)."""
    results = []
    for options in ({}, FULL):
        m = model_from_text(H + """
            g (float[4] x) => (float[4] y) {
               c = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()
               a = Add (x, c)
               y = Mul (a, c)
            }""")
        ctx = PassContext(m, options=options)
        create("cse").run(m, ctx)
        y = node_named(m, "y")
        twin = Builder(m.graph, before=y).op(
            "Constant", [], {"value": node_named(m, "c").attributes["value"].value})
        y.set_input(1, twin)
        assert create("cse").run(m, ctx).stats["nodes_merged"] == 1
        results.append(print_model(m))
    assert results[0] == results[1]


def test_fold_looks_into_bodies_near_a_change():
    """A node inside an If body that comes to read a constant folds on the next run."""
    src = H + """
        g (bool b, float[4] x) => (float[4] y) {
           c = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()
           y = If (b) <
             then_branch = t () => (float[4] o) { o = Add (x, c) },
             else_branch = e () => (float[4] o) { o = Sub (x, c) }
           >
        }"""
    results = []
    for options in ({}, FULL):
        m = model_from_text(src)
        ctx = PassContext(m, options=options)
        create("fold").run(m, ctx)
        create("fold").run(m, ctx)
        body = m.graph.nodes.first().attributes["then_branch"].value
        c = m.graph.initializers[0]
        k = Builder(m.graph, before=m.graph.nodes.first()).op("Mul", [c, c])
        body.nodes.first().set_input(0, k)
        create("fold").run(m, ctx)
        results.append(print_model(m))
    assert results[0] == results[1]
    assert "Add" not in results[0] and "Mul" not in results[0]


@pytest.mark.parametrize("name", ["fold", "cse", "dce"])
def test_a_replaced_graph_is_swept_whole(name):
    """A pass that replaces the graph by a lifted one (the opset converter, a peer tool) leaves
    nodes that carry no stamps: the next run looks at all of them."""
    m = chain_model()
    ctx = PassContext(m)
    for _ in range(2):
        create(name).run(m, ctx)
    fresh = model_from_text(H + """
        g (float[4] x) => (float[4] y) {
           c = Constant <value = float[4] {1.0, 2.0, 3.0, 4.0}> ()
           k = Mul (c, c)
           a = Add (x, k)
           b = Add (x, k)
           d = Neg (a)
           y = Sub (a, b)
        }""")
    m.graph = fresh.graph
    assert create(name).run(m, ctx).modified


def test_fold_with_other_options_looks_for_shapes_everywhere():
    """fold{shapes=false} found no Shape node because it did not look; a later plain fold does."""
    m = model_from_text(H + """
        g (float[2, 3] x) => (int64[2] y) {
           r = Relu (x)
           y = Shape (r)
        }""")
    ctx = PassContext(m)
    assert not create("fold", {"shapes": False}).run(m, ctx).modified
    assert create("fold").run(m, ctx).modified
