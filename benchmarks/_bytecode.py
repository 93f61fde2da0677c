"""Compile onnxopt's sources to bytecode before timing it, as ``pip install`` does for a wheel.

An editable install leaves the sources uncompiled, and with ``PYTHONDONTWRITEBYTECODE`` set (as on
the team's machines) every process compiled the whole package again: about 0.2 s per run (85
modules), which no installed peer pays (their ``__pycache__`` came with the install). Timing
onnxopt that way measured the checkout, not the tool a user installs.
"""

from __future__ import annotations

import compileall
import os

PACKAGE_DIRS = ("api", "ir", "passes", "cli")  # pyproject.toml's package-dir folders


def compile_tree(root: str) -> None:
    """Write ``__pycache__`` for every package folder of an onnxopt tree (quietly)."""
    for folder in PACKAGE_DIRS:
        path = os.path.join(root, folder)
        if os.path.isdir(path):
            compileall.compile_dir(path, quiet=1)
