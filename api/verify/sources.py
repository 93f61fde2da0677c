"""Model sources: a path, bytes or a ModelProto, loaded once, sessions made from it."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from typing import Optional

from .common import _CONST_LIMIT, _PROTO_LIMIT
from .options import ModelSource
from .facts import _all_graphs


def _first_line(err: BaseException, limit: int = 400) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Source:
    """A model given as proto, bytes or path: its proto (no external data) and an ORT reference."""

    def __init__(self, model: ModelSource, what: str):
        self.what = what
        self.model = model
        self.tmpdir: Optional[str] = None
        self._proto = None
        self.size = 0  # the proto's serialized size, its large data included

    def key(self) -> tuple:
        m = self.model
        if isinstance(m, (str, os.PathLike)):
            p = os.fspath(m)
            st = os.stat(p)
            return ("path", os.path.abspath(p), st.st_size, st.st_mtime_ns)
        data = bytes(m) if isinstance(m, (bytes, bytearray)) else None
        if data is None:
            if m.ByteSize() >= _PROTO_LIMIT:
                return ("proto", id(m))
            data = m.SerializeToString()
        return ("bytes", len(data), hashlib.blake2b(data, digest_size=16).hexdigest())

    def proto(self):
        """The ModelProto, external data not loaded; a caller's proto is never mutated. One we
        parsed ourselves is read for its structure only (onnxruntime loads :meth:`ort_ref`), so
        its large initializers keep their dims and dtype but drop their data: holding it beside
        the session, and shape inference's copies of it, then cost little."""
        if self._proto is None:
            m = self.model
            if isinstance(m, (str, os.PathLike)):
                from ..io import read_model_proto

                self._proto = read_model_proto(os.fspath(m))
            elif isinstance(m, (bytes, bytearray)):
                from ..io import _parse

                self._proto = _parse(bytes(m), self.what)
            else:
                self._proto = m
                self.size = m.ByteSize()
                return m
            self.size = self._proto.ByteSize()
            _without_big_data(self._proto)
        return self._proto

    def ort_ref(self):
        """What onnxruntime loads: a path, or bytes (a temp file for protos over 2 GB)."""
        m = self.model
        if isinstance(m, (str, os.PathLike)):
            return os.fspath(m)
        if isinstance(m, (bytes, bytearray)):
            return bytes(m)
        if m.ByteSize() < _PROTO_LIMIT:
            return m.SerializeToString()
        import onnx

        copy = onnx.ModelProto()
        copy.CopyFrom(m)  # saving with external data rewrites the proto it is given
        self.tmpdir = tempfile.mkdtemp(prefix="onnxopt-verify-")
        path = os.path.join(self.tmpdir, "model.onnx")
        onnx.save_model(copy, path, save_as_external_data=True, location="model.onnx.data")
        return path

    def close(self) -> None:
        self._proto = None  # read once (inputs, outputs): not kept beside the sessions
        if self.tmpdir:
            import shutil

            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def _without_big_data(proto):
    """``proto`` with the data of its initializers over ``_CONST_LIMIT`` elements (never decoded
    for hints anyway) cleared in place."""
    for g in _all_graphs(proto.graph):
        for t in g.initializer:
            if math.prod(t.dims) > _CONST_LIMIT:
                for f in _DATA_FIELDS:
                    t.ClearField(f)
    return proto


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data",
                "double_data", "uint64_data")
