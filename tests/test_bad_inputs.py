"""Bad inputs (the corpus in bad_inputs.py), atomic output, and resource guards.

Every bad case goes through the API (``onnxopt.load``, ``onnxopt.optimize``) and the CLI: a
specific exception / exit code 2, one line naming the problem, no traceback, the input folder
byte-for-byte unchanged (mtimes too), and nothing written to the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
from bad_inputs import CASES, CLI_CASES, HOSTILE, build, deep_chain_bytes, good_model, pwned_path
from onnx import numpy_helper
from onnxopt.cli.main import main
from onnxopt.errors import OnnxoptError, UsageError
from onnxopt.ir import SymDim, print_model
from onnxopt.testing import model_file

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


# What a terminal would act on: C0 controls but newline, DEL, C1, bidi controls, separators.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                    "\u202a-\u202e\u2066-\u2069\ufeff]")


def check_one_line(err: str, match: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("onnxopt: error: "), err
    assert not UNSAFE.search(err), repr(err)
    assert re.search(match, lines[0]), (match, lines[0])
    return lines[0]


# Node problems the IR can hold: ``check`` lists them as findings (exit 1) instead of refusing.
CHECK_REPORTS = {"if_without_else", "loop_body_missing_outputs", "scan_bad_input_count",
                 "shape_11_with_start"}


def stage(name: str, tmp_path: Path):
    """Case ``name`` built under ``tmp_path/in``, an empty ``tmp_path/out``, and a snapshot of
    ``in`` (whatever the input, both must stay as they are): (case, in, model path, out,
    snapshot)."""
    c = CASES[name]
    src = tmp_path / "in"
    path = build(c, str(src))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    return c, src, path, out_dir, snapshot(src)


@pytest.mark.parametrize("name", ERROR_CASES)
def test_bad_input_api_and_cli(name, tmp_path, capsys):
    c, src, path, out_dir, before = stage(name, tmp_path)
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
        assert main(["show", path]) == 2
        check_one_line(capsys.readouterr().err, c.match)
        rc = main(["check", path])
        captured = capsys.readouterr()
        if name in CHECK_REPORTS:  # a finding that blocks, in the report
            assert rc == 1 and "BLOCK" in captured.out, captured
        else:
            assert rc == 2, captured
            check_one_line(captured.err, c.match)
    assert snapshot(src) == before
    assert os.listdir(out_dir) == []


@pytest.fixture
def audit_in_child(monkeypatch):
    """Every model audited in a forked child while it is lifted (as the CLI does for big
    ones); the children made are listed."""
    from onnxopt import forked

    made = []
    real = forked.Forked
    monkeypatch.setattr(onnxopt.io, "AUDIT_IN_CHILD", True)
    monkeypatch.setattr(onnxopt.io, "AUDIT_CHILD_MIN_NODES", 0)
    monkeypatch.setattr(forked, "can_fork", lambda: True)
    monkeypatch.setattr(forked, "Forked", lambda work: made.append(real(work)) or made[-1])
    return made


def _refusal(path):
    try:
        onnxopt.load(path)
    except OnnxoptError as e:
        return type(e), str(e)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")
def test_an_audit_beside_the_lift_refuses_what_it_refuses_first(tmp_path, monkeypatch,
                                                                  audit_in_child):
    """The audit's verdict wins over the lift's, as when it runs first; a child that dies is
    audited again in-process."""
    from onnxopt import forked

    for name in ERROR_CASES:
        _, _, path, _, _ = stage(name, tmp_path / name)
        forked_before = len(audit_in_child)
        with monkeypatch.context() as m:
            m.setattr(onnxopt.io, "AUDIT_IN_CHILD", False)
            first = _refusal(path)
        assert _refusal(path) == first, name
        if len(audit_in_child) > forked_before:  # it reached the lift: the child died this time
            with monkeypatch.context() as m:
                m.setattr(forked, "_serve", lambda work, fd: os._exit(1))
                assert _refusal(path) == first, name
    assert audit_in_child, "no case reached the lift"
    good = tmp_path / "good.onnx"
    onnx.save(good_model(), good)
    assert print_model(onnxopt.load(str(good))) == print_model(onnxopt.load(good_model()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")
def test_a_big_model_audited_beside_its_lift_is_refused_in_one_line(tmp_path):
    """The command audits a model of AUDIT_CHILD_MIN_NODES nodes or more in a forked child:
    a node the audit refuses, behind 6,000 good ones, is still one line and exit 2."""
    n = onnxopt.io.AUDIT_CHILD_MIN_NODES + 1000
    nodes = [onnx.helper.make_node("Identity", [f"v{i}"], [f"v{i + 1}"]) for i in range(n)]
    nodes.append(onnx.helper.make_node("FrobnicateX", [f"v{n}"], ["y"]))
    g = onnx.helper.make_graph(nodes, "g", [onnx.helper.make_tensor_value_info("v0", 1, [2])],
                               [onnx.helper.make_tensor_value_info("y", 1, [2])])
    path = tmp_path / "big.onnx"
    onnx.save(onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    p = subprocess.run([sys.executable, "-m", "onnxopt.cli.main", str(path), "-o",
                        str(tmp_path / "o.onnx")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    check_one_line(p.stderr, "FrobnicateX")
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_console(name, tmp_path):
    c, src, path, out_dir, before = stage(name, tmp_path)
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
    c, src, path, out_dir, before = stage(name, tmp_path)
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
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    model_file("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) {
            shape = Constant <value = int64[2] {100000, 100000}> ()
            big = ConstantOfShape <value = float[1] {1.0}> (shape)
            s = ReduceSum <keepdims = 0> (big)
            y = Add(x, s)
        }""", src)
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
    from onnxopt.io import _parse_apart, _split_weights

    def raw_lengths(data):
        return _parse_apart(data, "<bytes>")[1].raw_lengths

    m = good_model()
    m.graph.initializer.append(onnx.helper.make_tensor("f", onnx.TensorProto.FLOAT, [2], [1, 2]))
    m.graph.initializer.append(numpy_helper.from_array(np.zeros((3, 5), np.float64), "d"))
    data = m.SerializeToString()
    assert raw_lengths(data) == [24, None, 120]
    assert raw_lengths(data + data) is None  # two graph fields merge: the scan steps aside
    with pytest.raises((ValueError, IndexError)):  # a group tag: not ONNX, the scan refuses it
        _split_weights(b"\x0b", 1)


# -- the command line around a good model -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_bad_command_line_is_one_line_exit_2(name, tmp_path, capsys):
    c = CLI_CASES[name]
    argv = c.argv(str(tmp_path))
    # The output folder is probed for writing (its mtime may change): compared by listing.
    before = {k: v for k, v in snapshot(tmp_path).items() if k != "out"}
    with deadline(60):
        rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, captured
    check_one_line(captured.err, c.match)
    assert {k: v for k, v in snapshot(tmp_path).items() if k != "out"} == before
    assert not (tmp_path / "out").exists() or _listing(tmp_path / "out") == []


def test_read_only_output_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """(root ignores chmod: the refusal is simulated where the folder is probed)"""
    import tempfile as tf

    src = bad_path(tmp_path)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tf, "mkstemp", refuse)
    assert main([src, "-o", str(tmp_path / "o.onnx")]) == 2
    check_one_line(capsys.readouterr().err, "cannot write to the output folder.*denied")


def bad_path(tmp_path: Path) -> str:
    path = str(tmp_path / "good.onnx")
    onnx.save(good_model(), path)
    return path


def test_a_data_file_name_taken_by_a_folder_is_stepped_around(tmp_path, capsys):
    src = _external_model(tmp_path / "src", 1.0)
    out_dir = tmp_path / "out"
    (out_dir / "o.onnx.data").mkdir(parents=True)
    assert main([src, "-o", str(out_dir / "o.onnx"), "-q"]) == 0, capsys.readouterr().err
    assert _listing(out_dir) == ["o.onnx", "o.onnx.1.data", "o.onnx.data"]
    np.testing.assert_array_equal(_weights(str(out_dir / "o.onnx")),
                                  np.arange(1024, dtype=np.float32))


def test_a_crashing_built_in_pass_is_an_internal_error(tmp_path, capsys, monkeypatch):
    from onnxopt.passes import registry

    cls = registry.get("dce").cls

    def crash(self, *a, **k):
        raise KeyError(99)

    monkeypatch.setattr(cls, "run", crash)
    assert main([bad_path(tmp_path), "-o", str(tmp_path / "o.onnx"), "-p", "dce"]) == 3
    check_one_line(capsys.readouterr().err, r"internal error: pass 'dce' raised KeyError")
    with pytest.raises(onnxopt.errors.PassCrash):
        onnxopt.optimize(bad_path(tmp_path), "dce")
    assert not (tmp_path / "o.onnx").exists()


# -- terminal injection -------------------------------------------------------------------------


def _all_output(path: str, tmp_path: Path, capsys) -> str:
    """stdout and stderr of every command that prints from the model."""
    text = []
    runs = [["show", path], ["check", path], ["check", "--target", "tensorrt", path],
            ["check", "--json", path],
            [path, "-o", str(tmp_path / "o1.onnx"), "--print-ir-after", "*", "-v", "--report"],
            [path, "-o", str(tmp_path / "o2.onnx"), "--json"],
            [path, "-o", str(tmp_path / "o3.onnx"), "--require-verified"]]
    for argv in runs:
        capsys.readouterr()
        rc = main(argv)
        captured = capsys.readouterr()
        assert rc in (0, 1), (argv, captured.err)
        text.append(captured.out + captured.err)
    return "\n".join(text)


@pytest.mark.parametrize("name", ["hostile_names", "hostile_names_parseable"])
def test_model_text_never_reaches_the_terminal_raw(name, tmp_path, capsys):
    path = build(CASES[name], str(tmp_path / "in"))
    out = _all_output(path, tmp_path, capsys)
    assert not UNSAFE.search(out.replace("\n", "")), repr(UNSAFE.search(out.replace("\n", "")))
    assert "\\x1b]0;pwned\\x07" in out  # shown, escaped
    from onnxopt.ir import print_model

    text = print_model(onnxopt.load(path))
    assert not UNSAFE.search(text.replace("\n", ""))
    if name == "hostile_names_parseable":  # the text syntax stays readable by onnx's parser
        onnx.parser.parse_model(text)


def test_escape_helper():
    from onnxopt.cli.report import _rich_safe
    from onnxopt.ir.escape import escape

    assert escape(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x00\\x9b31m\\u202eevil"
    assert escape("a\nb") == "a\\x0ab" and escape("a\nb", newlines=True) == "a\nb"
    assert escape("größe·日本") == "größe·日本"  # letters are not controls
    assert _rich_safe("[bold red]x\x1b") == "\\[bold red]x\\x1b"


# -- resources: the bombs, under a memory measurement ------------------------------------------


def test_bombs_finish_in_bounded_memory(tmp_path):
    """Dim algebra and huge generators through check, -p shapes, --preset tensorrt and default:
    the child's peak RSS stays under 500 MB (times are in the report, not asserted)."""
    paths = [build(CASES[n], str(tmp_path / n)) for n in
             ("dim_algebra_bomb", "dim_power_bomb", "expand_huge", "constant_of_shape_huge")]
    code = textwrap.dedent(f"""
        import resource, sys
        from onnxopt.cli.main import main
        rcs = []
        for p in {paths!r}:
            for argv in (["check", p], ["check", "--target", "tensorrt", p],
                         [p, "-o", p + ".s.onnx", "-p", "shapes", "-q"],
                         [p, "-o", p + ".t.onnx", "--preset", "tensorrt", "-q"],
                         [p, "-o", p + ".d.onnx", "-q"]):
                rcs.append(main(argv))
        # VmHWM, not ru_maxrss: a process starts with its parent's ru_maxrss (exec keeps it),
        # and pytest's may be large by the time this runs.
        hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
        peak = int(hwm[0].split()[1]) if hwm else \
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(peak, rcs)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    rss_kb, rcs = p.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(rss_kb) < 500 * 1024, rss_kb
    assert set(eval(rcs)) <= {0, 1}, (rcs, p.stderr)


def test_dim_algebra_has_a_budget():
    from bad_inputs import SYMBOLS, sum_product_dim
    from onnxopt.passes.shapes import dims as D

    a, b = SymDim(sum_product_dim(SYMBOLS, 0)), SymDim(sum_product_dim(SYMBOLS, 1))
    assert D.expanded_terms(a.expr) > D.MAX_TERMS
    assert D.eq(a, b) is False and D.le(a, b) is None  # cannot prove: not a hang
    assert D.eq(SymDim("(n+1)*(n+1)"), SymDim("n**2+2*n+1"))  # small ones still expand


# -- verification: inputs, budget and the "not verified" decision ------------------------------


def test_generated_inputs_are_budgeted_over_all_bindings(monkeypatch):
    """A model that fails at every binding: the probe stops when the bytes it allocated (float64
    draws included) reach the budget, not after 48 bindings of up to the budget each."""
    import onnxopt.verify as V

    monkeypatch.setattr(V, "_FEED_LIMIT", 8 << 20)
    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,4096] x) => (float[11,?] y) {
            s = Constant <value = int64[2] {11, -1}> ()
            y = Reshape(x, s)
        }""")
    v = V.Verifier(m.SerializeToString())
    report = v.check(m.SerializeToString())
    assert report.status == "not verified"
    assert v._generated <= 8 << 20


def test_static_zero_dims_are_fed_as_zero():
    import onnxopt.verify as V

    m = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[0,3] x) => (float[0,3] y) { y = Relu(x) }""")
    (_binding, feed), *_ = V.Verifier(m.SerializeToString()).feeds()
    assert feed["x"].shape == (0, 3)
    assert onnxopt.optimize(m).verified


CUSTOM = """
    <ir_version: 8, opset_import: ["" : 17, "com.custom" : 1]>
    g (float[2,3] x) => (float[2,3] y) { y = com.custom.Foo(x) }"""


def test_not_verified_is_a_decision(tmp_path, capsys):
    path = str(tmp_path / "custom.onnx")
    model_file(CUSTOM, path)
    # Default: written, exit 0, and the summary says why in one line.
    assert main([path, "-o", str(tmp_path / "a.onnx")]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("verification:")]
    assert "not verified: onnxruntime cannot load the original model" in line
    assert (tmp_path / "a.onnx").exists()
    # --json carries it.
    assert main([path, "-o", str(tmp_path / "b.onnx"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verified"] is False and d["verification"]["status"] == "not verified"
    assert "cannot load the original" in d["verification"]["reason"]
    # --require-verified: exit 1, nothing written.
    assert main([path, "-o", str(tmp_path / "c.onnx"), "--require-verified", "-q"]) == 1
    check_one_line(capsys.readouterr().err, "not verified: onnxruntime cannot load.*no output")
    assert not (tmp_path / "c.onnx").exists()
    with pytest.raises(onnxopt.NotVerifiedError, match="not verified"):
        onnxopt.optimize(path, require_verified=True)


def test_onnxruntime_log_stays_off_stderr(tmp_path, capfd):
    """An integer division by zero in a constant: onnxruntime refuses the original (not
    verified), and its coloured log line does not reach stderr."""
    path = str(tmp_path / "div.onnx")
    model_file("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (int64[2] x) => (int64[2] y) {
            a = Constant <value = int64[2] {6, 4}> ()
            z = Constant <value = int64[2] {0, 2}> ()
            d = Div(a, z)
            y = Add(x, d)
        }""", path)
    assert main([path, "-o", str(tmp_path / "o.onnx"), "-q"]) == 0
    assert capfd.readouterr().err == ""


def test_version(capsys):
    assert main(["--version"]) == 0
    assert re.fullmatch(r"onnxopt \S+\n", capsys.readouterr().out)


def test_api_errors_are_onnxopt_errors(tmp_path):
    """What the CLI refuses in one line, the API refuses with the project's own types."""
    path = bad_path(tmp_path)
    with pytest.raises(UsageError, match="neither"):
        onnxopt.optimize(path, input_shapes={"x": ["1e23", 3]})
    with pytest.raises(UsageError, match="below 2"):
        onnxopt.optimize(path, input_shapes={"x": [10**23, 3]})
    with pytest.raises(UsageError, match="contradicts"):
        onnxopt.optimize(path, input_shapes={"x": [4, 5]})
    with pytest.raises(UsageError, match="not a directory"):
        onnxopt.optimize(path, reproducer_dir=path)
    with pytest.raises(UsageError, match="require_verified"):
        onnxopt.optimize(path, verify=False, require_verified=True)
