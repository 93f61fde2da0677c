"""Bad inputs (the corpus in bad_inputs.py), atomic output, and resource guards.

Every bad case goes through the API (``onnxopt.load``, ``onnxopt.optimize``) and the CLI: a
specific exception / exit code 2, one line naming the problem, no traceback, the input folder
byte-for-byte unchanged (mtimes too), and nothing written to the output folder.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxopt
import onnxopt.io
import pytest
from bad_inputs import CASES, build, deep_chain_bytes, good_model, pwned_path
from onnx import numpy_helper
from onnxopt.cli.main import main
from onnxopt.errors import OnnxoptError, UsageError
from onnxopt.ir import SymDim, print_model

ERROR_CASES = sorted(n for n, c in CASES.items() if c.error is not None)
LEGAL_CASES = sorted(n for n, c in CASES.items() if c.error is None)
# Run through a real subprocess too: the console path, imports and all.
SUBPROCESS_CASES = ["empty", "truncated", "cycle", "external_escape", "deep_nesting", "over_2gb",
                    "raw_data_short", "unregistered_op"]


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder``: kind, size, mtime, and a digest of small regular files."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode) and st.st_size < 1 << 26:
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), st.st_size,
                                               st.st_mtime_ns, digest)
    return out


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) when the body takes longer than ``seconds``."""

    def fire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_one_line(err: str, match: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("onnxopt: error: "), err
    import re

    assert re.search(match, lines[0]), (match, lines[0])
    return lines[0]


@pytest.mark.parametrize("name", ERROR_CASES)
def test_bad_input_api_and_cli(name, tmp_path, capsys):
    c = CASES[name]
    src = tmp_path / "in"
    path = build(c, str(src))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(src)
    with deadline(60):
        with pytest.raises(c.error, match=c.match) as e:
            onnxopt.load(path)
        assert "\n" not in str(e.value)
        with pytest.raises(c.error, match=c.match):
            onnxopt.optimize(path, "default")
        capsys.readouterr()
        rc = main([path, "-o", str(out_dir / "model.opt.onnx")])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    check_one_line(captured.err, c.match)
    assert snapshot(src) == before
    assert os.listdir(out_dir) == []


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_console(name, tmp_path):
    c = CASES[name]
    src = tmp_path / "in"
    path = build(c, str(src))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(src)
    p = subprocess.run([sys.executable, "-m", "onnxopt.cli.main", path, "-o",
                        str(out_dir / "o.onnx")], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    check_one_line(p.stderr, c.match)
    assert snapshot(src) == before
    assert os.listdir(out_dir) == []


def test_bad_bytes_and_protos_through_the_api():
    with pytest.raises(onnxopt.ModelLoadError, match="empty"):
        onnxopt.load(b"")
    with pytest.raises(onnxopt.ModelLoadError, match="nested too deeply"):
        onnxopt.load(deep_chain_bytes(200))
    with pytest.raises(onnxopt.ModelLoadError, match="not an ONNX model"):
        onnxopt.optimize(b"\x08\x01\x12", "default")
    m = good_model()
    m.graph.initializer[0].raw_data = b"\0" * 20
    with pytest.raises(onnxopt.InvalidModelError, match="raw_data holds 20 bytes"):
        onnxopt.load(m)
    with pytest.raises(UsageError):
        onnxopt.load(12345)


def _run_legal(path: str, out_dir: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([path, "-o", str(out_dir / "o.onnx"), "-p", "default,shapes"])
    captured = capsys.readouterr()
    assert rc in (0, 2), captured.err
    assert "Traceback" not in captured.err
    if rc == 2:
        check_one_line(captured.err, "")
        assert os.listdir(out_dir) == []
    return rc, captured.out


@pytest.mark.parametrize("name", LEGAL_CASES)
def test_hostile_but_legal(name, tmp_path, capsys):
    """Accepted or refused cleanly; never evaluated, never allocated, never slow."""
    c = CASES[name]
    src = tmp_path / "in"
    path = build(c, str(src))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(src)
    with deadline(60):
        m = onnxopt.load(path)
        for v in m.graph.inputs:  # force the algebra path on every symbolic dim
            for d in v.type.shape or ():
                if isinstance(d, SymDim):
                    assert d.expr is not None
                    d.canonical()
        print_model(m)
        _run_legal(path, out_dir, capsys)
    assert snapshot(src) == before
    assert not os.path.exists(pwned_path(str(src)))


def test_dim_param_code_is_a_name(tmp_path):
    path = build(CASES["dim_param_code"], str(tmp_path))
    m = onnxopt.load(path)
    d = m.graph.inputs[0].type.shape[0]
    assert "__import__" in str(d) and d.expr.is_Symbol
    text = print_model(m)
    assert "__import__" in text
    r = onnxopt.optimize(path, "default", raise_on_failure=False)
    assert r.verification is not None
    assert not os.path.exists(pwned_path(str(tmp_path)))


def test_absurd_declared_dims_are_never_allocated(tmp_path):
    """float[100000,100000] input: verification refuses to generate 40 GB (under a 3 GiB cap)."""
    path = build(CASES["absurd_dim_value_type"], str(tmp_path / "in"))
    out = tmp_path / "o.onnx"
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from onnxopt.cli.main import main
        sys.exit(main([{path!r}, "-o", {str(out)!r}]))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert "too big to generate" in p.stdout + p.stderr
    r = onnxopt.optimize(path, "default", raise_on_failure=False)
    assert r.verification.status == "not verified"
    assert "too big" in r.verification.reason


def test_constant_of_shape_100000_squared_is_not_folded(tmp_path):
    """fold leaves a 40 GB ConstantOfShape alone (in a process capped at 3 GiB)."""
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) {
            shape = Constant <value = int64[2] {100000, 100000}> ()
            big = ConstantOfShape <value = float[1] {1.0}> (shape)
            s = ReduceSum <keepdims = 0> (big)
            y = Add(x, s)
        }""")
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(m, str(src))
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from onnxopt.cli.main import main
        rcs = [main([{str(src)!r}, "-o", {str(out)!r}, "-p", p, "--no-verify", "-q"])
               for p in ("fold", "shapes,fold", "default")]
        sys.exit(max(rcs))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert "ConstantOfShape" in ops and "ReduceSum" in ops
    assert os.path.getsize(out) < 10_000


@pytest.mark.parametrize("levels", [24])
def test_deep_but_readable_nesting_works(levels, tmp_path, capsys):
    """24 nested If/Loop bodies (protobuf reads ~30): optimized and verified, or refused cleanly."""
    path = tmp_path / "deep.onnx"
    path.write_bytes(deep_chain_bytes(levels))
    with deadline(90):
        r = onnxopt.optimize(str(path), "default")
        assert r.verified, r.verification.reason
        rc = main([str(path), "-o", str(tmp_path / "o.onnx"), "-q"])
    assert rc == 0, capsys.readouterr().err


def test_check_header_bounds_nesting_of_in_memory_protos():
    """The header check refuses nesting over its limit without recursing into Python's."""
    from onnxopt.io import _MAX_DEPTH, check_header

    m = good_model()
    g = m.graph
    for _ in range(_MAX_DEPTH + 2):  # built top-down: protobuf copies nothing here
        n = g.node.add()
        n.op_type, n.input[:], n.output[:] = "If", ["c"], ["r"]
        a = n.attribute.add()
        a.name, a.type = "then_branch", onnx.AttributeProto.GRAPH
        g = a.g
    with pytest.raises(onnxopt.InvalidModelError, match="nested more than"):
        check_header(m, "<m>")


# -- atomic output ------------------------------------------------------------------------------


def _external_model(folder: Path, scale: float) -> str:
    """A model with one 4 KiB weight in external data: y = x + w, w = scale * arange."""
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1024] x) => (float[1024] y) { y = Add(x, w) }""")
    m.graph.initializer.append(numpy_helper.from_array(
        np.arange(1024, dtype=np.float32) * scale, "w"))
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "m.onnx")
    onnx.save(m, path, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    return path


def _weights(path: str) -> np.ndarray:
    return onnxopt.load(path).graph.initializers[0].const_value.numpy().copy()


def _listing(folder: Path) -> list:
    return sorted(os.listdir(folder))


def test_save_writes_temporaries_in_the_target_folder_then_renames(tmp_path, monkeypatch):
    src = _external_model(tmp_path / "src", 1.0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "o.onnx"
    calls = []
    real_replace = os.replace

    def spy(a, b):
        calls.append((str(a), str(b), sorted(os.listdir(out_dir))))
        real_replace(a, b)

    monkeypatch.setattr(onnxopt.io.os, "replace", spy)
    onnxopt.save(onnxopt.load(src), str(out), external=True)
    assert [os.path.basename(b) for _, b, _ in calls] == ["o.onnx.data", "o.onnx"]
    for a, b, listing in calls:
        assert os.path.dirname(a) == str(out_dir) and os.path.basename(a).startswith(".onnxopt-")
        assert os.path.basename(b) not in listing  # nothing final before its rename
    assert _listing(out_dir) == ["o.onnx", "o.onnx.data"]
    np.testing.assert_array_equal(_weights(str(out)), np.arange(1024, dtype=np.float32))
    mode = os.stat(out).st_mode & 0o777
    assert mode == 0o666 & ~_umask(), oct(mode)  # not mkstemp's 0600


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


@pytest.mark.parametrize("fail_at", ["data_write", "between_renames", "model_rename"])
def test_interrupted_save_leaves_previous_output_intact(fail_at, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    out = str(out_dir / "o.onnx")
    out_dir.mkdir()
    onnxopt.save(onnxopt.load(_external_model(tmp_path / "v1", 1.0)), out)
    before = snapshot(out_dir)
    new = onnxopt.load(_external_model(tmp_path / "v2", 2.0))
    real_replace = os.replace
    n = {"replace": 0}

    def failing_replace(a, b):
        n["replace"] += 1
        if (fail_at == "between_renames" and n["replace"] == 2) or (
                fail_at == "model_rename" and str(b) == out):
            raise OSError("simulated crash")
        real_replace(a, b)

    if fail_at == "data_write":
        def failing_writer(self, tensor, name):
            raise OSError("simulated disk full")

        monkeypatch.setattr(onnxopt.io._ExternalWriter, "__call__", failing_writer)
    monkeypatch.setattr(onnxopt.io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        onnxopt.save(new, out)
    monkeypatch.undo()
    np.testing.assert_array_equal(_weights(out), np.arange(1024, dtype=np.float32))
    after = snapshot(out_dir)
    if fail_at != "data_write":  # the new data is in place, under the other name
        extra = set(after) - set(before)
        assert extra == {"o.onnx.1.data"}
        after = {k: v for k, v in after.items() if k not in extra}
    assert after == before
    # The next save succeeds and cleans up after itself.
    onnxopt.save(new, out)
    np.testing.assert_array_equal(_weights(out), 2 * np.arange(1024, dtype=np.float32))
    assert len([f for f in _listing(out_dir) if f.endswith(".data")]) == 1
    assert not [f for f in _listing(out_dir) if f.startswith(".onnxopt-")]


def test_killed_between_data_and_model_rename(tmp_path):
    """A real SIGKILL at the worst moment: the previous output still loads with its weights."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "o.onnx")
    onnxopt.save(onnxopt.load(_external_model(tmp_path / "v1", 1.0)), out)
    v2 = _external_model(tmp_path / "v2", 2.0)
    code = textwrap.dedent(f"""
        import os, signal, onnxopt
        import onnxopt.io as io
        real, n = os.replace, [0]
        def replace(a, b):
            n[0] += 1
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real(a, b)
        io.os.replace = replace
        onnxopt.save(onnxopt.load({v2!r}), {out!r})
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert p.returncode == -signal.SIGKILL
    np.testing.assert_array_equal(_weights(out), np.arange(1024, dtype=np.float32))
    from onnxopt.testing import run_model

    x = np.ones(1024, np.float32)
    np.testing.assert_array_equal(run_model(onnx.load(out), {"x": x})[0],
                                  x + np.arange(1024, dtype=np.float32))


def test_output_equal_to_input_needs_overwrite(tmp_path, capsys):
    src = _external_model(tmp_path, 1.0)
    before = snapshot(tmp_path)
    rc = main([src, "-o", src, "-q"])
    assert rc == 2
    check_one_line(capsys.readouterr().err, "--overwrite")
    assert snapshot(tmp_path) == before
    rc = main([src, "-o", str(tmp_path / "." / "m.onnx"), "-q"])  # same file, other spelling
    assert rc == 2 and snapshot(tmp_path) == before
    capsys.readouterr()
    rc = main([src, "-o", src, "--overwrite", "-q"])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_array_equal(_weights(src), np.arange(1024, dtype=np.float32))
    assert not [f for f in _listing(tmp_path) if f.startswith(".onnxopt-")]


def test_save_never_overwrites_the_data_the_model_reads(tmp_path):
    src = _external_model(tmp_path, 1.0)
    m = onnxopt.load(src)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="reads its weights"):
        onnxopt.save(m, src + ".data")
    assert snapshot(tmp_path) == before
    # Saving next to it under another name leaves the input's data alone.
    onnxopt.save(m, str(tmp_path / "copy.onnx"))
    assert {k: v for k, v in snapshot(tmp_path).items() if k in before} == before


def test_errors_are_onnxopt_errors():
    for c in CASES.values():
        assert c.error is None or issubclass(c.error, OnnxoptError)
    assert len(CASES) >= 40


def test_raw_lengths_scan_matches_the_parsed_protos():
    """load() measures raw_data from the file bytes (no copy of the weights); same answer."""
    from onnxopt.io import raw_lengths

    m = good_model()
    m.graph.initializer.append(onnx.helper.make_tensor("f", onnx.TensorProto.FLOAT, [2], [1, 2]))
    m.graph.initializer.append(numpy_helper.from_array(np.zeros((3, 5), np.float64), "d"))
    data = m.SerializeToString()
    assert raw_lengths(data) == [24, None, 120]
    assert raw_lengths(data + data) is None  # two graph fields merge: the scan steps aside
    assert raw_lengths(b"\x0b") is None  # a group tag: not ONNX
