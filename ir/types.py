"""Value types: tensors, sparse tensors, sequences, optionals and maps, plus dtype helpers.

Dtypes are ONNX ``TensorProto.DataType`` integers; :func:`dtype_name` gives the textual-syntax
name and :func:`np_dtype` the numpy dtype (ml_dtypes for bfloat16/float8 through onnx's helper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .shape import Shape

# ONNX TensorProto.DataType values, spelled out so importing this module does not import onnx.
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16 = 10, 11, 12, 13, 14, 15, 16

_NAMES = {
    1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64",
    14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
    19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
    24: "float8e8m0", 25: "uint2", 26: "int2",
}
FLOAT_TYPES = frozenset({1, 10, 11, 16, 17, 18, 19, 20, 23, 24})
INT_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13, 21, 22, 25, 26})


def dtype_name(dtype: int) -> str:
    """The textual-syntax name of a dtype (``float``, ``int64``...)."""
    return _NAMES.get(dtype, f"dtype{dtype}")


def np_dtype(dtype: int):
    """The numpy dtype that holds this ONNX dtype."""
    from onnx import helper

    return helper.tensor_dtype_to_np_dtype(dtype)


def from_np_dtype(dt) -> int:
    """The ONNX dtype of a numpy dtype."""
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(dt)


@dataclass(frozen=True)
class TensorType:
    """A dense tensor: dtype (0 when unknown) and shape (None for unknown rank)."""

    dtype: int
    shape: Optional[Shape] = None


@dataclass(frozen=True)
class SparseTensorType:
    """A sparse tensor type."""

    dtype: int
    shape: Optional[Shape] = None


@dataclass(frozen=True)
class SequenceType:
    """seq(elem)."""

    elem: Optional["Type"]


@dataclass(frozen=True)
class OptionalType:
    """optional(elem)."""

    elem: Optional["Type"]


@dataclass(frozen=True)
class MapType:
    """map(key dtype, value type)."""

    key: int
    value: Optional["Type"]


Type = Union[TensorType, SparseTensorType, SequenceType, OptionalType, MapType]

__all__ = [
    "TensorType",
    "SparseTensorType",
    "SequenceType",
    "OptionalType",
    "MapType",
    "Type",
    "dtype_name",
    "np_dtype",
    "from_np_dtype",
    "FLOAT_TYPES",
    "INT_TYPES",
]
