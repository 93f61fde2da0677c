"""Model sources: a path, bytes, a ModelProto or an IR model lowered with its weights borrowed,
loaded once, sessions made from it."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .common import _CONST_LIMIT, _PROTO_LIMIT
from .options import ModelSource
from .facts import _all_graphs


def _first_line(err: BaseException, limit: int = 400) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass
class BorrowedWeights:
    """A lowered model whose large initializers are graph inputs instead, and the arrays fed
    to them at every run: onnxruntime copies an initializer it is lent (a second copy of the
    weights for as long as the session lives), while it reads a fed array in place."""

    data: bytes
    initializers: dict[str, Any] = field(default_factory=dict)


# Types onnxruntime takes from numpy without conversion.
_BORROWABLE = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13}


def _fed_safely(v) -> bool:
    """A weight some node reads, and only standard ONNX ops: their kernels take any input fed,
    while some contrib kernels (MatMulNBits...) want their weight constant."""
    uses = v.uses()
    return bool(uses) and all(n.domain == "" for n, _ in uses)


def lower_borrowing(model) -> Optional[BorrowedWeights]:
    """Lower an IR model for a verification session, with the main graph's large or external
    initializers (over ``_CONST_LIMIT`` elements or in a data file; numeric; read by standard
    ops only; not graph inputs) turned into graph inputs whose arrays are fed. None when an external
    tensor cannot be lent (a string, a subgraph's): such a model goes through a file."""
    import onnx
    from ..ir import lower_model
    from ..ir.lower import assign_names

    # Lowering names the anonymous values (a weight a pass created has no name) and renames
    # duplicates: name them first, so that the names lent are the names lowered.
    assign_names(model)
    inputs = {v.name for v in model.graph.inputs}
    lend = {id(v.const_value): v.name for v in model.graph.initializers
            if v.name not in inputs and _fed_safely(v) and v.const_value.dtype in _BORROWABLE
            and (v.const_value.size > _CONST_LIMIT or v.const_value.is_external)}
    if any(v.const_value.is_external and id(v.const_value) not in lend
           for g in model.graphs() for v in g.initializers):
        return None
    borrowed: dict[str, np.ndarray] = {}

    def tensor_to_proto(t, name):
        if lend.get(id(t)) != name:
            return t.to_proto(name)
        borrowed[name] = np.ascontiguousarray(t.numpy_uncached())
        return onnx.TensorProto(name=name)  # a stand-in, dropped below

    mp = lower_model(model, tensor_to_proto)
    inits = mp.graph.initializer
    for i in reversed(range(len(inits))):
        if inits[i].name in borrowed:
            del inits[i]
    for name, a in borrowed.items():
        mp.graph.input.append(onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
    return BorrowedWeights(mp.SerializeToString(), borrowed)


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
        if isinstance(m, BorrowedWeights):
            return ("borrowed", id(m))
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
                from ..io import read_model_structure

                # Over this many bytes a tensor has more than _CONST_LIMIT elements of any
                # type, so its data would be dropped below anyway: it is never read.
                self._proto = read_model_structure(os.fspath(m), 16 * _CONST_LIMIT)
                self.size = os.path.getsize(m)  # what parsing it whole would measure
                _without_big_data(self._proto)
                return self._proto
            if isinstance(m, (bytes, bytearray, BorrowedWeights)):
                from ..io import _parse

                data = m.data if isinstance(m, BorrowedWeights) else bytes(m)
                self._proto = _parse(data, self.what)
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
        if isinstance(m, BorrowedWeights):
            return m.data
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

    def borrowed(self) -> dict:
        """The arrays fed to the inputs that stand for lent weights (none unless borrowed)."""
        return self.model.initializers if isinstance(self.model, BorrowedWeights) else {}

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
