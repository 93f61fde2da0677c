"""What a stage costs (FLOPs, parameter bytes, memory) and what a boundary carries (bytes), from
the symbolic shapes.

Costs are exact expressions over the model's dim symbols where shapes are symbolic (``2*seq*...``)
and plain ints where they are static. To compare and balance them, every symbol gets a number:
the value the user gave (``--input-shape``), else 1 for a batch-like symbol and 128 for any other.
A dim that inference cannot bound counts as 1; a node whose output rank is unknown counts 0
(both are reported).

FLOPs count a multiply-add as 2: MatMul/Gemm ``2*M*N*K``, Conv ``2 * out elements * C/group *
kernel``, ConvTranspose per input element, recurrent nets ``2 * steps * batch * (|W| + |R|)``, If
its costlier branch, Loop/Scan one trip of the body; any other op one per output element (reductions
one per input element).
"""

from __future__ import annotations

from typing import Any

from ..ir import Node, Shape, SymDim, TensorType, Value

DEFAULT_SIZE, DEFAULT_BATCH = 128, 1
_MATMUL = {"MatMul", "MatMulInteger", "FusedMatMul", "QLinearMatMul", "MatMulNBits"}
_CONV = {"Conv", "ConvInteger", "FusedConv", "QLinearConv", "NhwcConv"}
_RNN = {"LSTM", "GRU", "RNN"}


def _dim(d) -> Any:
    if type(d) is int:
        return d
    if isinstance(d, SymDim):
        return d.expr
    return None


def numel(shape: Shape | None, unknown: Any = None) -> Any:
    """Product of the dims (an int or a sympy expression); an unknown dim counts as ``unknown``
    (None: the product is None)."""
    if shape is None:
        return None
    out: Any = 1
    for d in shape:
        x = _dim(d)
        if x is None:
            if unknown is None:
                return None
            x = unknown
        out = out * x
    return out


def add_all(terms) -> Any:
    """The sum of many cost terms, grouped first: adding sympy terms one by one is quadratic,
    and most terms repeat (every block of a transformer has the same costs)."""
    total_int: Any = 0
    counts: dict = {}
    for t in terms:
        if isinstance(t, (int, float)):
            total_int += t
        else:
            counts[t] = counts.get(t, 0) + 1
    if not counts:
        return total_int
    import sympy

    return sympy.Add(total_int, *[c * e for e, c in counts.items()])


class CostModel:
    """Per-node costs and per-value bytes over one model whose shapes were inferred."""

    def __init__(self, shape_of, binding: dict[str, int]):
        self.shape_of = shape_of  # Value -> inferred Shape or None
        self.binding = dict(binding)
        self.uncosted: list[Node] = []  # rank unknown: counted 0
        self.unknown_dims: set = set()  # some dim unknown: counted 1
        self._numeric: dict = {}
        self._numel: dict = {}

    # -- numbers ------------------------------------------------------------------------------
    def number(self, expr: Any) -> float:
        """``expr`` with every symbol bound (see the module docstring)."""
        if expr is None:
            return 0.0
        if isinstance(expr, (int, float)):
            return float(expr)
        got = self._numeric.get(expr)
        if got is None:
            subs = {s: self._bind(s.name) for s in expr.free_symbols}
            got = float(expr.xreplace(subs))
            self._numeric[expr] = got
        return got

    def text(self, expr: Any) -> str:
        """``expr`` as text with the user's dims put in (symbols left free stay symbols)."""
        if self.binding and not isinstance(expr, (int, float)) and expr is not None:
            expr = expr.xreplace({s: self.binding[s.name] for s in expr.free_symbols
                                  if s.name in self.binding})
        return expr_text(expr)

    def _bind(self, name: str) -> int:
        if name in self.binding:
            return self.binding[name]
        return DEFAULT_BATCH if "batch" in name.lower() else DEFAULT_SIZE

    # -- values -------------------------------------------------------------------------------
    def elems(self, v: Value | None) -> Any:
        """Elements of a tensor value; an unknown dim counts as 1 (the value is noted)."""
        if v is None:
            return None
        shape = self.shape_of(v)
        if shape is None:
            return None
        got = self._numel.get(shape)
        if got is None:
            got = self._numel[shape] = (numel(shape), numel(shape, 1))
        if got[0] is None:
            self.unknown_dims.add(v)
        return got[1]

    def nbytes(self, v: Value) -> Any:
        """Bytes of a tensor value (expression), 0 when its size is unknown."""
        t = v.meta.get("shapes_type") or v.type
        n = self.elems(v)
        if n is None or not isinstance(t, TensorType) or not t.dtype:
            return 0
        from ..ir import np_dtype

        try:
            size = 1 if t.dtype == 8 else int(__import__("numpy").dtype(np_dtype(t.dtype)).itemsize)
        except (TypeError, KeyError, ValueError):
            size = 1
        return n * size

    # -- nodes --------------------------------------------------------------------------------
    def flops(self, n: Node) -> Any:
        """FLOPs of one node (expression); 0 (and noted in ``uncosted``) when shapes are unknown."""
        got = self._flops(n)
        if got is None:
            self.uncosted.append(n)
            return 0
        return got

    def _flops(self, n: Node) -> Any:
        op = n.op_type
        out = self.elems(n.outputs[0]) if n.outputs else 0
        ins = n.inputs
        if op in _MATMUL and len(ins) >= 2:
            a = self.shape_of(ins[0]) if ins[0] is not None else None
            k = _dim(a[-1]) if a else None
            return None if out is None or k is None else 2 * out * k
        if op == "Gemm" and len(ins) >= 2:
            a = self.shape_of(ins[0]) if ins[0] is not None else None
            k = _dim(a[0 if n.attr("transA", 0) else -1]) if a and len(a) == 2 else None
            return None if out is None or k is None else 2 * out * k
        if op in _CONV or op == "ConvTranspose":
            w = ins[1] if len(ins) > 1 else None
            ws = self.shape_of(w) if w is not None else None
            per = numel(Shape(ws[1:])) if ws else None
            base = self.elems(ins[0]) if op == "ConvTranspose" else out
            return None if per is None or base is None else 2 * base * per
        if op in _RNN and len(ins) >= 3:
            x = self.shape_of(ins[0])
            w, r = self.elems(ins[1]), self.elems(ins[2])
            if not x or len(x) < 2 or w is None or r is None:
                return None
            steps, batch = _dim(x[0]), _dim(x[1])
            return None if steps is None or batch is None else 2 * steps * batch * (w + r)
        if n.subgraphs():
            return self._body_flops(n)
        if op.startswith("Reduce") and ins and ins[0] is not None:
            return self.elems(ins[0])
        return out

    def _body_flops(self, n: Node) -> Any:
        """If: the costlier branch; Loop/Scan: one trip of the body."""
        best, best_num = 0, -1.0
        for body in n.subgraphs():
            total = add_all(self.flops(inner) for inner in body.nodes)
            num = self.number(total)
            if num > best_num:
                best, best_num = total, num
        return best


def expr_text(expr: Any) -> str:
    """An expression as text (``2*seq*768``), ints as digits."""
    if isinstance(expr, float) and expr.is_integer():
        expr = int(expr)
    return str(expr).replace(" ", "")
