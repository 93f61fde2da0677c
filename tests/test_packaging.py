"""Packaging: the folder-to-package mapping works as a real wheel, from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"onnxopt": "api", "onnxopt.ir": "ir", "onnxopt.passes": "passes", "onnxopt.cli": "cli"}


def _packages_on_disk() -> set[str]:
    found = set()
    for pkg, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    return found


def test_every_subpackage_is_listed_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert conf["package-dir"] == MAPPING
    assert set(conf["packages"]) == _packages_on_disk()


def test_nothing_imports_bare_top_level_names():
    bad = []
    for folder in MAPPING.values():
        for py in (ROOT / folder).rglob("*.py"):
            for line in py.read_text().splitlines():
                s = line.strip()
                if s.startswith(("import ir", "import passes", "import cli", "from ir",
                                 "from passes", "from cli", "import api", "from api")):
                    bad.append(f"{py.relative_to(ROOT)}: {s}")
    assert bad == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(ROOT)], check=True, cwd=out)
    return next(out.glob("onnxopt-*.whl"))


def test_wheel_contents_have_no_top_level_ir_passes_cli(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "onnxopt" in tops
    assert not tops & {"ir", "passes", "cli", "api", "tests"}
    for pkg in _packages_on_disk():
        assert pkg.replace(".", "/") + "/__init__.py" in names


def test_wheel_installs_and_runs_from_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    # system_site_packages would show the *base* interpreter's packages, not those of a venv
    # running this test: point the new venv at the running interpreter's site directories
    # instead (plain path lines: their .pth files, such as our editable install, are not run).
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    (Path(purelib) / "_onnxopt_test_parent_site.pth").write_text("\n".join(parents) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "-q", "--force-reinstall", str(wheel)], check=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    onnxopt = env_dir / "bin" / "onnxopt"
    help_ = subprocess.run([str(onnxopt), "--help"], capture_output=True, text=True,
                           cwd=tmp_path, env=env)
    assert help_.returncode == 0 and "pipeline" in help_.stdout
    probe = subprocess.run([str(py), "-c", "import onnxopt, onnxopt.ir, onnxopt.passes, "
                            "onnxopt.cli; print(onnxopt.__file__)\n"
                            "import importlib.util as u\n"
                            "print([n for n in ('ir', 'passes', 'cli') if u.find_spec(n)])"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    assert str(env_dir) in probe.stdout.splitlines()[0]
    assert probe.stdout.splitlines()[1] == "[]"
    model = ROOT / "golden" / "models" / "resnet_op17.onnx"
    out = tmp_path / "resnet.opt.onnx"
    run = subprocess.run([str(onnxopt), str(model), "-o", str(out), "-q"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert out.exists()


def test_no_submodule_shadows_a_public_function():
    """Importing ``onnxopt.X`` binds the attribute ``X`` of the package to the submodule: a
    submodule named like a public function (``optimize``, ``cut``) would replace it."""
    import onnxopt

    public = {n for n in onnxopt.__all__ if n[0].islower() and not n.startswith("_")}
    modules = {p.stem for p in (ROOT / "api").glob("*.py")} | {
        p.name for p in (ROOT / "api").iterdir() if (p / "__init__.py").exists()}
    assert not public & modules, f"submodules named like public functions: {public & modules}"
