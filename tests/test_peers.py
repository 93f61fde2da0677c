"""Peers as passes: onnxsim as `onnxsim`, onnxoptimizer's passes as `onnxoptimizer:NAME`.

They run on the golden models (PyTorch exports) inside onnxopt's pipeline, verified against the
original and against PyTorch's own outputs; they report `modified` honestly, are listed by
--list-passes, are imported only when needed, and sit inside bisection like any pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxopt
import pytest
from onnxopt import VerificationError
from onnxopt.cli.main import main
from onnxopt.testing import model_from_text, run_model, run_passes

from _samples import chain

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "golden" / "models").glob("*.onnx"))

# A few onnxoptimizer passes that touch these models (fuse_bn_into_conv rewrites resnet) or are
# no-ops on them (and must say so).
ONNXOPTIMIZER = ("onnxoptimizer:eliminate_identity,onnxoptimizer:fuse_bn_into_conv,"
                 "onnxoptimizer:eliminate_nop_transpose,onnxoptimizer:fuse_consecutive_transposes,"
                 "onnxoptimizer:eliminate_deadend")


def assert_matches_pytorch(model, path: Path) -> None:
    """The model's outputs on the inputs saved beside the export equal PyTorch's outputs."""
    data = np.load(path.with_suffix(".io.npz"))
    for binding in ("shape0", "shape1"):
        feeds = {k.split(":", 1)[1]: data[k] for k in data.files
                 if k.startswith(f"{binding}/input:")}
        expected = [data[k] for k in data.files if k.startswith(f"{binding}/output:")]
        for got, want in zip(run_model(model, feeds), expected):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_onnxsim_in_a_pipeline_on_the_golden_models(path):
    result = onnxopt.optimize(path, "dce,onnxsim,cse")
    assert result.verified, result.verification.reason
    rec = {r.spec: r for r in result.report.records}
    assert rec["onnxsim"].modified and rec["onnxsim"].node_delta < 0
    assert_matches_pytorch(result.model, path)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_onnxoptimizer_passes_on_the_golden_models(path):
    result = onnxopt.optimize(path, ONNXOPTIMIZER + ",dce")
    assert result.verified, result.verification.reason
    changed = {r.spec for r in result.report.records if r.modified}
    # Only resnet has a BatchNormalization to fold; every other pass changes nothing here.
    assert changed == ({"onnxoptimizer:fuse_bn_into_conv"} if "resnet" in path.name else set())
    assert_matches_pytorch(result.model, path)


def test_a_peer_that_changes_nothing_leaves_the_ir_untouched():
    m = onnxopt.load(MODELS[0])
    run_passes(m, "onnxsim")  # (the helper checks `modified` against a fingerprint of the IR)
    graph = m.graph
    report = run_passes(m, "fixpoint(onnxsim,onnxoptimizer:eliminate_identity){max=4}")
    assert not report.capped
    assert [r.modified for r in report.records] == [False, False]
    assert m.graph is graph


def test_the_result_is_put_into_the_same_model_object():
    m = model_from_text(chain("Identity", "Relu"))
    m.metadata_props["mine"] = "kept"
    before = m.graph
    report = run_passes(m, "onnxoptimizer:eliminate_identity")
    assert report.records[0].modified
    assert m.graph is not before and [n.op_type for n in m.graph.nodes] == ["Relu"]
    assert m.metadata_props == {"mine": "kept"}


def test_bisection_sees_through_a_peer(wrong_plugin):
    path = ROOT / "golden" / "models" / "resnet_op17.onnx"
    with pytest.raises(VerificationError) as e:
        onnxopt.optimize(path, "onnxsim,t:wrong,onnxoptimizer:eliminate_identity",
                         plugins=[str(wrong_plugin)])
    assert e.value.result.culprit.pass_spec == "t:wrong"


def test_the_command_runs_peers_between_built_ins(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    code = main([str(ROOT / "golden" / "models" / "resnet_op17.onnx"), "-p", "dce,onnxsim,cse",
                 "-o", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "onnxsim" in stdout and "verification: ok" in stdout


def test_list_passes_names_every_onnxoptimizer_pass_and_onnxsim(capsys):
    import onnxoptimizer

    assert main(["--list-passes"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]
              if line.startswith("  ") and line.strip()}
    assert "onnxsim" in listed
    expected = {f"onnxoptimizer:{n}" for n in onnxoptimizer.get_available_passes()}
    assert expected <= listed


def test_peers_are_imported_only_when_needed(tmp_path):
    """--help and a pipeline without peers import neither tool (onnxsim imports torch)."""
    model = ROOT / "golden" / "models" / "resnet_op17.onnx"
    script = (
        "import sys\n"
        "from onnxopt.cli.main import main\n"
        "main(['--help'])\n"
        "main([sys.argv[1], '-p', 'dce', '-o', sys.argv[2], '-q'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'onnxsim', 'onnxoptimizer', "
        "'torch'}))\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(model), str(tmp_path / "o.onnx")],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
