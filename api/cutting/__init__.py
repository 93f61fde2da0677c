"""Cutting a model into pipeline stages, or extracting a subgraph, verified by composition.

Public names: :func:`cut` (also ``onnxopt.cut``), :class:`CutResult`, :func:`run_pipeline`.
The package is ``onnxopt.cutting`` so that the module never shadows the function ``onnxopt.cut``.
"""

from .cutter import BALANCES, CutResult, cut
from .store import read_manifest, run_pipeline

__all__ = ["BALANCES", "CutResult", "cut", "read_manifest", "run_pipeline"]
