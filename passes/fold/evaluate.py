"""Evaluation and taint: constants, visiting each node, numpy evaluation, partial knowledge
(Shape/Size of proven dims, symbolic values) and what an IR < 4 overridable input taints.

A part of :class:`.fold._Folder` (a mixin: the state lives there)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Node, Tensor, TensorType, Value
from ...ir.shape import Shape
from ..shapes import sym_value
from ..shapes.infer import fact_or_declared
from . import evaluators as ev
from .common import _INT_DTYPES, _NON_TENSOR, NEVER_FOLD, _Env
from .runtime import EVALUABLE_DOMAINS


class Evaluation:
    """Visiting and evaluating nodes, partial knowledge and taint (see the module)."""

    def const_of(self, v: Value) -> Optional[Tensor]:
        """The tensor of a constant value, or None."""
        t = self.known.get(v)
        if t is not None:
            return t
        if v.const_value is not None and v.producer is None and not v.is_graph_input():
            return v.const_value
        return None

    def source_of(self, v: Value) -> int:
        s = self.source.get(v)
        if s is None:
            t = self.const_of(v)
            s = t.size if t is not None else 0
        return s

    def trusted_shape(self, v: Value) -> Optional[Shape]:
        """A shape that is a fact, not a declaration: inferred, a model input's, or a constant's."""
        t = self.const_of(v)
        if t is not None:
            return Shape(t.dims)
        if self.trusted or (v.is_graph_input() and v.graph is self.model.graph):
            vt = self.type_of(v)
            return vt.shape if isinstance(vt, TensorType) else None
        return None

    def type_of(self, v: Value):
        """What fold takes for ``v``'s type: the shape analysis' fact when the analysis ran for
        this pass, else the declared type."""
        return fact_or_declared(v) if self.trusted else v.type

    def dtype_of(self, v: Value) -> Optional[int]:
        """The element type of :meth:`type_of` (None when unknown or not a tensor)."""
        t = self.type_of(v)
        return (t.dtype or None) if isinstance(t, TensorType) else None

    def tainted_inputs(self, node: Node) -> bool:
        """True when the node reads a value computed from an overridable input (an IR < 4
        initializer that is also a graph input: its data is only a default)."""
        if not self.overridable:
            return False
        hit = any(v is not None and (v in self.tainted or (
            v.is_graph_input() and v.const_value is not None)) for v in node.inputs)
        if hit:
            self.taint_reads += 1
        return hit

    def visit(self, node: Node, env: _Env) -> None:
        reads = self.taint_reads
        if self.tainted_inputs(node):
            self.tainted.update(node.outputs)
        if node.subgraphs():
            self.visit_control(node, env)
            if self.taint_reads != reads:
                self.tainted.update(node.outputs)
            return
        self.visit_plain(node, env)

    def visit_control(self, node: Node, env: _Env) -> None:
        """An If with a constant condition is inlined; other bodies are folded in place."""
        if node.op_type == "If" and node.domain == "":
            cond = node.inputs[0]
            if cond in env.pending_values:
                self.flush(env)
            t = self.const_of(cond) if cond is not None else None
            if t is not None:
                self.inline_if(node, t, env)
                return
        for sub in node.subgraphs():
            self.walk(sub, env)

    def visit_plain(self, node: Node, env: _Env) -> None:
        if self.learns_nothing(node, env):
            return
        reason = self.refusal(node, env)
        if reason is not None:
            if reason != "not_candidate":
                self.stats[f"left.{reason}"] += 1
            return
        inputs = [v for v in node.inputs if v is not None]
        if any(v in env.pending_values for v in inputs):
            if all(v in env.pending_values or self.const_of(v) is not None for v in inputs):
                self.defer(node, env)
                return
        tensors = [None if v is None else self.const_of(v) for v in node.inputs]
        if any(t is None for v, t in zip(node.inputs, tensors) if v is not None):
            self.partial_fold(node, env)
            return
        if node.op_type == "Constant" and node.domain == "":
            self.fold_constant(node)
            return
        if (node.domain, node.op_type) in ev.EVALUATORS:
            self.eval_numpy(node, tensors, env)
        else:
            self.defer(node, env)

    def learns_nothing(self, node: Node, env: _Env) -> bool:
        """True for most nodes of a graph, cheaply: an input neither constant nor pending rules
        out evaluating or deferring the node, and then only :meth:`partial_fold` could learn
        something, which it does only from a Shape or Size or from an output's symbolic value."""
        if node.op_type in ("Shape", "Size") and node.domain == "":
            return False
        pending = env.pending_values
        for v in node.inputs:
            if v is not None and v not in pending and self.const_of(v) is None:
                return all(sym_value(o) is None for o in node.outputs)
        return False

    def refusal(self, node: Node, env: _Env) -> Optional[str]:
        """Why a node can never fold (None when it may)."""
        op = node.op_type
        if op in NEVER_FOLD or "Random" in op or (node.domain and "Dropout" in op):
            return "never_fold" if self.all_inputs_const(node, env) else "not_candidate"
        if node.domain not in EVALUABLE_DOMAINS or (node.domain, op, node.overload) in \
                self.model.functions:
            return "domain" if self.all_inputs_const(node, env) else "not_candidate"
        if any(a.ref_attr_name for a in node.attributes.values()):
            return "attribute_reference" if self.all_inputs_const(node, env) else "not_candidate"
        if any(isinstance(self.type_of(v), _NON_TENSOR) for v in node.outputs):
            return "non_tensor" if self.all_inputs_const(node, env) else "not_candidate"
        return None

    def all_inputs_const(self, node: Node, env: _Env) -> bool:
        return all(v is None or v in env.pending_values or self.const_of(v) is not None
                   for v in node.inputs)

    def fold_constant(self, node: Node) -> None:
        try:
            arr = ev.constant_value(node)
        except ev.Unsupported as e:
            self.stats["left.constant"] += 1
            self.ctx.note(f"fold: left Constant {node.name!r} alone: {e}")
            return
        v = node.outputs[0]
        t = node.attributes["value"].value if "value" in node.attributes else Tensor.from_numpy(arr)
        self.known[v] = t
        self.source[v] = t.size
        self.folded.append(node)
        self.folded_set.add(node)

    def opset_of(self, node: Node, env: _Env) -> int:
        return env.opset(node.domain)

    def eval_numpy(self, node: Node, tensors: list[Optional[Tensor]], env: _Env) -> None:
        opset = self.opset_of(node, env)
        if sum(t.size for t in tensors if t is not None) > self.max_inputs:
            self.stats["left.input_budget"] += 1
            return
        if node.op_type in ("Shape", "Size"):  # only the dims matter: do not decode the data
            arrays = [np.broadcast_to(np.zeros((), np.uint8), t.dims) for t in tensors[:1]]
        else:
            arrays = [None if t is None else t.numpy() for t in tensors]
        try:
            sizes = ev.output_sizes(node, arrays, opset)
            if sizes is not None and any(s > self.max_elements for s in sizes):
                self.stats["left.size_policy"] += 1
                self.policy_refused += 1
                return
            with np.errstate(all="ignore"):
                results = ev.evaluate(node, arrays, opset)
        except ev.NeverFold as e:
            self.leave(node, "never_fold", str(e))
            return
        except ev.Unsupported:
            self.defer(node, env)
            return
        except Exception as e:  # the node is invalid for these inputs: leave it as it is
            self.leave(node, "error", f"{type(e).__name__}: {e}")
            return
        self.record(node, results, tensors)

    def record(self, node: Node, results: list, tensors: list[Optional[Tensor]]) -> bool:
        """Check and keep the results of an evaluated node."""
        made: list[tuple[Value, Tensor]] = []
        for i, v in enumerate(node.outputs):
            if v.name == "" and not v.has_uses():
                continue  # an omitted optional output
            arr = results[i] if i < len(results) else None
            if arr is None:
                self.leave(node, "error", "the evaluator returned no value")
                return False
            if isinstance(arr, Tensor):
                t = arr
            else:
                arr = np.asarray(arr)
                expect = self.dtype_of(v)
                try:
                    t = Tensor.from_numpy(arr, dtype=expect if expect and arr.dtype.kind == "V"
                                          else None)
                except Exception as e:
                    self.leave(node, "error", f"cannot hold the result: {e}")
                    return False
            vdt = self.dtype_of(v)
            if vdt and t.dtype != vdt:
                self.leave(node, "dtype_mismatch",
                           f"result is dtype {t.dtype}, the graph says {vdt}")
                return False
            if t.size > self.max_elements:
                self.stats["left.size_policy"] += 1
                self.policy_refused += 1
                return False
            shape = self.trusted_shape(v) if self.trusted else None
            if shape is not None and shape.is_static() and tuple(shape) != tuple(t.dims):
                self.leave(node, "shape_mismatch",
                           f"result has shape {list(t.dims)}, inference says {list(shape)}")
                return False
            made.append((v, t))
        src = sum(self.source_of(v) for v in node.inputs if v is not None)
        for v, t in made:
            self.known[v] = t
            self.source[v] = src if node.inputs else t.size
        self.folded.append(node)
        self.folded_set.add(node)
        self.stats[f"folded.{node.op_type}"] += 1
        return True

    def leave(self, node: Node, reason: str, why: str) -> None:
        self.stats[f"left.{reason}"] += 1
        self.ctx.note(f"fold: left {node.op_type} {node.name or node.outputs[0].name!r} alone: "
                      f"{why}")

    def partial_fold(self, node: Node, env: _Env) -> None:
        """Known outputs of a node whose inputs are not all constant (shapes, symvals)."""
        if node.outputs and node.outputs[0] in self.tainted:
            return  # shape inference may have read an overridable input's default
        op = node.op_type if node.domain == "" else None
        if op in ("Shape", "Size") and node.inputs and node.inputs[0] is not None:
            shape = self.trusted_shape(node.inputs[0])
            if shape is not None:
                if op == "Shape":
                    s, e = ev.shape_slice(len(shape), node, self.opset_of(node, env))
                    dims = shape[s:e]
                    if all(type(d) is int for d in dims):
                        self.add_partial(node.outputs[0], np.array(dims, dtype=np.int64))
                        return
                elif shape.is_static():
                    self.add_partial(node.outputs[0], np.array(shape.numel(), dtype=np.int64))
                    return
        if not self.trusted:
            return
        for v in node.outputs:
            arr = self.symval_array(v)
            if arr is not None:
                self.add_partial(v, arr)

    def symval_array(self, v: Value) -> Optional[np.ndarray]:
        sv = sym_value(v)
        dt = self.dtype_of(v)
        if sv is None or dt not in _INT_DTYPES:
            return None
        vals = tuple(sv) if isinstance(sv, (tuple, list)) else (sv,)
        if not all(type(x) is int or isinstance(x, np.integer) for x in vals):
            return None
        vt = self.type_of(v)
        shape = vt.shape if isinstance(vt, TensorType) else None
        if shape is None or not shape.is_static() or shape.numel() != len(vals):
            return None
        return np.array(vals, dtype=np.int64 if dt == 7 else np.int32).reshape(tuple(shape))

    def add_partial(self, v: Value, arr: np.ndarray) -> None:
        dt = self.dtype_of(v)
        if dt and dt != (7 if arr.dtype == np.int64 else 6):
            return
        t = Tensor.from_numpy(arr)
        self.known[v] = t
        self.source[v] = t.size
        self.partial.append(v)
        self.stats[f"folded.{v.producer.op_type}(shape)"] += 1
