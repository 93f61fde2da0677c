"""Reading and writing model files: the only place onnxopt touches the filesystem for models.

Loading refuses anything that is not a well-formed ONNX model with a specific error. Saving is
atomic (temporary files in the target folder, then rename, data file before model file), keeps
weights out of memory where it can, and switches to external data when the model would pass
protobuf's 2 GB limit.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Optional, Union

from .audit import MAX_DEPTH, audit
from .errors import InvalidModelError, ModelLoadError, UsageError
from .ir.wire import encode_varint, read_varint, strict_field_starts

# Protobuf cannot serialize a message of 2 GiB or more; leave room for the graph itself.
_INLINE_LIMIT = 2**31 - 2**26
# Tensors at least this big go to the data file when saving with external data.
_EXTERNAL_MIN_BYTES = 1024


def _parse(data: bytes, what: str):
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise ModelLoadError(f"{what}: empty file, not an ONNX model")
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "MaxDepth" in detail or "recursion" in detail.lower():
            raise ModelLoadError(
                f"{what}: messages are nested too deeply for protobuf to read (more than 100 "
                "levels, about 30 nested If/Loop/Scan bodies)") from e
        detail = detail.split("': ", 1)[-1] if detail.startswith("Error parsing") else detail
        raise ModelLoadError(f"{what}: not an ONNX model (protobuf parse failed: {detail}; "
                             "the file is truncated, corrupt or not a model)") from e
    return m


def _read_bytes(path: str) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelLoadError(f"{path}: is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):  # a pipe or device could block or never end
        raise ModelLoadError(f"{path}: not a regular file")
    size = st.st_size
    if size >= 2**31:
        raise ModelLoadError(f"{path}: {size / 2**30:.1f} GB in one protobuf is over the 2 GB "
                             "limit; store the weights as external data")
    try:
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > size:
        raise ModelLoadError(f"{path}: the file grew while it was being read")
    return data


def read_model_proto(path: str):
    """Read a ModelProto from a file without loading external data."""
    return _parse(_read_bytes(path), path)


_STRUCTURE_MIN_FILE = 16 << 20  # below this, parsing everything costs less than the walk


def read_model_structure(path: str, drop_over: int):
    """Read a ModelProto without the ``raw_data`` of main-graph initializers over ``drop_over``
    bytes: the file is memory-mapped and those bytes are stepped over, never read into memory,
    so a reader of the structure (inputs, types, small constants) costs what the structure
    costs. Small files, and layouts the walk does not expect, are read whole."""
    import mmap

    try:
        size = os.stat(path).st_size
        if size < _STRUCTURE_MIN_FILE or size >= 2**31:
            raise ValueError("read whole")
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as b:
            data, _, dropped = _split_weights(b, drop_over, views=False)
            if not dropped:  # data is the mapping itself, closed below: nothing to step over
                raise ValueError("read whole")
    except (OSError, ValueError, IndexError):
        return read_model_proto(path)
    return _parse(data, path)


def check_header(proto, what: str, base_dir: Optional[str] = None,
                 problems: Optional[list] = None) -> None:
    """Refuse models whose header no runtime accepts (IR version, opset imports), then anything
    :mod:`onnxopt.audit` refuses (nodes, control flow, tensors, external data under
    ``base_dir``)."""
    import onnx

    if not proto.HasField("graph"):
        raise ModelLoadError(f"{what}: not an ONNX model (no graph)")
    if proto.ir_version <= 0:
        raise ModelLoadError(f"{what}: not an ONNX model (no ir_version)")
    if proto.ir_version > onnx.IR_VERSION:
        raise InvalidModelError(f"{what}: IR version {proto.ir_version} is newer than this onnx "
                                f"package supports ({onnx.IR_VERSION})")
    if proto.ir_version >= 3 and not len(proto.opset_import):
        raise InvalidModelError(f"{what}: the model imports no opset")
    latest = onnx.defs.onnx_opset_version()
    for o in proto.opset_import:
        if (o.domain or "") in ("", "ai.onnx") and not 0 < o.version <= latest:
            raise InvalidModelError(
                f"{what}: imports ONNX opset {o.version}, which does not exist (this onnx "
                f"package knows opsets 1 to {latest})")
    audit(proto, what, base_dir, problems)


_MAX_DEPTH = MAX_DEPTH


def load(source: Union[str, os.PathLike, bytes, "object"], base_dir: Optional[str] = None,
         *, problems: Optional[list] = None):
    """Load a model file, bytes, or ModelProto into the IR (external data is memory-mapped).

    Raises :class:`~onnxopt.errors.ModelLoadError` for unreadable input and
    :class:`~onnxopt.errors.InvalidModelError` for malformed models. With a ``problems`` list,
    node-level problems the IR can still hold (an attribute the op's schema lacks, a Loop body of
    the wrong arity) are appended there as (kind, message) instead (``onnxopt check`` lists them).
    """
    weights = Weights(None, {})
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        proto, weights = _parse_apart(_read_bytes(path), path)
        what = path
        base_dir = base_dir or os.path.dirname(os.path.abspath(path))
    elif isinstance(source, (bytes, bytearray)):
        proto, weights = _parse_apart(bytes(source), "<bytes>")
        what = "<bytes>"
    elif hasattr(source, "SerializeToString") and hasattr(source, "graph"):
        proto = source
        what = "<ModelProto>"
    else:
        raise UsageError(f"cannot load a model from {type(source).__name__}")
    if problems is None and AUDIT_IN_CHILD and len(proto.graph.node) >= AUDIT_CHILD_MIN_NODES:
        return _lift_beside_audit(proto, what, base_dir, weights)
    check_header(proto, what, base_dir, problems)
    return _lift(proto, what, base_dir, weights)


@dataclass
class Weights:
    """What loading learnt of the main graph's initializers from the file's bytes: the length
    of each one's raw_data, in order (None: the layout is unusual, measure the protos), and the
    raw_data kept apart from the parsed protos, by initializer index (views into the file's
    bytes: see :func:`_parse_apart`)."""

    raw_lengths: Optional[list]
    apart: dict


# Main-graph initializers with at least this much raw_data are parsed without it (_parse_apart).
APART_MIN_BYTES = 1 << 16


def _parse_apart(data: bytes, what: str):
    """The model in ``data`` parsed without the big raw_data of its main-graph initializers,
    which the tensors read from ``data`` itself: parsing them would hold each weight twice,
    once in the file's bytes and once in the message. Layouts the walk does not expect are
    parsed whole."""
    try:
        stripped, lengths, apart = _split_weights(data, APART_MIN_BYTES)
    except (IndexError, ValueError):  # the layout, whatever the threshold: no lengths either
        return _parse(data, what), Weights(None, {})
    if not apart:
        return _parse(data, what), Weights(lengths, {})
    try:
        return _parse(stripped, what), Weights(lengths, apart)
    except ModelLoadError:
        return _parse(data, what), Weights(lengths, {})  # raises the whole file's own error


# Fields of TensorProto the walk reads: data_type, segment, raw_data, data_location.
_T_DTYPE, _T_SEGMENT, _T_RAW, _T_LOCATION = 2, 3, 9, 14


def _split_weights(data, over: int, views: bool = True) -> tuple[bytes, list, dict]:
    """(``data`` without the raw_data of main-graph initializers holding at least ``over``
    bytes of a type read in place (``Tensor.RAW_IN_PLACE``), the raw_data length of every
    initializer, {index: view of the raw data left out}, or {index: None} without ``views``: a
    mapped file is closed after). ``data`` itself when nothing is left out. Raises ValueError
    on a layout it does not expect (two graph fields, a field running past its message)."""
    from .ir.tensor import RAW_IN_PLACE

    graphs = [(t, s, e) for t, (num, wt, s, e) in strict_field_starts(data, 0, len(data))
              if num == 7 and wt == 2]
    if len(graphs) != 1:  # repeated graph fields merge; leave that to the whole parse
        raise ValueError("graph fields")
    graph_tag, gs, ge = graphs[0]
    lengths, apart = [], {}
    cuts = []  # (start, end, what replaces data[start:end]) of each initializer set apart
    for t, (num, wt, s, e) in strict_field_starts(data, gs, ge):
        if num != 5 or wt != 2:  # not GraphProto.initializer
            continue
        tensor_fields = list(strict_field_starts(data, s, e))
        raw = dtype = None
        plain = True
        for _, (fnum, fwt, fs, fe) in tensor_fields:
            if fnum == _T_RAW and fwt == 2:
                raw = (fs, fe)  # the last one wins, as in parsing
            elif fnum == _T_DTYPE and fwt == 0:
                dtype = read_varint(data, fs)[0]
            elif fnum in (_T_SEGMENT, _T_LOCATION):
                plain = False
        lengths.append(None if raw is None else raw[1] - raw[0])
        if raw is None or raw[1] - raw[0] < over or not plain or dtype not in RAW_IN_PLACE:
            continue
        tensor = b"".join(data[ft:fe] for ft, (fnum, fwt, _, fe) in tensor_fields
                          if not (fnum == _T_RAW and fwt == 2))
        cuts.append((t, e, data[t:read_varint(data, t)[1]] + encode_varint(len(tensor)) + tensor))
        apart[len(lengths) - 1] = memoryview(data)[raw[0]:raw[1]] if views else None
    if not cuts:
        return data, lengths, apart
    parts, at = [], gs
    for start, end, field in cuts:
        parts += [data[at:start], field]
        at = end
    graph = b"".join(parts + [data[at:ge]])
    return b"".join((data[:graph_tag], encode_varint(7 << 3 | 2), encode_varint(len(graph)),
                     graph, data[ge:])), lengths, apart


# A one-shot process (the CLI) sets this: a big model's audit runs in a forked child while the
# parent lifts it (see onnxopt.forked), and the lift waits for the audit's verdict. A library
# caller audits first, in-process.
AUDIT_IN_CHILD = False
AUDIT_CHILD_MIN_NODES = 5000  # ~50 ms of auditing, against a fork of a few milliseconds


def _lift(proto, what: str, base_dir, weights: Weights):
    from .ir.lift import lift_model

    try:
        return lift_model(proto, base_dir, weights.raw_lengths, weights.apart)
    except RecursionError as e:
        raise InvalidModelError(f"{what}: the model is nested too deeply to read") from e


def _lift_beside_audit(proto, what: str, base_dir, weights: Weights):
    """Lift while a forked child audits; the audit's refusal wins over anything the lift
    raised (it comes first in-process). A child that fails, dies or stalls is audited again
    here."""
    from .forked import Forked, can_fork

    if not can_fork():
        check_header(proto, what, base_dir)
        return _lift(proto, what, base_dir, weights)
    child = Forked(lambda: _audit_verdict(proto, what, base_dir))
    try:
        model = _lift(proto, what, base_dir, weights)
    except Exception:
        _raise_audit(child, proto, what, base_dir)
        raise
    except BaseException:
        child.abandon()
        raise
    _raise_audit(child, proto, what, base_dir)
    return model


def _audit_verdict(proto, what: str, base_dir) -> Optional[Exception]:
    """In the child: None when the audit passes, else its refusal (an onnxopt error is sent
    back to be raised in the parent; anything else fails the child)."""
    try:
        check_header(proto, what, base_dir)
    except (ModelLoadError, InvalidModelError) as e:
        return type(e)(str(e))
    return None


def _raise_audit(child, proto, what: str, base_dir) -> None:
    ok, refusal = child.collect()
    if not ok:
        check_header(proto, what, base_dir)
    elif refusal is not None:
        raise refusal


def tensor_bytes(model) -> int:
    """Bytes of every initializer of the model's graphs (external ones included)."""
    total = 0
    for g in model.graphs():
        for v in g.initializers:
            total += v.const_value.nbytes or 0
    return total


class _ExternalWriter:
    """Streams tensor data into one data file and hands out protos that point at it."""

    def __init__(self, f, location: str):
        self.f = f
        self.location = location
        self.offset = 0

    def __call__(self, tensor, name: str):
        import onnx

        nbytes = tensor.nbytes
        if nbytes is None or nbytes < _EXTERNAL_MIN_BYTES:
            p = tensor.to_proto(name)
            if p.data_location == onnx.TensorProto.EXTERNAL:  # small but external: inline it
                from onnx import numpy_helper

                p = numpy_helper.from_array(tensor.numpy(), name)
            return p
        # Align each tensor so the data file can be memory-mapped efficiently.
        pad = (-self.offset) % 64
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        start = self.offset
        ref = tensor.external
        if ref is not None and tensor._array is None or isinstance(tensor._array, __import__(
                "numpy").memmap):
            with open(ref.path, "rb") as src:
                src.seek(ref.offset)
                left = ref.length
                while left:
                    chunk = src.read(min(left, 1 << 24))
                    if not chunk:
                        break
                    self.f.write(chunk)
                    left -= len(chunk)
            length = ref.length
        else:
            data = tensor.raw_bytes()
            self.f.write(data)
            length = len(data)
        self.offset += length
        p = onnx.TensorProto()
        p.name = name
        p.data_type = tensor.dtype
        p.dims.extend(tensor.dims)
        p.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", self.location), ("offset", str(start)),
                     ("length", str(length))):
            e = p.external_data.add()
            e.key, e.value = k, v
        return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp(folder: str, suffix: str, mode: int) -> tuple[int, str]:
    """A temporary file in ``folder`` (so the final rename stays on one filesystem)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".onnxopt-", suffix=suffix)
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600; the result gets the mode a new file would
    except OSError:
        pass
    return fd, tmp


def _old_locations(path: str) -> set:
    """External data locations the model file currently at ``path`` reads (empty if none)."""
    try:
        if not os.path.isfile(path) or os.path.getsize(path) >= 2**31:
            return set()
        import onnx

        with open(path, "rb") as f:
            m = onnx.ModelProto.FromString(f.read())
    except Exception:  # noqa: BLE001 - an unreadable old file protects nothing
        return set()
    out = set()
    stack = [m.graph]
    while stack:
        g = stack.pop()
        for t in g.initializer:
            if t.data_location == 1:
                out.update(e.value for e in t.external_data if e.key == "location")
        for n in g.node:
            for a in n.attribute:
                if a.HasField("g"):
                    stack.append(a.g)
                stack.extend(a.graphs)
    return out


def _data_location(path: str, folder: str) -> tuple[str, set]:
    """(location for the new data file, locations of ours the old output used).

    The new data never overwrites a file the existing output reads: with the default name taken
    by the previous output, ``<name>.1.data`` is used (and the other way round), so that until
    the model file is renamed into place, the previous output stays whole.
    """
    name = os.path.basename(path)
    candidates = [name + ".data"] + [f"{name}.{i}.data" for i in range(1, 4)]
    if not any(os.path.exists(os.path.join(folder, c)) for c in candidates):
        return candidates[0], set()
    old = _old_locations(path)
    ours = {c for c in candidates if c in old}
    for c in candidates:  # never one the old output reads, nor a folder (rename cannot replace)
        if c not in old and not os.path.isdir(os.path.join(folder, c)):
            return c, ours
    raise UsageError(f"{path}: the existing file reads all of {', '.join(candidates)}")


def _external_paths(model) -> set:
    out = set()
    for g in model.graphs():
        for v in g.initializers:
            ref = v.const_value.external
            if ref is not None:
                out.add(os.path.realpath(ref.path))
    return out


def save(model, path: Union[str, os.PathLike], external: Optional[bool] = None, *,
         serialized: Optional[bytes] = None) -> None:
    """Write a model atomically. ``external``: None decides (over 2 GB or already external).
    ``serialized``: ``lower_model(model).SerializeToString()`` when the caller already has it
    (``OptimizeResult.serialized``); written as is unless the weights go to a data file.

    With external data the weights go to ``<file name>.data`` beside the model. Every file is
    written to a temporary in the target folder and renamed into place, the data before the
    model; the data file never replaces one the existing output reads (it alternates with
    ``<file name>.1.data``), so an interruption at any point leaves the previous output whole.
    A data file of ours that the previous output read is removed once the new model is in place,
    unless the model being saved still reads from it.
    """
    from .ir.lower import lower_model

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: the output folder does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory")
    reads = _external_paths(model)
    if os.path.realpath(path) in reads:
        raise UsageError(f"{path}: the model reads its weights from this file; write elsewhere")
    if external is None:
        external = tensor_bytes(model) >= _INLINE_LIMIT or bool(reads)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    tmp_files: list[str] = []
    stale: set = set()
    try:
        data_final = None
        if external:
            location, stale = _data_location(path, folder)
            data_final = os.path.join(folder, location)
            fd, data_tmp = _mkstemp(folder, ".data.tmp", mode)
            tmp_files.append(data_tmp)
            with os.fdopen(fd, "wb") as f:
                proto = lower_model(model, _ExternalWriter(f, location))
                f.flush()
                os.fsync(f.fileno())
        fd, model_tmp = _mkstemp(folder, ".onnx.tmp", mode)
        tmp_files.append(model_tmp)
        with os.fdopen(fd, "wb") as f:
            if external:
                f.write(proto.SerializeToString())
            elif serialized is not None:
                f.write(serialized)
            else:  # the weights one at a time: no whole copy of the model in memory
                from .splice import write_model

                write_model(model, f)
            f.flush()
            os.fsync(f.fileno())
        if data_final is not None:
            os.replace(tmp_files[0], data_final)
        os.replace(model_tmp, path)
        tmp_files.clear()
    finally:
        for t in tmp_files:
            try:
                os.unlink(t)
            except OSError:
                pass
    for loc in stale:  # the previous output's data, which nothing of ours reads any more
        p = os.path.join(folder, loc)
        if os.path.realpath(p) not in reads and p != data_final:
            try:
                os.unlink(p)
            except OSError:
                pass


__all__ = ["load", "save", "read_model_proto", "check_header"]
