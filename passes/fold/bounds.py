"""Upper bounds on output sizes for ops whose shapes onnx shape inference cannot give.

The fold pass checks its size policy before evaluating anything. Shapes come first from
symbolic shape inference or onnx's own inference on the region; when neither knows, an op whose
outputs are provably no bigger than a simple function of its inputs gets that bound here (a
normalization keeps its input's size, NonZero returns at most rank x numel indices...). An op
with no bound here and no inferred shape is not evaluated: it may be a generator.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

Shapes = Sequence[Optional[tuple]]

# Outputs have the size of input 0 (or less).
SAME_AS_INPUT = frozenset("""
Abs Acos Acosh Asin Asinh Atan Atanh BatchNormalization BitwiseNot Cast CastLike Ceil Celu Clip
Cos Cosh CumProd CumSum DepthToSpace DequantizeLinear Det Elu Erf Exp EyeLike Floor Gelu
GroupNormalization HardSigmoid HardSwish Hardmax Identity InstanceNormalization IsInf IsNaN
LRN LayerNormalization LeakyRelu Log LogSoftmax LpNormalization LpPool MaxPool AveragePool
MeanVarianceNormalization Mish Neg Not QuantizeLinear RMSNormalization Reciprocal Relu
ReverseSequence Round Scatter ScatterElements ScatterND Selu Shrink Sigmoid Sign Sin Sinh
Softmax Softplus Softsign SpaceToDepth Sqrt Swish Tan Tanh ThresholdedRelu Trilu
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare ArgMax ArgMin GlobalAveragePool GlobalMaxPool GlobalLpPool
Compress StringNormalizer TopK Unique Flatten Reshape Squeeze Unsqueeze Transpose Slice Split
DynamicQuantizeLinear
""".split())

# Outputs have the size of the broadcast of all inputs.
BROADCAST = frozenset("""
Add Sub Mul Div Mod Pow PRelu BitShift BitwiseAnd BitwiseOr BitwiseXor Sum Mean Max Min
Equal Less LessOrEqual Greater GreaterOrEqual And Or Xor Where
""".split())


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _nonzero(shapes: Shapes, numels: Sequence[int]) -> list[int]:
    rank = len(shapes[0]) if shapes[0] is not None else None
    return [max(rank, 1) * numels[0]] if rank is not None else []


def _nms(shapes: Shapes, numels: Sequence[int]) -> list[int]:
    return [3 * numels[1]] if len(numels) > 1 else []


BOUNDED: dict[str, Callable[[Shapes, Sequence[int]], list[int]]] = {
    "NonZero": _nonzero,
    "NonMaxSuppression": _nms,
}


def output_bound(op_type: str, shapes: Shapes, numels: Sequence[int],
                 num_outputs: int) -> Optional[list[int]]:
    """Bounds on the element count of each output, or None when no rule applies.

    ``shapes`` are the input shapes (None where only the element count is known), ``numels``
    the input element counts (0 for an omitted input).
    """
    if not numels:
        return None
    if op_type in BOUNDED:
        out = BOUNDED[op_type](shapes, numels)
        return out if len(out) >= num_outputs else None
    if op_type in SAME_AS_INPUT:
        return [numels[0]] * num_outputs
    if op_type in BROADCAST:
        if all(s is not None for s in shapes):
            try:
                n = _numel(np.broadcast_shapes(*[tuple(s) for s in shapes]))
            except ValueError:
                return None
        else:
            n = _numel(max(x, 1) for x in numels)
        return [n] * num_outputs
    return None


__all__ = ["output_bound", "SAME_AS_INPUT", "BROADCAST", "BOUNDED"]
