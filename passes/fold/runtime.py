"""Evaluate a constant region with onnxruntime (one session), or one node with onnx's reference
evaluator as a last resort.

A region is a list of nodes, in order, whose inputs are all constants or outputs of earlier region
nodes. It becomes a small model: the constants it reads are its initializers, its nodes are copied
(attributes lowered from the IR), every node output is a model output. Only the region is
serialized, never the whole model.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from ...ir import Attr, Node, Tensor, Value
from ...ir.core import A_FLOAT, A_FLOATS, A_INT, A_INTS, A_STRING, A_STRINGS, A_TENSOR, A_TENSORS

# Domains a runtime here can evaluate (model-local functions and custom domains cannot).
EVALUABLE_DOMAINS = frozenset({"", "ai.onnx.ml", "com.microsoft",
                               "ai.onnx.preview.training", "ai.onnx.preview"})
ORT_DOMAINS = frozenset({"", "ai.onnx.ml", "com.microsoft"})


class RuntimeFailed(Exception):
    """The runtime could not build (``at_run=False``: it lacks the op, the type...) or run
    (``at_run=True``: the inputs are invalid for the node) the region."""

    def __init__(self, message: str, at_run: bool = False):
        super().__init__(message)
        self.at_run = at_run


def attr_proto(a: Attr):
    """An AttributeProto for a plain (non-graph) attribute."""
    if a.proto is not None:
        return a.proto
    import onnx

    p = onnx.AttributeProto()
    p.name, p.type = a.name, a.type
    v = a.value
    if a.type == A_FLOAT:
        p.f = v
    elif a.type == A_INT:
        p.i = v
    elif a.type == A_STRING:
        p.s = v.encode() if isinstance(v, str) else v
    elif a.type == A_TENSOR:
        p.t.CopyFrom(v.to_proto(v.name or ""))
    elif a.type == A_FLOATS:
        p.floats.extend(v)
    elif a.type == A_INTS:
        p.ints.extend(v)
    elif a.type == A_STRINGS:
        p.strings.extend(s.encode() if isinstance(s, str) else s for s in v)
    elif a.type == A_TENSORS:
        p.tensors.extend(t.to_proto(t.name or "") for t in v)
    else:
        raise RuntimeFailed(f"attribute {a.name!r} of type {a.type} cannot be copied")
    return p


class RegionModel:
    """The small model for a region: names for its values and the ModelProto."""

    def __init__(self, nodes: Sequence[Node], consts: dict[Value, Tensor],
                 opsets: dict[str, int], ir_version: int):
        import onnx

        self.names: dict[Value, str] = {}
        self.outputs: list[Value] = []
        g = onnx.GraphProto(name="fold_region")
        used: dict[Value, None] = {}
        for n in nodes:
            for v in n.inputs:
                if v is not None and v in consts:
                    used[v] = None
        for v in used:
            g.initializer.append(consts[v].to_proto(self._name(v)))
        for n in nodes:
            p = g.node.add()
            p.op_type = n.op_type
            if n.domain:
                p.domain = n.domain
            p.input.extend("" if v is None else self._name(v) for v in n.inputs)
            outs = []
            for v in n.outputs:
                if v.name == "" and not v.has_uses():
                    outs.append("")
                else:
                    outs.append(self._name(v))
                    self.outputs.append(v)
            p.output.extend(outs)
            p.attribute.extend(attr_proto(a) for a in n.attributes.values())
        for v in self.outputs:
            g.output.add().name = self.names[v]
        m = onnx.ModelProto(ir_version=max(ir_version, 3), graph=g)
        for d, ver in opsets.items():
            o = m.opset_import.add()
            o.domain, o.version = d, ver
        self.proto = m

    def _name(self, v: Value) -> str:
        name = self.names.get(v)
        if name is None:
            name = self.names[v] = f"v{len(self.names)}"
        return name

    def static_shapes(self) -> dict[Value, Optional[tuple[int, ...]]]:
        """Output shapes from onnx shape inference (with data propagation), None when not static."""
        import onnx

        out: dict[Value, Optional[tuple[int, ...]]] = {v: None for v in self.outputs}
        m = onnx.ModelProto()
        m.CopyFrom(self.proto)
        del m.graph.output[:]  # untyped outputs stay untyped; value_info gets the inferred types
        try:
            inferred = onnx.shape_inference.infer_shapes(m, data_prop=True)
        except Exception:
            return out
        by_name = {vi.name: vi for vi in list(inferred.graph.value_info)
                   + list(inferred.graph.output)}
        for v in self.outputs:
            vi = by_name.get(self.names[v])
            if vi is None or not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
            if all(d >= 0 for d in dims):
                out[v] = dims
        return out

    def run_ort(self) -> dict[Value, np.ndarray]:
        """Evaluate in onnxruntime (CPU, graph optimizations off)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 4
        so.intra_op_num_threads = 1
        try:
            sess = ort.InferenceSession(self.proto.SerializeToString(), so,
                                        providers=["CPUExecutionProvider"])
        except Exception as e:
            raise RuntimeFailed(f"onnxruntime: {_first_line(e)}") from e
        try:
            results = sess.run(None, {})
        except Exception as e:
            # A result the Python binding cannot hand back (bfloat16...) is no verdict on the
            # inputs; any other failure while running is.
            binding = "No corresponding Numpy type" in str(e)
            raise RuntimeFailed(f"onnxruntime: {_first_line(e)}", at_run=not binding) from e
        return dict(zip(self.outputs, results))

    def run_reference(self) -> dict[Value, np.ndarray]:
        """Evaluate with onnx.reference.ReferenceEvaluator."""
        import warnings

        from onnx.reference import ReferenceEvaluator

        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                results = ReferenceEvaluator(self.proto).run(None, {})
        except Exception as e:
            raise RuntimeFailed(f"reference evaluator: {_first_line(e)}") from e
        return dict(zip(self.outputs, results))


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def uses_ort(nodes: Iterable[Node]) -> bool:
    """True when every node is in a domain onnxruntime implements."""
    return all(n.domain in ORT_DOMAINS for n in nodes)


__all__ = ["RegionModel", "RuntimeFailed", "EVALUABLE_DOMAINS", "ORT_DOMAINS", "attr_proto",
           "uses_ort"]
