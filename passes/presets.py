"""Named pipelines. ``--preset NAME`` and a bare ``NAME`` in ``-p`` expand to these."""

from __future__ import annotations

# fuse rules whose results TensorRT 10's parser takes: all but attention and attention_heads
# (TensorRT's Attention arrived in 10.14 and wants 4-D Q/K/V; attention_heads makes the 3-D form)
# and rms_norm (RMSNormalization arrived in 10.15).
_TENSORRT_FUSE = ",".join("fuse." + r for r in (
    "conv_bn", "conv_add", "conv_mul", "pad_conv", "pad_pool", "matmul_add", "add_chain",
    "mul_chain", "transpose_transpose", "transpose_gemm", "transpose_elementwise",
    "transpose_binary", "reshape_chain", "flatten_chain", "squeeze_unsqueeze", "gelu_erf",
    "gelu_tanh", "layer_norm", "hard_sigmoid", "hard_swish", "mish"))
_TENSORRT_CLEANUP = "fixpoint(fold,simplify,identity,controlflow,trt,dce,cse){max=8}"

PRESETS: dict[str, str] = {
    # Cleanup to a fixed point, fusions (their own fixed point), then cleanup of what fusion
    # left dead or duplicated (shape chains of fused heads, shared mask expansions). fold and
    # simplify run in both cleanup groups.
    "default": ("fixpoint(fold,simplify,identity,controlflow,dce,cse){max=8},fuse,"
                "fixpoint(fold,simplify,identity,controlflow,dce,cse){max=8}"),
    # For TensorRT 10's ONNX parser: fold every static shape computation and constant If, rewrite
    # what the parser refuses into exact equivalents (the trt pass), fuse where the result
    # parses, clean up, and write the inferred shapes.
    "tensorrt": f"{_TENSORRT_CLEANUP},{_TENSORRT_FUSE},{_TENSORRT_CLEANUP},shapes",
}
# For onnxruntime with its own optimizations on: the model raised to opset 23 first, so that
# `fuse` can form the standard Attention op (onnxruntime's own optimizer forms no attention on
# the golden exports at any opset, and onnxsim wins on them only by emitting its contrib
# Attention); then the default, then the inferred shapes written: its SkipLayerNormalization
# fusion and shape-based eliminations need to see the shapes (benchmarks/RESULTS.md, issue 21).
# A model already above 23 keeps its opset, and --target-opset N pins N (the raise yields).
PRESETS["ort"] = "opset{target=23,at_least=1}," + PRESETS["default"] + ",shapes"

SUMMARIES: dict[str, str] = {
    "default": "the standard optimization pipeline, run to a fixed point",
    "tensorrt": "prepare for TensorRT 10: fold shapes and constant Ifs, rewrite what its parser "
                "refuses, safe fusions, cleanup, shapes written",
    "ort": "for onnxruntime at ORT_ENABLE_ALL: raised to at least opset 23 (the Attention op), "
           "the default pipeline, then the inferred shapes written so its own fusions (SkipLayerNormalization) "
           "still form",
}

__all__ = ["PRESETS", "SUMMARIES"]
