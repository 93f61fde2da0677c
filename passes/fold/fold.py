"""``fold``: evaluate every node whose inputs are all constant and replace it by a constant.

Constants are initializers that are not graph inputs, Constant nodes, and values this pass has
already folded; a value of an enclosing graph is a constant inside If/Loop/Scan bodies too. Shape
arithmetic folds as well: ``Shape``/``Size`` of a value whose needed dims are proven static, and
any small integer tensor whose element values symbolic shape inference proved (``symval``), so
``Shape -> Gather(1)`` folds when dim 1 is static even if dim 0 is symbolic. An ``If`` whose
condition is constant is replaced by the nodes of the branch it takes. A Reshape whose target is
known in terms of its input's dims (``[batch, seq, 4, 16]`` for an input ``[batch, seq, 64]``)
gets the constant target ``[0, 0, 4, 16]``, which leaves the Shape/Gather/Concat chain dead.

Shapes are facts from symbolic shape inference, constants, or the model's own inputs, never a
file's declared intermediate types. Nothing computed from an IR < 4 initializer that is also a
graph input (an overridable default, not a constant) feeds a shape fold.

Evaluation, per node in topological order (one walk, no rescans):

1. numpy evaluators (:mod:`.evaluators`) for the cheap common ops, exact to the spec;
2. everything else goes to a batch that onnxruntime evaluates as one small model per walk (the
   region's nodes plus the constants they read, never the whole model); if the runtime refuses the
   batch, each node is retried alone in onnxruntime, then, only when onnxruntime lacks the op or
   type (not when it ran the node and failed), in onnx's reference evaluator. Ops where
   onnxruntime departs from the spec in some modes (:data:`CROSS_CHECK`) fold only when the
   reference evaluator agrees;
3. a node an evaluator rejects (shape mismatch, integer division by zero...) stays as it is and
   the reason goes to ``ctx.note``; the pass never aborts and never writes a guessed constant.

Never folded: non-deterministic ops (Random*, Multinomial, Bernoulli, Dropout in training mode),
ops of domains no evaluator here implements and calls to model-local functions, attribute
references inside function bodies, anything producing a sequence, optional or map, and nodes
holding subgraphs (other than an If with a constant condition).

Size policy, checked *before* a node is evaluated (from input shapes, proven output shapes, or
onnx shape inference on the region) and again before a result is materialized:

- ``max_elements`` (default 1,000,000): no output or intermediate above this many elements is
  computed; ``max_input_elements`` (default 16,000,000) bounds what one evaluation reads.
- ``max_growth`` (default 4): a materialized constant may hold at most 4x the elements of the
  constants it is computed from (summed over the constant leaves that feed it), unless it is tiny
  (``small_elements``, default 64, the size of any shape tensor). Folding exists to remove work
  and to expose shapes; it must not turn a generator into data. ``ConstantOfShape``, ``Expand``,
  ``Tile`` and ``Range`` write megabytes from a few integers in microseconds at run time, while a
  materialized copy costs file size, load time and memory forever: the onnx light models hold
  hundreds of ``ConstantOfShape`` weight generators and a 4-integer shape must not become a
  23,232-float initializer. 4 leaves room for what really shrinks or keeps size (elementwise math,
  Reshape, Transpose, Gather, Concat: growth <= 1) and for modest broadcasting of a bias against a
  small tensor, and stops every generator whose output dwarfs its inputs. A value refused here
  keeps its producing node; the constants that node reads are materialized instead.
- What a constant replaces counts too: a value above the growth limit is still materialized when
  at least ``replace_nodes`` (default 2) of the folded nodes it is computed from do work on data,
  and it holds at most ``replace_elements`` (default 262,144: 1 MiB of float32). Nodes that do
  no such work: Constant, the generators (``ConstantOfShape``, ``Expand``, ``Tile``, ``Range``,
  ``EyeLike``) and shape arithmetic (outputs of at most ``small_elements`` elements). So a causal
  mask made from two constant aranges (Range, Range, Unsqueeze, Unsqueeze, Less, Where: four
  nodes of work) becomes one constant instead of six nodes recomputing it at every run, while a
  ConstantOfShape of a static shape, an Expand of a scalar or a Range followed by one Unsqueeze
  stay generators. On a graph whose every dim is known, every shape computation is small
  integers (or proven values) and folds whatever these limits say.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional

import numpy as np

from ...ir import Builder, Graph, Model, Node, Tensor, Value
from ...ir.shape import Shape
from ...ir.types import MapType, OptionalType, SequenceType, SparseTensorType
from ..base import Pass, PassContext, PassResult
from ..registry import register
from . import evaluators as ev
from .bounds import output_bound
from .proven import SHAPES, request_shapes
from .runtime import EVALUABLE_DOMAINS, ORT_DOMAINS, RegionModel, RuntimeFailed

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


@register
class Fold(Pass):
    """Constant folding, shape arithmetic included; If with a constant condition is inlined."""

    name = "fold"
    summary = "evaluate nodes whose inputs are constant (shape arithmetic too), inline constant Ifs"
    options = {"max_elements": 1_000_000, "max_growth": 4.0, "small_elements": 64,
               "max_input_elements": 16_000_000, "runtime": True, "shapes": True,
               "replace_nodes": 2, "replace_elements": 262_144}

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        folder = _Folder(model, ctx, self.opts)
        folder.run()
        if folder.modified:
            # Every value that stays computes what it did: the annotations remain facts.
            return PassResult(True, folder.stats, preserved=frozenset({SHAPES}))
        if folder.shapes is not None:
            folder.shapes.undo()  # nothing rewritten: the IR leaves exactly as it came
        return PassResult(False, folder.stats, preserved=frozenset({"*"}))


class _Folder:
    def __init__(self, model: Model, ctx: PassContext, opts: dict[str, Any]):
        self.model = model
        self.ctx = ctx
        self.max_elements = int(opts["max_elements"])
        self.max_growth = float(opts["max_growth"])
        self.small = int(opts["small_elements"])
        self.replace_nodes = int(opts["replace_nodes"])
        self.replace_elements = int(opts["replace_elements"])
        self.max_inputs = int(opts["max_input_elements"])
        self.use_runtime = bool(opts["runtime"])
        self.use_shapes = bool(opts["shapes"])
        self.stats: Counter = Counter()
        self.modified = False
        self.trusted = False  # value types come from shape inference (not declarations)
        self.shapes = None  # the shape analysis handle, when it ran
        self.overridable = any(v.const_value is not None for v in model.graph.inputs)
        self.tainted: set[Value] = set()  # values computed from overridable inputs
        self.taint_reads = 0
        self.known: dict[Value, Tensor] = {}  # computed constants (not yet materialized)
        self.source: dict[Value, int] = {}  # elements of the constant leaves a value comes from
        self.folded: list[Node] = []  # evaluated nodes, producers before consumers
        self.folded_set: set[Node] = set()
        self.kept: set[Node] = set()  # evaluated, but refused at materialization
        self.partial: list[Value] = []  # known outputs of nodes that are not themselves folded
        self.policy_refused = 0
        self._names: Optional[Counter] = None

    # -- driver ---------------------------------------------------------------------------------
    def run(self) -> None:
        m = self.model
        # Proven shapes only matter where shapes are read (Shape/Size start every static shape
        # computation); without such nodes the analysis' cost buys nothing here.
        if self.use_shapes and any(n.op_type in ("Shape", "Size") for n in m.all_nodes()):
            self.shapes = request_shapes(m, self.ctx)
            self.trusted = self.shapes is not None
        main = _Env(dict(m.opset_imports), m.ir_version)
        self.walk(m.graph, main)
        self.flush(main)
        for f in list(m.functions.values()):
            env = _Env({**m.opset_imports, **f.opset_imports}, m.ir_version)
            self.walk(f.graph, env)
            self.flush(env)
        self.materialize()
        if self.policy_refused:
            self.ctx.note(f"fold: {self.policy_refused} value(s) left computed at run time by the "
                          f"size policy (max_elements={self.max_elements}, "
                          f"max_growth={self.max_growth:g})")

    def walk(self, g: Graph, env: _Env) -> None:
        for node in g.nodes:
            self.visit(node, env)

    # -- constants ------------------------------------------------------------------------------
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
            return v.shape
        return None

    # -- visiting -------------------------------------------------------------------------------
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
        if any(isinstance(v.type, _NON_TENSOR) for v in node.outputs):
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
                expect = v.dtype
                try:
                    t = Tensor.from_numpy(arr, dtype=expect if expect and arr.dtype.kind == "V"
                                          else None)
                except Exception as e:
                    self.leave(node, "error", f"cannot hold the result: {e}")
                    return False
            if v.dtype and t.dtype != v.dtype:
                self.leave(node, "dtype_mismatch",
                           f"result is dtype {t.dtype}, the graph says {v.dtype}")
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

    # -- partial knowledge ----------------------------------------------------------------------
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
        found = False
        for v in node.outputs:
            arr = self.symval_array(v)
            if arr is not None:
                self.add_partial(v, arr)
                found = True
        if not found and op == "Reshape" and len(node.inputs) > 1 and node.inputs[1] is not None:
            self.reshape_target(node, env)

    def reshape_target(self, node: Node, env: _Env) -> None:
        """A Reshape whose target is known in terms of its input's dims gets a constant target:
        ``[batch, seq, 4, 16]`` for an input ``[batch, seq, 64]`` is ``[0, 0, 4, 16]`` (``0``
        copies the input's dim, one ``-1`` takes the rest), and the Shape/Gather/Concat chain
        that computed it becomes dead."""
        from ..shapes import dims_equal

        opset = self.opset_of(node, env)
        target = node.inputs[1]
        sv, shape = target.meta.get("symval"), self.trusted_shape(node.inputs[0])
        if opset < 5 or sv is None or shape is None or target.dtype != 7 or \
                self.const_of(target) is not None:
            return
        allowzero = opset >= 14 and node.attr("allowzero", 0) == 1
        out: list[int] = []
        for i, d in enumerate(sv):
            if type(d) is int or isinstance(d, np.integer):
                out.append(int(d))
            elif d is None:
                return
            elif not allowzero and i < len(shape) and dims_equal(shape[i], d):
                out.append(0)
            else:
                out.append(-1)
        if out.count(-1) > 1 or (allowzero and 0 in out and -1 in out):
            return
        new = Builder(node.graph, before=node).const(np.array(out, dtype=np.int64))
        new.meta["symval"] = tuple(out)
        node.set_input(1, new)
        self.modified = True
        self.stats["reshape_target"] += 1

    def symval_array(self, v: Value) -> Optional[np.ndarray]:
        sv = v.meta.get("symval")
        if sv is None or v.dtype not in _INT_DTYPES:
            return None
        vals = tuple(sv) if isinstance(sv, (tuple, list)) else (sv,)
        if not all(type(x) is int or isinstance(x, np.integer) for x in vals):
            return None
        shape = v.shape
        if shape is None or not shape.is_static() or shape.numel() != len(vals):
            return None
        return np.array(vals, dtype=np.int64 if v.dtype == 7 else np.int32).reshape(tuple(shape))

    def add_partial(self, v: Value, arr: np.ndarray) -> None:
        if v.dtype and v.dtype != (7 if arr.dtype == np.int64 else 6):
            return
        t = Tensor.from_numpy(arr)
        self.known[v] = t
        self.source[v] = t.size
        self.partial.append(v)
        self.stats[f"folded.{v.producer.op_type}(shape)"] += 1

    # -- the runtime batch ----------------------------------------------------------------------
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

    # -- If with a constant condition -----------------------------------------------------------
    def inline_if(self, node: Node, cond: Tensor, env: _Env) -> None:
        arr = cond.numpy()
        if arr.size != 1:
            self.leave(node, "error", f"If condition has {arr.size} elements")
            for sub in node.subgraphs():
                self.walk(sub, env)
            return
        taken = node.attr("then_branch" if bool(arr.reshape(-1)[0]) else "else_branch")
        if not isinstance(taken, Graph) or len(taken.outputs) != len(node.outputs):
            self.leave(node, "error", "If branch does not match the node's outputs")
            return
        self.walk(taken, env)
        parent = node.graph
        mapping: dict[Value, Value] = {}
        for bi in taken.initializers:
            name, bi.name = bi.name, None
            nv = Builder(parent, before=node).const(bi.const_value, name=name)
            nv.type = bi.type or nv.type
            bi.replace_all_uses_with(nv)
            mapping[bi] = nv
            self.source[nv] = bi.const_value.size
        outs = [mapping.get(v, v) for v in taken.outputs]
        taken.outputs = []
        for bi in mapping:
            taken.remove_initializer(bi)
        moved = list(taken.nodes)
        for n in moved:
            taken.detach(n)
        parent.insert_before(node, moved)
        self.unique_names([v for n in moved for v in n.outputs] + list(mapping.values()))
        for old, new in zip(node.outputs, outs):
            old.replace_all_uses_with(new, outputs=True)
        parent.erase(node)
        self.modified = True
        self.stats["inlined.If"] += 1

    def unique_names(self, values: list[Value]) -> None:
        """Rename values moved out of a branch whose names another value of the model has."""
        if self._names is None:
            self._names = Counter()
            for g in self.model.graphs():
                for v in list(g.inputs) + g.initializers:
                    self._names[v.name] += 1
                for n in g.nodes:
                    for v in n.outputs:
                        self._names[v.name] += 1
        names = self._names
        for v in values:
            if v.name and names[v.name] > 1:
                k = 1
                while f"{v.name}_{k}" in names:
                    k += 1
                names[v.name] -= 1
                v.name = f"{v.name}_{k}"
                names[v.name] += 1

    # -- materialization ------------------------------------------------------------------------
    def allowed(self, v: Value, t: Tensor) -> bool:
        if t.size > self.max_elements:
            return False
        if t.size <= self.small or t.size <= self.max_growth * self.source_of(v):
            return True
        return t.size <= self.replace_elements and self.work(v) >= self.replace_nodes

    def work(self, v: Value) -> int:
        """How many folded nodes that do work on data ``v`` is computed from (see the size
        policy), counted over its folded ancestors, each once."""
        seen: set[Node] = set()
        stack = [v.producer] if v.producer in self.folded_set else []
        count = 0
        while stack and count < self.replace_nodes:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            count += self.does_work(n)
            stack.extend(i.producer for i in n.inputs
                         if i is not None and i.producer in self.folded_set)
        return count

    def does_work(self, n: Node) -> bool:
        if n.op_type in _GENERATORS or n.domain != "":
            return False
        sizes = [self.known[o].size for o in n.outputs if o in self.known]
        return bool(sizes) and max(sizes) > self.small

    def needed(self, v: Value) -> bool:
        """True when something that stays reads ``v`` (a kept or unfolded node, a graph output)."""
        if v.is_graph_output():
            return True
        return any(n not in self.folded_set or n in self.kept for n, _ in v.uses())

    def materialize(self) -> None:
        """Decide (consumers first), then create constants in order, then erase dead nodes."""
        plan: list[tuple[Node, list[Value]]] = []
        for node in reversed(self.folded):
            needed = [v for v in node.outputs if self.needed(v)]
            is_const = node.op_type == "Constant" and node.domain == ""
            if needed and is_const and node.graph.is_function_body:
                self.kept.add(node)  # already a constant where no initializer can live
                continue
            if needed and not is_const and not all(self.allowed(v, self.known[v])
                                                  for v in needed):
                self.kept.add(node)
                self.stats[f"folded.{node.op_type}"] -= 1
                self.stats["left.size_policy"] += 1
                self.policy_refused += 1
                continue
            if any(g is not node.graph for v in needed for g in v.output_of()):
                self.kept.add(node)
                self.stats[f"folded.{node.op_type}"] -= 1
                self.stats["left.foreign_output"] += 1
                continue
            if is_const and needed:
                self.stats["constant_to_initializer"] += 1
            plan.append((node, needed))
        plan.reverse()
        for node, needed in plan:
            for v in needed:
                self.replace(node, v)
        partial = [v for v in self.partial if v.producer is not None and self.needed(v)
                   and self.allowed(v, self.known[v])
                   and all(g is v.producer.graph for g in v.output_of())]
        for v in partial:
            self.replace(v.producer, v)
        for node, _ in reversed(plan):
            if not any(v.has_uses() for v in node.outputs):
                node.graph.erase(node)
                self.modified = True
        for v in reversed(self.partial):
            node = v.producer
            if node is not None and node.graph is not None and not node.subgraphs() \
                    and not any(o.has_uses() for o in node.outputs):
                node.graph.erase(node)
                self.modified = True
        self.stats += Counter()  # drop zero and negative counters

    def replace(self, node: Node, v: Value) -> None:
        """Give ``v``'s readers (and graph-output slots) a constant holding its value."""
        t = self.known[v]
        g = node.graph
        if node.op_type == "Identity" and not v.is_graph_output():
            src = node.inputs[0]
            if src is not None and (self.const_of(src) is not None):
                v.replace_all_uses_with(src)
                self.modified = True
                return
        name, v.name = v.name, None
        new = Builder(g, before=node).const(t, name=name)
        if t.dtype in _INT_DTYPES and t.size <= self.small and len(t.dims) <= 1:
            new.meta["symval"] = tuple(int(x) for x in t.numpy().reshape(-1))
        v.replace_all_uses_with(new)
        for i, o in enumerate(g.outputs):
            if o is v:
                g.set_output(i, new)
        self.modified = True


__all__ = ["Fold", "NEVER_FOLD"]
