"""What the command line names besides the model: input shapes, feeds, output paths.

The options every subcommand shares are declared here once (:func:`add_input_args`,
:func:`add_output_args`), so that ``--input-shape x:1,3`` or ``--seed 3`` is spelled, defaulted
and explained the same way in ``onnxopt``, ``onnxopt verify`` and ``onnxopt cut``.
Each value is checked before any work starts, so a bad one is one line and exit 2 (a
:class:`~onnxopt.errors.UsageError`), never a traceback, a hang or a half-written output:
``--input-shape x:1e23`` is not a dim, a FIFO given to ``--inputs`` would block forever, a pickled
``.npz`` is refused unread, and an output folder we cannot write to is found before optimizing.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import tempfile

from ..ir.errors import UsageError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
MAX_DIM = 2**62  # larger than any dim a runtime takes (int64 element counts)


def add_input_args(p: argparse.ArgumentParser, verification: bool = True) -> None:
    """``--input-shape`` and ``--seed``; with ``verification``, also the comparison's inputs and
    tolerances (``--inputs NPZ``, ``--input-range``, ``--atol``, ``--rtol``). ``cut`` takes no
    verification ones: its ``--inputs`` names tensors and its check is bit for bit."""
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME:DIMS",
                   help="fix an input's dims, e.g. x:1,3,224,224 (repeatable)")
    if verification:
        p.add_argument("--inputs", metavar="NPZ",
                       help="verification inputs (.npz keyed by input name)")
        p.add_argument("--input-range", action="append", default=[], metavar="NAME:LO:HI",
                       help="value range for a generated verification input (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed for generated inputs")
    if verification:
        p.add_argument("--atol", type=float, help="absolute tolerance for float outputs")
        p.add_argument("--rtol", type=float, help="relative tolerance for float outputs")


def add_output_args(p: argparse.ArgumentParser, json_of: str = "", quiet: bool = False,
                    verbose: bool = False) -> None:
    """``--json`` (printing ``json_of`` as JSON, when given), ``-q/--quiet`` (and
    ``-v/--verbose``, exclusive with it) and ``--debug`` (read by ``main`` from the raw
    arguments, declared so that every parser accepts it)."""
    if json_of:
        p.add_argument("--json", action="store_true", help=f"print {json_of} as JSON")
    if quiet or verbose:
        g = p.add_mutually_exclusive_group()
        g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
        if verbose:
            g.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


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


def parse_input_ranges(specs: list[str]) -> dict:
    """``["x:0:1"]`` -> ``{"x": (0.0, 1.0)}`` (the name may hold colons: the last two split)."""
    out = {}
    for s in specs:
        parts = s.rsplit(":", 2)
        try:
            out[parts[0]] = (float(parts[1]), float(parts[2]))
        except (IndexError, ValueError):
            raise UsageError(f"--input-range {s!r}: expected NAME:LO:HI") from None
    return out


def verify_options(args: argparse.Namespace, input_shapes: bool = False):
    """VerifyOptions from the options :func:`add_input_args` declares (``--input-shape`` too
    when ``input_shapes``: the optimize command hands the shapes to ``optimize()`` instead)."""
    from ..verify import VerifyOptions

    vopts = VerifyOptions(seed=args.seed)
    if input_shapes:
        vopts.input_shapes = parse_input_shapes(args.input_shape)
    vopts.input_ranges = parse_input_ranges(args.input_range)
    vopts.atol_override, vopts.rtol_override = args.atol, args.rtol
    if args.inputs:
        vopts.feeds = read_feeds(args.inputs)
    return vopts


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


def check_model_path(path: str) -> None:
    """Refuse, before any work, a model path that is missing or a folder (in ``load``'s words)."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a model file")


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


__all__ = ["add_input_args", "add_output_args", "check_model_path", "check_output",
           "check_reproducer_dir", "parse_input_ranges", "parse_input_shapes", "read_feeds",
           "verify_options"]
