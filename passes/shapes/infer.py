"""The inference driver: one walk over every graph in topological order.

Each node is visited once (Loop bodies at most twice, to generalize loop-carried dims), so the cost
is linear in the graph; dim algebra is memoized in :mod:`.dims`. Results are computed into
dictionaries first and written to the IR at the end (:meth:`Inference.commit`):

- graph inputs: the declared type is the truth; an unnamed unknown dim gets a fresh symbol
  ``unk_<input>_<axis>`` (the declared type is kept in ``value.meta["shapes_declared_type"]``);
- node outputs: only what the graph proves propagates; a declared (value_info / output) shape the
  graph contradicts is recorded in ``ShapeInfo.hint_conflicts``; at commit, dims the graph leaves
  unknown keep their declared value, marked in ``value.meta["shapes_hint_dims"]``;
- body inputs (If/Loop/Scan): derived from the node, with the body's own static declarations
  filling the gaps;
- function bodies are inferred per call site (cached by the call's input types and values) and
  annotated with what all call sites agree on.

Results are *facts*, kept beside the IR: ``value.meta["shapes_type"]`` (the type inference gives
the value), ``value.meta["shapes_hint_dims"]`` and ``value.meta["symval"]``. Nothing here writes
``value.type``; :func:`materialize` does, for the ``shapes`` pass and :func:`infer_shapes`.

Incremental updates (:func:`update_inference`): an SSA value keeps its shape while it exists, so
after a pass that preserved the analysis only nodes that are new, whose input tuple changed, or
whose inputs' facts changed are inferred again (with their bodies); a value's known facts are
kept and only refined. The inference frame (types, element values, fresh names) persists in
``ShapeInfo.state`` between updates.
"""

from __future__ import annotations

import gc
import math
import re
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import numpy as np

from ...ir import Model, Node, OptionalType, SequenceType, Shape, SymDim, TensorType, Value
from ...ir.core import clock, touch_value
from ...ir.types import Type
from . import dims as D
from . import memo
from .context import (
    MAX_VALS,
    Constraint,
    NodeCtx,
    ShapeInfo,
    ShapeIssue,
    Unknown,
    Unresolved,
    node_label,
    obj_array,
    vals_from_numpy,
)
from .table import lookup

_SAN = re.compile(r"[^A-Za-z0-9_]+")
_NAMED = re.compile(r"[A-Za-z_]")
# Strict mode: a shape function that raises fails the inference instead of leaving its outputs
# unknown (the test suite runs everything under it, so a crashing rule cannot hide).
_STRICT: ContextVar[bool] = ContextVar("onnxopt.shapes.strict", default=False)


@contextmanager
def strict_shapes(on: bool = True) -> Iterator[None]:
    """Within the block (this thread or task), shape functions that raise are errors."""
    token = _STRICT.set(on)
    try:
        yield
    finally:
        _STRICT.reset(token)


def _sanitize(s: str) -> str:
    s = _SAN.sub("_", s).strip("_")
    if not s or s[0].isdigit():
        s = "v" + s
    return s[:48]


def _precise(t) -> bool:
    if not isinstance(t, TensorType) or t.shape is None:
        return False
    for d in t.shape:  # not ``None in shape``: that calls SymDim.__eq__ on every symbolic dim
        if d is None:
            return False
    return True


def _clean(t):
    """A type that lowering can write (no dtype-0 tensors inside)."""
    if isinstance(t, TensorType):
        return t if t.dtype else None
    if isinstance(t, SequenceType):
        return SequenceType(_clean(t.elem))
    if isinstance(t, OptionalType):
        e = _clean(t.elem)
        return OptionalType(e) if e is not None else None
    return t


def join_types(a, b):
    """The most precise type both ``a`` and ``b`` satisfy (dims that differ become unknown)."""
    if a is None or b is None:
        return None
    if a == b:
        return a
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        dt = a.dtype if a.dtype == b.dtype else 0
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorType(dt, None)
        return TensorType(dt, Shape([x if D.eq(x, y) else None for x, y in zip(a.shape, b.shape)]))
    if isinstance(a, SequenceType) and isinstance(b, SequenceType):
        return SequenceType(join_types(a.elem, b.elem))
    if isinstance(a, OptionalType) and isinstance(b, OptionalType):
        return OptionalType(join_types(a.elem, b.elem))
    return None


class _Root:
    """State shared by the main inference and every function-call frame."""

    def __init__(self, model: Model, info: ShapeInfo, verbose: int, notes: list | None):
        self.model = model
        self.info = info
        self.verbose = verbose
        self.notes = notes
        self.names: set[str] = set()
        self.frames: dict = {}  # function key -> list of frames (one per distinct call)
        self.call_cache: dict = {}
        self.depth = 0
        self.speculative = 0  # > 0 inside an If branch that may not run
        self.err_keys: set = set()
        self.con_keys: set = set()
        self.unknown_ops: dict = {}
        self.seen: dict = {}  # node -> its input tuple when it was last inferred
        self.fresh_memo: dict = {}  # (node, kind, label, k) -> the fresh name it was given
        self.fresh_count: dict | None = None  # fresh names handed out in the current node
        self.reuse = False  # updates give a node the fresh names its last inference gave it
        # Reports (constraints, errors, unknowns, hint conflicts) filed under the main-graph
        # node whose inference made them, so an update can replace those of the nodes it
        # infers again and rebuild the lists (see _rebuild); ``loose`` holds the others.
        self.top: Node | None = None
        self.reports: dict = {}
        self.loose: list = []
        self.clock = -1  # ir.core.clock() when the facts were last brought up to date
        self.memo: dict = {}  # shape function calls by their exact inputs (see .memo)
        self.memo_keys = memo.Keys()

    def file(self, entry: tuple) -> None:
        """File a report under the main-graph node being inferred."""
        top = self.top
        if top is None:
            self.loose.append(entry)
        else:
            lst = self.reports.get(top)
            if lst is None:
                self.reports[top] = [entry]
            else:
                lst.append(entry)


class Inference:
    """One frame of inference: the main graph (with its subgraphs), or one function call."""

    def __init__(self, model: Model, info: ShapeInfo, root: _Root | None = None,
                 verbose: int = 0, notes: list | None = None):
        self.model = model
        self.info = info
        self.root = root or _Root(model, info, verbose, notes)
        self.types: dict[Value, Type | None] = {}
        self.vals: dict[Value, np.ndarray] = {}
        self.seqs: dict[Value, list] = {}
        self.used_fresh = False

    # -- what shape functions call -------------------------------------------------------------
    def type_of(self, v: Value):
        """The inferred type of a value (its declared type when not visited)."""
        t = self.types.get(v, _MISSING)
        if t is _MISSING:
            return v.type
        return t

    def vals_of(self, v: Value) -> np.ndarray | None:
        """Element values of a small tensor, when known."""
        return self.vals.get(v)

    def seq_items_of(self, v: Value) -> list | None:
        """The element types of a sequence whose length is known."""
        return self.seqs.get(v)

    def set_seq_items(self, v: Value, items: list) -> None:
        """Record the element types of a sequence of known length."""
        self.seqs[v] = items

    def set_out(self, v: Value, t, vals: np.ndarray | None) -> None:
        """Record an output's inferred type, merged with its declared type (a hint)."""
        if v.type is not None:  # most intermediate values declare nothing
            t = self._proven(t, v.type, v)
        self.types[v] = t
        if vals is not None and not isinstance(vals, np.ndarray):
            vals = obj_array([vals], ())
        if vals is not None and isinstance(t, TensorType) and t.shape is not None:
            shape = t.shape
            if all(type(d) is int for d in shape):
                n = math.prod(shape)
                if n == vals.size and n <= MAX_VALS:
                    # The array itself when it has the shape: a replayed call's arrays then stay
                    # one object, whose memo key is built once (see .memo.Keys).
                    self.vals[v] = vals if vals.shape == shape else vals.reshape(tuple(shape))
                    return
        self.vals.pop(v, None)

    def fresh(self, kind: str, node: Node | None, hint: str = "") -> SymDim:
        """A fresh symbol ``<kind>_<node>`` (numbered when taken)."""
        root = self.root
        key = None
        if node is not None and root.fresh_count is not None:
            k = root.fresh_count.get((kind, hint), 0)
            root.fresh_count[(kind, hint)] = k + 1
            key = (node, kind, hint, k)
            if root.reuse:
                name = root.fresh_memo.get(key)
                if name is not None:
                    self.used_fresh = True
                    return D.sym(name)
        label = hint or (node.name or node.op_type if node is not None else "v")
        base = f"{kind}_{_sanitize(label)}"
        name = base
        i = 1
        names = root.names
        while name in names:
            name = f"{base}_{i}"
            i += 1
        names.add(name)
        if key is not None:
            root.fresh_memo[key] = name
        self.info.symbols[name] = (f"data-dependent, from {node_label(node)}" if node is not None
                                   else "fresh")
        self.used_fresh = True
        return D.sym(name)

    def constraint(self, a, b, kind: str, node: Node | None, why: str) -> None:
        """Record a fact the graph proves (deduplicated)."""
        if self.root.speculative:
            return
        key = (a, b, kind) if str(a) <= str(b) else (b, a, kind)
        c = Constraint(a, b, kind, node, why)
        self.root.file(("con", key, c))
        if key in self.root.con_keys:
            return
        self.root.con_keys.add(key)
        self.info.constraints.append(c)

    def error(self, node: Node | None, message: str) -> None:
        """Record a contradiction naming the node (deduplicated)."""
        key = (id(node), message)
        if self.root.speculative:
            issue, where = ShapeIssue(node, message + " (in an If branch that may not run)"), \
                "warn"
        else:
            issue, where = ShapeIssue(node, message), "err"
        self.root.file((where, key, issue))
        if key in self.root.err_keys:
            return
        self.root.err_keys.add(key)
        (self.info.warnings if where == "warn" else self.info.errors).append(issue)

    # -- declarations ------------------------------------------------------------------------
    # A declared (value_info / output) type is a hint. Inference propagates only what the graph
    # proves (plus a declared dtype where it proves none); a declaration the graph contradicts is
    # reported. At commit, dims the graph leaves unknown keep their declared value, so no type gets
    # less precise, and value.meta["shapes_hint_dims"] names them (shape_of() leaves them out).

    def _proven(self, inferred, declared, v: Value):
        """The inferred type (with a declared dtype when it has none); conflicts reported."""
        if not isinstance(declared, TensorType):
            return inferred
        if inferred is None:
            return TensorType(declared.dtype, None) if declared.dtype else None
        if not isinstance(inferred, TensorType):
            return inferred
        if inferred.dtype and declared.dtype and inferred.dtype != declared.dtype:
            self._conflict(v, f"declared dtype {declared.dtype} but the graph computes "
                              f"{inferred.dtype}")
        si, sd = inferred.shape, declared.shape
        if si is not None and sd is not None and (
                len(si) != len(sd) or any(type(a) is int and type(b) is int and a != b
                                          for a, b in zip(si, sd))):
            self._conflict(v, f"declared shape {sd} but the graph computes {si}")
        if not inferred.dtype and declared.dtype:
            return TensorType(declared.dtype, si)
        return inferred

    def fill_from_declared(self, t, declared, v: Value):
        """(annotation, hint dims): ``t`` with the dims it leaves unknown taken from the
        declaration (static ones, and symbolic ones over input symbols in the main graph)."""
        if not isinstance(declared, TensorType) or declared.shape is None:
            return t, None
        if t is None:
            return declared, "*"
        if not isinstance(t, TensorType):
            return t, None
        sd = declared.shape
        if t.shape is None:
            dims = [b if type(b) is int or (b is not None and self._trusted(b, v)) else None
                    for b in sd]
            # The rank itself is the declaration's: "*" marks the whole shape as declared.
            return TensorType(t.dtype or declared.dtype, Shape(dims)), "*"
        if len(t.shape) != len(sd):
            return t, None
        out, hint = [], []
        for i, (a, b) in enumerate(zip(t.shape, sd)):
            if a is None and b is not None and (type(b) is int or self._trusted(b, v)):
                out.append(b)
                hint.append(i)
            else:
                out.append(a)
        if not hint:
            return t, None
        return TensorType(t.dtype, Shape(out)), tuple(hint)

    def _trusted(self, d, v: Value) -> bool:
        """A declared symbolic dim is used only in the main graph and over input symbols."""
        g = v.owning_graph()
        if g is not self.model.graph:
            return False
        syms = self.info.symbols
        try:
            return all(s in syms and not syms[s].startswith("data-dependent")
                       for s in D.free_symbols(d))
        except Exception:  # an unparsable declaration
            return False

    def _conflict(self, v: Value, msg: str) -> None:
        node = v.producer
        issue = ShapeIssue(node, f"value {v.name!r}: {msg}", v)
        self.root.file(("hint", None, issue))
        self.info.hint_conflicts.append(issue)

    # -- graphs ----------------------------------------------------------------------------------
    def main_inputs(self, g) -> None:
        """Types of the main graph's inputs: declared, with fresh symbols for unnamed dims."""
        for v in g.inputs:
            if v.const_value is not None:
                continue
            t = v.type
            if isinstance(t, TensorType) and t.shape is not None:
                t = self._name_dims(v, t)
            elif isinstance(t, (SequenceType, OptionalType)):
                # Elements of one sequence may differ in size: their dim_params are no symbols.
                t = _static_elems(t)
            self.types[v] = t

    def _name_dims(self, v: Value, t: TensorType) -> TensorType:
        dims = list(t.shape)
        changed = False
        for i, d in enumerate(dims):
            if isinstance(d, SymDim):
                if not _NAMED.search(d.text):
                    d = None
                else:
                    self.root.names.add(d.text)
                    self.info.symbols.setdefault(d.text, f"input {v.name!r} axis {i}")
                    continue
            if d is None:
                name = f"unk_{_sanitize(v.name or 'input')}_{i}"
                dims[i] = SymDim(name) if name not in self.root.names else self.fresh(
                    "unk", None, f"{v.name}_{i}")
                self.root.names.add(dims[i].text)
                self.info.symbols[dims[i].text] = f"unnamed dim of input {v.name!r} axis {i}"
                changed = True
        return TensorType(t.dtype, Shape(dims)) if changed else t

    def reserve_input_names(self, g) -> None:
        """Reserve every named input dim, so fresh names never collide with them."""
        for v in g.inputs:
            t = v.type
            if isinstance(t, TensorType) and t.shape is not None:
                for d in t.shape:
                    if isinstance(d, SymDim):
                        self.root.names.add(d.text)

    def initializers(self, g) -> None:
        """Types and small values of a graph's initializers."""
        self.initializers_of(g.initializers)

    def initializers_of(self, values) -> None:
        """Types and small values of initializers."""
        for v in values:
            t = v.const_value
            self.types[v] = TensorType(t.dtype, Shape(t.dims))
            if t.dtype != 8 and t.size <= MAX_VALS:
                try:
                    a = vals_from_numpy(t.numpy())
                except Exception:  # undecodable tensor: values unknown, type still right
                    a = None
                if a is not None:
                    self.vals[v] = a

    def run_graph(self, g, opsets: dict, fattrs: dict | None) -> None:
        """Infer every node of ``g`` (inputs and initializers must be typed by the caller)."""
        self.initializers(g)
        for n in g.nodes:
            self.node(n, opsets, fattrs)

    def subgraph(self, g, input_types: list, input_vals: list | None, opsets: dict,
                 fattrs: dict | None) -> list:
        """Infer a body graph whose inputs have ``input_types``; returns its output types."""
        for i, v in enumerate(g.inputs):
            t = input_types[i] if i < len(input_types) else None
            self.types[v] = self._merge_input(t, v.type)
            a = input_vals[i] if input_vals and i < len(input_vals) else None
            if a is not None:
                self.vals[v] = a
            else:
                self.vals.pop(v, None)
        self.run_graph(g, opsets, fattrs)
        return [self.type_of(v) for v in g.outputs]

    @staticmethod
    def _merge_input(derived, declared):
        # Declared body-input dims fill what the outer graph leaves unknown (static ones only:
        # a body's symbolic names are not the outer graph's).
        declared = _static_elems(declared)
        if derived is None:
            return declared
        if declared is None or not isinstance(derived, TensorType) \
                or not isinstance(declared, TensorType):
            return derived
        if derived.shape is None:
            return TensorType(derived.dtype or declared.dtype, declared.shape)
        if declared.shape is None or len(declared.shape) != len(derived.shape):
            return TensorType(derived.dtype or declared.dtype, derived.shape)
        return TensorType(derived.dtype or declared.dtype, Shape(
            [a if a is not None else b for a, b in zip(derived.shape, declared.shape)]))

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, n: Node, opsets: dict, fattrs: dict | None) -> None:
        """Infer one node's outputs."""
        root = self.root
        root.seen[n] = n.inputs
        saved = root.fresh_count
        root.fresh_count = {}
        top = root.top is None and n.graph is self.model.graph and root.depth == 0
        if top:
            root.top = n
        try:
            self._node(n, opsets, fattrs)
        finally:
            root.fresh_count = saved
            if top:
                root.top = None

    def _node(self, n: Node, opsets: dict, fattrs: dict | None) -> None:
        ctx = NodeCtx(n, self, opsets, fattrs)
        domain = n.domain
        fn = lookup(domain, n.op_type) if domain == "" or (
            (n.domain, n.op_type, n.overload) not in self.model.functions) else None
        # A table function on a node without bodies, outside functions, sees only the key.
        memoize = fn is not None and fattrs is None and not (n.attributes and n.subgraphs())
        reason = ""
        if fn is None:
            f = self.model.functions.get((n.domain, n.op_type, n.overload))
            if f is not None:
                fn = lambda c: self.call_function(c, f)
            else:
                from .fallback import onnx_fallback

                fn = onnx_fallback(domain, n.op_type, ctx)
                if fn is None:
                    op = f"{domain + '::' if domain else ''}{n.op_type}"
                    reason = f"no shape function for {op}"
                    self.root.unknown_ops[op] = self.root.unknown_ops.get(op, 0) + 1
        if fn is not None:
            try:
                if memoize:
                    self._memoized(fn, ctx)
                else:
                    fn(ctx)
            except Unresolved as e:
                reason = f"attribute refers to function attribute {e} with no known value"
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as e:  # a shape function bug must not take the tool down
                if _STRICT.get():
                    raise
                reason = f"shape function failed: {type(e).__name__}: {e}"
        types = self.types
        complete = not reason
        for v in n.outputs:
            t = types.get(v, _MISSING)
            if t is _MISSING:
                t = types[v] = self._proven(None, v.type, v)
                self.vals.pop(v, None)
            if complete and v.name and not _precise(t) and not isinstance(
                    t, (SequenceType, OptionalType)):
                complete = False
        if not complete:
            vs = tuple(v for v in n.outputs if v.name and not _precise(types[v]))
            u = Unknown(n, reason or "outputs partly unknown", vs)
            self.root.file(("unk", None, u))
            self.info.unknown.append(u)

    def _memoized(self, fn, ctx: NodeCtx) -> None:
        """``fn(ctx)``, or the effects it had on an earlier node with the same exact inputs."""
        k = memo.key(ctx, fn, self.root.memo_keys)
        if k is None:
            fn(ctx)
            return
        cache = self.root.memo
        hit = cache.get(k)
        if hit is not None:
            memo.replay(self, ctx.node, hit[0])
            return
        held = memo.held(ctx)  # before the call: what the key was made from
        rec = memo.Recorder(self, ctx.node)
        ctx.inf = rec
        fn(ctx)
        if not rec.spoiled and len(cache) < memo.MAX_ENTRIES:
            cache[k] = (rec.effects, held)

    # -- functions -------------------------------------------------------------------------------
    def call_function(self, ctx: NodeCtx, f) -> None:
        """Infer a call of a model-local function by instantiating its body."""
        root = self.root
        if root.depth > 16:
            return
        fattrs: dict = {"__absent__": set()}
        defaults = {a.name: a for a in f.attribute_defaults}
        for name in list(f.attributes) + list(defaults):
            if ctx.node.attributes.get(name) is not None:
                fattrs[name] = ctx.attr(name)
            elif name in defaults:
                fattrs[name] = defaults[name].value
            else:
                fattrs["__absent__"].add(name)
        body = f.graph
        in_types = [ctx.type(i) for i in range(len(body.inputs))]
        in_vals = [ctx.vals(i) for i in range(len(body.inputs))]
        key = (f.key, tuple(in_types),
               tuple(None if a is None else (a.shape, tuple(a.flat)) for a in in_vals),
               tuple(sorted((k, repr(v)) for k, v in fattrs.items() if k != "__absent__")))
        try:
            hit = root.call_cache.get(key)
        except TypeError:
            hit, key = None, None
        if hit is None:
            frame = Inference(self.model, self.info, root)
            opsets = dict(self.model.opset_imports)
            opsets.update(f.opset_imports)
            for v, t, a in zip(body.inputs, in_types, in_vals):
                frame.types[v] = t
                if a is not None:
                    frame.vals[v] = a
            root.depth += 1
            try:
                frame.run_graph(body, opsets, fattrs)
            finally:
                root.depth -= 1
            hit = [(frame.type_of(v), frame.vals_of(v)) for v in body.outputs]
            root.frames.setdefault(f.key, []).append(frame)
            if key is not None and not frame.used_fresh:
                root.call_cache[key] = hit
        for i, (t, a) in enumerate(hit):
            if i < len(ctx.node.outputs) and t is not None:
                self.set_out(ctx.node.outputs[i], t, a)

    # -- writing back ----------------------------------------------------------------------------
    def commit_value(self, v: Value) -> bool:
        """Record ``v``'s inferred type and symval as facts; True when they changed."""
        meta = v.meta
        old = (meta.get(FACT, _MISSING), meta.get(HINT), meta.get(SYMVAL))
        self._record(v, self.types.get(v))
        return old != (meta.get(FACT, _MISSING), meta.get(HINT), meta.get(SYMVAL))

    def _record(self, v: Value, t) -> None:
        if v._is_input and v.graph is self.model.graph:
            v.meta[FACT] = t if t is not None else v.type
        elif v.type is None and not v.meta:  # nothing declared, nothing recorded: the common case
            v.meta[FACT] = _clean(t)
        else:
            _write(v, *self.fill_from_declared(t, v.type, v))
        _write_symval(v, t, self.vals.get(v))

    def commit(self) -> None:
        """Record inferred types (and symvals) as facts beside the IR (see :func:`materialize`)."""
        model = self.model
        record = self._record
        for v, t in self.types.items():
            record(v, t)
        for key in model.functions:
            frames = self.root.frames.get(key)
            if not frames:
                continue
            seen = {}
            for fr in frames:
                for v, t in fr.types.items():
                    if v in seen:
                        seen[v] = (join_types(seen[v][0], t), _same_vals(seen[v][1], fr.vals_of(v)))
                    else:
                        seen[v] = (t, fr.vals_of(v))
            for v, (t, a) in seen.items():
                if v.const_value is None:
                    _write(v, *self.fill_from_declared(t, v.type, v))
                _write_symval(v, t, a)


def _static_elems(t):
    if isinstance(t, TensorType):
        if t.shape is None:
            return t
        return TensorType(t.dtype, Shape([d if type(d) is int else None for d in t.shape]))
    if isinstance(t, SequenceType):
        return SequenceType(_static_elems(t.elem))
    if isinstance(t, OptionalType):
        return OptionalType(_static_elems(t.elem))
    return t


def _same_vals(a, b):
    if a is None or b is None or a.shape != b.shape:
        return None
    return a if all(x == y for x, y in zip(a.flat, b.flat)) else None


def _write(v: Value, t, hint=None) -> None:
    """Record the fact ``t`` for ``v`` (what the ``shapes`` pass would write as its type)."""
    meta = v.meta
    if hint is None:
        meta.pop(HINT, None)
    else:
        meta[HINT] = hint
    t = _clean(t)
    old = v.type
    if t is None or (isinstance(old, TensorType) and isinstance(t, TensorType) and old.dtype
                     and not t.dtype):
        meta[FACT] = old
    else:
        meta[FACT] = t


def _write_symval(v: Value, t, a) -> None:
    if (a is not None and isinstance(t, TensorType) and t.dtype in (6, 7)
            and t.shape is not None and len(t.shape) <= 1):
        v.meta["symval"] = tuple(x if x is None or isinstance(x, SymDim) else int(x)
                                 for x in a.flat)
    elif "symval" in v.meta:
        del v.meta["symval"]


_MISSING = object()
FACT = "shapes_type"  # value.meta: the inferred type (an analysis fact, not the IR's type)
HINT = "shapes_hint_dims"  # value.meta: dims of the fact that only a declaration gives
SYMVAL = "symval"  # value.meta: elements of a small int tensor
FACTS_FLAG = "shapes.facts"  # model.meta: facts have been recorded on the model's values
GENERATION = "shapes.generation"  # model.meta: bumped when facts are recomputed or dropped


def _new_generation(model: Model) -> None:
    model.meta[GENERATION] = model.meta.get(GENERATION, 0) + 1


def best_type(v: Value):
    """The inferred type of ``v`` when the analysis recorded one, else ``v.type`` (declared)."""
    t = v.meta.get(FACT, _MISSING)
    return v.type if t is _MISSING else t


def fact_or_declared(v: Value):
    """The analysis' type of ``v`` when it knows one, else the declared type: what a pass that
    reads types sees (facts stay in ``value.meta``; nothing is written into the IR)."""
    t = v.meta.get(FACT)
    return v.type if t is None else t


def has_fact(v: Value) -> bool:
    """True when the analysis recorded a type for ``v``."""
    return FACT in v.meta


def proven_type(v: Value):
    """The inferred type of ``v`` (its declared one when there is no fact) without the dims that
    only a declaration gives (see fill_from_declared)."""
    meta = v.meta
    t = meta.get(FACT, _MISSING)
    if t is _MISSING:
        t = v.type
    hint = meta.get(HINT)
    if hint is None or not isinstance(t, TensorType):
        return t
    if hint == "*" or t.shape is None:
        return TensorType(t.dtype, None) if t.dtype else None
    return TensorType(t.dtype, Shape([None if i in hint else d for i, d in enumerate(t.shape)]))


def _count(info: ShapeInfo, model: Model) -> None:
    known = partial = unknown = 0
    for g in model.graphs():
        for n in g.nodes:
            for v in n.outputs:
                if not v.name:
                    continue
                t = proven_type(v)
                if _precise(t):
                    known += 1
                elif isinstance(t, TensorType) and t.shape is not None:
                    partial += 1
                elif isinstance(t, (SequenceType, OptionalType)):
                    known += 1
                else:
                    unknown += 1
    info.stats.update(known=known, partial=partial, unknown=unknown)


def load_ops() -> None:
    """Import every module that registers shape functions."""
    from . import (  # noqa: F401
        ops_control,
        ops_elementwise,
        ops_ms,
        ops_nn,
        ops_reduce,
        ops_tensor,
    )


def _values(model: Model):
    for g in model.graphs():
        yield from g.inputs
        yield from g.initializers
        for n in g.nodes:
            yield from n.outputs


def discard_facts(model: Model) -> None:
    """Forget every fact recorded on the model's values (after a pass that changed shapes)."""
    if not model.meta.pop(FACTS_FLAG, False):
        return
    _new_generation(model)
    for v in _values(model):
        meta = v.meta
        if meta:
            meta.pop(FACT, None)
            meta.pop(HINT, None)
            meta.pop(SYMVAL, None)


def materialize(model: Model) -> list:
    """Write the recorded facts into the IR: every value with a fact gets it as its type (main
    graph inputs keep their declared type in ``value.meta["shapes_declared_type"]``). Returns the
    changes as ``(value, previous type, declared-type key added)`` (what :func:`unmaterialize`
    undoes). Nodes are not stamped (``ir.core.touch_value``): rewrite rules read facts, which
    do not change here, and a pass that materializes for its own reading puts the types back
    when it ends."""
    changes = []
    main_inputs = set(model.graph.inputs)
    for v in _values(model):
        t = v.meta.get(FACT, _MISSING)
        if t is _MISSING or t is None:
            continue
        old = v.type
        if t == old:
            continue
        added = False
        if v in main_inputs and "shapes_declared_type" not in v.meta:
            v.meta["shapes_declared_type"] = old
            added = True
        v.type = t
        changes.append((v, old, added))
    return changes


def unmaterialize(changes: list) -> None:
    """Undo :func:`materialize`."""
    for v, old, added in reversed(changes):
        v.type = old
        if added:
            v.meta.pop("shapes_declared_type", None)


def run_inference(model: Model, verbose: int = 0, notes: list | None = None,
                  count: bool = True) -> ShapeInfo:
    """Infer every value of ``model`` and return the :class:`ShapeInfo`. The results are facts
    beside the IR (``value.type`` is not touched: :func:`materialize` writes them). ``count``:
    fill ``stats`` with how many values are fully known, partly known and unknown (a walk over
    every value; the analysis other passes request skips it)."""
    load_ops()

    t0 = time.perf_counter()
    # The walk allocates many small objects and frees none: cyclic GC passes would only add
    # time that grows with the graph.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(model, verbose, notes, t0, count)
    finally:
        if enabled:
            gc.enable()


def _run(model: Model, verbose: int, notes: list | None, t0: float,
         count: bool = True) -> ShapeInfo:
    discard_facts(model)
    _new_generation(model)
    info = ShapeInfo()
    inf = Inference(model, info, verbose=verbose, notes=notes)
    g = model.graph
    inf.reserve_input_names(g)
    inf.main_inputs(g)
    inf.run_graph(g, dict(model.opset_imports), None)
    # Functions nobody calls are still annotated from what their bodies alone prove.
    for key, f in model.functions.items():
        if key not in inf.root.frames:
            frame = Inference(model, info, inf.root)
            opsets = dict(model.opset_imports)
            opsets.update(f.opset_imports)
            for v in f.graph.inputs:
                frame.types[v] = v.type
            frame.run_graph(f.graph, opsets, {"__absent__": set()} if not f.attributes else None)
            inf.root.frames[key] = [frame]
    inf.commit()
    model.meta[FACTS_FLAG] = True
    info.state = inf
    inf.root.clock = clock()
    last = {}
    for u in info.unknown:  # a Loop body inferred twice reports its nodes once
        last[id(u.node)] = u
    info.unknown = list(last.values())
    if count:
        _count(info, model)
    info.stats["unknown_ops"] = dict(inf.root.unknown_ops)
    info.seconds = time.perf_counter() - t0
    if notes is not None:
        for op, k in sorted(inf.root.unknown_ops.items()):
            notes.append(f"shapes: no shape function for {op} ({k} node{'s' if k > 1 else ''}); "
                         "its outputs are left unknown")
        for e in info.errors:
            notes.append(f"shapes: {e}")
    return info


def _refine(old, new):
    """Both types are true of one value: ``old``, with its unknowns filled from ``new``."""
    if new is None or old == new:
        return old
    if old is None:
        return new
    if not (isinstance(old, TensorType) and isinstance(new, TensorType)):
        return old
    dt = old.dtype or new.dtype
    so, sn = old.shape, new.shape
    if so is None:
        return TensorType(dt, sn)
    if sn is None or len(sn) != len(so):
        return old if dt == old.dtype else TensorType(dt, so)
    dims = [b if a is None or (type(b) is int and type(a) is not int) else a
            for a, b in zip(so, sn)]
    return TensorType(dt, Shape(dims))


def _refine_vals(old, new):
    if old is None:
        return new
    if new is None or old.shape != new.shape:
        return old
    if all(x is not None for x in old.flat):
        return old
    out = old.copy()
    for i, (x, y) in enumerate(zip(old.flat, new.flat)):
        if x is None and y is not None:
            out.flat[i] = y
    return out


def _same_vals(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and all(
        x is y or (x is not None and y is not None and type(x) is type(y) and x == y)
        for x, y in zip(a.flat, b.flat)))


def _same_inputs(inf: "Inference", old: tuple, new: tuple) -> bool:
    """True when the inputs a node read last time and reads now are facts-for-facts the same
    (a value replaced by an equal one: a folded constant, a merged duplicate): inferring it
    again would give what it gave."""
    if len(old) != len(new):
        return False
    types, vals, seqs = inf.types, inf.vals, inf.seqs
    for a, b in zip(old, new):
        if a is b:
            continue
        if a is None or b is None:
            return False
        ta, tb = types.get(a, _MISSING), types.get(b, _MISSING)
        if ta is _MISSING or tb is _MISSING or ta != tb:
            return False
        if not _same_vals(vals.get(a), vals.get(b)) or a in seqs or b in seqs:
            return False
    return True


def _body_dirty(n: Node, seen: dict, changed: set) -> bool:
    for g in n.subgraphs():
        for b in g.all_nodes():
            if seen.get(b) is not b.inputs or (changed and any(v in changed for v in b.inputs)):
                return True
    return False


def _body_values(n: Node):
    for g in n.subgraphs():
        yield from g.inputs
        yield from g.initializers
        for b in g.all_nodes():
            yield from b.outputs


def update_inference(model: Model, info: ShapeInfo, verbose: int = 0,
                     notes: list | None = None, replace: bool = False) -> ShapeInfo:
    """Bring ``info`` (a result of :func:`run_inference` on ``model``) up to date: infer again
    the nodes that are new, whose input tuple changed (unless to values with the same facts) or
    whose inputs' facts changed, in graph order, and nothing else.

    By default (after passes that kept every surviving value's shape) facts already known are
    kept and only refined. With ``replace`` (after edits that change what values compute, e.g.
    dynamize rewriting a Reshape's target) the new facts replace the old ones, and the change
    propagates downstream as far as facts change. The graph inputs' types must be unchanged.
    Reports (constraints, errors, unknown nodes, hint conflicts) of the nodes inferred again are
    replaced. Falls back to a full run when the state is missing or a model-local function is
    involved."""
    inf = info.state
    if inf is None or inf.model is not model or not model.meta.get(FACTS_FLAG):
        return run_inference(model, verbose, notes)
    load_ops()
    t0 = time.perf_counter()
    enabled = gc.isenabled()
    gc.disable()
    try:
        out = _update(model, info, inf, replace)
    finally:
        if enabled:
            gc.enable()
    if out is None:
        return run_inference(model, verbose, notes)
    info.seconds += time.perf_counter() - t0
    return info


def _update(model: Model, info: ShapeInfo, inf: Inference, replace: bool) -> ShapeInfo | None:
    root = inf.root
    seen = root.seen
    functions = model.functions
    for f in functions.values():
        for n in f.graph.all_nodes():
            if seen.get(n) is not n.inputs:
                return None
    g = model.graph
    for v in g.initializers:
        if v not in inf.types:
            inf.initializers_of([v])
            inf.commit_value(v)
    opsets = dict(model.opset_imports)
    changed: set = set()
    # Only nodes stamped since the last inference can have new inputs (set_input, insertion
    # and creation stamp a node; inference changes no inputs): the others, unless they read a
    # value whose facts change now or hold a body, would be skipped below. ``keep`` gains the
    # readers of every value whose facts change (later in the order: where() hands them out).
    keep = {sg.parent_node for sg in g.subgraphs()
            if sg.parent_node is not None and sg.parent_node.graph is g}
    updated = 0
    root.reuse = True
    try:
        for n in g.nodes.where(root.clock, keep):
            last = seen.get(n)
            ins = n.inputs
            if not (changed and any(v in changed for v in ins)):
                if last is not ins and last is not None and _same_inputs(inf, last, ins):
                    seen[n] = last = ins  # rewired to equal values: nothing to infer
                if last is ins and (not n.attributes or not n.subgraphs()
                                    or not _body_dirty(n, seen, changed)):
                    continue
            if functions and (n.domain, n.op_type, n.overload) in functions:
                return None
            updated += 1
            for v in _infer_again(inf, n, opsets, replace):
                changed.add(v)
                keep.update(v.consumers())
    finally:
        root.reuse = False
    if updated:
        _rebuild(info, model, root)
    root.clock = clock()
    info.stats["updated_nodes"] = info.stats.get("updated_nodes", 0) + updated
    return info


def _infer_again(inf: Inference, n: Node, opsets: dict, replace: bool) -> list:
    """Infer ``n`` again (known facts kept and refined unless ``replace``); returns its outputs
    whose facts changed."""
    types, vals, seqs = inf.types, inf.vals, inf.seqs
    outs = n.outputs
    old = []
    for v in outs:
        old.append((types.pop(v, _MISSING), vals.pop(v, None)))
        seqs.pop(v, None)
    inf.root.reports.pop(n, None)
    inf.node(n, opsets, None)
    changed = []
    for v, (ot, ov) in zip(outs, old):
        if ot is not _MISSING and not replace:
            nt = types.get(v)
            rt = _refine(ot, nt)
            if rt is not nt:
                types[v] = rt
            nv = vals.get(v)
            rv = _refine_vals(ov, nv)
            if rv is not nv:
                if rv is None:
                    vals.pop(v, None)
                else:
                    vals[v] = rv
        if inf.commit_value(v):
            changed.append(v)
            if ot is not _MISSING:
                touch_value(v)  # a known value's facts changed
    if n.attributes and n.subgraphs():
        for v in _body_values(n):
            if v in types and inf.commit_value(v):
                touch_value(v)
    return changed


def _rebuild(info: ShapeInfo, model: Model, root: _Root) -> None:
    """The report lists from what is filed under the main graph's nodes, in graph order, then
    the loose reports, deduplicated as a whole run does (see Inference.constraint/error)."""
    cons: list = []
    con_keys: set = set()
    errors: list = []
    warnings: list = []
    err_keys: set = set()
    unknown: dict = {}
    hints: list = []
    live: dict = {}
    reports = root.reports

    def take(entries) -> None:
        for kind, key, item in entries:
            if kind == "con":
                if key not in con_keys:
                    con_keys.add(key)
                    cons.append(item)
            elif kind in ("err", "warn"):
                if key not in err_keys:
                    err_keys.add(key)
                    (errors if kind == "err" else warnings).append(item)
            elif kind == "unk":
                unknown[id(item.node)] = item
            else:
                hints.append(item)

    for n in model.graph.nodes:
        entries = reports.get(n)
        if entries is not None:
            live[n] = entries
            take(entries)
    take(root.loose)
    root.reports = live
    root.con_keys, root.err_keys = con_keys, err_keys
    info.constraints, info.errors, info.warnings = cons, errors, warnings
    info.unknown = [u for u in unknown.values() if u.node.graph is not None]
    info.hint_conflicts = hints


__all__ = ["strict_shapes", "Inference", "join_types", "run_inference", "update_inference",
           "materialize", "unmaterialize", "discard_facts", "best_type", "fact_or_declared",
           "has_fact",
           "proven_type", "FACT"]
