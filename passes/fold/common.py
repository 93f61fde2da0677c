"""What the parts of fold share: the op lists, the opset environment and small helpers."""

from __future__ import annotations

import numpy as np

from ...ir import Node, Value
from ...ir.types import MapType, OptionalType, SequenceType, SparseTensorType

# Nodes that write data from a few numbers (the size policy does not count them as work).
_GENERATORS = frozenset({"Constant", "ConstantOfShape", "Expand", "Tile", "Range", "EyeLike"})

NEVER_FOLD = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli",
    # sequence / optional / map producers
    "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SplitToSequence",
    "SequenceMap", "Optional", "OptionalGetElement", "OptionalHasElement", "ZipMap", "CastMap",
    "DictVectorizer",
})
# Ops where onnxruntime departs from the spec in some attribute combinations (align_corners
# downsampling in Resize, the qk_matmul_output modes of Attention...): their runtime results are
# checked against onnx's reference evaluator before they are trusted.
CROSS_CHECK = frozenset({"Resize", "Upsample", "Attention", "GridSample", "RoiAlign", "AffineGrid",
                         "CenterCropPad", "DeformConv", "Col2Im", "MaxUnpool"})
_NON_TENSOR = (SequenceType, OptionalType, MapType, SparseTensorType)
_INT_DTYPES = frozenset({6, 7})  # int32, int64: what shape tensors are made of


def _agree(got: np.ndarray, want: np.ndarray) -> bool:
    """Two evaluations of one node agree (floats within rounding of sums, others exactly)."""
    if got.shape != want.shape:
        return False
    if got.dtype.kind == "f" and want.dtype.kind == "f":
        scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
        return bool(np.allclose(got, want, rtol=1e-3, atol=1e-4 * (1 + scale), equal_nan=True))
    return bool(np.array_equal(got, want))


def _live(v: Value) -> bool:
    """False for an omitted optional output."""
    return v.name != "" or v.has_uses()


def _count(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


class _Env:
    """One opset environment: the main graph (with its subgraphs) or one function body."""

    def __init__(self, opsets: dict[str, int], ir_version: int):
        self.opsets = opsets
        self.ir_version = ir_version
        self.pending: list[Node] = []
        self.pending_values: set[Value] = set()

    def opset(self, domain: str) -> int:
        return self.opsets.get(domain) or 1
