"""The pattern-rewrite API: matching (commutative, constants, bound names, Or/Opt, attributes,
dtypes, ranks, one-user), refusal reasons, the driver (worklist, max_rewrites, opset gating,
rollback, graph outputs, dead inputs) and RewritePass."""

from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np
import pytest
from onnxopt.ir import check_model
from onnxopt.passes import PassContext
from onnxopt.passes.rewrite import (
    Const,
    Match,
    Op,
    Opt,
    Or,
    RewritePass,
    Rule,
    Shapes,
    TraceEvent,
    Var,
    apply_rules,
    const_value,
)
from onnxopt.testing import assert_equivalent, model_from_text, snapshot

H17 = '<ir_version: 8, opset_import: ["" : 17]>'


def ops(m) -> Counter:
    return Counter(n.op_type for n in m.graph.all_nodes())


def run(m, *rules, **kw):
    res = apply_rules(m, list(rules), **kw)
    assert check_model(m) == []
    return res


class AddRelu(Rule):
    """Add(Relu(x), c) -> Sub(x, -c) (a toy rewrite that changes the op types)."""

    name = "add_relu"
    pattern = Op("Add", Op("Relu", "x", name="r"), Const("c"), commutative=True)

    def rewrite(self, m: Match, b):
        return b.op("Sub", [b.op("Relu", [m["x"]]), b.const(-m.const("c"))])


class AddReluOrdered(AddRelu):
    name = "add_relu_ordered"
    pattern = Op("Add", Op("Relu", "x", name="r"), Const("c"))


def test_commutative_matches_both_orders():
    for body in ("y = Add (r, c)", "y = Add (c, r)"):
        m = model_from_text(f"""{H17}
            g (float[4] x) => (float[4] y) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
               r = Relu (x)
               {body}
            }}""")
        before = snapshot(m)
        assert run(m, AddRelu()).stats["add_relu"] == 1
        assert ops(m) == Counter({"Relu": 1, "Sub": 1})
        assert_equivalent(before, m)
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Relu (x)
           y = Add (c, r)
        }}""")
    assert not run(m, AddReluOrdered()).rewrites


def test_const_input_constraint():
    # a graph input is not a constant, and neither is an initializer that is also an input
    m = model_from_text(f"""{H17}
        g (float[4] x, float[4] c) => (float[4] y) {{
           r = Relu (x)
           y = Add (r, c)
        }}""")
    assert not run(m, AddRelu()).rewrites
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) {{
           c = Constant <value = float[4] {{1.0, 2.0, 3.0, 4.0}}> ()
           r = Relu (x)
           y = Add (r, c)
        }}""")
    assert run(m, AddRelu()).rewrites
    assert "Constant" not in ops(m)  # the Constant only the match read is gone too


def test_const_value_forms():
    m = model_from_text(f"""{H17}
        g (float[2] x) => (float[2] y) <float[2] w = {{1.0, 2.0}}> {{
           a = Constant <value_float = 2.5> ()
           b = Constant <value_ints = [1, 2]> ()
           y = Add (x, w)
        }}""")
    vals = {n.outputs[0].name: const_value(n.outputs[0]) for n in m.graph.nodes}
    assert vals["a"] == np.float32(2.5) and vals["b"].tolist() == [1, 2]
    assert const_value(m.graph.initializers[0]).tolist() == [1.0, 2.0]
    assert const_value(m.graph.inputs[0]) is None


def test_one_user_constraint_and_private_false():
    text = f"""{H17}
        g (float[4] x) => (float[4] y, float[4] z) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Relu (x)
           y = Add (r, c)
           z = Neg (r)
        }}"""
    m = model_from_text(text)
    seen: list[TraceEvent] = []
    assert not run(m, AddRelu(), tracer=seen.append).rewrites
    assert any("has another user, Neg" in e.reason for e in seen)

    class Shared(AddRelu):
        name = "shared"
        pattern = Op("Add", Op("Relu", "x", name="r", private=False), Const("c"))

    m = model_from_text(text)
    before = snapshot(m)
    assert run(m, Shared()).rewrites
    assert ops(m) == Counter({"Relu": 2, "Sub": 1, "Neg": 1})  # the shared Relu stays
    assert_equivalent(before, m)


def test_graph_output_intermediate_is_not_private():
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y, float[4] r) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Relu (x)
           y = Add (r, c)
        }}""")
    assert not run(m, AddRelu()).rewrites


class RefusingRule(AddRelu):
    name = "refuser"

    def check(self, m: Match) -> Optional[str]:
        return "constant is not negative" if (m.const("c") >= 0).all() else None


def test_refusal_reasons_reach_the_tracer():
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Relu (x)
           y = Add (r, c)
        }}""")
    seen: list[TraceEvent] = []
    assert not run(m, RefusingRule(), tracer=seen.append).rewrites
    checks = [e for e in seen if e.stage == "check"]
    assert checks and checks[0].reason == "constant is not negative"
    assert str(checks[0]).startswith("rule refuser refused at Add")
    # structural near-miss: explains which input did not match
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Sigmoid (x)
           y = Add (r, c)
        }}""")
    seen.clear()
    run(m, AddRelu(), tracer=seen.append)
    assert any("comes from Sigmoid, not Relu" in e.reason for e in seen)


class Squash(Rule):
    """Relu(Relu(x)) -> Relu(x)."""

    name = "squash"
    pattern = Op("Relu", Op("Relu", "x", name="inner"))

    def rewrite(self, m: Match, b):
        return b.op("Relu", [m["x"]])


def _relu_chain(n: int):
    body = "\n".join(f"   t{i + 1} = Relu (t{i})" for i in range(n - 1))
    return model_from_text(f"""{H17}
        g (float[4] t0) => (float[4] t{n - 1}) {{
        {body}
        }}""")


def test_worklist_collapses_chains_and_keeps_output_names():
    m = _relu_chain(8)
    before = snapshot(m)
    res = run(m, Squash(), prefix="p.")
    assert res.stats["p.squash"] == 6
    assert ops(m) == Counter({"Relu": 1})
    assert m.graph.outputs[0].name == "t7"
    assert [r.rule for r in res.rewrites] == ["p.squash"] * 6
    assert all(n.meta.get("tag") == "p.squash" for n in m.graph.nodes)
    assert_equivalent(before, m)


def test_max_rewrites_stops_after_n():
    m = _relu_chain(8)
    res = run(m, Squash(), max_rewrites=2)
    assert len(res.rewrites) == 2 and ops(m)["Relu"] == 5
    m = _relu_chain(8)
    assert not run(m, Squash(), max_rewrites=0).rewrites


def test_worklist_is_linear():
    class Counting(Squash):
        calls = 0

        def check(self, m):
            Counting.calls += 1
            return None

    n = 3000
    m = _relu_chain(n)
    res = run(m, Counting())
    assert res.stats["squash"] == n - 2
    # Each node is examined a bounded number of times (the timing lives in benchmarks/).
    assert Counting.calls <= 2 * n


def test_bound_names_or_opt_and_attributes():
    class NegSquare(Rule):
        """Neg(x * x) or Neg(x ** 2) -> Neg(x) * x."""

        name = "neg_square"
        pattern = Op("Neg", Or(Op("Mul", "x", "x", name="sq"),
                               Op("Pow", "x", Const("two"), name="sq")))

        def check(self, m):
            if m.get("two") is not None and m.const("two") != 2:
                return "not a square"
            return None

        def rewrite(self, m, b):
            return b.op("Mul", [b.op("Neg", [m["x"]]), m["x"]])

    m = model_from_text(f"""{H17}
        g (float[4] x, float[4] z) => (float[4] y, float[4] w, float[4] v, float[4] u) {{
           two = Constant <value = float {{2.0}}> ()
           three = Constant <value = float {{3.0}}> ()
           a = Mul (x, z)
           y = Neg (a)
           b = Mul (x, x)
           w = Neg (b)
           c = Pow (x, two)
           v = Neg (c)
           d = Pow (x, three)
           u = Neg (d)
        }}""")
    before = snapshot(m)
    res = run(m, NegSquare())
    # Mul(x, z) binds two different values to x; Pow(x, 3) is refused by the check
    assert sorted(r.replaced for r in res.rewrites) == [("Neg(v)", "Pow(c)"), ("Neg(w)", "Mul(b)")]
    assert_equivalent(before, m)

    class SoftmaxLast(Rule):
        name = "softmax_last"
        pattern = Op("Exp", Op("Softmax", "x", attrs={"axis": -1}, name="s"), Opt(Var("n")))

        def rewrite(self, m, b):
            return b.op("Exp", [m["s"]])

    # axis absent: the schema default at opset 17 is -1
    for attr, fires in (("", True), ("<axis = -1>", True), ("<axis = 0>", False)):
        m = model_from_text(f"""{H17}
            g (float[2,3] x) => (float[2,3] y) {{
               s = Softmax {attr} (x)
               y = Exp (s)
            }}""")
        assert bool(run(m, SoftmaxLast()).rewrites) is fires


def test_dtype_and_rank_constraints():
    class Ranked(Rule):
        name = "ranked"
        pattern = Op("Relu", Var("x", rank=2, dtypes=[1]))

        def rewrite(self, m, b):
            return b.op("Clip", [m["x"], b.const(np.float32(0))])

    for sig, fires in (("float[2,3] x", True), ("float[6] x", False), ("double[2,3] x", False),
                       ("float x", False)):
        ty = sig.split()[0].replace(" x", "")
        m = model_from_text(f"""{H17}
            g ({sig}) => ({ty} y) {{ y = Relu (x) }}""")
        assert bool(run(m, Ranked()).rewrites) is fires, sig


def test_opset_gating():
    class Future(Squash):
        name = "future"
        opset = 99

    m = _relu_chain(3)
    seen: list = []
    assert not run(m, Future(), tracer=seen.append).rewrites


def test_rewrite_errors_roll_back():
    class Broken(Squash):
        name = "broken"

        def rewrite(self, m, b):
            b.op("Relu", [m["x"]])
            b.const(np.zeros(3, np.float32))
            raise ValueError("boom")

    m = _relu_chain(3)
    before = snapshot(m)
    with pytest.raises(ValueError):
        run(m, Broken(), shapes=Shapes())  # declared types only: the IR must stay byte-equal
    assert snapshot(m) == before

    class WrongType(Squash):
        name = "wrong_type"

        def rewrite(self, m, b):
            y = b.op("Cast", [m["x"]], {"to": 11})
            y.set_tensor_type(11, [4])  # a rule that types its output wrongly is caught
            return y

    m = _relu_chain(3)
    with pytest.raises(RuntimeError, match="changed the element type"):
        run(m, WrongType())


def test_replacement_by_graph_input_keeps_output_name():
    class Cancel(Rule):
        name = "cancel"
        pattern = Op("Neg", Op("Neg", "x", name="inner"))

        def rewrite(self, m, b):
            return m["x"]

    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) {{
           a = Neg (x)
           y = Neg (a)
        }}""")
    before = snapshot(m)
    assert run(m, Cancel()).rewrites
    assert [v.name for v in m.graph.outputs] == ["y"]
    assert_equivalent(before, m)


def test_rules_apply_inside_subgraphs():
    m = model_from_text(f"""{H17}
        g (bool c, float[4] x) => (float[4] y) {{
           y = If (c) <
              then_branch = t () => (float[4] o) {{ a = Relu (x)  o = Relu (a) }},
              else_branch = e () => (float[4] o2) {{ o2 = Neg (x) }}>
        }}""")
    before = snapshot(m)
    assert run(m, Squash()).stats["squash"] == 1
    assert_equivalent(before, m)


class Doubler(RewritePass):
    """A plugin-style pass built from rules."""

    name = "test-squash"
    rules = [Squash(), AddRelu()]


def test_rewrite_pass_options():
    m = _relu_chain(5)
    res = Doubler().run(m, PassContext(m))
    assert res.stats["test-squash.squash"] == 3
    m = _relu_chain(5)
    assert not Doubler(only="add_relu").run(m, PassContext(m)).rewrites
    m = _relu_chain(5)
    assert len(Doubler(max_rewrites=1).run(m, PassContext(m)).rewrites) == 1
    from onnxopt.errors import UsageError

    with pytest.raises(UsageError, match="no rule 'nope'"):
        Doubler(only="nope").run(m, PassContext(m))


def test_rewrite_pass_disable_runs_all_but_the_named_rules():
    m = _relu_chain(5)
    assert not Doubler(disable="squash").run(m, PassContext(m)).rewrites
    m = _relu_chain(5)
    res = Doubler(disable="add_relu").run(m, PassContext(m))
    assert res.stats["test-squash.squash"] == 3
    m = _relu_chain(5)
    assert not Doubler(disable="squash, add_relu").run(m, PassContext(m)).rewrites
    from onnxopt.errors import UsageError

    with pytest.raises(UsageError, match="no rule 'nope'"):
        Doubler(disable="squash,nope").run(m, PassContext(m))


def test_verbose_tracer_notes_near_misses():
    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) <float[4] c = {{1.0, 2.0, 3.0, 4.0}}> {{
           r = Relu (x)
           y = Add (r, c)
        }}""")

    class P(RewritePass):
        name = "test-refuser"
        rules = [RefusingRule()]

    ctx = PassContext(m, verbose=1)
    P().run(m, ctx)
    assert any("rule test-refuser.refuser refused at Add" in n and "not negative" in n
               for n in ctx.notes)


def test_function_bodies_and_attribute_references():
    """Rules run inside model-local functions; a node whose attribute refers to a function
    attribute (``@p``) has no known value there and never matches."""
    m = model_from_text("""<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (float[2,3] x) => (float[2,3] y, float[2,3] z) {
           y = local.Ref <p = [1, 0]> (x)
           z = local.Plain (x)
        }
        <domain: "local", opset_import: ["" : 17]>
        Ref <p> (a) => (b) {
           t = Neg <alpha: float = @p> (a)
           b = Neg (t)
        }
        <domain: "local", opset_import: ["" : 17]>
        Plain (a) => (b) {
           t = Neg (a)
           b = Neg (t)
        }""")

    class Cancel(Rule):
        name = "cancel"
        pattern = Op("Neg", Op("Neg", "x", name="inner"))

        def rewrite(self, m, b):
            return b.op("Identity", [m["x"]])

    res = run(m, Cancel())
    assert len(res.rewrites) == 1
    bodies = {f.name: Counter(n.op_type for n in f.graph.nodes) for f in m.functions.values()}
    assert bodies == {"Ref": Counter({"Neg": 2}), "Plain": Counter({"Identity": 1})}


def test_sweeps_near_changes_find_what_full_sweeps_find():
    """The driver's memo (look again only near what changed since the last clean sweep) gives
    the same result as sweeping every node, on real exports and a synthetic transformer."""
    import importlib.util
    from pathlib import Path

    from onnxopt import load
    from onnxopt.ir import lift_model, print_model
    from onnxopt.passes import PassManager

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("synth", root / "benchmarks" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    makers = [lambda: lift_model(synth.build(1500))]
    makers += [lambda p=p: load(p) for p in sorted((root / "golden" / "models").glob("*_op17.onnx"))]
    pipeline = "default,fixpoint(fold,simplify,identity,dce,cse,fuse){max=8}"
    for make in makers:
        texts = []
        for memo in (True, False):
            m = make()
            PassManager(pipeline).run(m, PassContext(m, options={"rewrite.memo": memo}))
            texts.append(print_model(m))
        assert texts[0] == texts[1]


def test_quick_filter_and_unworded_misses_change_no_rewrite():
    """Without a tracer the driver drops the patterns a root's input signature rules out (once
    per distinct signature) and words no miss; with one it tries everything and words every
    miss. Both must apply the same rewrites, in the same order."""
    from pathlib import Path

    from onnxopt import load
    from onnxopt.ir import print_model
    from onnxopt.passes import registry
    from onnxopt.passes.shapes import ShapeAnalysis

    path = Path(__file__).resolve().parent.parent / "golden" / "models" / "bert_op17.onnx"
    results = []
    for traced in (False, True):
        m = load(path)
        ctx = PassContext(m)
        ctx.analysis(ShapeAnalysis)
        rules = registry.create("simplify", {}).selected_rules(m) + \
            registry.create("fuse", {}).selected_rules(m)
        events: list = []
        res = apply_rules(m, rules, ctx, tracer=events.append if traced else None,
                          shapes=Shapes(ctx))
        results.append(([(r.rule, r.replaced) for r in res.rewrites], print_model(m)))
        if traced:
            assert any(ev.stage != "applied" for ev in events)
    assert results[0][0], "the model should give the rules something to rewrite"
    assert results[0] == results[1]


def test_search_backtracks_in_pattern_order():
    """An Or alternative or commuted order that matches partway and then fails deeper is
    abandoned for the next one; the first complete match (in pattern order) is the one kept."""
    from onnxopt.passes.rewrite import match

    m = model_from_text(f"""{H17}
        g (float[4] x, float[4] z) => (float[4] y) {{
           a = Relu (x)
           b = Relu (z)
           s = Mul (a, b)
           y = Add (s, z)
        }}""")
    add = next(n for n in m.graph.nodes if n.op_type == "Add")

    class Probe(Rule):
        name = "probe"

    # Mul's first order binds x then needs Relu(x) = z: fails at the Add's second input;
    # the commuted order binds z and succeeds.
    p = Op("Add", Op("Mul", Op("Relu", "u", name="r1"), Op("Relu", "w", name="r2"),
                     commutative=True, name="s"), "w")
    got = match(Probe(), p, add, 17, Shapes(PassContext(m)))
    assert got is not None and got["w"].name == "z" and got["u"].name == "x"
    # The first alternative (Mul of x) fails deep; the second (anything bound as t) follows.
    p = Op("Add", Or(Op("Mul", Op("Relu", "z", name="r1"), "q", name="s"), "t"), "z")
    got = match(Probe(), p, add, 17, Shapes(PassContext(m)))
    assert got is not None and got.get("t").name == "s" and "q" not in got


def test_array_facts_follow_the_array_object():
    from onnxopt.passes.rewrite.constants import _ARRAY_FACTS, array_fact

    calls = []

    def zeros(a):
        calls.append(1)
        return bool(np.all(a == 0))

    a = np.zeros(3, np.float32)
    assert array_fact(a, "zeros", zeros) and array_fact(a, "zeros", zeros)
    assert len(calls) == 1
    key = id(a)
    del a  # the entry goes with the array; a later array with the same id starts afresh
    assert key not in _ARRAY_FACTS
    b = np.ones(3, np.float32)
    assert not array_fact(b, "zeros", zeros) and len(calls) == 2


def test_match_once_holds_while_the_ir_is_unchanged():
    from onnxopt.passes.rewrite import match

    m = model_from_text(f"""{H17}
        g (float[4] x) => (float[4] y) {{ y = Relu (x) }}""")
    relu = next(iter(m.graph.nodes))

    class Probe(Rule):
        name = "probe"

    got = match(Probe(), Op("Relu", "x"), relu, 17, Shapes(PassContext(m)))
    calls = []
    assert got.once("k", lambda: calls.append(1) or len(calls)) == 1
    assert got.once("k", lambda: calls.append(1) or len(calls)) == 1
    relu.set_attr("unused", 1)  # any change to the IR: worked out again
    assert got.once("k", lambda: calls.append(1) or len(calls)) == 2
