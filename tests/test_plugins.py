"""Plugins: the docs' example run verbatim through the command, plugin files, installed entry
points, name collisions, and plugins that raise or break the IR (one-line error, exit 2, nothing
written). Also keeps docs/plugins.md honest about the rule example and the public names."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import onnx
import pytest
from onnxopt.cli.main import main
from onnxopt.testing import golden_text, model_file

from _samples import chain

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"

SMALL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,4] y, float[N,4] z) {
    a = Relu (x)
    b = Relu (a)
    y = Relu (b)
    c = Abs (x)
    z = Abs (c)
}
"""


def doc_blocks() -> dict[str, str]:
    """The code blocks of docs/plugins.md between `<!-- begin: NAME -->` / `<!-- end: NAME -->`."""
    text = DOC.read_text()
    return dict(re.findall(r"<!-- begin: (\S+) -->\n```python\n(.*?)```\n<!-- end: \1 -->",
                           text, re.DOTALL))


def onnxopt_cmd(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it, in a fresh process (its own registry)."""
    return subprocess.run([sys.executable, "-m", "onnxopt.cli.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120, check=False)


@pytest.fixture
def small(tmp_path) -> Path:
    return model_file(SMALL, tmp_path / "small.onnx")


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


# -- the documentation --------------------------------------------------------------------------


def test_the_docs_single_file_example_runs_through_the_command(small, tmp_path):
    plugin = tmp_path / "my_pass.py"
    plugin.write_text(doc_blocks()["my_pass.py"])  # verbatim
    assert len(plugin.read_text().splitlines()) <= 40
    out = tmp_path / "out.onnx"
    r = onnxopt_cmd(str(small), "--plugin", str(plugin), "-p", "my:squash-idempotent",
                    "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "verification: ok" in r.stdout and "squashed=3" in r.stdout
    text = golden_text(str(out))
    assert "y = Relu (x)" in text and "z = Abs (x)" in text
    assert "float[N,4] y, float[N,4] z" in text  # the outputs keep their names and types
    listed = onnxopt_cmd("--plugin", str(plugin), "--list-passes")
    assert "my:squash-idempotent" in listed.stdout


def test_the_docs_rule_example_is_the_example_package_file_verbatim():
    name = "examples/plugin-package/src/onnxopt_example/rules.py"
    assert doc_blocks()[name] == (ROOT / name).read_text()


def test_the_docs_list_the_public_names_exactly():
    import onnxopt
    import onnxopt.ir
    import onnxopt.passes
    import onnxopt.testing

    section = DOC.read_text().split("## Public, stable names", 1)[1]
    for mod in (onnxopt, onnxopt.ir, onnxopt.passes, onnxopt.testing):
        m = re.search(rf"^- `{re.escape(mod.__name__)}`: (.*?)(?=^- `|^\S|\Z)", section,
                      re.DOTALL | re.MULTILINE)
        assert m, f"docs/plugins.md lists no public names for {mod.__name__}"
        documented = set(re.findall(r"`([^`]+)`", m.group(1)))
        assert documented == set(mod.__all__), (
            f"{mod.__name__}.__all__ and docs/plugins.md disagree (update the doc's list): "
            f"only in code {sorted(set(mod.__all__) - documented)}, "
            f"only in the doc {sorted(documented - set(mod.__all__))}")


# -- loading --------------------------------------------------------------------------------------

DOUBLE_NEG = """
    from onnxopt.passes import GraphPass, PassResult, register

    @register
    class DropDoubleNeg(GraphPass):
        name = "{name}"
        summary = "Neg(Neg(x)) -> x"

        def run_on_graph(self, graph, ctx):
            result = PassResult()
            for n in list(graph.nodes):
                x = n.inputs[0] if n.op_type == "Neg" else None
                if x is not None and x.producer is not None and x.producer.op_type == "Neg":
                    n.outputs[0].replace_all_uses_with(x.producer.inputs[0], outputs=True)
                    graph.erase(n)
                    result.modified = True
            return result
"""

NEG_MODEL = chain("Neg", "Neg", "Relu")


@pytest.fixture
def neg_model(tmp_path) -> Path:
    return model_file(NEG_MODEL, tmp_path / "neg.onnx")


def test_a_plugin_file_is_loaded_listed_and_run(neg_model, tmp_path, capsys):
    plugin = write(tmp_path / "negneg.py", DOUBLE_NEG.format(name="t-file:drop-double-neg"))
    assert main(["--plugin", str(plugin), "--list-passes"]) == 0
    assert "t-file:drop-double-neg" in capsys.readouterr().out
    out = tmp_path / "o.onnx"
    assert main([str(neg_model), "--plugin", str(plugin), "-p", "t-file:drop-double-neg,dce",
                 "-o", str(out), "-q"]) == 0
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Relu"]


def _fake_installed_package(site: Path, dist: str, entries: dict[str, str]) -> None:
    """What `pip install` leaves behind: a module and a dist-info with entry_points.txt."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[onnxopt.passes]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


def test_a_pass_from_an_installed_entry_point(neg_model, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "t_ep_plugin.py", DOUBLE_NEG.replace("    @register\n", "").format(
        name="t-ep:drop-double-neg"))
    _fake_installed_package(site, "t_ep_plugin",
                            {"t-ep:drop-double-neg": "t_ep_plugin:DropDoubleNeg"})
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listed = onnxopt_cmd("--list-passes", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "t-ep:drop-double-neg" in listed.stdout
    out = tmp_path / "o.onnx"
    r = onnxopt_cmd(str(neg_model), "-p", "t-ep:drop-double-neg,dce", "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert "verification: ok" in r.stdout
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Relu"]

    # A plugin file reusing the installed name is an error naming both origins.
    clash = write(tmp_path / "clash.py", DOUBLE_NEG.format(name="t-ep:drop-double-neg"))
    r = onnxopt_cmd(str(neg_model), "--plugin", str(clash), "-p", "t-ep:drop-double-neg",
                    "-o", str(tmp_path / "o2.onnx"), env=env)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "two passes are named 't-ep:drop-double-neg'" in r.stderr
    assert "entry point 't_ep_plugin:DropDoubleNeg' of t_ep_plugin" in r.stderr
    assert f"plugin file {clash}" in r.stderr
    assert not (tmp_path / "o2.onnx").exists()


def test_two_plugin_files_with_one_name_are_an_error_naming_both(neg_model, tmp_path, capsys):
    a = write(tmp_path / "a.py", DOUBLE_NEG.format(name="t-dup:same"))
    b = write(tmp_path / "b.py", DOUBLE_NEG.format(name="t-dup:same"))
    out = tmp_path / "o.onnx"
    code = main([str(neg_model), "--plugin", str(a), "--plugin", str(b), "-p", "t-dup:same",
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "two passes are named 't-dup:same'" in err
    assert f"plugin file {a}" in err and f"plugin file {b}" in err
    assert not out.exists()


def test_a_plugin_cannot_take_a_built_in_name(tmp_path, capsys):
    p = write(tmp_path / "mydce.py", DOUBLE_NEG.format(name="dce"))
    assert main(["--plugin", str(p), "--list-passes"]) == 2
    err = capsys.readouterr().err
    assert "two passes are named 'dce'" in err and "built-in onnxopt.passes.dce" in err


# -- misbehaving plugins --------------------------------------------------------------------------

RAISES = """
    from onnxopt.passes import GraphPass, register

    @register
    class Boom(GraphPass):
        name = "t-bad:raises"
        summary = "raises"

        def run_on_graph(self, graph, ctx):
            raise ValueError("no idea what to do with\\nthis graph")
"""

BREAKS_IR = """
    from onnxopt.ir import Builder, Value
    from onnxopt.passes import GraphPass, PassResult, register

    @register
    class ReadsAGhost(GraphPass):
        name = "t-bad:breaks-ir"
        summary = "reads a value no graph defines"

        def run_on_graph(self, graph, ctx):
            ghost = Value("ghost")
            y = Builder(graph, before=graph.nodes.first()).op("Relu", [ghost])
            graph.outputs[0].replace_all_uses_with(y, outputs=True)
            return PassResult(modified=True)
"""


@pytest.mark.parametrize("source,name,fragment", [
    (RAISES, "t-bad:raises",
     "pass 't-bad:raises' raised ValueError: no idea what to do with (raises.py:"),
    (BREAKS_IR, "t-bad:breaks-ir", "pass 't-bad:breaks-ir' broke the IR: "),
], ids=["raises", "breaks-ir"])
def test_a_misbehaving_plugin_is_named_in_one_line_and_nothing_is_written(
        source, name, fragment, neg_model, tmp_path, capsys):
    plugin = write(tmp_path / f"{name.split(':')[1]}.py", source)
    out = tmp_path / "o.onnx"
    code = main([str(neg_model), "--plugin", str(plugin), "-p", f"dce,{name},dce",
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("onnxopt: error: ")
    assert fragment in err
    assert err.rstrip().endswith(f"[plugin file {plugin}]")
    assert not out.exists()


# -- onnxopt.testing, as the docs use it -----------------------------------------------------------


def test_the_testing_helpers_on_the_docs_example(tmp_path, monkeypatch):
    from onnxopt.testing import (
        UPDATE_GOLDEN_ENV,
        assert_golden,
        check_pipeline,
        load_plugin,
        model_from_text,
        run_pass,
    )

    plugin = tmp_path / "my_pass.py"
    plugin.write_text(doc_blocks()["my_pass.py"])
    assert load_plugin(plugin) == ["my:squash-idempotent"]
    header = '<ir_version: 8, opset_import: ["" : 17]>\n'
    m = check_pipeline(header + "g (float[N,4] x) => (float[N,4] y) { a = Relu (x)  y = Relu (a) }",
                       "my:squash-idempotent", changed=True)
    assert [n.op_type for n in m.graph.nodes] == ["Relu"]
    check_pipeline(header + "g (float[N,4] x) => (float[N,4] y) { a = Relu (x)  y = Abs (a) }",
                   "my:squash-idempotent", changed=False)
    with pytest.raises(AssertionError, match="to leave the model alone"):
        check_pipeline(header + "g (float[4] x) => (float[4] y) { a = Abs (x)  y = Abs (a) }",
                       "my:squash-idempotent", changed=False)

    # run_pass takes the class itself; golden files are written on request, then compared.
    from onnxopt.passes import get

    m2 = model_from_text(header + "g (float[4] x) => (float[4] y) { a = Floor (x)  y = Floor (a) }")
    assert run_pass(m2, get("my:squash-idempotent").cls).stats["squashed"] == 1
    golden = tmp_path / "golden" / "floor.onnxtxt"
    with pytest.raises(AssertionError, match=f"no golden file; run with {UPDATE_GOLDEN_ENV}=1"):
        assert_golden(m2, golden)
    monkeypatch.setenv(UPDATE_GOLDEN_ENV, "1")
    assert_golden(m2, golden)
    monkeypatch.delenv(UPDATE_GOLDEN_ENV)
    assert_golden(m2, golden)
    assert "y = Floor (x)" in golden.read_text()
    with pytest.raises(AssertionError, match="text differs"):
        assert_golden(model_from_text(header + "g (float[4] x) => (float[4] y) { y = Abs (x) }"),
                      golden)


# -- when it goes wrong: each mistake, its one line and exit code, through the CLI and the API ----

WRONG_MODEL = """
<ir_version: 10, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,4] y) {
    i = Identity (x)
    s = Sigmoid (i)
    y = Mul (i, s)
}
"""


@pytest.fixture
def wrong_model(tmp_path) -> Path:
    return model_file(WRONG_MODEL, tmp_path / "wrong.onnx")


def line_of(path: Path, fragment: str) -> int:
    """The 1-based line of ``path`` holding ``fragment`` (messages must point there)."""
    return next(i for i, s in enumerate(path.read_text().splitlines(), 1) if fragment in s)


@contextmanager
def fresh_registry() -> Iterator[None]:
    """The pass registry as a new process has it (built-ins only, entry points not yet read),
    put back afterwards: commands run in this process then behave as in their own."""
    from onnxopt.passes import registry

    registry.all_entries()  # built-ins and namespaces loaded once, kept
    saved = {k: getattr(registry, k) for k in ("_entries", "_plugin_files", "_eps", "_ep_done")}
    registry._entries = {k: e for k, e in saved["_entries"].items() if e.builtin}
    registry._plugin_files, registry._eps, registry._ep_done = {}, None, {}
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(registry, k, v)


def cli_error(capsys, *argv: str) -> tuple[int, str]:
    """(exit code, the one error line) of the command run in this process."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("onnxopt: error: "), err
    return code, err[len("onnxopt: error: "):].rstrip("\n")


def api_error(model: Path, pipeline: str, plugin: Path | None, **kw) -> str:
    from onnxopt import OnnxoptError, optimize

    with pytest.raises(OnnxoptError) as e:
        optimize(str(model), pipeline, plugins=[str(plugin)] if plugin else (), **kw)
    return str(e.value)


HAND_SWISH = """
    from onnxopt.ir import Builder
    from onnxopt.passes import GraphPass, PassResult, register


    @register
    class HandSwish(GraphPass):
        name = "t-opset:hand-swish"
        summary = "Sigmoid(x) -> Swish(x), never asking the opset"

        def run_on_graph(self, graph, ctx):
            result = PassResult()
            for node in list(graph.nodes):
                if node.op_type == "Sigmoid":
                    y = Builder(graph, before=node).op("Swish", [node.inputs[0]])
                    node.outputs[0].replace_all_uses_with(y, outputs=True)
                    graph.erase(node)
                    result.modified = True
            return result
"""


def test_a_hand_written_pass_creating_an_op_newer_than_the_model(wrong_model, tmp_path, capsys):
    plugin = write(tmp_path / "hand_swish.py", HAND_SWISH)
    line = line_of(plugin, "def run_on_graph")
    want = (f"pass 't-opset:hand-swish' created Swish (opset 24) at opset 17: create it only "
            f"when ctx.model.opset('') >= 24 (hand_swish.py:{line}) [plugin file {plugin}]")
    out = tmp_path / "o.onnx"
    code, err = cli_error(capsys, str(wrong_model), "--plugin", str(plugin), "-p",
                          "t-opset:hand-swish", "--no-verify", "-o", str(out))
    assert (code, err) == (2, want)
    assert not out.exists()  # even under --no-verify: the model would be invalid
    assert api_error(wrong_model, "t-opset:hand-swish", plugin, verify=False) == want


LIAR = """
    from onnxopt.passes import GraphPass, PassResult, register


    @register
    class DropIdentity(GraphPass):
        name = "t-liar:drop-identity"
        summary = "removes Identity nodes and forgets to say so"

        def run_on_graph(self, graph, ctx):
            result = PassResult()
            for node in list(graph.nodes):
                if node.op_type == "Identity" and not node.outputs[0].is_graph_output():
                    node.outputs[0].replace_all_uses_with(node.inputs[0])
                    graph.erase(node)
            return result
"""


def test_a_plugin_pass_that_changes_the_ir_and_reports_no_change(wrong_model, tmp_path, capsys):
    plugin = write(tmp_path / "liar.py", LIAR)
    line = line_of(plugin, "def run_on_graph")
    want = (f"pass 't-liar:drop-identity' reported no change but changed the IR (nodes 3 -> 2): "
            f"its PassResult must say modified=True (liar.py:{line}) [plugin file {plugin}]")
    out = tmp_path / "o.onnx"
    code, err = cli_error(capsys, str(wrong_model), "--plugin", str(plugin), "-p",
                          "fixpoint(t-liar:drop-identity,dce)", "-o", str(out))
    assert (code, err) == (2, want)
    assert not out.exists()
    assert api_error(wrong_model, "t-liar:drop-identity", plugin) == want
    # Turned off on request (to time a pass alone, say): then nothing is checked.
    from onnxopt import optimize

    optimize(str(wrong_model), "t-liar:drop-identity", check_modified=False)


def test_built_in_passes_are_fingerprinted_on_request(wrong_model, monkeypatch, capsys):
    from onnxopt import PassError, optimize
    from onnxopt.passes import get

    cls = get("identity").cls
    honest = cls.run

    def lies(self, model, ctx):  # a built-in with the bug: it works, then says it did nothing
        result = honest(self, model, ctx)
        result.modified = False
        return result

    monkeypatch.setattr(cls, "run", lies)
    optimize(str(wrong_model), "identity", verify=False)  # built-ins: not by default
    for kw in ({"check_modified": True}, {"verify_each": True}):
        with pytest.raises(PassError, match="^pass 'identity' reported no change but changed "
                                            r"the IR \(nodes 3 -> 2\)"):
            optimize(str(wrong_model), "identity", verify=False, **kw)
    for flag in ("--verify-each", "--check-modified"):
        code, err = cli_error(capsys, str(wrong_model), "-p", "identity", flag,
                              "--no-verify", "-o", os.devnull)
        # (The exit code is the manager's to choose for a built-in's bug: not the plugin's 2.)
        assert code != 0 and "pass 'identity' reported no change but changed the IR" in err


def test_a_pass_in_an_unknown_namespace_suggests_the_plugin_flag(wrong_model, tmp_path, capsys):
    want = ("unknown pass 't-nowhere:fuse': no loaded plugin has the namespace 't-nowhere'; a "
            "pass in a plugin file needs --plugin FILE (plugins=[FILE] in optimize()), an "
            "installed one its package (see --list-passes)")
    code, err = cli_error(capsys, str(wrong_model), "-p", "dce,t-nowhere:fuse")
    assert (code, err) == (2, want)
    assert api_error(wrong_model, "dce,t-nowhere:fuse", None) == want
    # A known namespace lists its passes instead.
    plugin = write(tmp_path / "liar2.py", LIAR.replace("t-liar:", "t-near:"))
    code, err = cli_error(capsys, str(wrong_model), "--plugin", str(plugin), "-p", "t-near:drop")
    assert (code, err) == (2, "unknown pass 't-near:drop' (namespace 't-near' has: "
                               "t-near:drop-identity)")


ACME_MODULES = {
    "acme_passes/__init__.py": "",
    "acme_passes/gpu.py": """
        import acme_native  # a native extension that failed to build

        class GpuFuse: ...
    """,
    "acme_passes/fold.py": """
        from onnxopt.passes import GraphPass, PassResult

        class FoldConstants(GraphPass):
            name = "acme:fold-constants"
            summary = "fold"

            def run_on_graph(self, graph, ctx):
                return PassResult()
    """,
    # The liar above, honest, named by its entry point (no @register: the entry point is enough).
    "acme_passes/identity.py": LIAR.replace("t-liar:", "acme:").replace("    @register\n", "")
    .replace("removes Identity nodes and forgets to say so", "remove Identity nodes")
    .replace("graph.erase(node)\n", "graph.erase(node)\n" + " " * 20 + "result.modified = True\n"),
}


def acme_site(site: Path, entries: dict[str, str]) -> Path:
    """The acme-passes package, installed into ``site`` (modules + dist-info, no network)."""
    for rel, source in ACME_MODULES.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        write(site / rel, source)
    _fake_installed_package(site, "acme-passes", entries)
    return site


ACME_ENTRIES = {"acme:gpu-fuse": "acme_passes.gpu:GpuFuse",
                "acme:fold": "acme_passes.fold:FoldConstants",
                "acme:drop-identity": "acme_passes.identity:DropIdentity"}


@pytest.fixture
def acme_installed(tmp_path, monkeypatch) -> Path:
    """acme-passes on sys.path, with a registry that forgets it (and its passes) afterwards."""
    site = acme_site(tmp_path / "site", ACME_ENTRIES)
    with fresh_registry():
        monkeypatch.syspath_prepend(str(site))  # after: the saved registry never sees it
        yield site
    for mod in [m for m in sys.modules if m.startswith("acme_passes")]:
        del sys.modules[mod]


GPU_BROKEN = ("plugin 'acme:gpu-fuse' (entry point 'acme_passes.gpu:GpuFuse' of acme-passes) "
              "failed to load: ModuleNotFoundError: No module named 'acme_native' (gpu.py:2)")
FOLD_MISNAMED = ("plugin 'acme:fold' (entry point 'acme_passes.fold:FoldConstants' of "
                 "acme-passes): the class is named 'acme:fold-constants'; the entry point's name "
                 "must be the class's `name` (the CLI name)")


def test_one_broken_package_disables_only_its_own_passes(acme_installed, wrong_model, tmp_path,
                                                        capsys):
    from onnxopt import optimize

    # A pipeline imports only the entry points it names: the broken one is never imported.
    out = tmp_path / "o.onnx"
    assert main([str(wrong_model), "-p", "acme:drop-identity,dce", "-o", str(out), "-q"]) == 0
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Sigmoid", "Mul"]
    assert "acme_passes.gpu" not in sys.modules
    assert optimize(str(wrong_model), "acme:drop-identity").verified
    # Naming the broken one: its package and the import error, one line, exit 2.
    assert cli_error(capsys, str(wrong_model), "-p", "acme:gpu-fuse") == (2, GPU_BROKEN)
    assert api_error(wrong_model, "acme:gpu-fuse", None) == GPU_BROKEN
    # The misnamed entry point is an error too (the pass would answer to two names).
    assert cli_error(capsys, str(wrong_model), "-p", "acme:fold") == (2, FOLD_MISNAMED)
    # --list-passes marks both, lists the rest, and exits 0.
    assert main(["--list-passes"]) == 0
    lines = [" ".join(s.split()) for s in capsys.readouterr().out.splitlines()]
    assert "acme:drop-identity remove Identity nodes" in lines
    assert f"acme:gpu-fuse BROKEN: {GPU_BROKEN}" in lines
    assert f"acme:fold BROKEN: {FOLD_MISNAMED}" in lines
    assert "dce remove dead nodes, unused initializers and unused model-local functions" in lines


REPRO_PLUGIN = HAND_SWISH.replace("t-opset:", "t-repro:")


def test_a_reproducer_holds_the_plugin_file_and_replays_alone(wrong_model, tmp_path, capsys,
                                                              monkeypatch):
    plugin = write(tmp_path / "repro_swish.py", REPRO_PLUGIN)
    repro = tmp_path / "repro"
    code, err = cli_error(capsys, str(wrong_model), "--plugin", str(plugin), "-p",
                          "identity,t-repro:hand-swish,dce", "--reproducer", str(repro),
                          "-o", str(tmp_path / "o.onnx"))
    assert code == 2 and "created Swish (opset 24) at opset 17" in err
    assert (repro / "repro_swish.py").read_text() == plugin.read_text()
    assert (repro / "reproducer.pipeline").read_text() == "t-repro:hand-swish\n"
    command = (repro / "reproducer.sh").read_text().splitlines()[-1]
    assert command == ("onnxopt reproducer.onnx --plugin repro_swish.py -p t-repro:hand-swish "
                       "-o reproducer.opt.onnx")
    monkeypatch.chdir(repro)
    with fresh_registry():  # as a new process would: nothing loaded but the built-ins
        replayed = cli_error(capsys, *command.split()[1:])
    assert replayed == (2, err.replace(str(plugin), "repro_swish.py"))


LATE_BUG = """
    from onnxopt.ir import Builder
    from onnxopt.passes import GraphPass, PassResult, Rewrite, register


    @register
    class NegNeg(GraphPass):
        name = "t-round:negneg"
        summary = "Neg(Neg(x)) -> x, one pair per run"

        def run_on_graph(self, graph, ctx):
            for n in list(graph.nodes):
                x = n.inputs[0] if n.op_type == "Neg" else None
                if x is not None and x.producer is not None and x.producer.op_type == "Neg":
                    n.outputs[0].replace_all_uses_with(x.producer.inputs[0], outputs=True)
                    graph.erase(n)
                    graph.erase(x.producer)
                    return PassResult(modified=True)
            return PassResult()


    @register
    class LateBug(GraphPass):
        name = "t-round:late-bug"
        summary = "wrong on its second run: Relu -> Abs"

        def __init__(self, **opts):
            super().__init__(**opts)
            self.runs = 0

        def run_on_graph(self, graph, ctx):
            self.runs += 1
            for n in list(graph.nodes):
                if self.runs == 2 and n.op_type == "Relu":
                    y = Builder(graph, before=n).op("Abs", [n.inputs[0]])
                    n.outputs[0].replace_all_uses_with(y, outputs=True)
                    graph.erase(n)
                    return PassResult(modified=True, rewrites=[Rewrite("relu_abs", ("Relu",))])
            return PassResult()
"""

ROUND_MODEL = chain("Neg", "Neg", "Neg", "Neg", "Relu", ir=10)


def test_a_culprit_says_what_its_run_number_counts(tmp_path, capsys):
    model = tmp_path / "round.onnx"
    model_file(ROUND_MODEL, model)
    plugin = write(tmp_path / "late_bug.py", LATE_BUG)
    want = ("first divergence after pass 't-round:late-bug' (pass run #4 of the pipeline; "
            "round 2 of its fixpoint group)")
    code = main([str(model), "--plugin", str(plugin), "-p",
                 "fixpoint(t-round:negneg,t-round:late-bug)", "-o", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and want in err and err.count("\n") == 1
    assert want in api_error(model, "fixpoint(t-round:negneg,t-round:late-bug)", plugin)


def section(title: str) -> str:
    """The text of one `## title` section of docs/plugins.md."""
    return DOC.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def runs(text: str) -> list[tuple[str, list[str]]]:
    """The ``$ command`` lines of the section's `<!-- run -->` console blocks, each with the
    lines shown under it."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"<!-- run -->\n```console\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            else:
                out[-1][1].append(line)
    return out


def test_the_docs_when_it_goes_wrong_section_runs_verbatim(tmp_path, monkeypatch, capsys):
    """Every command of the section, run as shown (in this process, each with a registry as
    fresh as a new process's): an error shows exactly the lines the page shows, exit code 2,
    nothing written; a success shows each line the page shows."""
    text = section("When it goes wrong")
    blocks = dict(re.findall(r"<!-- begin: (.+?) -->\n```\w+\n(.*?)```\n<!-- end: \1 -->", text,
                             re.DOTALL))
    monkeypatch.chdir(tmp_path)
    model_file(blocks.pop("model.onnx"), "model.onnx")
    toml = blocks.pop("acme-passes entry points")
    entries = dict(re.findall(r'^"(.+?)" = "(.+?)"$', toml, re.MULTILINE))
    assert entries == ACME_ENTRIES  # the package the page describes is the one built here
    with fresh_registry():  # the registry every command starts from: read before acme exists
        pass
    monkeypatch.syspath_prepend(str(acme_site(tmp_path / "site", entries)))
    for name, source in blocks.items():
        (tmp_path / name).write_text(source)  # the plugin files, verbatim
    commands = runs(text)
    assert len(commands) >= 8
    for command, shown in commands:
        argv = shlex.split(command)
        if argv[0] == "cat":
            assert Path(argv[1]).read_text().splitlines() == shown, command
            continue
        assert argv[0] == "onnxopt", command
        with fresh_registry():
            code = main(argv[1:])
        got = capsys.readouterr()
        lines = [" ".join(s.split()) for s in (got.out + got.err).splitlines()]
        want = [" ".join(s.split()) for s in shown]
        if code:
            assert (code, lines) == (2, want), command
            assert not Path("model.opt.onnx").exists(), command
        else:
            assert [s for s in want if s not in lines] == [], command
            Path("model.opt.onnx").unlink(missing_ok=True)  # the next command starts clean
    for mod in [m for m in sys.modules if m.startswith("acme_passes")]:
        del sys.modules[mod]


RULE_MISTAKES = """
    from onnxopt.passes import Const, Op, RewritePass, Rule, register


    class Swish(Rule):
        name = "swish"
        summary = "x * Sigmoid(x) -> Swish(x), without opset = 24"
        pattern = Op("Mul", "x", Op("Sigmoid", "x"))

        def rewrite(self, m, b):
            return b.op("Swish", [m["x"]])


    class AddZero(Rule):
        name = "add_zero"
        summary = "x + 0 -> x, reading a name the pattern does not bind"
        pattern = Op("Add", "x", Const("zero"), commutative=True)

        def check(self, m):
            return None if m["zreo"] is not None else "absent"

        def rewrite(self, m, b):
            return m["x"]


    @register
    class Mistakes(RewritePass):
        name = "t-rule:mistakes"
        summary = "rules with mistakes"
        rules = (Swish(), AddZero())
"""

RULE_MODEL = """
<ir_version: 10, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,4] y, float[N,4] z) <float zero = {{0}}> {{
    s = Sigmoid (x)
    y = Mul ({mul})
    z = Add (x, zero)
}}
"""


@pytest.fixture
def rule_plugin(tmp_path) -> Iterator[tuple[Path, Path]]:
    """A model whose Mul reads (s, x): the non-commutative Swish pattern misses it."""
    model = tmp_path / "rules.onnx"
    model_file(RULE_MODEL.format(mul="s, x"), model)
    with fresh_registry():  # each test loads its own copy of the file
        yield model, write(tmp_path / "rule_mistakes.py", RULE_MISTAKES)


def test_a_rule_creating_an_op_newer_than_the_model(rule_plugin, tmp_path, capsys):
    model, plugin = rule_plugin
    line = line_of(plugin, "def rewrite(self, m, b):")  # Swish's
    want = (f"pass 't-rule:mistakes.swish', rule 'swish': created Swish (opset 24) at opset "
            f"17: set opset = 24 on the rule (rule_mistakes.py:{line}) [plugin file {plugin}]")
    out = tmp_path / "o.onnx"
    model_file(RULE_MODEL.format(mul="x, s"), model)  # matches
    code, err = cli_error(capsys, str(model), "--plugin", str(plugin), "-p",
                          "t-rule:mistakes.swish", "--no-verify", "-o", str(out))
    assert (code, err) == (2, want)
    assert not out.exists()
    assert api_error(model, "t-rule:mistakes.swish", plugin, verify=False) == want


def test_an_exception_in_a_rule_names_the_rule_and_the_plugin_line(rule_plugin, capsys):
    model, plugin = rule_plugin
    want = (f"pass 't-rule:mistakes.add_zero', rule 'add_zero': raised UnboundName: m['zreo']: the "
            f"pattern binds no 'zreo' (bound: x, zero) "
            f"(rule_mistakes.py:{line_of(plugin, 'zreo')}) [plugin file {plugin}]")
    code, err = cli_error(capsys, str(model), "--plugin", str(plugin), "-p",
                          "t-rule:mistakes.add_zero")
    assert (code, err) == (2, want)
    assert api_error(model, "t-rule:mistakes.add_zero", plugin) == want


def test_a_near_miss_on_a_non_commutative_pattern_hints_commutative(rule_plugin, capsys):
    from onnxopt import optimize

    model, plugin = rule_plugin
    hint = ("rule t-rule:mistakes.swish refused at Mul: 'x' comes from a graph input or constant, "
            "not Sigmoid; the inputs swapped would match (commutative=True)")
    result = optimize(str(model), "t-rule:mistakes.swish", plugins=[str(plugin)], verbose=1)
    assert hint in result.notes  # nothing rewritten: Mul(s, x) is not Mul(x, Sigmoid(x))
    assert main([str(model), "--plugin", str(plugin), "-p", "t-rule:mistakes.swish", "-v",
                 "-o", os.devnull]) == 0
    assert f"note: {hint}" in capsys.readouterr().out.splitlines()


def test_rules_are_listed_from_the_pass_without_a_rules_table(rule_plugin, capsys):
    model, plugin = rule_plugin
    assert main(["--plugin", str(plugin), "--list-passes"]) == 0
    lines = [" ".join(s.split()) for s in capsys.readouterr().out.splitlines()]
    i = lines.index("t-rule:mistakes rules with mistakes")
    assert lines[i + 1:i + 3] == [
        "t-rule:mistakes.add_zero x + 0 -> x, reading a name the pattern does not bind",
        "t-rule:mistakes.swish x * Sigmoid(x) -> Swish(x), without opset = 24"]


def test_a_plugin_file_that_fails_to_import_names_its_line(wrong_model, tmp_path, capsys):
    plugin = write(tmp_path / "typo.py", """
        from onnxopt.passes import GraphPass, regster
    """)
    code, err = cli_error(capsys, str(wrong_model), "--plugin", str(plugin), "-p", "dce")
    assert code == 2
    assert err.startswith(f"plugin {plugin} failed to load: ImportError: cannot import name "
                          "'regster' from 'onnxopt.passes'")
    assert err.endswith(f"(typo.py:{line_of(plugin, 'regster')})")
    assert api_error(wrong_model, "dce", plugin) == err
