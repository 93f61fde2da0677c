"""The onnxruntime batch: nodes no numpy evaluator covers, run as one small model per walk,
retried alone (onnxruntime, then onnx's reference evaluator) and cross-checked where the
runtime departs from the spec; sizes predicted before anything runs.

A part of :class:`.fold._Folder` (a mixin: the state lives there)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Node, Value
from . import evaluators as ev
from .bounds import output_bound
from .common import CROSS_CHECK, _agree, _count, _Env, _live
from .runtime import ORT_DOMAINS, RegionModel, RuntimeFailed


class RuntimeBatch:
    """Evaluation of what numpy does not cover, in onnxruntime (see the module)."""

    def defer(self, node: Node, env: _Env) -> None:
        if not self.use_runtime:
            self.stats["left.no_runtime"] += 1
            return
        env.pending.append(node)
        env.pending_values.update(node.outputs)

    def flush(self, env: _Env) -> None:
        """Evaluate every deferred node of ``env``: one onnxruntime session for the batch."""
        batch, env.pending, env.pending_values = env.pending, [], set()
        if not batch:
            return
        consts = {}
        for n in batch:
            for v in n.inputs:
                if v is not None and (t := self.const_of(v)) is not None:
                    consts[v] = t
        sizes = self.predict_sizes(batch, consts, env)
        region: list[Node] = []
        dropped: set[Value] = set()
        for n in batch:
            ins = [v for v in n.inputs if v is not None]
            if any(v in dropped for v in ins):
                dropped.update(n.outputs)
                self.stats["left.upstream"] += 1
                continue
            insize = sum(consts[v].size if v in consts else sizes.get(v) or 0 for v in ins)
            outs = [sizes.get(v) for v in n.outputs if _live(v)]
            if insize > self.max_inputs:
                reason = "input_budget"
            elif any(s is None for s in outs):
                reason = "unknown_size"
            elif any(s > self.max_elements for s in outs):
                reason = "size_policy"
                self.policy_refused += 1
            else:
                region.append(n)
                continue
            self.stats[f"left.{reason}"] += 1
            dropped.update(n.outputs)
        if not region:
            return
        results: Optional[dict] = None
        if all(n.domain in ORT_DOMAINS for n in region):
            try:
                results = RegionModel(region, consts, env.opsets, env.ir_version).run_ort()
                self.stats["runtime.sessions"] += 1
            except RuntimeFailed:
                results = None
        if results is not None:
            for n in region:
                if any(v is not None and self.const_of(v) is None for v in n.inputs):
                    self.stats["left.upstream"] += 1
                    continue
                outs = [results.get(v) for v in n.outputs]
                if n.op_type in CROSS_CHECK and not self.cross_check(n, outs, env):
                    continue
                self.record(n, outs, [])
            return
        for n in region:  # one by one: numpy, onnxruntime, then the reference evaluator
            self.eval_alone(n, env)

    def cross_check(self, n: Node, outs: list, env: _Env) -> bool:
        """For ops where onnxruntime is known to depart from the spec in some modes: fold only
        when the reference evaluator computes the same thing."""
        consts = {v: self.const_of(v) for v in n.inputs if v is not None}
        try:
            ref = RegionModel([n], consts, env.opsets, env.ir_version).run_reference()
        except RuntimeFailed as e:
            self.leave(n, "unchecked", f"cannot cross-check onnxruntime's result ({e})")
            return False
        for v, got in zip(n.outputs, outs):
            want = ref.get(v)
            if got is None or want is None:
                continue
            if not _agree(np.asarray(got), np.asarray(want)):
                self.leave(n, "runtimes_disagree",
                           "onnxruntime and the onnx reference evaluator disagree")
                return False
        return True

    def eval_alone(self, n: Node, env: _Env) -> None:
        tensors = [None if v is None else self.const_of(v) for v in n.inputs]
        if any(t is None for v, t in zip(n.inputs, tensors) if v is not None):
            self.stats["left.upstream"] += 1
            return
        consts = {v: t for v, t in zip(n.inputs, tensors) if v is not None}
        key = (n.domain, n.op_type)
        if key in ev.EVALUATORS:
            try:
                with np.errstate(all="ignore"):
                    res = ev.evaluate(n, [None if t is None else t.numpy() for t in tensors],
                                      self.opset_of(n, env))
                self.record(n, res, tensors)
                return
            except ev.NeverFold as e:
                self.leave(n, "never_fold", str(e))
                return
            except ev.Unsupported:
                pass
            except Exception as e:
                self.leave(n, "error", f"{type(e).__name__}: {e}")
                return
        errors = []
        region = RegionModel([n], consts, env.opsets, env.ir_version)
        runners = ([region.run_ort] if n.domain in ORT_DOMAINS else []) + [region.run_reference]
        for run in runners:
            try:
                results = run()
            except RuntimeFailed as e:
                errors.append(str(e))
                if e.at_run:  # the runtime has the kernel and says the inputs are invalid:
                    break     # a more lenient evaluator must not get the last word
                continue
            self.stats["runtime.single"] += 1
            outs = [results.get(v) for v in n.outputs]
            if run == region.run_ort and n.op_type in CROSS_CHECK and \
                    not self.cross_check(n, outs, env):
                return
            self.record(n, outs, tensors)
            return
        self.leave(n, "error", "; ".join(errors))

    def predict_sizes(self, batch: list[Node], consts: dict, env: _Env) -> dict[Value, int]:
        """Element counts of the batch's outputs, known before evaluating: proven shapes, onnx
        shape inference on the region, then the bounds of :mod:`.bounds`."""
        shapes: dict[Value, Optional[tuple]] = {}
        for n in batch:
            for v in n.outputs:
                shape = self.trusted_shape(v)
                shapes[v] = tuple(shape) if shape is not None and shape.is_static() else None
        if any(shapes[v] is None for n in batch for v in n.outputs if _live(v)):
            inferred = RegionModel(batch, consts, env.opsets, env.ir_version).static_shapes()
            for v, dims in inferred.items():
                if shapes.get(v) is None:
                    shapes[v] = dims
        sizes: dict[Value, int] = {}
        for n in batch:
            in_shapes, in_sizes = [], []
            for v in n.inputs:
                t = consts.get(v) if v is not None else None
                if v is None:
                    in_shapes.append(())
                    in_sizes.append(0)
                elif t is not None:
                    in_shapes.append(tuple(t.dims))
                    in_sizes.append(t.size)
                else:
                    in_shapes.append(shapes.get(v))
                    in_sizes.append(sizes.get(v, -1))
            bound = None
            key = (n.domain, n.op_type)
            if key in ev.EVALUATORS and all(v is None or v in consts for v in n.inputs):
                try:
                    bound = ev.output_sizes(n, [None if v is None else consts[v].numpy()
                                                for v in n.inputs], env.opset(n.domain))
                except Exception:
                    bound = None
            for i, v in enumerate(n.outputs):
                if shapes.get(v) is not None:
                    sizes[v] = _count(shapes[v])
                    continue
                if bound is None and all(x >= 0 for x in in_sizes):
                    bound = output_bound(n.op_type, in_shapes, in_sizes, len(n.outputs)) or []
                if bound and i < len(bound):
                    sizes[v] = bound[i]
        return sizes
