"""Check inferred shapes against what onnxruntime actually computes.

:func:`runtime_shapes` runs a model with every intermediate value of its main graph exposed as an
output; :func:`compare` evaluates every inferred dim at the binding of the symbolic input dims (and
of data-dependent symbols, bound where they first appear) and reports the dims that disagree.
Used by the runtime tests and the benchmark, and handy when debugging a shape function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir import Model, SequenceType, SymDim, TensorType
from . import dims as D


def expose_all(proto):
    """A copy of a ModelProto whose main graph also returns every node output."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                have.add(o)
    return m


def runtime_shapes(proto, feeds: dict, expose: bool = True) -> dict:
    """Run ``proto`` in onnxruntime (optimizations off); output name -> actual shape (a tuple, or
    a list of tuples for a sequence, or None for an empty optional)."""
    import onnxruntime as ort

    m = expose_all(proto) if expose else proto
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(None, feeds)
    return {k: _shape_of(v) for k, v in zip(names, res)}


def _shape_of(x):
    if x is None:
        return None
    if isinstance(x, list):
        return [_shape_of(e) for e in x]
    return tuple(np.asarray(x).shape)


@dataclass
class Comparison:
    """Inferred vs actual shapes of a set of values."""

    known: int = 0  # values whose inferred shape is fully known and verified
    partial: int = 0  # rank known, some dims unknown (the known ones verified)
    unknown: int = 0  # rank unknown or no type
    dims_known: int = 0
    dims_total: int = 0
    unverifiable: int = 0  # dims over symbols without a binding
    wrong: list = field(default_factory=list)  # (value name, inferred, actual)

    @property
    def values(self) -> int:
        """Values compared."""
        return self.known + self.partial + self.unknown

    @property
    def fraction_known(self) -> float:
        """Fraction of values whose shape is fully known."""
        return self.known / self.values if self.values else 1.0


def input_binding(model: Model, feeds: dict) -> dict:
    """Symbol name -> size, from the (annotated) main-graph inputs and the arrays fed."""
    b: dict = {}
    for v in model.graph.inputs:
        t = v.type
        if v.name not in feeds or not isinstance(t, TensorType) or t.shape is None:
            continue
        arr = feeds[v.name]
        for d, a in zip(t.shape, np.shape(arr)):
            if isinstance(d, SymDim) and D.is_lone(d):
                b.setdefault(d.text, int(a))
            elif isinstance(d, SymDim):
                e = d.expr
                if e.is_Symbol:
                    b.setdefault(e.name, int(a))
    return b


def compare(model: Model, actual: dict, binding: dict, values=None,
            bind_fresh: bool = True) -> Comparison:
    """Compare the annotated types of ``values`` (default: every named node output of the main
    graph, in order) with ``actual`` shapes (name -> shape) at ``binding``.

    With ``bind_fresh`` a symbol the binding does not know (a data-dependent one) is bound where
    it first appears as a whole dim and checked everywhere after; without, such dims count as not
    known (what coverage comparisons between tools use).
    """
    from .infer import proven_type

    return compare_types([(v.name, proven_type(v)) for v in (values if values is not None else
                          [v for n in model.graph.nodes for v in n.outputs if v.name])],
                         actual, binding, bind_fresh)


def compare_types(named_types, actual: dict, binding: dict, bind_fresh: bool = True
                  ) -> Comparison:
    """:func:`compare` over ``(name, type)`` pairs (types from any tool)."""
    binding = dict(binding)
    out = Comparison()
    for name, t in named_types:
        if name not in actual:
            continue
        _compare_one(name, t, actual[name], binding, out, bind_fresh)
    return out


def _compare_one(name: str, t, act, binding: dict, out: Comparison,
                 bind_fresh: bool = True) -> None:
    if isinstance(t, SequenceType):
        if isinstance(act, list):
            if not act:
                out.known += 1
                return
            sub = Comparison()
            for a in act:
                _compare_one(name, t.elem, a, binding, sub, bind_fresh)
            out.wrong.extend(sub.wrong)
            out.dims_known += sub.dims_known
            out.dims_total += sub.dims_total
            out.unverifiable += sub.unverifiable
            if sub.unknown:
                out.unknown += 1
            elif sub.partial:
                out.partial += 1
            else:
                out.known += 1
            return
        out.unknown += 1
        return
    if act is None or isinstance(act, list):
        out.unknown += 1
        return
    if not isinstance(t, TensorType) or t.shape is None:
        out.unknown += 1
        out.dims_total += len(act)
        return
    if len(t.shape) != len(act):
        out.wrong.append((name, t.shape, act))
        out.dims_total += len(act)
        return
    full = True
    for d, a in zip(t.shape, act):
        out.dims_total += 1
        if d is None:
            full = False
            continue
        val = D.evaluate(d, binding)
        if val is None and bind_fresh and D.is_lone(d) and d.text not in binding:
            binding[d.text] = int(a)  # a data-dependent symbol: bound where it first appears
            val = int(a)
        if val is None:
            out.unverifiable += 1
            full = False
            continue
        out.dims_known += 1
        if val != a:
            out.wrong.append((name, t.shape, act))
            return
    if full:
        out.known += 1
    else:
        out.partial += 1


__all__ = [
    "Comparison",
    "compare",
    "compare_types",
    "expose_all",
    "input_binding",
    "runtime_shapes",
]
