"""Numerical verification: does the optimized model compute what the original computes?

Both models run in onnxruntime (CPU, graph optimizations disabled so the runtime's own fusions
cannot hide a broken graph) on the same seeded inputs, and every output is compared with
tolerances suited to its dtype.

Inputs are generated so the model can actually take them (or come from the user):

- every symbolic input dim (``dim_param``, unknown dims, ``-1``) is bound to two or more values,
  and the bindings differ in every symbol where the model allows it, so a pass that breaks
  dynamic shapes is caught. Candidate bindings are tried in a fixed order and only those the
  *original* runs at are kept (its outputs are cached). Batch-like symbols (named like a batch,
  or dim 0 of an input of rank >= 2) take 1, 2, 3...; others walk a ladder of sizes;
- an integer that reaches the indices of Gather/GatherElements/GatherND/Scatter*/OneHot (directly
  or through Cast, Reshape, Unsqueeze, Squeeze, Flatten, ...) stays inside the table, whose size
  comes from the static (or bound) shape of the data input;
- an integer tensor compared against a constant range (one-hot written as Equal) stays in that
  range; a scalar compared against constants takes one of those constants;
- masks (name contains "mask") are mostly 1 with the first position set, bools are 0/1;
- other integers are small and non-negative (uint8 spans 0..255), floats are standard normal;
- ``VerifyOptions.input_ranges`` overrides all of that per input, ``feeds`` replaces it.

:func:`verify` never raises for a mismatch: it returns a :class:`VerifyReport` whose status is
"ok", "failed" (the optimized model differs or does not run) or "not verified" (onnxruntime
cannot run the original). :class:`Verifier` keeps the original's session and outputs for
several checks (bisection).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .errors import UsageError

# ONNX TensorProto.DataType values used here.
_FLOAT, _UINT8, _INT8, _STRING, _BOOL = 1, 2, 3, 8, 9
_FLOAT16, _DOUBLE, _COMPLEX64, _COMPLEX128, _BFLOAT16 = 10, 11, 14, 15, 16
_FLOAT8 = (17, 18, 19, 20)
_INEXACT = frozenset({1, 10, 11, 14, 15, 16, 17, 18, 19, 20, 23, 24})

_DEFAULT_ATOL = {_FLOAT: 1e-4, _FLOAT16: 1e-2, _BFLOAT16: 2e-2, _DOUBLE: 1e-7,
                 _COMPLEX64: 1e-4, _COMPLEX128: 1e-7, 17: 0.125, 18: 0.125, 19: 0.25,
                 20: 0.25, 23: 0.5, 24: 1.0}
_DEFAULT_RTOL = {_FLOAT: 1e-3, _FLOAT16: 1e-2, _BFLOAT16: 2e-2, _DOUBLE: 1e-6,
                 _COMPLEX64: 1e-3, _COMPLEX128: 1e-6, 17: 0.125, 18: 0.125, 19: 0.25,
                 20: 0.25, 23: 0.5, 24: 1.0}

# Values tried for symbolic dims, in order. Batch-like symbols take small values; the size ladder
# starts small (fast, fits models with a maximum length) and then covers what stricter models
# need: multiples of 32 for strided CNNs, 576/320/256/512 for audio frames, and a few odd sizes.
_BATCH_LADDER = (1, 2, 3, 4)
_SIZE_LADDER = (16, 32, 64, 96, 128, 576, 320, 256, 512, 48, 192, 384, 640, 160, 224, 8, 24,
                4, 1, 2, 3, 1024)
_MAX_CANDIDATES = 48        # candidate bindings tried on the original at most
_FREE_TRIES = 6             # values tried per symbol when looking for the free symbols
_PROBE_SECONDS = 120.0      # stop looking for more bindings after this long
_INFER_LIMIT = 256 << 20    # run onnx shape inference on models smaller than this
_CONST_LIMIT = 1 << 16      # decode constants up to this many elements when reading hints
_PROTO_LIMIT = 2**31 - 2**26  # serialize protos below this; above, go through a temp file
_FEED_LIMIT = 1 << 30        # bytes allocated generating inputs, over all bindings tried
_SAMPLE_RATE_NAMES = ("sr", "sample_rate", "sampling_rate", "samplerate")


@dataclass
class VerifyOptions:
    """How to verify. Tolerances are per ONNX dtype; integer and bool outputs compare exactly."""

    seed: int = 0
    bindings: Optional[list[dict[str, int]]] = None  # explicit symbolic-dim bindings
    feeds: Optional[list[dict[str, np.ndarray]]] = None  # user data; replaces generated inputs
    input_shapes: dict[str, list] = field(default_factory=dict)  # NAME -> dims (ints or symbols)
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # NAME -> (lo, hi)
    atol: dict[int, float] = field(default_factory=lambda: dict(_DEFAULT_ATOL))
    rtol: dict[int, float] = field(default_factory=lambda: dict(_DEFAULT_RTOL))
    atol_override: Optional[float] = None  # for every float output
    rtol_override: Optional[float] = None
    min_bindings: int = 2

    def tolerances(self, dtype: int) -> tuple[float, float]:
        """(atol, rtol) for an output of this ONNX dtype."""
        atol = self.atol.get(dtype, 0.0)
        rtol = self.rtol.get(dtype, 0.0)
        if dtype in _INEXACT:
            if self.atol_override is not None:
                atol = self.atol_override
            if self.rtol_override is not None:
                rtol = self.rtol_override
        return float(atol), float(rtol)


@dataclass
class OutputDiff:
    """One output at one binding.

    ``max_rel`` is the largest ``|a - b| / max(|a|, |b|)`` over elements where that denominator
    is above atol (so a value against 0 counts as 100 %, and noise around 0 does not count).
    """

    name: str
    binding: dict
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


@dataclass
class VerifyReport:
    """The verdict: status "ok" | "failed" | "not verified", with a one-line reason."""

    status: str
    reason: str
    bindings: list[dict[str, int]]
    diffs: list[OutputDiff]
    seconds: float

    @property
    def verified(self) -> bool:
        return self.status == "ok"


ModelSource = Union[str, os.PathLike, bytes, bytearray, Any]


def verify(original: ModelSource, optimized: ModelSource,
           options: Optional[VerifyOptions] = None) -> VerifyReport:
    """Run both models (ModelProto, serialized bytes or file path) and compare their outputs."""
    return Verifier(original, options).check(optimized)


# --------------------------------------------------------------------------------------------
# Model sources


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
                from .io import read_model_proto

                self._proto = read_model_proto(os.fspath(m))
            elif isinstance(m, (bytes, bytearray)):
                from .io import _parse

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


def _session(ref):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # A load failure comes back as an exception and ends up in the report (one line); the
    # runtime's coloured log would repeat it on stderr, even when onnxopt succeeds.
    so.log_severity_level = 4
    ort.set_default_logger_severity(3)
    return ort.InferenceSession(ref, so, providers=["CPUExecutionProvider"])


def _run_options():
    import onnxruntime as ort

    ro = ort.RunOptions()
    # Failures come back as exceptions and end up in the report; the runtime's own error log
    # would repeat them on stderr for every probed binding.
    ro.log_severity_level = 4
    return ro


# --------------------------------------------------------------------------------------------
# What the graph says about its inputs


def _all_graphs(g):
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.HasField("g"):
                yield from _all_graphs(a.g)
            for sg in a.graphs:
                yield from _all_graphs(sg)


def _dims_of(type_proto) -> Optional[list]:
    """Dims of a tensor type: int, symbol string, or None (unknown); None for unknown rank."""
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    out: list = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param and d.dim_param != "?":
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


_PASS_VALUES = {  # op -> input positions whose values flow unchanged (as a set) to the outputs
    "Identity": (0,), "Cast": (0,), "CastLike": (0,), "Reshape": (0,), "Unsqueeze": (0,),
    "Squeeze": (0,), "Flatten": (0,), "Expand": (0,), "Transpose": (0,), "Tile": (0,),
    "Slice": (0,), "Split": (0,), "Gather": (0,), "GatherElements": (0,), "Where": (1, 2),
    "Concat": None,  # every input
}
_BACK_VALUES = ("Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand")
_COMPARE = ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")


@dataclass
class _Hints:
    index_hi: list = field(default_factory=list)   # exclusive upper bounds: int or symbol
    compared: list = field(default_factory=list)   # arrays of constants the input is compared to


class _GraphFacts:
    """Consumers, producers, constants and shapes by value name, over all (sub)graphs."""

    def __init__(self, graph):
        from onnx import helper, numpy_helper

        self.consumers: dict = defaultdict(list)
        self.producer: dict = {}
        self.const: dict = {}
        self.shape: dict = {}
        self._decoded: dict = {}
        for g in _all_graphs(graph):
            for t in g.initializer:
                self.const[t.name] = t
                self.shape[t.name] = [int(d) for d in t.dims]
            for vi in (*g.input, *g.output, *g.value_info):
                dims = _dims_of(vi.type)
                if dims is not None and vi.name not in self.shape:
                    self.shape[vi.name] = dims
            for n in g.node:
                for i, x in enumerate(n.input):
                    if x:
                        self.consumers[x].append((n, i))
                for o in n.output:
                    if o:
                        self.producer[o] = n
                if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
                    value = self._constant_attr(n, helper, numpy_helper)
                    if value is not None:
                        self.const[n.output[0]] = value
                        self.shape[n.output[0]] = list(np.shape(value) if isinstance(
                            value, np.ndarray) else value.dims)

    @staticmethod
    def _constant_attr(n, helper, numpy_helper):
        for a in n.attribute:
            if a.name == "value":
                return a.t
            if a.name == "value_int":
                return np.array(a.i, np.int64)
            if a.name == "value_ints":
                return np.array(list(a.ints), np.int64)
            if a.name == "value_float":
                return np.array(a.f, np.float32)
            if a.name == "value_floats":
                return np.array(list(a.floats), np.float32)
        return None

    def _decode(self, name: str) -> Optional[np.ndarray]:
        if name in self._decoded:
            return self._decoded[name]
        from onnx import TensorProto, numpy_helper

        value = self.const[name]
        out = None
        if isinstance(value, np.ndarray):
            out = value
        elif (value.data_location != TensorProto.EXTERNAL and value.data_type != _STRING
              and math.prod(value.dims) <= _CONST_LIMIT):
            try:
                out = np.asarray(numpy_helper.to_array(value))
            except Exception:  # noqa: BLE001 - an odd encoding only costs us a hint
                out = None
        self._decoded[name] = out
        return out

    def const_value(self, name: str, depth: int = 0) -> Optional[np.ndarray]:
        """The values of ``name`` when it is a (small) constant, seen through reshapes/casts."""
        if name in self.const:
            return self._decode(name)
        n = self.producer.get(name)
        if n is None or depth > 8 or n.domain not in ("", "ai.onnx"):
            return None
        if n.op_type in _BACK_VALUES:
            return self.const_value(n.input[0], depth + 1)
        if n.op_type == "Range" and len(n.input) == 3:
            parts = [self.const_value(x, depth + 1) for x in n.input]
            if all(p is not None and p.size == 1 for p in parts):
                start, limit, delta = (p.ravel()[0].item() for p in parts)
                if delta and abs((limit - start) / delta) <= _CONST_LIMIT:
                    return np.arange(start, limit, delta)
        if n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value":
                    from onnx import numpy_helper

                    return np.asarray(numpy_helper.to_array(a.t)).ravel()
            return np.zeros(1, np.float32)
        return None

    def dim(self, name: str, axis: int):
        """Static (int) or symbolic (str) size of ``name`` along ``axis``; None when unknown."""
        shape = self.shape.get(name)
        if shape is None:
            return None
        if axis < 0:
            axis += len(shape)
        if not 0 <= axis < len(shape):
            return None
        d = shape[axis]
        if isinstance(d, int) and d <= 0:
            return None
        return d

    def hints(self, name: str) -> _Hints:
        """Follow ``name`` forward through value-preserving ops to the ops that constrain it."""
        h = _Hints()
        seen: set = set()
        stack = [name]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            for n, i in self.consumers.get(v, ()):
                if n.domain not in ("", "ai.onnx"):
                    continue
                op = n.op_type
                attrs = {a.name: a for a in n.attribute}
                axis = attrs["axis"].i if "axis" in attrs else 0
                if op in ("Gather", "GatherElements", "ScatterElements", "Scatter") and i == 1:
                    d = self.dim(n.input[0], axis)
                    if d is not None:
                        h.index_hi.append(d)
                elif op in ("GatherND", "ScatterND") and i == 1:
                    b = attrs["batch_dims"].i if "batch_dims" in attrs else 0
                    data = self.shape.get(n.input[0])
                    k = self.dim(v, -1)
                    if data is not None:
                        stop = b + k if isinstance(k, int) else len(data)
                        h.index_hi.extend(d for d in data[b:stop]
                                          if d is not None and not (isinstance(d, int) and d <= 0))
                elif op == "OneHot" and i == 0 and len(n.input) > 1:
                    depth = self.const_value(n.input[1])
                    if depth is not None and depth.size == 1 and int(depth.ravel()[0]) > 0:
                        h.index_hi.append(int(depth.ravel()[0]))
                elif op in _COMPARE and len(n.input) == 2:
                    values = self.const_value(n.input[1 - i])
                    if values is not None and values.size:
                        h.compared.append(values.ravel())
                elif op in _PASS_VALUES:
                    pos = _PASS_VALUES[op]
                    if pos is None or i in pos:
                        stack.extend(o for o in n.output if o)
        return h


# --------------------------------------------------------------------------------------------
# Inputs


@dataclass
class _Input:
    name: str
    dtype: int
    dims: list          # int (fixed) or str (symbol)
    hints: _Hints


def _np_dtype(dtype: int):
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(dtype)


def _onnx_dtype(np_dtype) -> int:
    from onnx import helper

    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))
    except (TypeError, KeyError, ValueError):
        return 0


def _is_float(dtype: int) -> bool:
    return dtype in _INEXACT


def _resolve(d, binding: dict) -> Optional[int]:
    if isinstance(d, int):
        return d
    v = binding.get(d)
    return int(v) if v is not None else None


def _index_range(inp: _Input, binding: dict, scalar: bool) -> Optional[tuple[int, int]]:
    """[lo, hi) for an index-like input, or None."""
    lo, hi = None, None
    bounds = [b for b in (_resolve(d, binding) for d in inp.hints.index_hi) if b]
    if bounds:
        lo, hi = 0, min(bounds)
    if not scalar and not _is_float(inp.dtype):  # float thresholds are no range
        for values in inp.hints.compared:
            uniq = np.unique(values)
            if uniq.size >= 2 and np.all(np.isfinite(uniq.astype(np.float64))):
                clo, chi = math.ceil(uniq.min()), math.floor(uniq.max()) + 1
                lo = clo if lo is None else max(lo, clo)
                hi = chi if hi is None else min(hi, chi)
    if lo is None or hi is None or hi <= lo:
        return None
    return lo, hi


def _choices(inp: _Input) -> list:
    out: list = []
    for values in inp.hints.compared:
        for v in values.tolist():
            if v not in out:
                out.append(v)
    return out


def _generated_bytes(dtype: int) -> int:
    """Bytes per element that :func:`_generate` allocates at its peak: numpy draws float64 or
    int64 values, then casts them to the input's type (a second array); strings are objects."""
    if dtype == _STRING:
        return 64
    return 8 + max(1, _np_dtype(dtype).itemsize)


def _generate(inp: _Input, shape: tuple, binding: dict, rng, cand: int,
              ranges: dict) -> np.ndarray:
    """Seeded values for one input that the model can take (see the module docstring)."""
    dt = _np_dtype(inp.dtype)
    size = math.prod(shape)
    lname = inp.name.lower()
    if inp.dtype == _STRING:
        return np.array([f"s{int(x)}" for x in rng.integers(0, 8, size)],
                        dtype=object).reshape(shape)
    if "mask" in lname and inp.name not in ranges:
        # mostly kept, and never a row masked out entirely (softmax of all -inf is NaN)
        m = rng.random(shape) < 0.8
        if len(shape) and shape[-1] > 0:
            m[..., 0] = True
        return m.astype(dt)
    if inp.dtype == _BOOL:
        return rng.random(shape) < 0.5
    if inp.name in ranges:
        lo, hi = ranges[inp.name]
        if _is_float(inp.dtype):
            return rng.uniform(lo, hi, shape).astype(dt)
        return rng.integers(math.ceil(lo), math.floor(hi), shape,
                            endpoint=True).astype(dt)
    # A scalar by declaration (rank 0, or static dims of 1), not a tensor that is 1 by binding.
    scalar = all(isinstance(d, int) for d in inp.dims) and size == 1
    choices = _choices(inp) if scalar else []
    if choices:
        return np.full(shape, choices[cand % len(choices)]).astype(dt)
    idx = _index_range(inp, binding, scalar)
    if idx is not None:
        return rng.integers(idx[0], idx[1], shape).astype(dt)
    if _is_float(inp.dtype):
        return rng.standard_normal(shape).astype(dt)
    if scalar and any(lname == s or lname.endswith("_" + s) for s in _SAMPLE_RATE_NAMES):
        return np.full(shape, 16000).astype(dt)
    if inp.dtype == _UINT8:
        return rng.integers(0, 256, shape).astype(dt)
    return rng.integers(0, 8, shape).astype(dt)


# --------------------------------------------------------------------------------------------
# Comparison


def _leaves(x, out: list, sig: list) -> None:
    """Flatten ORT results (tensors, sequences, maps) into arrays plus a structure signature."""
    if isinstance(x, dict):
        sig.append(("map", tuple(sorted(map(str, x)))))
        for k in sorted(x, key=str):
            _leaves(x[k], out, sig)
    elif isinstance(x, (list, tuple)):
        sig.append(("seq", len(x)))
        for e in x:
            _leaves(e, out, sig)
    else:
        sig.append("t")
        out.append(np.asarray(x))


def _compare_arrays(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float):
    """(max_abs, max_rel, ok, note) for one pair of arrays."""
    if ref.shape != got.shape:
        return math.inf, math.inf, False, f"shape {list(got.shape)} != {list(ref.shape)}"
    if ref.dtype != got.dtype:
        return math.inf, math.inf, False, f"dtype {got.dtype} != {ref.dtype}"
    if ref.size == 0:
        return 0.0, 0.0, True, ""
    if ref.dtype.kind in "OUS":
        same = bool(np.array_equal(ref, got))
        return (0.0, 0.0, True, "") if same else (math.inf, math.inf, False, "strings differ")
    if ref.dtype.kind in "biu":
        d = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        ok = bool(np.array_equal(ref, got))
        mag = np.maximum(np.abs(ref.astype(np.float64)), np.abs(got.astype(np.float64)))
        return float(d.max()), _max_rel(d, mag, 0.0), ok, ""
    kind = np.complex128 if ref.dtype.kind == "c" else np.float64
    a, b = ref.astype(kind), got.astype(kind)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    nan_bad = int(np.count_nonzero(nan_a != nan_b))
    infs = (np.isinf(a) | np.isinf(b)) & ~(nan_a | nan_b)
    inf_bad = int(np.count_nonzero(infs & (a != b)))
    finite = ~(nan_a | nan_b | infs)
    d = np.abs(a[finite] - b[finite])
    mag = np.abs(a[finite])
    max_abs = float(d.max()) if d.size else 0.0
    max_rel = _max_rel(d, np.maximum(mag, np.abs(b[finite])), atol)
    bad = int(np.count_nonzero(d > atol + rtol * mag))
    notes = []
    if nan_bad:
        notes.append(f"NaN at {nan_bad} position(s) in one model only")
    if inf_bad:
        notes.append(f"inf differs at {inf_bad} position(s)")
    if bad:
        notes.append(f"{bad} of {ref.size} element(s) out of tolerance")
    if nan_bad or inf_bad:
        max_abs = math.inf
    return max_abs, max_rel, not (nan_bad or inf_bad or bad), "; ".join(notes)


def _max_rel(d: np.ndarray, mag: np.ndarray, floor: float) -> float:
    keep = mag > floor
    if not np.any(keep):
        return 0.0
    return float((d[keep] / mag[keep]).max())


def _compare(name: str, binding: dict, ref, got, atol: float, rtol: float) -> OutputDiff:
    ra: list = []
    rs: list = []
    ga: list = []
    gs: list = []
    _leaves(ref, ra, rs)
    _leaves(got, ga, gs)
    if rs != gs:
        return OutputDiff(name, dict(binding), math.inf, math.inf, False,
                          "structure differs (sequence/map lengths or keys)")
    max_abs = max_rel = 0.0
    ok = True
    notes = []
    for a, b in zip(ra, ga):
        ma, mr, good, note = _compare_arrays(a, b, atol, rtol)
        max_abs, max_rel = max(max_abs, ma), max(max_rel, mr)
        ok = ok and good
        if note:
            notes.append(note)
    return OutputDiff(name, dict(binding), max_abs, max_rel, ok, "; ".join(notes))


def _fmt_binding(binding: dict) -> str:
    if not binding:
        return "the static shapes"
    return "{" + ", ".join(f"{k}={v}" for k, v in binding.items()) + "}"


# --------------------------------------------------------------------------------------------
# The verifier


@dataclass(eq=False)
class _Run:
    binding: dict
    feed: dict
    outputs: list


class _Prepared:
    """The original's session, its inputs and its outputs at the chosen bindings."""

    def __init__(self):
        self.error: Optional[str] = None   # set: the original cannot be verified
        self.note: str = ""
        self.runs: list[_Run] = []
        self.input_names: list[str] = []
        self.all_input_names: set = set()
        self.output_names: list[str] = []
        self.output_dtypes: dict = {}


_CACHE: dict = {}  # one entry: the last original prepared (bisection verifies it many times)


class Verifier:
    """Verify one original against one or more optimized models, preparing the original once."""

    def __init__(self, original: ModelSource, options: Optional[VerifyOptions] = None):
        self.options = options or VerifyOptions()
        self._original = _Source(original, "original model")
        self._prepared: Optional[_Prepared] = None
        self._generated = 0  # bytes allocated for generated inputs so far (all bindings)

    # ---- the original

    def _options_key(self) -> tuple:
        o = self.options
        feeds = None
        if o.feeds is not None:
            h = hashlib.blake2b(digest_size=16)
            for f in o.feeds:
                for name in sorted(f):
                    a = np.asarray(f[name])
                    h.update(f"{name}:{a.dtype}:{a.shape}".encode())
                    h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
            feeds = h.hexdigest()
        return (o.seed, repr(o.bindings), feeds,
                repr(sorted(o.input_shapes.items())), repr(sorted(o.input_ranges.items())),
                o.min_bindings)

    def _prepare(self) -> _Prepared:
        if self._prepared is not None:
            return self._prepared
        try:
            key = (self._original.key(), self._options_key())
        except (OSError, ValueError):
            key = None
        if key is not None and key in _CACHE:
            self._prepared = _CACHE[key]
            return self._prepared
        prep = _Prepared()
        try:
            self._prepare_into(prep)
        finally:
            self._original.close()
        _CACHE.clear()
        if key is not None:
            _CACHE[key] = prep
        self._prepared = prep
        return prep

    def _inputs(self, proto, size: int) -> list[_Input]:
        import onnx

        graph = proto.graph
        inferred = graph
        if size < _INFER_LIMIT:  # the full model's size: the same decision as before stripping
            try:
                inferred = onnx.shape_inference.infer_shapes(proto).graph
            except Exception:  # noqa: BLE001 - shape inference is only a source of hints
                inferred = graph
        facts = _GraphFacts(inferred)
        inits = {t.name for t in graph.initializer}
        by_name = {vi.name: vi for vi in graph.input}
        for name in list(self.options.input_shapes) + list(self.options.input_ranges):
            if name not in by_name or name in inits:
                raise UsageError(f"verify: the model has no input {name!r} (inputs: "
                                 f"{', '.join(n for n in by_name if n not in inits)})")
        for name, (lo, hi) in self.options.input_ranges.items():
            if not lo <= hi:
                raise UsageError(f"verify: input range of {name!r} is empty ({lo} > {hi})")
        out = []
        for vi in graph.input:
            if vi.name in inits:
                continue
            if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.elem_type:
                raise _NotVerified(f"input {vi.name!r} is not a tensor of known type; "
                                   "pass feeds (--inputs data.npz)")
            dims = _dims_of(vi.type)
            override = self.options.input_shapes.get(vi.name)
            if override is not None:
                if dims is not None and len(dims) != len(override):
                    raise UsageError(f"verify: input {vi.name!r} has rank {len(dims)}, "
                                     f"got {len(override)} dims")
                dims = [_parse_dim(d) for d in override]
            if dims is None:
                raise _NotVerified(f"input {vi.name!r} has unknown rank; give its shape "
                                   "(--input-shape NAME:DIMS) or feeds")
            dims = [f"{vi.name}[{ax}]" if d is None else d for ax, d in enumerate(dims)]
            out.append(_Input(vi.name, vi.type.tensor_type.elem_type, dims, facts.hints(vi.name)))
        return out

    def _prepare_into(self, prep: _Prepared) -> None:
        proto = self._original.proto()
        try:
            inputs = self._inputs(proto, self._original.size)
        except _NotVerified as e:
            prep.error = str(e)
            return
        prep.input_names = [i.name for i in inputs]
        prep.all_input_names = {vi.name for vi in proto.graph.input}
        prep.output_names = [o.name for o in proto.graph.output]
        prep.output_dtypes = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output
                              if o.type.HasField("tensor_type")}
        try:
            sess = _session(self._original.ort_ref())
        except Exception as e:  # noqa: BLE001 - any load failure is a finding
            prep.error = f"onnxruntime cannot load the original model: {_first_line(e)}"
            return
        prep.output_names = [o.name for o in sess.get_outputs()]
        ro = _run_options()

        def run(feed: dict):
            try:
                return sess.run(None, feed, ro), None
            except Exception as e:  # noqa: BLE001 - any runtime failure is a finding
                return None, _first_line(e)

        symbols = _symbols(inputs)
        try:
            self._run_original(prep, inputs, symbols, run)
        except _NotVerified as e:
            prep.error = str(e)

    def _run_original(self, prep, inputs, symbols, run) -> None:
        opts = self.options
        if opts.feeds is not None:
            self._explicit_feeds(prep, inputs, symbols, run)
        elif opts.bindings is not None:
            for k, given in enumerate(opts.bindings):
                unknown = [s for s in given if s not in symbols]
                if unknown:
                    raise UsageError(f"verify: binding names unknown symbol(s) "
                                     f"{', '.join(unknown)} (symbols: {', '.join(symbols)})")
                binding = {**_candidate(symbols, k, skew=False), **given}
                feed = self._feed(inputs, binding, k)
                outs, err = run(feed)
                if err:
                    prep.error = (f"onnxruntime cannot run the original at "
                                  f"{_fmt_binding(binding)}: {err}")
                    return
                prep.runs.append(_Run(binding, feed, outs))
        else:
            self._probe(prep, inputs, symbols, run)

    def _explicit_feeds(self, prep, inputs, symbols, run) -> None:
        names = {i.name for i in inputs}
        for k, given in enumerate(self.options.feeds or []):
            unknown = [n for n in given if n not in names]
            if unknown:
                raise UsageError(f"verify: feeds name unknown input(s) {', '.join(unknown)} "
                                 f"(inputs: {', '.join(names)})")
            binding: dict = {}
            for inp in inputs:
                if inp.name in given:
                    shape = np.shape(given[inp.name])
                    for ax, d in enumerate(inp.dims):
                        if isinstance(d, str) and ax < len(shape):
                            binding.setdefault(d, int(shape[ax]))
            for s, v in _candidate(symbols, k, skew=False).items():
                binding.setdefault(s, v)
            binding = {s: binding[s] for s in symbols}
            feed = self._feed(inputs, binding, k, given)
            outs, err = run(feed)
            if err:
                prep.error = f"onnxruntime cannot run the original on feeds #{k + 1}: {err}"
                return
            prep.runs.append(_Run(binding, feed, outs))

    def _probe(self, prep, inputs, symbols, run) -> None:
        """Try candidate bindings in order; keep those the original runs at.

        A binding is kept when it gives every symbol a value no kept binding gave it. When the
        ladder cannot provide enough of those (a symbol the model pins to one value, say), the
        symbols are moved one at a time from the first kept binding to find those that are free,
        and all free ones are moved together.
        """
        want = 1 if not symbols else max(1, self.options.min_bindings)
        ran: list[_Run] = []
        first_err = None
        start = time.perf_counter()

        def attempt(binding: dict, k: int) -> Optional[_Run]:
            nonlocal first_err
            try:
                feed = self._feed(inputs, binding, k)
            except _NotVerified as e:
                first_err = first_err or (binding, str(e))
                return None
            outs, err = run(feed)
            if err:
                first_err = first_err or (binding, err)
                return None
            r = _Run(binding, feed, outs)
            ran.append(r)
            return r

        def out_of_time(tries: int) -> bool:
            return time.perf_counter() - start > _PROBE_SECONDS and (bool(prep.runs) or tries >= 8)

        for k, binding in enumerate(_candidates(symbols)):
            if len(prep.runs) >= want or k >= _MAX_CANDIDATES or out_of_time(k):
                break
            r = attempt(binding, k)
            if r and all(all(binding[s] != p.binding[s] for s in symbols) for p in prep.runs):
                prep.runs.append(r)
        if prep.runs and len(prep.runs) < want:
            self._probe_free_symbols(prep, symbols, attempt, want, out_of_time)
        for r in ran:  # last resort: differing in some symbol beats a single binding
            if len(prep.runs) >= want:
                break
            if all(r.binding != p.binding for p in prep.runs):
                prep.runs.append(r)
        if not prep.runs:
            binding, err = first_err if first_err else ({}, "no binding tried")
            prep.error = (f"onnxruntime cannot run the original model at any of the bindings "
                          f"tried (first: {_fmt_binding(binding)}): {err}")
        elif len(prep.runs) < want:
            prep.note = (f"only {len(prep.runs)} binding of the symbolic dims runs in the "
                         "original")

    @staticmethod
    def _probe_free_symbols(prep, symbols, attempt, want: int, out_of_time) -> None:
        base = prep.runs[0].binding
        k = _MAX_CANDIDATES  # feed seeds continue after the ladder's
        moved: dict[str, _Run] = {}
        for s, batch in symbols.items():
            used = {p.binding[s] for p in prep.runs}
            ladder = [v for v in (_BATCH_LADDER if batch else _SIZE_LADDER) if v not in used]
            for v in ladder[:_FREE_TRIES]:
                if out_of_time(k):
                    return
                r = attempt({**base, s: v}, k)
                k += 1
                if r:
                    moved[s] = r
                    break
        if len(moved) > 1:
            r = attempt({**base, **{s: r.binding[s] for s, r in moved.items()}}, k)
            if r:
                prep.runs.append(r)
                return
        for r in moved.values():
            if len(prep.runs) >= want:
                break
            prep.runs.append(r)

    def _feed(self, inputs: list[_Input], binding: dict, cand: int,
              given: Optional[dict] = None) -> dict:
        seed = self.options.seed % (2**63)
        ranges = self.options.input_ranges
        feed = {}
        total = 0
        for inp in inputs:
            if given is not None and inp.name in given:
                feed[inp.name] = np.asarray(given[inp.name])
                continue
            # A static 0 is fed as 0 (an empty input is what the model declares); an unbound
            # symbol as 1.
            shape = tuple(int(1 if v is None else v)
                          for v in (_resolve(d, binding) for d in inp.dims))
            total += math.prod(shape) * _generated_bytes(inp.dtype)
            if self._generated + total > _FEED_LIMIT:  # never allocate what dims make absurd
                raise _NotVerified(f"input {inp.name!r} of shape {list(shape)} is too big to "
                                   f"generate ({(self._generated + total) / 2**30:.3g} GiB of "
                                   "inputs over the bindings tried); give smaller shapes "
                                   "(--input-shape) or feeds")
            rng = np.random.default_rng([seed, cand, zlib.crc32(inp.name.encode())])
            # numpy returns 0-d results as scalars, which onnxruntime will not take
            feed[inp.name] = np.asarray(_generate(inp, shape, binding, rng, cand, ranges))
        self._generated += total
        return feed

    def feeds(self) -> list[tuple[dict[str, int], dict[str, np.ndarray]]]:
        """The (binding, inputs) pairs the original ran at: what every check feeds both models.

        Empty when the original cannot be verified (``check`` says why).
        """
        return [(dict(r.binding), dict(r.feed)) for r in self._prepare().runs]

    # ---- the optimized model

    def check(self, optimized: ModelSource) -> VerifyReport:
        """Compare ``optimized`` with the original at the prepared bindings."""
        t0 = time.perf_counter()
        prep = self._prepare()
        bindings = [r.binding for r in prep.runs]

        def report(status: str, reason: str, diffs=()) -> VerifyReport:
            return VerifyReport(status, reason, bindings, list(diffs), time.perf_counter() - t0)

        if prep.error:
            return report("not verified", prep.error)
        src = _Source(optimized, "optimized model")
        try:
            try:
                sess = _session(src.ort_ref())
            except Exception as e:  # noqa: BLE001 - any load failure is a finding
                return report("failed", "onnxruntime cannot load the optimized model: "
                              f"{_first_line(e)}")
        finally:
            src.close()
        opt_in = [i.name for i in sess.get_inputs()]
        opt_out = [o.name for o in sess.get_outputs()]
        extra = [n for n in opt_in if n not in prep.all_input_names]
        missing = [n for n in prep.input_names if n not in opt_in]
        if extra or missing:
            what = (f"has new input(s) {', '.join(extra)}" if extra
                    else f"lost input(s) {', '.join(missing)}")
            return report("failed", f"the optimized model {what}")
        if opt_out != prep.output_names:
            return report("failed", f"outputs differ: original ({', '.join(prep.output_names)}) "
                          f"vs optimized ({', '.join(opt_out)})")
        ro = _run_options()
        diffs: list[OutputDiff] = []
        first_fail: Optional[str] = None
        failures = 0
        for r in prep.runs:
            feed = {n: r.feed[n] for n in opt_in if n in r.feed}
            try:
                outs = sess.run(None, feed, ro)
            except Exception as e:  # noqa: BLE001 - any runtime failure is a finding
                failures += 1
                first_fail = first_fail or (f"the optimized model fails at "
                                            f"{_fmt_binding(r.binding)}: {_first_line(e)}")
                continue
            for name, ref, got in zip(prep.output_names, r.outputs, outs):
                dtype = prep.output_dtypes.get(name) or (
                    _onnx_dtype(ref.dtype) if isinstance(ref, np.ndarray) else 0)
                atol, rtol = self.options.tolerances(dtype)
                d = _compare(name, r.binding, ref, got, atol, rtol)
                diffs.append(d)
                if not d.ok:
                    failures += 1
                    if first_fail is None:
                        detail = d.note or "values differ"
                        if math.isfinite(d.max_abs):
                            detail = (f"max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g} "
                                      f"(atol {atol:g}, rtol {rtol:g}); {detail}")
                        first_fail = (f"output {name!r} differs at {_fmt_binding(r.binding)}: "
                                      f"{detail}")
        if first_fail is not None:
            more = f" ({failures} failing check(s) in all)" if failures > 1 else ""
            return report("failed", first_fail + more, diffs)
        max_abs = max((d.max_abs for d in diffs), default=0.0)
        max_rel = max((d.max_rel for d in diffs), default=0.0)
        where = (f"{len(bindings)} binding(s) {', '.join(_fmt_binding(b) for b in bindings)}"
                 if any(bindings) else "the static shapes")
        reason = (f"{len(prep.output_names)} output(s) match at {where}; "
                  f"max abs {max_abs:.3g}, max rel {max_rel:.3g}")
        if prep.note:
            reason += f" ({prep.note})"
        return report("ok", reason, diffs)


class _NotVerified(Exception):
    pass


def _parse_dim(d):
    if isinstance(d, (int, np.integer)):
        return int(d) if d >= 0 else None
    s = str(d).strip()
    if s.lstrip("-").isdigit():
        return int(s) if int(s) >= 0 else None
    return None if s in ("", "?") else s


def _symbols(inputs: list[_Input]) -> dict[str, bool]:
    """Symbol -> batch-like, in order of first appearance."""
    out: dict[str, bool] = {}
    for inp in inputs:
        for ax, d in enumerate(inp.dims):
            if not isinstance(d, str):
                continue
            low = d.lower()
            batch = ("batch" in low or d in ("N", "B", "bs")
                     or (ax == 0 and len(inp.dims) >= 2))
            out[d] = out.get(d, False) or batch
    return out


def _candidate(symbols: dict[str, bool], k: int, skew: bool) -> dict[str, int]:
    """The k-th binding: batch-like symbols on the batch ladder, others on the size ladder.

    With ``skew`` the j-th symbol of each kind is shifted j steps along its ladder, so symbols
    get different values (catches swapped dims); without, they move together (for models that
    need some symbols equal).
    """
    out = {}
    nb = ns = 0
    for s, batch in symbols.items():
        if batch:
            out[s] = _BATCH_LADDER[(k + (nb if skew else 0)) % len(_BATCH_LADDER)]
            nb += 1
        else:
            out[s] = _SIZE_LADDER[(k + (ns if skew else 0)) % len(_SIZE_LADDER)]
            ns += 1
    return out


def _candidates(symbols: dict[str, bool]):
    seen = []
    for k in range(len(_SIZE_LADDER)):
        for skew in (True, False):
            c = _candidate(symbols, k, skew)
            if c not in seen:
                seen.append(c)
                yield c


__all__ = ["OutputDiff", "Verifier", "VerifyOptions", "VerifyReport", "verify"]
