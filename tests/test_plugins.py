"""Plugins: the docs' example run verbatim through the command, plugin files, installed entry
points, name collisions, and plugins that raise or break the IR (one-line error, exit 2, nothing
written). Also keeps docs/plugins.md honest about the rule example and the public names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import onnx.parser
import pytest
from onnxopt.cli.main import main
from onnxopt.testing import golden_text

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
    p = tmp_path / "small.onnx"
    onnx.save(onnx.parser.parse_model(SMALL), str(p))
    return p


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

NEG_MODEL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N,4] x) => (float[N,4] y) {
    a = Neg (x)
    b = Neg (a)
    y = Relu (b)
}
"""


@pytest.fixture
def neg_model(tmp_path) -> Path:
    p = tmp_path / "neg.onnx"
    onnx.save(onnx.parser.parse_model(NEG_MODEL), str(p))
    return p


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
