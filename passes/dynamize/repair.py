"""The dynamize pass: free input dims of a traced fixed-shape export and repair the graph.

The repair runs in rounds. Each round makes the freed dims symbols, runs symbolic shape
inference (:mod:`onnxopt.passes.shapes`) and looks, in graph order, for the first nodes where a
freed size meets a baked one (:mod:`.conflicts`); nodes downstream of a conflict wait for the
next round, since their shapes still carry the baked sizes. Each conflict is traced back to its
culprits (:mod:`.provenance`) and each culprit is rewritten:

- an element of a shape vector (Reshape/Expand/ConstantOfShape/Tile targets, Resize sizes): the
  vector is rebuilt from the inputs' runtime shapes (:mod:`.emit`), with ``0``/``-1`` in a
  Reshape where that is exactly right;
- a dim of a constant tensor: the tensor is regenerated from its structure (fill, arange,
  triangle, broadcast; :mod:`.structure`), proved equal to the constant at the trace size;
- a Range length: its limit is computed from the runtime size.

Every symbolic value is proved at the trace size (it evaluates to the constant it replaces) and by
the graph (the conflict that demanded it disappears in the next round's inference). A culprit
that cannot be rewritten (a learned table whose first dim is the sequence length, a static input
dim the user did not free, an op the walk does not know) is reported with its node and the pass
raises, so nothing half-repaired is written. Values that merely equal a freed size (a divisor of
7.0) are reported, and rewritten only with ``values=true``. At the end the repaired model runs in
onnxruntime at other sizes and its outputs must have the shapes inference predicts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from ...ir.errors import PassError
from ...ir import Model, Node, Shape, SymDim, TensorType, Value
from ..base import Pass, PassContext, PassResult
from ..registry import register
from .algebra import Algebra, fmt_dims, is_int
from .bounded import bounded_hint, bounded_recipe
from .conflicts import (
    DimConflict,
    ReshapeConflict,
    Unhandled,
    VecConflict,
    dtype,
    label,
    node_conflicts,
    shape,
    symval,
)
from .constraints import METADATA_KEY, check_constraints, parse_constraints, record, suggest_modulus
from .emit import Emitter, Unemittable
from .indexing import factor_of, reads_flat_canvas
from .provenance import DataCulprit, Dead, RangeCulprit, Tracer, VecCulprit, const_array
from .reach import baked_resizes, flat_index_sinks
from .spec import Freed, parse_spec, resolve
from .structure import Arange, ExpandTo, recognise
from .values import find_size_values, rewrite_size_value

_ROLE = {("Reshape", 1): "shape", ("Expand", 1): "shape", ("ConstantOfShape", 0): "shape",
         ("Tile", 1): "repeats", ("Resize", 3): "sizes", ("Range", 1): "limit",
         ("Slice", 2): "ends"}


class DynamizeError(PassError):
    """A size the graph uses in a way no rewrite can free; nothing is written."""


class _Stop(Exception):
    pass


@dataclass
class VecNote:
    """A shape vector the pass rewrote: ``before`` -> ``after`` (the symbolic elements) and how
    it was ``emitted`` (with a ``-1`` where the element counts prove it)."""

    node: Node
    role: str
    before: list
    after: list
    emitted: list


@dataclass
class DataNote:
    """A constant the pass regenerated from runtime sizes, and the shape it now has."""

    desc: str
    what: str
    dims: list


class Dynamizer:
    """One repair of one model."""

    def __init__(self, model: Model, ctx: PassContext, freed: list[Freed], values: bool,
                 check: bool, constraints: tuple = ()):
        self.model = model
        self.graph = model.graph
        self.ctx = ctx
        self.freed = freed
        self.values = values
        self.check = check
        self.alg = Algebra({f.symbol: f.trace for f in freed})
        self.tracer = Tracer(self.alg)
        self.stats: Counter = Counter()
        self.problems: list[str] = []
        self.vec_notes: dict[tuple, VecNote] = {}  # (id(node), input index) -> its note
        self.data_notes: list[DataNote] = []
        self.other_notes: list[str] = []
        self.replaced: list[Value] = []
        self.applied: dict = {}
        self.bounds: dict[str, int] = {}
        self.regen: dict = {}
        self.made: dict[int, DataNote] = {}  # id(node made for a regenerated constant) -> note
        self.reshapes: dict = {}   # id(Reshape) -> (node, symbolic target) rebuilt by the rounds
        self.constraints: list = []
        self.touched: set = set()  # ids of nodes whose inputs a rewrite of this round changed
        self.info = None  # the shape inference the rounds update
        self.user = list(constraints)  # --constraint items (.constraints)
        self.allowed: dict[str, int] = {}  # symbol -> bound the user allows a bounded repair to

    # -- setup ------------------------------------------------------------------------------
    def _sources(self) -> dict:
        src: dict = {}
        for f in self.freed:
            src.setdefault(f.symbol, (f.input, f.axis))
        for v in self.graph.inputs:
            t = v.type
            if v.const_value is None and isinstance(t, TensorType) and t.shape is not None:
                for a, d in enumerate(t.shape):
                    if isinstance(d, SymDim) and d.is_symbol:
                        src.setdefault(d.text, (v, a))
        return src

    def _guard_unread(self) -> None:
        """A promise (``--constraint 'height%32==0'``, ``'height<=32'``) is checked where a size
        computation reads the symbol. When none does (a backbone of Convs whose baked asymmetric
        pads are right only at multiples of the strides, a Resize baked at the trace), a size that
        breaks it would compute, wrongly: route the input through a no-op Reshape whose target
        reads the guarded size, so it fails instead."""
        for sym in sorted(set(self.em.guards) | set(self.em.bounds)):
            if ("sym", sym) in self.em._cache or sym not in self.em.sources:
                continue
            inp, _ = self.em.sources[sym]
            t = inp.type
            if not isinstance(t, TensorType) or t.shape is None or None in t.shape:
                continue
            # Shape readers stay on the input: the target itself is computed from them.
            users = [(n, i) for n, i in inp.uses() if n.op_type != "Shape"]
            checked = self.em.op("Reshape", [inp, self.em.vector(list(t.shape))])
            for node, i in users:
                node.set_input(i, checked)

    def _free_inputs(self) -> None:
        by_input: dict = {}
        for f in self.freed:
            by_input.setdefault(id(f.input), (f.input, []))[1].append(f)
        for v, fs in by_input.values():
            dims = list(v.type.shape)
            for f in fs:
                dims[f.axis] = SymDim(f.symbol)
            v.type = TensorType(v.type.dtype, Shape(dims))

    def _strip(self) -> None:
        """Forget every inferred or declared intermediate shape (keep dtypes): stale static
        shapes would otherwise be taken as hints by the next inference."""
        for g in self.model.graphs():
            for n in g.nodes:
                for v in n.outputs:
                    t = v.type
                    if isinstance(t, TensorType) and t.shape is not None:
                        v.type = TensorType(t.dtype, None)
                    v.meta.pop("symval", None)

    def _infer(self, final: bool = False):
        """Shape inference for this round. The first round strips the declared intermediate
        shapes (stale static ones would be taken as hints) and infers the whole model; later
        rounds update it, inferring again only what the last round's rewrites reach (nodes they
        rewired or created, and downstream as far as facts change). The results stay facts
        (``conflicts.shape``); the ``final`` inference is a whole one, written into the types."""
        from ..shapes.infer import materialize, run_inference, update_inference

        if final or self.info is None:
            self._strip()
            self.info = run_inference(self.model)
            if final:
                materialize(self.model)
        else:
            self.info = update_inference(self.model, self.info, replace=True)
        return self.info

    # -- the loop -------------------------------------------------------------------------
    def _assume(self) -> None:
        """The user's constraints hold from the start: proofs run under them."""
        for c in self.user:
            if c.kind == "mod":
                self.alg.assume_multiple(c.symbol, c.value)
            else:
                self.allowed[c.symbol] = c.value
                self.alg.upper[c.symbol] = c.value
                self._bound(SymDim(c.symbol), c.value, "given by --constraint")
            self.other_notes.append(f"assumes {c} (--constraint; recorded in the model's "
                                    f"metadata as {METADATA_KEY})")

    def run(self) -> None:
        self._assume()
        self._free_inputs()
        first = next(iter(self.graph.nodes), None)
        self.em = Emitter(self.model, self.graph, self._sources(), first)
        self.em.guards = {c.symbol: c.value for c in self.user if c.kind == "mod"}
        self.em.bounds = {c.symbol: c.value for c in self.user if c.kind == "le"}
        max_rounds = 64 + len(self.graph.nodes)
        for _ in range(max_rounds):
            info = self._infer()
            self.constraints = info.constraints
            found = self._first_conflicts(info)
            if not found:
                break
            self.stats["rounds"] += 1
            self._resolve(found)
            if self.problems:
                self._fail()
        else:
            self.problems.append(f"no fixed point after {max_rounds} rounds")
            self._fail()
        self._finish_reshapes()
        self._values()
        self._guard_unread()
        self._cleanup()
        info = self._infer(final=True)
        self.constraints = info.constraints
        self._requirements()
        self._simplify_outputs()
        self.problems.extend(flat_index_sinks(self.graph, self.alg))  # before the run check
        self.problems.extend(baked_resizes(self.graph, self.alg))
        if self.problems:
            self._fail()
        if self.check:
            self._run_check()
        record(self.model, self.user, self.bounds)
        self._report()

    def _first_conflicts(self, info) -> list:
        cons: dict = {}
        for c in info.constraints:
            if c.node is not None:
                cons.setdefault(id(c.node), []).append(c)
        tainted: set = set()
        found = []
        # Nodes before the first one a rewrite touched had no conflict last round and see the
        # same inputs now: start there (every culprit is upstream of its conflict).
        skip = bool(self.touched)
        for n in self.graph.nodes:
            if skip:
                if id(n) not in self.touched:
                    continue
                skip = False
            if any(v is not None and id(v) in tainted for v in n.inputs):
                tainted.update(id(o) for o in n.outputs)
                continue
            cs = node_conflicts(n, self.alg, cons.get(id(n), []))
            if cs:
                found.append((n, cs))
                tainted.update(id(o) for o in n.outputs)
        self.touched = set()
        return found

    def _resolve(self, found: list) -> None:
        vecs: dict = {}     # (id(node), index) -> (node, index, {elem: dim})
        datas: dict = {}    # (id(use node), index) -> (use, value, {dim: want})
        ranges: dict = {}   # id(node) -> (node, want)

        def need(table: dict, key, entry, slot, want, what: str) -> None:
            """Record that ``slot`` of a culprit must be ``want``; two different demands on one
            element (batch and seq of equal trace size meeting one constant) are a problem."""
            reqs = table.setdefault(key, entry)[2]
            old = reqs.get(slot)
            if old is not None and not self.alg.eq(old, want):
                self.problems.append(f"{what} would have to be both {old} and {want}")
                return
            reqs[slot] = want

        def dim_conflict(c: DimConflict) -> None:
            if self.alg.evaluate(c.want) != c.static:
                self.problems.append(f"{label(c.node)}: {c.why}, but {c.want} is "
                                     f"{self.alg.evaluate(c.want)} at the trace size, not "
                                     f"{c.static}")
                return
            for cu in self.tracer.culprits(c.value, c.axis, c.static, c.use):
                want = c.want
                if getattr(cu, "trace", None) not in (None, c.static):  # a merged dim's factor
                    want = factor_of(self.alg, c.want, cu.trace)
                    if want is None:
                        self.problems.append(f"{label(c.node)} needs {c.want} where the graph "
                                             f"has {c.static}: no single factor of it is "
                                             f"{cu.trace} (a merged index dim)")
                        continue
                if isinstance(cu, Dead):
                    self.problems.append(f"{label(c.node)} needs {c.want} where the graph has "
                                         f"{c.static} ({c.why}): {cu.why}")
                elif isinstance(cu, VecCulprit):
                    if (cu.mul, cu.div, cu.add) != (1, 1, 0):
                        e = self.alg.expr(want) * cu.mul / cu.div + cu.add
                        want = self.alg.simplify(self.alg.dim(e))
                    if cu.bound is not None:
                        self._bound(want, cu.bound, f"{label(cu.node)} slices at most "
                                    f"{cu.bound} from its input")
                    need(vecs, (id(cu.node), cu.index), (cu.node, cu.index, {}), cu.elem, want,
                         f"element {cu.elem} of input {cu.index} of {label(cu.node)}")
                elif isinstance(cu, DataCulprit):
                    node, idx = cu.use
                    need(datas, (id(node), idx), (cu.use, cu.value, {}), cu.dim, want,
                         f"dim {cu.dim} of {cu.value.name or 'a constant'} (read by "
                         f"{label(node)})")
                elif isinstance(cu, RangeCulprit):
                    ranges[id(cu.node)] = (cu.node, want)

        for n, cs in found:
            for c in cs:
                if isinstance(c, DimConflict):
                    dim_conflict(c)
                elif isinstance(c, VecConflict):
                    need(vecs, (id(c.node), c.index), (c.node, c.index, {}), c.elem, c.want,
                         f"element {c.elem} of input {c.index} of {label(c.node)}")
                elif isinstance(c, ReshapeConflict):
                    for e, want in c.target.items():
                        need(vecs, (id(c.node), 1), (c.node, 1, {}), e, want,
                             f"element {e} of the target of {label(c.node)}")
                    for dc in c.data:
                        dim_conflict(dc)
                    for pdim, traces, elems in c.ambiguous:
                        self.other_notes.append(
                            f"{label(c.node)}: {pdim} splits over trace sizes {traces} in more "
                            f"than one way; chose {fmt_dims(elems)} (size-dependent factor "
                            "first)")
                elif isinstance(c, Unhandled):
                    self.problems.append(f"{label(c.node)}: {c.why}")
        if self.problems:
            return
        for node, index, reqs in vecs.values():
            self._fix_vec(node, index, reqs)
        for use, value, reqs in datas.values():
            self._fix_data(use, value, reqs)
        for node, want in ranges.values():
            self._fix_range(node, want)

    def _hint(self, want) -> str:
        c = suggest_modulus(self.alg, want)
        return f" (it is with --constraint '{c}')" if c else ""

    def _once(self, key, what: str) -> bool:
        if key in self.applied:
            self.problems.append(f"{what}: rewriting it did not resolve the conflict")
            return False
        self.applied[key] = True
        return True

    # -- fixes ------------------------------------------------------------------------------
    def _fix_vec(self, node: Node, index: int, reqs: dict) -> None:
        old = node.inputs[index]
        sv = symval(old)
        role = _ROLE.get((node.op_type, index), f"input {index}")
        if sv is None or None in sv:
            self.problems.append(f"{label(node)}: its {role} is not known element by element, "
                                 "so it cannot be rebuilt")
            return
        elems = list(sv)
        for e, want in reqs.items():
            cur = elems[e]
            if is_int(cur) and cur in (0, -1) and node.op_type == "Reshape":
                continue
            if is_int(cur) and self.alg.evaluate(want) != cur:
                self.problems.append(f"{label(node)}: {role} element {e} is {cur}, which is not "
                                     f"{want} at the trace size")
                return
            if not self.alg.assume_integral(want):
                self.problems.append(f"{label(node)}: {role} element {e} would be {want}, "
                                     f"which is not a whole number at every size"
                                     f"{self._hint(want)}")
                return
            elems[e] = want
        key = (id(node), index, tuple(str(e) for e in elems))
        if not self._once(key, f"{label(node)} {role}"):
            return
        emitted = self._emission(node, index, elems)
        try:
            new = self.em.vector(emitted)
        except Unemittable as e:
            self.problems.append(f"{label(node)}: {role} {fmt_dims(elems)}: {e}")
            return
        dt = dtype(old)
        if dt and dt != 7:
            new = self.em.op("Cast", [new], {"to": dt})
        made = self.made.get(id(node))
        if made is not None:  # a node this pass made to regenerate a constant
            made.dims = [self.alg.simplify(e) for e in elems]
        else:
            note = self.vec_notes.get((id(node), index))
            if note is None:
                self.vec_notes[(id(node), index)] = VecNote(node, role, list(sv), elems, emitted)
            else:
                note.after, note.emitted = elems, emitted
        if node.op_type == "Reshape" and index == 1:
            self.reshapes[id(node)] = (node, elems)
        node.set_input(index, new)
        self.touched.add(id(node))
        self.replaced.append(old)
        self.stats["shape_vectors"] += 1

    def _emission(self, node: Node, index: int, elems: list, minus: bool = False) -> list:
        """The elements to emit: ``0`` (copy) in a Reshape where exactly right (and, with
        ``minus``, one ``-1`` when the element counts are provably equal), ``1`` in an Expand
        where the input already has the size. During the rounds a Reshape gets no new ``-1``:
        its data may still be waiting for a repair, and an explicit target keeps the dims
        traceable; :meth:`_finish_reshapes` adds it at the end."""
        if node.op_type == "Reshape" and index == 1:
            ds = shape(node.inputs[0]) or []
            allowzero = node.attr("allowzero", 0)
            out = []
            for i, e in enumerate(elems):
                if not is_int(e) and not allowzero and i < len(ds) and ds[i] is not None \
                        and self.alg.eq(e, ds[i]):
                    out.append(0)
                else:
                    out.append(self.alg.simplify(e))
            if minus and not any(is_int(e) and e == -1 for e in out) and \
                    None not in ds and self.alg.eq(self.alg.prod(ds), self.alg.prod(elems)):
                syms = [i for i, e in enumerate(out) if not is_int(e)]
                if syms:
                    j = max(syms, key=lambda i: (len(str(out[i])), i))
                    out[j] = -1
            return out
        if node.op_type == "Expand" and index == 1:
            xs = shape(node.inputs[0]) or []
            r = max(len(xs), len(elems))
            out = []
            for e, d in enumerate(elems):
                a = e + (len(xs) - r) if len(elems) >= len(xs) else e - (len(elems) - len(xs))
                xd = xs[a] if 0 <= a < len(xs) else None
                if not is_int(d) and xd is not None and self.alg.eq(d, xd):
                    out.append(1)
                else:
                    out.append(self.alg.simplify(d))
            return out
        return [self.alg.simplify(e) for e in elems]

    def _fix_data(self, use: tuple, value: Value, reqs: dict) -> None:
        node, idx = use
        arr = const_array(value)
        name = value.name or "a constant"
        kind = "initializer" if value.const_value is not None else "constant"
        desc = f"{_dtype(arr)}{list(arr.shape) if arr is not None else '?'} {kind} {name!r}"
        if arr is None:
            self.problems.append(f"{desc}: cannot read its values")
            return
        new_dims: list = list(arr.shape)
        for d, want in reqs.items():
            if self.alg.evaluate(want) != arr.shape[d]:
                self.problems.append(f"{desc}: dim {d} is {arr.shape[d]}, not {want} at the "
                                     "trace size")
                return
            if not self.alg.assume_integral(want):
                self.problems.append(f"{desc}: dim {d} would be {want}, which is not a whole "
                                     f"number at every size{self._hint(want)}")
                return
            new_dims[d] = self.alg.simplify(want)
        if not self._once((id(node), idx, id(value), tuple(map(str, new_dims))),
                          f"{desc} read by {label(node)}"):
            return
        key = (id(value), tuple(map(str, new_dims)))
        new = self.regen.get(key)
        if new is None:
            flat = reads_flat_canvas(node, idx, self.alg)
            rec = recognise(arr, new_dims, self.alg.evaluate, flat) or \
                bounded_recipe(arr, new_dims, self.alg.evaluate, self.allowed)
            if rec is None:
                which = ", ".join(f"dim {d} is {fmt_dims([w])[1:-1]} (trace size {arr.shape[d]})"
                                  for d, w in sorted(reqs.items()))
                syms = sorted({s for w in reqs.values() for s in self.alg.symbols_of(w)
                               & self.alg.freed})
                self.problems.append(
                    f"{' and '.join(syms)} cannot be freed: the {desc} (read by {label(node)}) "
                    f"has sizes of the trace baked in ({which}) and its values are not a fill, "
                    "range, triangle or broadcast that could be regenerated at another size; the "
                    f"exporter computed it for {_trace_text(self.alg, syms)} (e.g. a folded table "
                    "of position embeddings), so other sizes are not recoverable from this file"
                    + bounded_hint(arr, new_dims, self.alg.binding))
                return
            try:
                new = rec.emit(self.em)
            except Unemittable as e:
                self.problems.append(f"{desc}: {e}")
                return
            self.regen[key] = new
            note = DataNote(desc, rec.what, list(new_dims))
            self.data_notes.append(note)
            if new.producer is not None:
                self.made[id(new.producer)] = note
            self._bound_from(rec, node, idx)
            self.stats["constants_regenerated"] += 1
        node.set_input(idx, new)
        self.touched.add(id(node))
        self.replaced.append(value)

    def _bound(self, size, limit: int, why: str) -> None:
        """Record that a freed symbol can be at most ``limit`` (for the check and the report)."""
        if isinstance(size, SymDim) and size.is_symbol and size.text in self.alg.freed:
            s = size.text
            if self.bounds.get(s, limit + 1) > limit:
                self.bounds[s] = limit
                self.other_notes.append(f"{s} <= {limit}: {why}")

    def _bound_from(self, rec, node: Node, idx: int) -> None:
        """An arange that ends up as Gather indices into a static table bounds its size."""
        core = rec.child if isinstance(rec, ExpandTo) else rec
        if not isinstance(core, Arange) or not is_int(core.c0) or core.step != 1:
            return
        n, i, depth = node, idx, 0
        while n is not None and depth < 6:
            if n.op_type == "Gather" and i == 1:
                ds = shape(n.inputs[0])
                ax = n.attr("axis", 0)
                if ds is not None and is_int(ds[ax]):
                    self._bound(core.n, ds[ax] - core.c0,
                                f"positions {core.c0}..{core.n}-1 index the {ds[ax]}-row "
                                f"table read by {label(n)}")
                return
            if n.op_type not in ("Expand", "Reshape", "Unsqueeze", "Squeeze", "Cast", "Identity",
                                 "Flatten") or i != 0:
                return
            nxt = n.outputs[0].consumers()
            if len(nxt) != 1:
                return
            v = n.outputs[0]
            n = nxt[0]
            i = next(k for k, x in enumerate(n.inputs) if x is v)
            depth += 1

    def _fix_range(self, node: Node, want) -> None:
        start, delta = symval(node.inputs[0]), symval(node.inputs[2])
        if not start or not delta or not is_int(start[0]) or not is_int(delta[0]):
            self.problems.append(f"{label(node)}: its start and delta are not known integers")
            return
        if not self._once((id(node), "range", str(want)), label(node)):
            return
        old = node.inputs[1]
        lim = self.alg.dim(self.alg.expr(want) * delta[0] + start[0])
        new = self.em.scalar(self.alg.simplify(lim), dtype(old) or 7)
        self.vec_notes[(id(node), 1)] = VecNote(node, "limit", symval(old), [lim], [lim])
        node.set_input(1, new)
        self.touched.add(id(node))
        self.replaced.append(old)
        self.stats["shape_vectors"] += 1

    # -- after the loop ---------------------------------------------------------------------
    def _finish_reshapes(self) -> None:
        """Give each rebuilt Reshape target one ``-1`` where the final shapes prove the element
        counts equal: one fewer size to compute at run time."""
        for node, elems in self.reshapes.values():
            emitted = self._emission(node, 1, elems, minus=True)
            note = self.vec_notes.get((id(node), 1))
            if note is None or [str(x) for x in emitted] == [str(x) for x in note.emitted]:
                continue
            try:
                new = self.em.vector(emitted)
            except Unemittable:
                continue
            old = node.inputs[1]
            node.set_input(1, new)
            self.replaced.append(old)
            note.emitted = emitted

    def _values(self) -> None:
        for sv in find_size_values(self.graph, self.alg):
            what = (f"{label(sv.node)} {'multiplies by' if sv.reciprocal else 'divides by'} "
                    f"{sv.value!r}, which is {'1/' if sv.reciprocal else ''}{sv.size} at the trace "
                    f"size, and its other input sums over {sv.size} ({label(sv.reduce)}): likely "
                    f"a mean written as sum / {sv.size}")
            if self.values:
                new = rewrite_size_value(sv, self.em)
                sv.node.set_input(sv.index, new)
                self.replaced.append(sv.const)
                self.stats["values_rewritten"] += 1
                self.other_notes.append(f"{what}; rewritten to use the runtime {sv.size} "
                                        f"({sv.value!r} -> {sv.size})")
            else:
                self.stats["values_reported"] += 1
                self.other_notes.append(f"{what}; left as is, so results are wrong at other "
                                        f"sizes (--dynamize-values divides by the runtime "
                                        f"{sv.size})")

    def _cleanup(self) -> None:
        """Erase what the rewrites left unused (the old shape chains and constants)."""
        g = self.graph
        work = list(self.replaced)
        seen: set = set()
        while work:
            v = work.pop()
            if id(v) in seen or v.has_uses():
                continue
            seen.add(id(v))
            p = v.producer
            if p is not None:
                if p.graph is g and not any(o.has_uses() for o in p.outputs):
                    ins = [x for x in p.inputs if x is not None]
                    g.erase(p)
                    work.extend(ins)
            elif v.const_value is not None and v.graph is g and not v.is_graph_input():
                g.remove_initializer(v)

    def _requirements(self) -> None:
        for s, m in sorted(self.alg.modulus.items()):
            self.other_notes.append(f"{s} must be a multiple of {m} (the graph splits it into "
                                    f"blocks of {m})")
        seen = set()
        for c in self.constraints:
            sides = [c.lhs, c.rhs]
            if all(x is not None and not is_int(x) for x in sides) and \
                    any(self.alg.has_freed(x) for x in sides):
                text = str(c)
                if text not in seen:
                    seen.add(text)
                    self.other_notes.append(f"the model requires {text}")

    def _run_check(self) -> None:
        from .runcheck import check_sizes

        ran, problems = check_sizes(self.model, self.alg, self.bounds, self.constraints)
        if problems:
            self.problems.extend(problems)
            self._fail()
        if not ran:
            self.other_notes.append("not run at other sizes: no sizes near the trace satisfy "
                                    "the model's requirements")
        else:
            self.stats["sizes_checked"] = len(ran)
            self.other_notes.append("ran at " + "; ".join(
                ", ".join(f"{k}={v}" for k, v in sorted(b.items())) for b in ran)
                + ": every output has the shape inference predicts")

    def _simplify_outputs(self) -> None:
        """Write the outputs' dims in their simplest form under the repair's assumptions."""
        for v in self.graph.outputs:
            t = v.type
            if isinstance(t, TensorType) and t.shape is not None and self.alg.modulus:
                v.type = TensorType(t.dtype, Shape([self.alg.simplify(d) for d in t.shape]))

    def _report(self) -> None:
        note = self.ctx.note
        freed = ", ".join(f"{f.input.name}:{f.axis}={f.symbol} (trace {f.trace})"
                          for f in self.freed)
        note(f"dynamize: freed {freed}")
        for vn in self.vec_notes.values():
            em = "" if [str(x) for x in vn.emitted] == [str(x) for x in vn.after] \
                else f" (emitted as {fmt_dims(vn.emitted)})"
            after = [self.alg.simplify(x) for x in vn.after]
            note(f"dynamize: {label(vn.node)} {vn.role} {fmt_dims(vn.before)} -> "
                 f"{fmt_dims(after)}{em}")
        for dn in self.data_notes:
            note(f"dynamize: {dn.desc} -> {dn.what}, of shape {fmt_dims(dn.dims)} (proved equal "
                 "to the constant at the trace size)")
        for msg in self.other_notes:
            note(f"dynamize: {msg}")
        outs = ", ".join(f"{v.name} {fmt_dims(v.type.shape)}" for v in self.graph.outputs
                         if isinstance(v.type, TensorType) and v.type.shape is not None)
        if outs:
            note(f"dynamize: outputs {outs}")

    def _fail(self) -> None:
        probs = list(dict.fromkeys(self.problems))
        head = probs[0]
        more = f" (and {len(probs) - 1} more problem{'s' if len(probs) > 2 else ''})" \
            if len(probs) > 1 else ""
        msg = f"dynamize: {head}{more}; nothing was written"
        if len(probs) > 1:
            msg += "\n" + "\n".join(f"  - {p}" for p in probs)
        for p in probs:
            self.ctx.note(f"dynamize: {p}")
        raise DynamizeError(msg)


def _dtype(arr) -> str:
    if arr is None:
        return "?"
    from ...ir.types import dtype_name, from_np_dtype

    return dtype_name(from_np_dtype(arr.dtype))


def _trace_text(alg: Algebra, syms: list) -> str:
    return ", ".join(f"{s} = {alg.binding[s]}" for s in syms) or "the trace size"


@register
class DynamizePass(Pass):
    """Free input dims of a fixed-shape export and rebuild every size constant derived from
    them from the inputs' runtime shapes."""

    name = "dynamize"
    summary = ("free input dims of a traced fixed-shape export (dynamic=x:0=batch,1=seq) and "
               "rebuild the constants derived from them from runtime shapes")
    options: ClassVar[dict[str, Any]] = {"dynamic": "", "values": False, "check": True,
                                         "constraint": ""}

    def __init__(self, **opts):
        super().__init__(**opts)
        self.items = parse_spec(str(self.opts["dynamic"] or ""))
        self.cons = parse_constraints(str(self.opts["constraint"] or ""))

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        freed = resolve(model.graph, self.items)
        check_constraints(self.cons, {f.symbol: f.trace for f in freed})
        d = Dynamizer(model, ctx, freed, _flag(self.opts["values"]), _flag(self.opts["check"]),
                      tuple(self.cons))
        d.run()
        return PassResult(modified=True, stats=d.stats, preserved=frozenset())


def _flag(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


__all__ = ["DynamizeError", "DynamizePass", "Dynamizer"]
