"""onnxopt's IR: a small SSA graph IR lifted from and lowered to ONNX protobuf.

Public names: :class:`Model`, :class:`Graph`, :class:`Node`, :class:`Value`, :class:`Attr`,
:class:`Function`, :class:`Tensor`, :class:`Shape`, :class:`SymDim`, the type classes,
:class:`Builder`, :func:`lift_model`, :func:`lower_model`, :func:`print_model`,
:func:`print_graph`, :func:`verify_model`.
"""

from .builder import Builder
from .core import Attr, Function, Graph, Model, Node, Value
from .lift import lift_model, lift_shape, lift_type
from .lower import assign_names, lower_model, lower_type
from .printer import print_graph, print_model
from .shape import Dim, Shape, SymDim, make_dim
from .tensor import Tensor
from .types import (
    MapType,
    OptionalType,
    SequenceType,
    SparseTensorType,
    TensorType,
    Type,
    dtype_name,
    from_np_dtype,
    np_dtype,
)
from .verify import check_model, verify_model

__all__ = [
    "Attr", "Builder", "Dim", "Function", "Graph", "MapType", "Model", "Node", "OptionalType",
    "SequenceType", "Shape", "SparseTensorType", "SymDim", "Tensor", "TensorType", "Type", "Value",
    "assign_names", "dtype_name", "from_np_dtype", "lift_model", "lift_shape", "lift_type",
    "lower_model", "lower_type", "make_dim", "np_dtype", "print_graph", "print_model",
    "verify_model", "check_model",
]
