"""onnxopt's IR: a small SSA graph IR lifted from and lowered to ONNX protobuf.

Public names: :class:`Model`, :class:`Graph`, :class:`Node`, :class:`Value`, :class:`Attr`,
:class:`Function`, :class:`Tensor`, :class:`Shape`, :class:`SymDim`, the type classes,
:class:`Builder`, :func:`lift_model`, :func:`lower_model`, :func:`print_model`,
:func:`print_graph`, :func:`verify_model`.
"""

from importlib import import_module

# Public name -> the submodule defining it. They are imported on first use, so that importing a
# light submodule (``onnxopt.ir.errors``, which the CLI needs to print --help) loads no numpy.
_WHERE = {
    "Builder": "builder", "Attr": "core", "Function": "core", "Graph": "core", "Model": "core",
    "Node": "core", "Value": "core", "lift_model": "lift", "lift_shape": "lift",
    "lift_type": "lift", "assign_names": "lower", "lower_model": "lower", "lower_type": "lower",
    "print_graph": "printer", "print_model": "printer", "Dim": "shape", "Shape": "shape",
    "SymDim": "shape", "make_dim": "shape", "Tensor": "tensor", "MapType": "types",
    "OptionalType": "types", "SequenceType": "types", "SparseTensorType": "types",
    "TensorType": "types", "Type": "types", "dtype_name": "types", "from_np_dtype": "types",
    "np_dtype": "types", "check_model": "verify", "verify_model": "verify",
}


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "Attr", "Builder", "Dim", "Function", "Graph", "MapType", "Model", "Node", "OptionalType",
    "SequenceType", "Shape", "SparseTensorType", "SymDim", "Tensor", "TensorType", "Type", "Value",
    "assign_names", "dtype_name", "from_np_dtype", "lift_model", "lift_shape", "lift_type",
    "lower_model", "lower_type", "make_dim", "np_dtype", "print_graph", "print_model",
    "verify_model", "check_model",
]
