"""The TensorRT support matrix, loaded from ``passes/tensorrt_matrix.json`` (data, with its version
and the URL of every fact). Nothing here interprets it: :mod:`.support` does."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

MATRIX_FILE = "tensorrt_matrix.json"

# ONNX TensorProto element types by name (the matrix names types, onnxopt stores numbers).
ONNX_TYPES: dict[str, int] = {
    "FLOAT": 1, "UINT8": 2, "INT8": 3, "UINT16": 4, "INT16": 5, "INT32": 6, "INT64": 7,
    "STRING": 8, "BOOL": 9, "FLOAT16": 10, "DOUBLE": 11, "UINT32": 12, "UINT64": 13,
    "COMPLEX64": 14, "COMPLEX128": 15, "BFLOAT16": 16, "FLOAT8E4M3FN": 17, "FLOAT8E4M3FNUZ": 18,
    "FLOAT8E5M2": 19, "FLOAT8E5M2FNUZ": 20, "UINT4": 21, "INT4": 22, "FLOAT4E2M1": 23,
    "FLOAT8E8M0": 24,
}
TYPE_NAMES: dict[int, str] = {v: k for k, v in ONNX_TYPES.items()}


@lru_cache(maxsize=1)
def load_matrix() -> dict[str, Any]:
    """The matrix as a dict (read once; treat it as read-only)."""
    text = resources.files("onnxopt.passes").joinpath(MATRIX_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def type_codes(abbrevs: list[str]) -> frozenset[int]:
    """ONNX element types for the matrix's type abbreviations (``FP32`` -> 1, ...)."""
    names = load_matrix()["type_names"]
    return frozenset(ONNX_TYPES[names.get(a, a)] for a in abbrevs)


def type_name(dtype: int) -> str:
    """The matrix's abbreviation of an ONNX element type when it has one, else the ONNX name."""
    abbrev = {ONNX_TYPES[v]: k for k, v in load_matrix()["type_names"].items()}
    return abbrev.get(dtype) or TYPE_NAMES.get(dtype, str(dtype))


def source_url(key: str) -> str:
    """The URL a source key of the matrix stands for (the key itself when unknown)."""
    src = load_matrix()["sources"].get(key)
    return src["url"] if src else key


__all__ = ["load_matrix", "type_codes", "type_name", "source_url", "ONNX_TYPES",
           "TYPE_NAMES", "MATRIX_FILE"]
