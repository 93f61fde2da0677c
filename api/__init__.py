"""onnxopt: a compiler-style optimization pass framework for ONNX models.

The front door: :func:`load` a model into the IR, :func:`optimize` it with a pipeline of passes
(verified against the original in onnxruntime), :func:`save` it atomically. Errors are the types
in :mod:`onnxopt.errors`. Heavy modules (onnx, onnxruntime, sympy) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ExternalDataError,
    InvalidModelError,
    IRError,
    ModelLoadError,
    NotVerifiedError,
    OnnxoptError,
    PassError,
    ShapeError,
    UsageError,
    VerificationError,
)

__version__ = "0.1.0"

_LAZY = {
    "load": ("io", "load"),
    "save": ("io", "save"),
    "optimize": ("optimizer", "optimize"),
    "OptimizeResult": ("optimizer", "OptimizeResult"),
    "cut": ("cutting", "cut"),
    "CutResult": ("cutting", "CutResult"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{mod}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "load", "save", "optimize", "OptimizeResult", "OnnxoptError", "ModelLoadError",
    "cut", "CutResult",
    "InvalidModelError", "ExternalDataError", "UsageError", "PassError", "IRError", "ShapeError",
    "VerificationError", "NotVerifiedError", "__version__",
]
