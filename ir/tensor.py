"""Constant tensors: dtype and dims known without decoding, data decoded only when asked.

A tensor is backed by one of: the ``TensorProto`` it was lifted from (kept as is, so lowering an
unchanged tensor writes the same proto back), a region of an external data file (memory-mapped on
first access, after the path has been checked to stay inside the model's folder), or a numpy array
that a pass produced.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ExternalDataError, InvalidModelError
from .types import dtype_name, np_dtype
from .wire import encode_varint, field_starts

# Data types whose numpy holder is wider than the stored element (sub-byte ints, float4).
_PACKED = {21: 0.5, 22: 0.5, 23: 0.5, 25: 0.25, 26: 0.25}


@dataclass(frozen=True)
class ExternalRef:
    """Where an external tensor's bytes are: a checked absolute path, offset and length."""

    path: str
    offset: int
    length: int
    location: str


def resolve_external(base_dir: str, location: str, offset: int, length: Optional[int],
                     tensor_name: str) -> ExternalRef:
    """Check an external data location and return where its bytes are.

    Refused: absolute paths, paths that leave ``base_dir`` (``..`` or through a symlink), missing
    files, and regions past the end of the file.
    """
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")):
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} is absolute")
    base_real = os.path.realpath(base_dir)
    joined = os.path.normpath(os.path.join(base_real, location))
    if joined != base_real and not joined.startswith(base_real + os.sep):
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} escapes the model folder")
    real = os.path.realpath(joined)
    if real != joined:
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data location {location!r} goes through a symlink")
    if not os.path.isfile(real):
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data file {location!r} not found")
    size = os.path.getsize(real)
    if length is None:
        length = size - offset
    if offset < 0 or length < 0 or offset + length > size:
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data region [{offset}, {offset + length}) is past "
            f"the end of {location!r} ({size} bytes)")
    return ExternalRef(real, offset, length, location)


def _int_field(info: dict, key: str, tensor_name: str) -> Optional[int]:
    """An integer entry of external_data (offset, length); None when absent or empty."""
    text = info.get(key)
    if not text:
        return 0 if key == "offset" else None
    try:
        return int(text)
    except ValueError:
        raise ExternalDataError(
            f"tensor {tensor_name!r}: external data {key} {text!r} is not a number") from None


# Bytes per element of each dtype's raw little-endian data (packed types: a fraction).
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8,
             15: 16, 16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 24: 1, **_PACKED}
# The typed field that holds each dtype when raw_data is not used, and entries per element.
_FIELD = {1: ("float_data", 1), 14: ("float_data", 2), 11: ("double_data", 1),
          15: ("double_data", 2), 7: ("int64_data", 1), 12: ("uint64_data", 1),
          13: ("uint64_data", 1), 8: ("string_data", 1),
          **{dt: ("int32_data", 1) for dt in (2, 3, 4, 5, 6, 9, 10, 16, 17, 18, 19, 20, 24)},
          **{dt: ("int32_data", f) for dt, f in _PACKED.items()}}


def _count(n: int, per: float) -> int:
    return n * per if isinstance(per, int) else -(-n * int(per * 4) // 4)


def check_proto_data(proto, dims: Optional[tuple] = None, what: str = "",
                     raw_len: Optional[int] = None, raw_apart: bool = False) -> None:
    """Refuse a TensorProto whose dims are negative or whose inline data does not fit its dims.

    Cheap: nothing is decoded (the length of ``raw_data`` and the count of the typed field are
    compared with what the dims need), so absurd dims are caught before anything allocates.
    External data is checked by :func:`resolve_external` and the caller. ``raw_len``, when the
    caller read it from the serialized bytes, spares copying ``raw_data`` to measure it;
    ``raw_apart``: the proto was parsed without its raw_data, which holds ``raw_len`` bytes.
    """
    dims = tuple(proto.dims) if dims is None else dims
    what = what or f"tensor {proto.name!r}"
    n = 1
    for d in dims:
        if d < 0:
            raise InvalidModelError(f"{what}: dims {list(dims)} include a negative dim")
        n *= d
    if proto.data_location == 1 or proto.HasField("segment"):
        return
    dtype = proto.data_type
    if raw_apart or proto.HasField("raw_data"):
        per = _ITEMSIZE.get(dtype)
        if per is None:
            return
        got, need = len(proto.raw_data) if raw_len is None else raw_len, _count(n, per)
        if got != need:
            raise InvalidModelError(
                f"{what}: raw_data holds {got} bytes, dims {list(dims)} of "
                f"{dtype_name(dtype)} need {need}")
        return
    field = _FIELD.get(dtype)
    if field is None:
        return
    got, need = len(getattr(proto, field[0])), _count(n, field[1])
    if got != need:
        raise InvalidModelError(
            f"{what}: {field[0]} holds {got} values, dims {list(dims)} of "
            f"{dtype_name(dtype)} need {need}" + ("" if got else " (the tensor has no data)"))


_RAW_DATA_FIELD = 9  # TensorProto.raw_data
# Element types whose raw little-endian bytes numpy reads in place, as they are: every type of
# fixed width but the packed sub-byte ones (strings have no raw data).
RAW_IN_PLACE = frozenset(dt for dt in _ITEMSIZE if dt not in _PACKED)


class Tensor:
    """A constant tensor. Create with :meth:`from_proto` (lift) or :meth:`from_numpy` (passes)."""

    __slots__ = ("name", "dtype", "dims", "_proto", "_array", "_external", "doc_string",
                 "_digest", "_raw")

    def __init__(self, name: str, dtype: int, dims: tuple[int, ...]):
        self.name = name
        self.dtype = dtype
        self.dims = tuple(dims)
        self._proto = None
        self._array: Optional[np.ndarray] = None
        self._external: Optional[ExternalRef] = None
        self.doc_string = ""
        self._digest: Optional[str] = None
        self._raw: Optional[memoryview] = None  # raw_data parsed apart from _proto

    @classmethod
    def from_proto(cls, proto, base_dir: Optional[str] = None,
                   raw_len: Optional[int] = None, raw: Optional[memoryview] = None) -> "Tensor":
        """Wrap a TensorProto without decoding it; external data is checked but not read.
        ``raw``: the tensor's raw_data when the proto was parsed without it (a read-only view
        into the file's bytes, which the tensor reads in place).

        Raises :class:`~onnxopt.errors.InvalidModelError` when the data cannot fit the dims
        (see :func:`check_proto_data`) and :class:`~onnxopt.errors.ExternalDataError` for a bad
        external reference.
        """
        t = cls(proto.name, proto.data_type, tuple(proto.dims))
        t._proto = proto
        check_proto_data(proto, t.dims, raw_len=raw_len if raw is None else len(raw),
                          raw_apart=raw is not None)
        t._raw = raw
        if proto.data_location == 1:  # EXTERNAL
            info = {e.key: e.value for e in proto.external_data}
            if base_dir is None:
                raise ExternalDataError(
                    f"tensor {proto.name!r} has external data but the model was not loaded from a "
                    "file; pass a path or load the data first")
            t._external = resolve_external(
                base_dir, info.get("location", ""), _int_field(info, "offset", proto.name),
                _int_field(info, "length", proto.name), proto.name)
            expected = t.nbytes
            if expected is not None and t._external.length < expected:
                raise ExternalDataError(
                    f"tensor {proto.name!r}: external data holds {t._external.length} bytes, "
                    f"dims {list(t.dims)} of {dtype_name(t.dtype)} need {expected}")
        return t

    @classmethod
    def from_numpy(cls, array: np.ndarray, name: str = "", dtype: Optional[int] = None) -> "Tensor":
        """Wrap a numpy array (a pass's result). ``dtype`` overrides for bfloat16/float8 holders."""
        from .types import from_np_dtype

        array = np.asarray(array)
        t = cls(name, dtype if dtype is not None else from_np_dtype(array.dtype), array.shape)
        t._array = array
        return t

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self) -> Optional[int]:
        """Bytes of the raw little-endian data (None for strings)."""
        if self.dtype == 8:
            return None
        if self.dtype in _PACKED:
            return int(np.ceil(self.size * _PACKED[self.dtype]))
        return self.size * np.dtype(np_dtype(self.dtype)).itemsize

    @property
    def is_external(self) -> bool:
        """True when the data lives in an external file."""
        return self._external is not None

    @property
    def external(self) -> Optional[ExternalRef]:
        """The checked external reference, if any."""
        return self._external

    @property
    def raw_apart(self) -> bool:
        """True when the raw data was parsed apart from :attr:`proto` (read in place from the
        file's bytes)."""
        return self._raw is not None

    @property
    def proto(self):
        """The TensorProto this tensor was lifted from (None for pass-made tensors), without its
        raw_data when that was parsed apart (:meth:`to_proto` gives a whole one)."""
        return self._proto

    def numpy(self) -> np.ndarray:
        """Decode to numpy, once (read-only for external data, memory-mapped, and for raw data,
        read in place)."""
        if self._array is None:
            self._array = self.numpy_uncached()
        return self._array

    def numpy_uncached(self) -> np.ndarray:
        """The data as numpy without keeping a decoded copy on the tensor: for a consumer that
        holds the array only for a while (a verification session), so the IR does not grow."""
        if self._array is not None:
            return self._array
        if self._external is not None:
            return self._map_external()
        if self._raw is not None:
            return self._in_place(self._raw)
        p = self._proto
        if p.HasField("raw_data") and self.dtype in RAW_IN_PLACE:
            return self._in_place(p.raw_data)
        from onnx import numpy_helper

        return numpy_helper.to_array(p)

    def _in_place(self, raw) -> np.ndarray:
        """``raw`` (little-endian bytes of a :data:`RAW_IN_PLACE` type) as an array over it."""
        dt = np.dtype(np_dtype(self.dtype)).newbyteorder("<")
        return np.frombuffer(raw, dtype=dt).reshape(self.dims)

    def _map_external(self) -> np.ndarray:
        ref = self._external
        if self.dtype == 8 or self.dtype in _PACKED:
            from onnx import numpy_helper

            with open(ref.path, "rb") as f:
                f.seek(ref.offset)
                data = f.read(ref.length)
            import onnx

            p = onnx.TensorProto()
            p.CopyFrom(self._proto)
            del p.external_data[:]
            p.data_location = 0
            p.raw_data = data
            return numpy_helper.to_array(p)
        dt = np.dtype(np_dtype(self.dtype)).newbyteorder("<")
        if self.size == 0:
            return np.zeros(self.dims, dtype=dt)
        mm = np.memmap(ref.path, dtype=dt, mode="r", offset=ref.offset, shape=(self.size,))
        return mm.reshape(self.dims)

    def raw_bytes(self) -> bytes:
        """The data as little-endian bytes (for identity comparison and digests)."""
        if self._raw is not None:
            return bytes(self._raw)
        if self._proto is not None and self._external is None and self._proto.HasField("raw_data"):
            return self._proto.raw_data
        arr = self.numpy()
        if arr.dtype == object:  # length-prefixed, so element boundaries cannot collide
            parts = [x if isinstance(x, bytes) else str(x).encode() for x in arr.flat]
            return b"".join(len(p).to_bytes(8, "little") + p for p in parts)
        return np.ascontiguousarray(arr).tobytes()

    def digest(self) -> str:
        """A short sha256 of dtype, dims and data, for golden text and deduplication; computed
        once (a tensor's data never changes: a changed constant is a new Tensor), since cse asks
        again of every initializer at every run."""
        if self._digest is None:
            self._digest = self._sha256()
        return self._digest

    def _sha256(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.dtype}:{self.dims}:".encode())
        if self._external is not None:
            with open(self._external.path, "rb") as f:
                f.seek(self._external.offset)
                left = self._external.length
                while left > 0:
                    chunk = f.read(min(left, 1 << 24))
                    if not chunk:
                        break
                    h.update(chunk)
                    left -= len(chunk)
        else:
            h.update(self._raw if self._raw is not None else self.raw_bytes())
        return h.hexdigest()[:16]

    def to_proto(self, name: Optional[str] = None):
        """A TensorProto for lowering; the original proto itself when nothing changed."""
        name = self.name if name is None else name
        if self._proto is not None and self._external is None:
            if self._proto.name == name and self._raw is None:
                return self._proto
            import onnx

            p = onnx.TensorProto()
            p.CopyFrom(self._proto)
            p.name = name
            if self._raw is not None:
                p.raw_data = bytes(self._raw)
            return p
        if self._external is not None and self._array is None or (
                self._external is not None and isinstance(self._array, np.memmap)):
            return self._external_proto(name)
        from onnx import numpy_helper

        arr = self.numpy()
        p = numpy_helper.from_array(arr, name)
        if p.data_type != self.dtype:
            # numpy holders of bfloat16/float8/int4 need onnx's own packing.
            from onnx import helper

            p = helper.make_tensor(name, self.dtype, self.dims, arr.flatten().tolist())
        if self.doc_string:
            p.doc_string = self.doc_string
        return p

    def serialized(self, name: Optional[str] = None) -> tuple:
        """``to_proto(name).SerializeToString()`` as pieces to write one after the other: raw
        data parsed apart is one piece, in place, not copied into a proto first."""
        if self._raw is None:
            return (self.to_proto(name).SerializeToString(),)
        import onnx

        p = onnx.TensorProto()
        p.CopyFrom(self._proto)
        p.name = self.name if name is None else name
        head = p.SerializeToString()
        # Fields are serialized in field-number order: raw_data (9) goes before the first
        # field numbered above it.
        cut = next((t for t, (num, _, _, _) in field_starts(head, 0, len(head))
                    if num > _RAW_DATA_FIELD), len(head))
        n = len(self._raw)
        return (head[:cut], encode_varint(_RAW_DATA_FIELD << 3 | 2) + encode_varint(n),
                self._raw, head[cut:])

    def _external_proto(self, name: str):
        """A proto that still points at the original external file (relative to its folder)."""
        import onnx

        p = onnx.TensorProto()
        p.CopyFrom(self._proto)
        p.name = name
        return p

    def __repr__(self) -> str:
        where = "external" if self._external else ("array" if self._proto is None else
                                                     "raw apart" if self._raw is not None
                                                     else "proto")
        return f"Tensor({self.name!r}, {dtype_name(self.dtype)}{list(self.dims)}, {where})"


__all__ = ["Tensor", "ExternalRef", "resolve_external", "check_proto_data"]
