"""What the command line names besides the model: input shapes, feeds, output paths.

Each is checked before any work starts, so a bad one is one line and exit 2 (a
:class:`~onnxopt.errors.UsageError`), never a traceback, a hang or a half-written output:
``--input-shape x:1e23`` is not a dim, a FIFO given to ``--inputs`` would block forever, a pickled
``.npz`` is refused unread, and an output folder we cannot write to is found before optimizing.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile

from ..ir.errors import UsageError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
MAX_DIM = 2**62  # larger than any dim a runtime takes (int64 element counts)


def parse_input_shapes(specs: list[str]) -> dict:
    """``["x:1,3,224,224", "ids:batch,seq"]`` -> ``{"x": [1, 3, 224, 224], "ids": ["batch",
    "seq"]}``; a dim is a non-negative integer below 2**62 or a symbol name."""
    out = {}
    for s in specs:
        name, sep, dims = s.rpartition(":")
        if not sep or not name:
            raise UsageError(f"--input-shape {s!r}: expected NAME:D1,D2,...")
        parsed: list = []
        for d in dims.split(",") if dims else []:
            d = d.strip()
            if d.lstrip("-").isdigit():
                v = int(d)
                if v < 0:
                    raise UsageError(f"--input-shape {s!r}: dims must be non-negative")
                if v >= MAX_DIM:
                    raise UsageError(f"--input-shape {s!r}: dim {d} is too large")
                parsed.append(v)
            elif _NAME.match(d):
                parsed.append(d)
            else:
                raise UsageError(f"--input-shape {s!r}: dim {d!r} is neither a non-negative "
                                 "integer nor a name")
        out[name] = parsed
    return out


def read_feeds(path: str) -> list[dict]:
    """The arrays of an ``.npz`` as one feed; refused: non-regular files and pickled objects."""
    import numpy as np

    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"--inputs {path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
        raise UsageError(f"--inputs {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise UsageError(f"--inputs {path}: cannot read ({e.strerror or e})") from None
    if not magic.startswith(b"PK\x03\x04"):  # numpy would take anything else for a pickle
        raise UsageError(f"--inputs {path}: cannot read (not an .npz file)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return [{k: data[k] for k in data.files}]
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise UsageError(f"--inputs {path}: holds pickled objects, which are never "
                             "loaded (save plain arrays)") from None
        raise UsageError(f"--inputs {path}: cannot read ({e})") from None
    except (OSError, EOFError, KeyError) as e:
        raise UsageError(f"--inputs {path}: cannot read ({type(e).__name__}: {e})") from None


def check_output(path: str) -> None:
    """Refuse, before any work, an output we could not write: its folder missing or read-only,
    or a folder where the model file would go (``save`` steps around a folder where a data file
    would go)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: the output folder does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".onnxopt-probe-")
    except OSError as e:
        raise UsageError(f"{path}: cannot write to the output folder "
                         f"({e.strerror or type(e).__name__})") from None
    os.close(fd)
    os.unlink(probe)


def check_reproducer_dir(path: str) -> None:
    """``--reproducer DIR``: a folder, or a name where one can be made; never an existing file."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--reproducer {path}: exists and is not a directory")


__all__ = ["check_output", "check_reproducer_dir", "parse_input_shapes", "read_feeds"]
