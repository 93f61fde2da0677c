"""Symbolic shape inference (``-p shapes``), on sympy.

Every value gets a dtype and a shape whose dims are ints, canonical sympy expressions over named
positive-integer symbols (``batch``, ``2*seq``, ``floor(H/2 - 1/2) + 1``, ``past + seq``) or None
(unknown); small integer tensors that compute shapes carry their elements symbolically in
``value.meta["symval"]``. Symbols come from the inputs' ``dim_param``s; an unnamed input dim gets
``unk_<input>_<axis>``; data-dependent dims get fresh symbols named after their node (``nz_<node>``
for NonZero, ``uniq_``, ``nms_``, ``compress_``, ``loop_``, ``if_``...).

Public API::

    ShapeAnalysis                  ctx.analysis(ShapeAnalysis) -> ShapeInfo (facts, IR untouched)
    infer_shapes(model, ctx=None)  -> ShapeInfo (constraints, errors, unknown, hint_conflicts);
                                      without a context also writes the types into the IR
    shape_of(value)                -> Shape | None
    dims_equal(a, b)               -> True only when provably equal
    sym_value(value)               -> tuple of int / SymDim / None, or None

Facts, not IR. The analysis records what it proves beside the IR, in ``value.meta``:
``"shapes_type"`` (the inferred type), ``"shapes_hint_dims"`` and ``"symval"``. It never writes
``value.type``, so requesting it is never a modification and leaves nothing in the saved model or
in golden text. Read facts with :func:`shape_of` / :func:`sym_value` (or a rewrite ``Match``'s
``m.shape``/``m.dtype``); ``value.type``/``value.shape`` stay the declared types. The ``shapes``
pass (and :func:`infer_shapes` without a context) writes the facts into ``value.type``, which
lowering saves as value_info (``dim_param`` holds the expression text); ``shapes{strip=true}``
removes inferred types from intermediate values. ``rewrite.Shapes(ctx)`` reads the facts for
rules and checks, and ``infer.fact_or_declared(v)`` is a value's type as a pass reads it.
Contradicting shapes (a static broadcast mismatch,
MatMul inner dims that differ) raise :class:`onnxopt.errors.ShapeError` naming the nodes, and the
model is left unchanged.

Incremental. An SSA value keeps its shape while it exists, so a pass that keeps every surviving
value's shape (dce, cse, identity, fold, rewrite-rule passes) returns ``preserved={"shapes"}``:
the facts stay, and the next request infers only nodes that are new, whose input tuple changed
(``set_input``), or whose inputs' facts changed (known facts are kept and only refined; a
re-inferred node reuses its fresh symbol names). A modifying pass that does not preserve
``shapes`` (one that changes an input's dims or edits a node so its output changes shape, e.g.
dynamize) drops the facts, and the next request infers the whole model again. The ``shapes`` pass
always runs a whole inference, so what it writes does not depend on the passes before it.

Declared types (value_info, graph outputs) are hints: inference propagates only what the graph
proves; a declaration it contradicts is reported (``ShapeInfo.hint_conflicts``), never acted on.
Where the graph proves nothing, the annotation keeps the declared dim (no type gets less
precise), ``value.meta["shapes_hint_dims"]`` names those dims, and ``shape_of`` leaves them out.

Shape functions cover every standard-domain op of onnx's node conformance cases (see
:func:`covered`), and these com.microsoft ops: FusedConv, NhwcConv, FusedGemm, FusedMatMul,
MatMulNBits, MatMulInteger16, MatMulIntegerToFloat, DynamicQuantizeMatMul, GemmFastGelu, Gelu,
FastGelu, BiasGelu, QuickGelu, BiasAdd, BiasSplitGelu, BiasSoftmax, SkipLayerNormalization,
SkipSimplifiedLayerNormalization, LayerNormalization, SimplifiedLayerNormalization,
EmbedLayerNormalization, GroupNorm, SkipGroupNorm, Attention, MultiHeadAttention,
GroupQueryAttention, RotaryEmbedding, QuantizeLinear, DequantizeLinear, QLinearAdd, QLinearMul,
QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax, QLinearConcat, QLinearAveragePool,
QLinearGlobalAveragePool, Trilu, Inverse, DynamicQuantizeLSTM, QAttention, QLinearConv. Other ops
with an onnx schema fall back to onnx's own per-node inference (static facts only); ops of
onnxruntime's own domains with no rule get what onnxruntime's runs at three bindings prove
(``runtime_fallback``); the rest leave their outputs unknown (reported with -v).

sympy is imported only when an expression needs algebra: ``import onnxopt.passes.shapes`` does
not import it.
"""

from .analysis import ShapeAnalysis, infer_shapes, shape_of, sym_value
from .annotate import ShapesPass
from .context import Constraint, ShapeInfo, ShapeIssue, Unknown
from .dims import dims_equal


def covered(domain: str = "") -> list:
    """Op types of ``domain`` with a shape function here."""
    from .infer import load_ops
    from .table import covered as _covered

    load_ops()
    return _covered(domain)


__all__ = [
    "Constraint",
    "ShapeAnalysis",
    "ShapeInfo",
    "ShapeIssue",
    "ShapesPass",
    "Unknown",
    "covered",
    "dims_equal",
    "infer_shapes",
    "shape_of",
    "sym_value",
]
