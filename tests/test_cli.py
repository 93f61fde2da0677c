"""The onnxopt command end to end: outputs, summaries, exit codes, and real models."""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import onnx
import onnx.parser
import pytest

from onnxopt.cli.main import main
from onnxopt.testing import model_file

from _samples import chain

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "models"  # committed copies (models/README.md)
LIGHT = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__),
                                      "backend/test/data/light/*.onnx")))

SMALL = chain("Identity", "Relu", "Relu")


@pytest.fixture
def small(tmp_path) -> Path:
    return model_file(SMALL, tmp_path / "small.onnx")


def test_default_output_name_summary_and_input_untouched(small, capsys):
    before = small.read_bytes()
    assert main([str(small)]) == 0
    out = capsys.readouterr().out
    assert "verification: ok" in out
    assert "nodes:" in out and "op counts" in out
    assert (small.parent / "small.opt.onnx").exists()
    assert small.read_bytes() == before


def test_json_summary(small, tmp_path, capsys):
    assert main([str(small), "-o", str(tmp_path / "o.onnx"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verification"]["status"] == "ok"
    assert d["before"]["nodes"] == 3 and d["after"]["nodes"] <= 3
    assert d["passes"] and {"pass", "runs", "seconds", "node_delta", "node_visits"} \
        <= set(d["passes"][0])
    assert all(p["node_visits"] > 0 for p in d["passes"] if p["pass"] == "dce")


def test_verification_failure_exits_1_and_writes_nothing(small, wrong_plugin, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    args = [str(small), "-o", str(out), "--plugin", str(wrong_plugin), "-p", "t:wrong", "-q"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1
    assert not out.exists()
    assert err.count("\n") == 1 and "first divergence after pass 't:wrong'" in err
    assert main(args + ["--force"]) == 1
    assert out.exists()


@pytest.mark.parametrize("args,fragment", [
    (["{missing}"], "no such file"),
    (["{bad}"], "not an ONNX model"),
    (["{small}", "-p", "nope"], "unknown pass 'nope'"),
    (["{small}", "-p", "dce{zzz=1}"], "no option 'zzz'"),
    (["{small}", "-p", "fixpoint(dce"], "expected"),
    (["{small}", "--preset", "nope"], "unknown preset"),
    (["{small}", "--input-shape", "nope:1,4"], "no input 'nope'"),
    (["{small}", "--bogus-flag"], "unrecognized arguments"),
    ([], "no input model"),
])
def test_bad_input_and_usage_exit_2_with_one_line(small, tmp_path, capsys, args, fragment):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a model at all")
    subst = {"missing": str(tmp_path / "missing.onnx"), "bad": str(bad), "small": str(small)}
    argv = [subst.get(a.strip("{}"), a) for a in args] + ["-o", str(tmp_path / "out.onnx")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("onnxopt: error:") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.onnx").exists()


def test_custom_op_model_is_not_verified_but_written(tmp_path, capsys):
    p = model_file("""
        <ir_version: 8, opset_import: ["" : 17, "my.custom" : 1]>
        g (float[4] x) => (float[4] y) { a = Identity (x)  y = my.custom.Thing (a) }""",
                   tmp_path / "c.onnx")
    assert main([str(p), "-o", str(tmp_path / "o.onnx")]) == 0
    assert "verification: not verified" in capsys.readouterr().out
    assert (tmp_path / "o.onnx").exists()


def test_print_ir_after_and_verbose(small, tmp_path, capsys):
    assert main([str(small), "-o", str(tmp_path / "o.onnx"), "-p", "identity",
                 "--print-ir-after", "identity", "-v"]) == 0
    out = capsys.readouterr().out
    assert "// IR after identity" in out and "Relu" in out


def test_list_passes_names_builtins_and_presets(capsys):
    assert main(["--list-passes"]) == 0
    out = capsys.readouterr().out
    for name in ("dce", "identity", "cse", "default"):
        assert f"  {name} " in out


def test_show_prints_textual_syntax(small, capsys):
    assert main(["show", str(small)]) == 0
    text = capsys.readouterr().out
    onnx.parser.parse_model(text)
    assert "y = Relu (b)" in text


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys; from onnxopt.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('onnx', 'onnxruntime', 'sympy', 'numpy', 'onnxsim', 'torch')"
            " if m in sys.modules]\nprint(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_a_dce_run_imports_only_what_dce_needs(tmp_path):
    # onnx and numpy are needed to load and save; sympy (symbolic dims), onnxruntime
    # (verification, folding ops numpy cannot evaluate), the verifier, the deployment runtimes
    # and the other passes' modules are not.
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    model_file(SMALL, src)
    code = ("import sys; from onnxopt.cli.main import main\n"
            f"rc = main([{str(src)!r}, '-p', 'dce', '--no-verify', '-o', {str(out)!r}, '-q'])\n"
            "top = {m.split('.')[0] for m in sys.modules}\n"
            "heavy = sorted(top & {'sympy', 'onnxruntime', 'onnxsim', 'onnxoptimizer', 'torch'})\n"
            "other = sorted(m for m in sys.modules if m.split('.')[:3] in ("
            "['onnxopt', 'passes', 'fold'], ['onnxopt', 'passes', 'fuse'], "
            "['onnxopt', 'passes', 'shapes']) or m in ('onnxopt.runtimes', 'onnxopt.verify'))\n"
            "print(rc, heavy, other)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "0 [] []", r.stderr


def test_the_command_exits_with_its_code_after_its_output_and_exit_handlers(small, tmp_path):
    # The console script skips the interpreter's finalization (cli.main.run): what a user sees
    # must not change. A plugin's exit handler still runs, stdout arrives whole, codes stay.
    marker, out = tmp_path / "handler-ran", tmp_path / "o.onnx"
    plugin = tmp_path / "at_exit.py"
    plugin.write_text(f"import atexit, pathlib\n"
                      f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n")
    cmd = [sys.executable, "-m", "onnxopt.cli.main"]
    r = subprocess.run(cmd + [str(small), "-o", str(out), "--json", "--plugin", str(plugin)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verification"]["status"] == "ok"
    assert marker.read_text() == "yes" and out.exists()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08")
    r = subprocess.run(cmd + [str(bad), "-o", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_the_command_runs_with_its_output_streams_closed(small, tmp_path, closed):
    # Started from a daemon or a script with `>&-`, Python sees None for the stream: the model
    # is still optimized and the exit code still says how it went.
    out = tmp_path / "o.onnx"
    onnxopt = f"{shlex.quote(sys.executable)} -m onnxopt.cli.main"
    cmd = f"{onnxopt} {shlex.quote(str(small))} -o {shlex.quote(str(out))} {closed}"
    assert subprocess.run(["sh", "-c", cmd], timeout=120).returncode == 0
    assert out.exists()
    bad = f"{onnxopt} {shlex.quote(str(tmp_path / 'missing.onnx'))} {closed}"
    assert subprocess.run(["sh", "-c", bad], timeout=120).returncode == 2


@pytest.mark.parametrize("path", LIGHT, ids=[os.path.basename(p) for p in LIGHT])
def test_light_models_end_to_end(path, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    assert main([path, "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    onnx.checker.check_model(onnx.load(str(out)))


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED.glob("*.onnx"))
                         if SHARED.is_dir() else [])
def test_shared_models_end_to_end(name, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    assert main([str(SHARED / name), "-o", str(out), "--json"]) == 0, capsys.readouterr().err
    d = json.loads(capsys.readouterr().out)
    assert d["verification"]["status"] == "ok", d["verification"]
    assert d["after"]["nodes"] <= d["before"]["nodes"]


def test_dynamic_flags_reach_dynamize_inside_a_longer_pipeline(tmp_path, capsys):
    model = ROOT / "golden" / "dynamize" / "cnn_flatten.onnx"
    out = tmp_path / "o.onnx"
    assert main([str(model), "-p", "dynamize,default", "--dynamic", "batch", "-o", str(out),
                 "-q"]) == 0, capsys.readouterr().err
    dim0 = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"
    assert main([str(model), "-p", "default", "--dynamic", "batch", "-o", str(out)]) == 2
    assert "need the dynamize pass" in capsys.readouterr().err
