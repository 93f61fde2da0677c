"""The command-line tools to time: the console scripts of the interpreter running the benchmark.

The peers' library calls run as ``sys.executable _worker.py``; a tool's own command is started
from the same environment the same way. ``shutil.which`` can find a version manager's shim first
(pyenv's is a bash script that execs pyenv, about 50 ms a start on this machine): that time is
the shim's, not the tool's.
"""

from __future__ import annotations

import os
import shutil
import sys


def console_script(name: str) -> str | None:
    """The path of the script ``name`` beside ``sys.executable``, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which(name)
