"""The pipeline folder: stage files, ``pipeline.json``, written atomically; and running it.

Everything is written into a temporary folder beside the target, checked there (verification
by composition reads those files), and renamed into place, so a failure at any point leaves
nothing new behind. A target that already holds a pipeline (its ``pipeline.json``) is replaced;
any other non-empty folder is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from ..errors import UsageError

MANIFEST = "pipeline.json"


def stage_file(k: int) -> str:
    return f"stage_{k}.onnx"


def check_target(out_dir: str) -> None:
    """Refuse a target the pipeline cannot replace, before any work is done."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise UsageError(f"{out_dir}: the parent folder does not exist")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise UsageError(f"{out_dir}: exists and is not a folder")
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, MANIFEST)):
            raise UsageError(f"{out_dir}: exists, is not empty and holds no pipeline; choose "
                             "another folder")


def write_atomic(out_dir: str, models: list, manifest: dict,
                 check: Callable[[str], None] | None = None) -> None:
    """Save the stages and the manifest into ``out_dir``; ``check(tmp_dir)`` runs on the files
    before they are moved into place (it raises to stop everything)."""
    check_target(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    tmp = tempfile.mkdtemp(prefix=".onnxopt-cut-", dir=parent)
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; the result gets a new folder's mode
    try:
        fill(tmp, models, manifest)
        if check is not None:
            check(tmp)
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".onnxopt-old-", dir=parent)
            os.rmdir(old)
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def fill(folder: str, models: list, manifest: dict) -> None:
    """Save every stage model and the manifest into an existing folder."""
    from ..io import save

    for k, m in enumerate(models):
        save(m, os.path.join(folder, stage_file(k)))
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def read_manifest(folder: str) -> dict:
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path) as f:
            man = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{folder}: no {MANIFEST} (not a pipeline written by onnxopt cut)"
                         ) from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read ({e})") from None
    if not isinstance(man, dict) or not isinstance(man.get("stages"), list):
        raise UsageError(f"{path}: not a pipeline manifest (no stages)")
    return man


def run_pipeline(folder: str, feeds: dict[str, Any], optimize: bool = True) -> dict:
    """Run the pipeline in ``folder`` on ``feeds`` (model input name -> array); returns the
    model's outputs by name, in the original's order."""
    from .compose import run_stages, session

    man = read_manifest(folder)
    sessions = []
    for st in man["stages"]:
        path = os.path.join(folder, os.path.basename(str(st.get("file", ""))))
        if not os.path.isfile(path):
            raise UsageError(f"{path}: stage file missing")
        sessions.append(session(path, optimize=optimize))
    unknown = [n for n in feeds if n not in man.get("inputs", [])]
    if unknown:
        raise UsageError(f"feeds name unknown input(s) {', '.join(unknown)} (inputs: "
                         f"{', '.join(man.get('inputs', []))})")
    env = run_stages(sessions, feeds)
    return {name: env[name] for name in man.get("outputs", []) if name in env}
