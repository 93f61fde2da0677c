"""What the parts of verification share: ONNX dtype codes, tolerances and the limits."""

from __future__ import annotations


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
