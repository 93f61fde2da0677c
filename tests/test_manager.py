"""The pass manager: fixed-point groups and their cap, instrumentation, and the checks that name
a misbehaving pass (IR broken, a lie about `modified`, an exception, wrong numbers)."""

from __future__ import annotations

import pytest

import onnxopt
from onnxopt import PassError, UsageError, VerificationError
from onnxopt.passes import GraphPass, PassManager, PassResult, Rewrite, register
from onnxopt.passes import registry as reg
from onnxopt.testing import m_bytes, model_from_text

from _samples import chain

MODEL = chain("Relu", "Relu", "Relu")


@register
class _Flip(GraphPass):
    """Always changes something: renames the first node, every time."""

    name = "test:flip"
    summary = "renames a node forever"

    def run_on_graph(self, graph, ctx):
        n = graph.nodes.first()
        if n is None:
            return PassResult()
        n.meta["flips"] = n.meta.get("flips", 0) + 1
        n.name = f"flipped{n.meta['flips']}"
        return PassResult(modified=True)


@register
class _BreakUses(GraphPass):
    """Rewires an input behind the IR's back, so the use lists lie."""

    name = "test:break-uses"
    summary = "corrupts use lists"

    def run_on_graph(self, graph, ctx):
        nodes = list(graph.nodes)
        if len(nodes) > 1:
            nodes[1]._inputs = (graph.inputs[0],)
        return PassResult(modified=True)


@register
class _Liar(GraphPass):
    """Erases nothing but renames a node, then claims it changed nothing."""

    name = "test:liar"
    summary = "changes the IR and says it did not"

    def run_on_graph(self, graph, ctx):
        for n in graph.nodes:
            n.name = "renamed"
        return PassResult(modified=False)


@register
class _Raises(GraphPass):
    """Fails."""

    name = "test:raises"
    summary = "raises"

    def run_on_graph(self, graph, ctx):
        raise ZeroDivisionError("boom")


@register
class _ReluToSigmoid(GraphPass):
    """A wrong rewrite, one rule per Relu: the second Relu becomes a Sigmoid (wrong numbers)."""

    name = "test:wrong"
    summary = "rewrites Relu into Neg-of-Neg, except the second one into Sigmoid"
    options = {"max_rewrites": -1}

    def run_on_graph(self, graph, ctx):
        from onnxopt.ir import Builder

        res = PassResult()
        count = 0
        for n in list(graph.nodes):
            if n.op_type != "Relu":
                continue
            if 0 <= self.opts["max_rewrites"] <= count:
                break
            b = Builder(graph, before=n)
            if count == 1:
                new = b.op("Sigmoid", [n.inputs[0]])
                rule = "relu_is_sigmoid"
            else:
                new = b.op("Relu", [b.op("Neg", [b.op("Neg", [n.inputs[0]])])])
                rule = "relu_double_neg"
            n.outputs[0].replace_all_uses_with(new, outputs=True)
            graph.erase(n)
            res.rewrites.append(Rewrite(rule, (n.name or n.op_type,)))
            res.modified = True
            count += 1
        return res


def test_fixpoint_cap_is_reported_not_silent():
    m = model_from_text(MODEL)
    rep = PassManager("fixpoint(test:flip){max=3}").run(m)
    assert len(rep.records) == 3
    assert rep.capped and "3 iterations" in rep.capped[0]


def test_fixpoint_stops_when_nothing_changes():
    m = model_from_text(MODEL)
    rep = PassManager("fixpoint(test:liar){max=5}", check_modified=False).run(m)
    assert len(rep.records) == 1 and not rep.capped


def test_records_time_and_node_delta():
    m = model_from_text(MODEL)
    rep = PassManager("test:wrong").run(m)
    (r,) = rep.records
    assert r.nodes_before == 3 and r.nodes_after == 7 and r.node_delta == 4
    assert r.seconds >= 0 and len(r.rewrites) == 3


def test_records_the_node_visits_of_each_pass():
    # dce sweeps the graph once; a pass that looks at one node visits one. A regression to
    # "every round revisits everything" shows in these numbers (and in --json's passes).
    m = model_from_text(MODEL)
    rep = PassManager("dce,test:flip").run(m)
    dce, flip = rep.records
    assert dce.node_visits >= 3 and flip.node_visits == 0


def test_verify_each_names_the_pass_that_broke_the_ir():
    m = model_from_text(MODEL)
    with pytest.raises(PassError, match="'test:break-uses' broke the IR"):
        PassManager("test:flip,test:break-uses", verify_each=True).run(m)


def test_a_pass_that_lies_about_modified_is_caught():
    m = model_from_text(MODEL)
    with pytest.raises(PassError, match="reported no change but changed the IR"):
        PassManager("test:liar", check_modified=True).run(m)


def test_a_raising_pass_is_named_in_one_line(tmp_path):
    m = model_from_text(MODEL)
    with pytest.raises(PassError) as e:
        PassManager("test:raises", reproducer_dir=str(tmp_path)).run(m)
    assert "'test:raises' raised ZeroDivisionError: boom" in str(e.value)
    assert "\n" not in str(e.value)
    assert (tmp_path / "reproducer.onnx").exists()
    assert (tmp_path / "reproducer.pipeline").read_text().strip() == "test:raises"


def test_print_ir_after():
    m = model_from_text(MODEL)
    out = []
    PassManager("test:wrong", print_ir_after=("test:wrong",), print_fn=out.append).run(m)
    assert out and "Sigmoid" in out[0] and out[0].startswith("// IR after test:wrong")


def test_unknown_pass_and_option_are_usage_errors():
    with pytest.raises(UsageError, match="unknown pass 'nope'"):
        PassManager("nope")
    with pytest.raises(UsageError, match="no option 'bogus'"):
        PassManager("test:wrong{bogus=1}")


def test_duplicate_names_are_an_error_naming_both_origins(tmp_path):
    plugin = tmp_path / "dupe.py"
    plugin.write_text(
        "from onnxopt.passes import GraphPass, register\n"
        "@register\n"
        "class Dupe(GraphPass):\n"
        "    name = 'test:flip'\n"
        "    summary = 'a second test:flip'\n")
    with pytest.raises(UsageError) as e:
        reg.load_plugin_file(str(plugin))
    msg = str(e.value)
    assert "two passes are named 'test:flip'" in msg
    assert "test_manager" in msg and "dupe.py" in msg


def test_plugin_file_registers_its_passes(tmp_path):
    plugin = tmp_path / "neg_neg.py"
    plugin.write_text(
        "from onnxopt.passes import GraphPass, PassResult, register\n"
        "@register\n"
        "class DropNegNeg(GraphPass):\n"
        "    '''Removes Neg(Neg(x)).'''\n"
        "    name = 'test:drop-negneg'\n"
        "    summary = 'Neg(Neg(x)) -> x'\n"
        "    def run_on_graph(self, graph, ctx):\n"
        "        changed = False\n"
        "        for n in list(graph.nodes):\n"
        "            p = n.inputs[0].producer if n.op_type == 'Neg' else None\n"
        "            if p is not None and p.op_type == 'Neg':\n"
        "                n.outputs[0].replace_all_uses_with(p.inputs[0], outputs=True)\n"
        "                graph.erase(n)\n"
        "                changed = True\n"
        "        return PassResult(modified=changed)\n")
    assert reg.load_plugin_file(str(plugin)) == ["test:drop-negneg"]
    assert reg.get("test:drop-negneg").origin == f"plugin file {plugin}"


def test_bisection_names_the_pass_and_the_rewrite():
    src = m_bytes(model_from_text(MODEL))
    with pytest.raises(VerificationError) as e:
        onnxopt.optimize(src, "test:flip,test:wrong,test:flip")
    culprit = e.value.result.culprit
    assert culprit.pass_spec == "test:wrong" and culprit.index == 1
    assert culprit.rule == "relu_is_sigmoid" and culprit.rewrite_index == 2
    assert "first divergence after pass 'test:wrong'" in str(e.value)


def test_optimize_without_raising_reports_failure():
    src = m_bytes(model_from_text(MODEL))
    res = onnxopt.optimize(src, "test:wrong", raise_on_failure=False)
    assert res.verification.status == "failed" and res.culprit.rule == "relu_is_sigmoid"
