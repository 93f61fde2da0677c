"""``fold``: evaluate every node whose inputs are all constant and replace it by a constant.

Constants are initializers that are not graph inputs, Constant nodes, and values this pass has
already folded; a value of an enclosing graph is a constant inside If/Loop/Scan bodies too. Shape
arithmetic folds as well: ``Shape``/``Size`` of a value whose needed dims are proven static, and
any small integer tensor whose element values symbolic shape inference proved (``symval``), so
``Shape -> Gather(1)`` folds when dim 1 is static even if dim 0 is symbolic. An ``If`` whose
condition is constant is replaced by the nodes of the branch it takes. (A Reshape target known
only in terms of its input's dims is no constant to fold: ``simplify``'s ``reshape_target`` rule
rewrites it, :mod:`onnxopt.passes.simplify_shapes`.)

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

A later run with the same facts (the shape analysis' generation) and options looks only near what
changed since the last one: the nodes stamped since (``ir.core.clock``: new, rewired, edited, or
whose output facts changed), their readers, and, as the walk goes, the readers of every value it
finds constant; a node nothing of that reaches folds no more now than it did then. A model with an
overridable input (below) is always walked whole.

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

from ...ir import Graph, Model, Node, Tensor, Value
from ...ir.core import clock
from ..shapes.infer import GENERATION
from ..base import Pass, PassContext, PassResult
from ..registry import register
from .batch import RuntimeBatch
# CROSS_CHECK and NEVER_FOLD are re-exported (the package names NEVER_FOLD).
from .common import CROSS_CHECK, NEVER_FOLD, _Env  # noqa: F401
from .evaluate import Evaluation
from .inline import IfInlining
from .materialize import Materialization
from .proven import SHAPES, request_shapes

# model.meta: the last run's (facts, options and opsets; whether the model had Shape or Size
# nodes; the nodes it evaluated but kept). graph.meta: the clock when that run ended (a graph
# without it, new or replaced since, is walked whole).
_CLEAN = "fold.clean"


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
        return PassResult(False, folder.stats, preserved=frozenset({"*"}))


class _Folder(Evaluation, RuntimeBatch, IfInlining, Materialization):
    """One run of the pass: the state the parts share (see their modules)."""

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
        self.options_key = tuple(sorted(opts.items()))
        self.incremental = False  # walk only near what changed since the last run
        self.keep: set[Node] = set()  # nodes to look at besides those stamped since
        self.policy_refused = 0
        self._names: Optional[Counter] = None

    def run(self) -> None:
        m = self.model
        # Proven shapes only matter where shapes are read (Shape/Size start every static shape
        # computation); without such nodes the analysis' cost buys nothing here.
        reads = self.use_shapes and self.reads_shapes()
        if reads:
            self.shapes = request_shapes(m, self.ctx)
            self.trusted = self.shapes is not None
        memo = (m.meta.get(GENERATION), self.trusted, self.options_key,
                tuple(sorted(m.opset_imports.items())))
        last = m.meta.get(_CLEAN)
        # Taint from an overridable input is only known from a full walk.
        self.incremental = (last is not None and last[0] == memo and not self.overridable
                            and self.ctx.incremental)
        if self.incremental:
            # Bodies are walked from their node; the nodes the size policy kept look again.
            self.keep = {g.parent_node for g in m.graphs() if g.parent_node is not None}
            self.keep.update(n for n in last[2] if n.graph is not None)
        main = _Env(dict(m.opset_imports), m.ir_version)
        self.walk(m.graph, main)
        self.flush(main)
        for f in list(m.functions.values()):
            env = _Env({**m.opset_imports, **f.opset_imports}, m.ir_version)
            self.walk(f.graph, env)
            self.flush(env)
        self.materialize()
        # A node that did not fold now cannot fold later unless it, or the producer of one of
        # its inputs, is stamped again; what this run stamped it has looked at (the readers of
        # a value it made constant read that value already), except the nodes the size policy
        # kept: their inputs became constants of their own sizes, which the policy weighs.
        end = clock()
        for g in m.graphs():
            g.meta[_CLEAN] = end
        m.meta[_CLEAN] = (memo, reads, tuple(self.kept))
        if self.policy_refused:
            self.ctx.note(f"fold: {self.policy_refused} value(s) left computed at run time by the "
                          f"size policy (max_elements={self.max_elements}, "
                          f"max_growth={self.max_growth:g})")

    def reads_shapes(self) -> bool:
        """True when the model has a Shape or Size node (after a run that found none, only the
        nodes stamped since can be one)."""
        last = self.model.meta.get(_CLEAN)
        if last is None or last[1] or last[0][2] != self.options_key \
                or not self.ctx.incremental:
            nodes = self.model.all_nodes()
        else:
            nodes = (n for g in self.model.graphs() for n in _since_last(g))
        return any(n.op_type in ("Shape", "Size") for n in nodes)

    def walk(self, g: Graph, env: _Env) -> None:
        since = g.meta.get(_CLEAN) if self.incremental else None
        if since is None:  # a graph fold has not walked before (a new body, a replaced graph)
            for node in g.nodes:
                self.visit(node, env)
            return
        # Besides the nodes stamped since (new, rewired, edited), their readers: a producer is
        # stamped when the facts about its outputs change (a Shape of a value that became
        # static reads one); and the readers of every value found constant on the way.
        keep, pending, known = self.keep, env.pending_values, self.known
        for node in g.nodes.where(since, keep):
            stamped = node._stamp > since
            self.visit(node, env)
            for v in node.outputs:
                if stamped or v in known or v in pending:
                    keep.update(u for u, _ in v.uses())


def _since_last(g: Graph):
    """The nodes of ``g`` stamped since fold last walked it (all of them if it never did)."""
    since = g.meta.get(_CLEAN)
    return g.nodes if since is None else g.nodes.where(since)


__all__ = ["Fold", "NEVER_FOLD"]
