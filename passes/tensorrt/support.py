"""TensorRT readiness: every node the TensorRT 10 support matrix rejects or restricts.

:func:`check_tensorrt` walks every graph of a model (subgraphs and model-local function bodies,
which the parser expands, included) and evaluates the matrix (``passes/tensorrt_matrix.json``,
loaded by :mod:`.matrix`) against each node: is the op supported, are its element types, are its
attributes and input forms. Model-level checks add the opset range, the element types of the
model's inputs and outputs, dynamic input dims and shape-tensor inputs (both need an
optimization profile), and values whose shape depends on data. Symbolic shape inference
(:mod:`onnxopt.passes.shapes`) supplies ranks, dims and data-dependent symbols; without it those
checks say less, never more.

Each :class:`Finding` names the node, the reason, the matrix source and a fix: the rule or pass
of ``--preset tensorrt`` that rewrites this very node (asked by matching the rule at the node,
not guessed), or "needs a plugin". The check only reads the model (shape inference annotates the
in-memory IR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from ...ir import Graph, Model, Node, SymDim, TensorType, Value
from ..base import PassContext
from ..rewrite import Shapes, attr_of, const_value, match
from ..shapes.infer import fact_or_declared
from .matrix import load_matrix, source_url, type_codes, type_name

BLOCK, WARN = "block", "warn"
KIND_ORDER = ("opset", "op", "attribute", "dtype", "dynamic-shape", "data-dependent-shape")
PRESET = "tensorrt"

# Inputs that TensorRT reads as shape tensors (their values set output shapes).
SHAPE_SLOTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Resize": (2, 3), "Upsample": (1,), "TopK": (1,), "Pad": (1,),
    "OneHot": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "RandomNormal": (), "EyeLike": (),
}
# Ops a shape value flows through on its way to a shape slot.
_SHAPE_FLOW = frozenset({"Cast", "Concat", "Gather", "Unsqueeze", "Squeeze", "Slice", "Add", "Sub",
                         "Mul", "Div", "Identity", "Min", "Max", "Reshape", "Neg", "Abs", "Mod",
                         "Floor", "Ceil", "Where", "Expand", "Tile", "Flatten"})
_NON_FOLDABLE = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform",
                           "RandomUniformLike", "Multinomial", "Bernoulli", "If", "Loop", "Scan"})


@dataclass
class Fix:
    """What onnxopt can do about a finding: a pass or rule of a preset, or nothing."""

    action: str                    # "preset", "option", "plugin", "none"
    text: str
    passes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "text": self.text, "passes": list(self.passes)}


@dataclass
class Finding:
    """One thing the target (or the health check) objects to."""

    kind: str
    severity: str
    node: str
    op: str
    reason: str
    fix: Fix
    rule: str = ""
    source: str = ""
    graph: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "node": self.node, "op": self.op,
                "graph": self.graph, "reason": self.reason, "fix": self.fix.as_dict(),
                "rule": self.rule, "source": self.source}


@dataclass
class Report:
    """The findings of one check, with what was checked."""

    target: str
    findings: list[Finding] = field(default_factory=list)
    checked_nodes: int = 0
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == BLOCK]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARN]

    @property
    def ok(self) -> bool:
        """True when nothing blocks."""
        return not self.blocking

    def by_kind(self) -> dict[str, list[Finding]]:
        """Findings grouped by kind, in a fixed kind order (then any others)."""
        groups: dict[str, list[Finding]] = {}
        for k in KIND_ORDER:
            hits = [f for f in self.findings if f.kind == k]
            if hits:
                groups[k] = hits
        for f in self.findings:
            if f.kind not in groups:
                groups[f.kind] = [g for g in self.findings if g.kind == f.kind]
        return groups


PLUGIN = Fix("plugin", "needs a plugin")


def _preset_fix(names: Iterable[str]) -> Fix:
    names = tuple(names)
    return Fix("preset", f"run --preset {PRESET} ({', '.join(names)})", names)


# -- helpers ------------------------------------------------------------------------------------


def node_id(node: Node) -> str:
    """A node's name, else its op type and first output's name."""
    if node.name:
        return node.name
    out = node.outputs[0].name if node.outputs else None
    return f"{node.op_type}({out})" if out else node.op_type


def graph_label(g: Graph) -> str:
    """Where a graph sits: "" for the main graph, else the owning node and attribute."""
    parts = []
    while g.parent_node is not None:
        owner = g.parent_node
        attr = next((k for k, a in owner.attributes.items()
                     if a.value is g or (isinstance(a.value, tuple) and g in a.value)), "body")
        parts.append(f"{node_id(owner)}.{attr}")
        g = owner.graph
    if g.function is not None:
        parts.append(f"function {g.function.name}")
    return " / ".join(reversed(parts))


def graph_opset(model: Model, g: Graph) -> int:
    """The default-domain opset that applies inside ``g``."""
    root = g
    while root.parent_node is not None and root.parent_node.graph is not None:
        root = root.parent_node.graph
    if root.function is not None:
        imports = root.function.opset_imports
        v = imports.get("")
        if v is not None:
            return v
    return model.opset("") or 1


def _value_of(node: Node, slot: str) -> Optional[Value]:
    kind, _, idx = slot.partition(":")
    seq = node.inputs if kind == "input" else node.outputs
    i = int(idx)
    return seq[i] if i < len(seq) else None


def _dtype(v: Optional[Value], facts: bool = False) -> Optional[int]:
    """The element type of ``v``: its type (the shape analysis' fact when ``facts``, else the
    declared one), else its constant data's."""
    if v is None:
        return None
    t = fact_or_declared(v) if facts else v.type
    dt = (t.dtype or None) if isinstance(t, TensorType) else None
    if dt:
        return dt
    c = const_value(v)
    if c is not None:
        from ...ir import from_np_dtype

        try:
            return from_np_dtype(c.dtype)
        except Exception:
            return None
    return None


def _dims_text(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class _Checker:
    def _type(self, v: Value):
        """``v``'s type: the shape analysis' fact when the analysis ran, else the declared."""
        return fact_or_declared(v) if self.info is not None else v.type

    def __init__(self, model: Model, shapes: Shapes, info: Any):
        self.model = model
        self.shapes = shapes
        self.info = info
        self.matrix = load_matrix()
        self.ops: dict[str, dict] = self.matrix["ops"]
        self.report = Report("tensorrt")
        self._fold_memo: dict[int, bool] = {}
        self._shape_memo: dict[tuple[int, bool], bool] = {}
        self._types_cache: dict[tuple, frozenset] = {}
        from .trt import RULES_BY_NAME

        self.rules = RULES_BY_NAME
        self.functions = {(f.domain, f.name) for f in model.functions.values()}

    # -- findings --------------------------------------------------------------------------------
    def add(self, kind: str, severity: str, node: Optional[Node], reason: str, fix: Fix,
            rule: str = "", source: str = "", graph: Optional[Graph] = None) -> None:
        self.report.findings.append(Finding(
            kind, severity, node_id(node) if node is not None else "",
            node.op_type if node is not None else "", reason, fix, rule,
            source_url(source) if source else "",
            graph_label(graph) if graph is not None else ""))

    # -- fixes ------------------------------------------------------------------------------------
    def resolve_fix(self, names: Iterable[str], node: Node, opset: int,
                    restriction: Optional[dict] = None) -> Fix:
        """The first fix in ``names`` that applies to this node, else :data:`PLUGIN`."""
        for name in names:
            if name.startswith("trt."):
                if self._rule_applies(self.rules.get(name.split(".", 1)[1]), node, opset):
                    return _preset_fix([name])
            elif name == "fold":
                if self._fold_fixes(node, restriction):
                    return _preset_fix(["fold"])
                if node.op_type in ("If", "Loop") and node.inputs and \
                        self.shape_only(node.inputs[0]):
                    return Fix("option", "its condition depends only on input dims: fix them "
                               "(onnxopt MODEL --input-shape NAME:DIMS) and run --preset "
                               f"{PRESET}; fold then inlines it", ("fold",))
            elif name == "identity":
                from ..identity import RULES as IDENTITY

                rule = IDENTITY.get(node.op_type)
                if rule is not None and rule(node, opset) is not None:
                    return _preset_fix(["identity"])
        return PLUGIN

    def _rule_applies(self, rule, node: Node, opset: int) -> bool:
        """True when ``rule`` matches at the node (or at one of its readers, for rules rooted
        downstream such as a Cast round trip) and its check accepts."""
        if rule is None or opset < rule.opset:
            return False
        candidates = [node] + [u for o in node.outputs for u in o.consumers()]
        for cand in candidates:
            for pat in rule.patterns():
                if cand.op_type not in pat.op_types or (cand.domain or "") != pat.domain:
                    continue
                m = match(rule, pat, cand, opset, self.shapes)
                if m is not None and rule.check(m) is None:
                    return True
        return False

    def shape_only(self, v: Optional[Value], depth: int = 0, inputs_ok: bool = False) -> bool:
        """True when ``v`` is computed from constants and the dims of other values only (Shape,
        Size), so it becomes a constant once the model's input dims are fixed. With
        ``inputs_ok``, small integer graph inputs (shape tensors) count as shapes too."""
        if v is None or self.foldable(v):
            return True
        key = (id(v), inputs_ok)
        if key in self._shape_memo:
            return self._shape_memo[key]
        p = v.producer
        if p is None:
            t = self._type(v)
            ok = inputs_ok and v.is_graph_input() and isinstance(t, TensorType) and \
                t.dtype in (6, 7) and (t.shape is None or len(t.shape) <= 1)
        elif depth > 64 or p.domain or p.op_type in _NON_FOLDABLE:
            ok = False
        elif p.op_type in ("Shape", "Size"):
            ok = True
        else:
            ok = all(self.shape_only(i, depth + 1, inputs_ok) for i in p.inputs)
        self._shape_memo[key] = ok
        return ok

    def _fold_fixes(self, node: Node, restriction: Optional[dict]) -> bool:
        if node.op_type == "If":
            return self.foldable(node.inputs[0])
        if node.op_type == "Loop":
            trip = node.inputs[0] if node.inputs else None
            return trip is not None and self.foldable(trip)
        if restriction is not None and "input" in restriction:
            i = restriction["input"]
            return i < len(node.inputs) and self.foldable(node.inputs[i])
        return all(v is None or self.foldable(v) for v in node.inputs)

    def foldable(self, v: Optional[Value], depth: int = 0) -> bool:
        """True when ``v`` is a constant or computed only from constants and static shapes (so
        ``fold`` turns it into an initializer)."""
        if v is None:
            return True
        key = id(v)
        if key in self._fold_memo:
            return self._fold_memo[key]
        ok = False
        if const_value(v) is not None:
            ok = True
        elif v.is_graph_input() or depth > 64:
            ok = False
        else:
            sv = self.shapes.sym_value(v)
            if sv is not None and all(type(x) is int for x in sv):
                ok = True
            elif v.producer is not None and v.producer.op_type not in _NON_FOLDABLE \
                    and not v.producer.domain:
                p = v.producer
                if p.op_type in ("Shape", "Size"):  # static when the input's dims are
                    s = self.shapes.shape(p.inputs[0])
                    ok = s is not None and all(type(d) is int for d in s)
                else:
                    ok = all(self.foldable(i, depth + 1) for i in p.inputs)
        self._fold_memo[key] = ok
        return ok

    # -- per node ---------------------------------------------------------------------------------
    def check_graph(self, g: Graph) -> None:
        opset = graph_opset(self.model, g)
        for node in g.nodes:
            self.report.checked_nodes += 1
            self.check_node(node, g, opset)
            for sub in node.subgraphs():
                self.check_graph(sub)

    def check_node(self, node: Node, g: Graph, opset: int) -> None:
        domain = node.domain
        if (node.domain, node.op_type) in self.functions:
            return  # a model-local function: the parser expands it; its body is checked
        if domain:
            self.add("op", BLOCK, node, f"{domain}::{node.op_type} is not an ONNX standard op; "
                     "the parser imports unknown ops as plugins of the same name",
                     PLUGIN, "unknown-op", "checkers", g)
            return
        spec = self.ops.get(node.op_type)
        if spec is None:
            self.add("op", BLOCK, node, f"{node.op_type} is not in the TensorRT "
                     f"{self.matrix['version']} support matrix", PLUGIN, "not-listed",
                     "operators", g)
            return
        if spec.get("supported") is False:
            note = f" ({spec['note']})" if spec.get("note") else ""
            self.add("op", BLOCK, node, f"{node.op_type} is not supported{note}", PLUGIN,
                     "unsupported-op", "operators", g)
            return
        self.check_types(node, spec, g, opset)
        for r in spec.get("restrictions", ()):
            if r.get("min_opset") and opset < r["min_opset"]:
                continue
            if r.get("max_opset") and opset > r["max_opset"]:
                continue
            if not self._when(node, r.get("when"), opset):
                continue
            problem = self.evaluate(r, node, opset)
            if problem is None:
                continue
            fix = self.resolve_fix(r.get("fix", ()), node, opset, r)
            self.add(r.get("kind", "attribute"), r.get("severity", BLOCK), node,
                     f"{problem}: {r['text']}", fix, r["id"], r.get("source", "operators"), g)
        if spec.get("data_dependent"):
            fix = _preset_fix(["fold"]) if self._fold_fixes(node, None) else Fix(
                "none", "supported; an engine output with this shape needs an IOutputAllocator")
            self.add("data-dependent-shape", WARN, node,
                     f"the output shape of {node.op_type} depends on input values", fix,
                     "data-dependent", "dynamic_shapes", g)

    def _when(self, node: Node, when: Optional[dict], opset: int) -> bool:
        if not when:
            return True
        return all(attr_of(node, k, opset) == v for k, v in when.items())

    def _types(self, abbrevs: tuple) -> frozenset:
        if abbrevs not in self._types_cache:
            self._types_cache[abbrevs] = type_codes(list(abbrevs))
        return self._types_cache[abbrevs]

    def check_types(self, node: Node, spec: dict, g: Graph, opset: int) -> None:
        allowed = self._types(tuple(spec.get("types", ())))
        if not allowed:
            return
        seen: set[int] = set()
        for slot in spec.get("type_of", ["input:0"]):
            dt = _dtype(_value_of(node, slot), self.info is not None)
            if dt is None or dt in allowed or dt in seen:
                continue
            seen.add(dt)
            if dt == 11:  # DOUBLE: cast down, not refused
                fix = self.resolve_fix(spec.get("fix_dtype", ()), node, opset)
                if fix is PLUGIN:
                    fix = Fix("none", "cast the model to float32 before export if the precision "
                              "loss matters")
                self.add("dtype", WARN, node, f"{slot} is DOUBLE: "
                         + self.matrix["dtypes"]["downcast"]["DOUBLE"]["text"], fix,
                         "double-downcast", "operators", g)
                continue
            names = ", ".join(spec["types"])
            fix = self.resolve_fix(spec.get("fix_dtype", ()), node, opset)
            self.add("dtype", BLOCK, node, f"{slot} is {type_name(dt)}; TensorRT's "
                     f"{node.op_type} supports {names}", fix, "op-types", "operators", g)

    # -- restriction predicates (the matrix's "checks" vocabulary) ------------------------------
    def evaluate(self, r: dict, node: Node, opset: int) -> Optional[str]:
        """None when the node meets restriction ``r`` (or it cannot be decided), else what
        breaks it."""
        check = r["check"]
        fn = getattr(self, "_c_" + check, None)
        if fn is None:
            raise KeyError(f"tensorrt matrix: unknown check {check!r} in {r.get('id')}")
        return fn(r, node, opset)

    def _c_attr_in(self, r, node, opset):
        a = node.attributes.get(r["attr"])
        if a is not None and a.ref_attr_name:
            return None
        v = attr_of(node, r["attr"], opset)
        if v is None:
            return None
        if isinstance(v, bytes):
            v = v.decode()
        if v in r["allowed"]:
            return None
        return f"{r['attr']}={v!r}"

    def _c_ints_all(self, r, node, opset):
        v = node.attr(r["attr"])
        if v is None or all(int(x) == r["value"] for x in v):
            return None
        return f"{r['attr']}={list(v)}"

    def _c_pads_symmetric(self, r, node, opset):
        v = node.attr(r["attr"])
        if not v or len(v) % 2:
            return None
        half = len(v) // 2
        return None if list(v[:half]) == list(v[half:]) else f"{r['attr']}={list(v)}"

    def _c_attr_absent(self, r, node, opset):
        present = [a for a in r["attrs"] if a in node.attributes]
        return f"{', '.join(present)} set" if present else None

    def _input(self, node, i):
        return node.inputs[i] if i < len(node.inputs) else None

    def _c_input_constant(self, r, node, opset):
        v = self._input(node, r["input"])
        if v is None or const_value(v) is not None:
            return None
        return f"input {r['input']} ({v.name or 'unnamed'}) is computed at run time"

    def _c_input_zero(self, r, node, opset):
        v = self._input(node, r["input"])
        if v is None:
            return None
        c = const_value(v)
        if c is None:
            return f"input {r['input']} ({v.name or 'unnamed'}) is not a constant"
        try:
            if c.size and bool((c.astype("float64") != 0).any()):
                return f"input {r['input']} ({v.name or 'unnamed'}) has nonzero values"
        except (TypeError, ValueError):
            return None
        return None

    def _c_input_false(self, r, node, opset):
        v = self._input(node, r["input"])
        if v is None:
            return None
        c = const_value(v)
        if c is None:
            return f"input {r['input']} ({v.name or 'unnamed'}) is computed at run time"
        return f"input {r['input']} is true" if c.size and bool(c.reshape(-1)[0]) else None

    def _c_inputs_absent(self, r, node, opset):
        given = [i for i in r["inputs"] if self._input(node, i) is not None]
        return f"inputs {given} are given" if given else None

    def _c_outputs_unused(self, r, node, opset):
        extra = [o for o in node.outputs[r["from"]:] if o.name != ""]
        if not extra:
            return None
        used = [o for o in extra if o.has_uses()]
        which = ", ".join(repr(o.name or "unnamed") for o in extra)
        return f"extra output(s) {which} " + ("are read" if used else "are present (unread)")

    def _rank(self, v) -> Optional[int]:
        return self.shapes.rank(v) if v is not None else None

    def _c_spatial_rank_in(self, r, node, opset):
        rank = self._rank(self._input(node, r["input"]))
        if rank is None or rank - 2 in r["allowed"]:
            return None
        return f"{rank - 2}-D spatial input"

    def _c_rank_in(self, r, node, opset):
        for i in r["inputs"]:
            rank = self._rank(self._input(node, i))
            if rank is not None and rank not in r["allowed"]:
                return f"input {i} has rank {rank}"
        return None

    def _c_static_dims(self, r, node, opset):
        s = self.shapes.shape(self._input(node, r["input"]))
        if s is None:
            return None
        if all(type(d) is int for d in s):
            return None
        return f"input {r['input']} has dims {_dims_text(s)}"

    def _c_static_axis_dim(self, r, node, opset):
        s = self.shapes.shape(self._input(node, 0))
        axis = attr_of(node, r["attr"], opset)
        if s is None or axis is None or not -len(s) <= int(axis) < len(s):
            return None
        d = s[int(axis)]
        return None if type(d) is int else f"dim {axis} is {d if d is not None else '?'}"

    def _c_const_below(self, r, node, opset):
        c = const_value(self._input(node, r["input"]))
        if c is None or not c.size:
            return None
        big = int(c.max())
        return f"input {r['input']} is {big}" if big >= r["value"] else None

    def _c_input_dtype_in(self, r, node, opset):
        dt = _dtype(self._input(node, r["input"]), self.info is not None)
        allowed = type_codes(list(r["allowed"]))
        return None if dt is None or dt in allowed else f"input {r['input']} is {type_name(dt)}"

    def _c_resize_axes_iota(self, r, node, opset):
        axes = node.attr("axes")
        if not axes:
            return None
        scales = self._input(node, 2)
        c = const_value(scales) if scales is not None else None
        if scales is None or (c is not None and c.size == 0):
            return None  # sizes form
        rank = self._rank(node.inputs[0])
        norm = [int(a) + rank if rank is not None and int(a) < 0 else int(a) for a in axes]
        if rank is not None and norm == list(range(rank)):
            return None
        return f"axes={list(axes)} with a scales tensor"

    def _c_if_branch_ranks(self, r, node, opset):
        then_g, else_g = node.attr("then_branch"), node.attr("else_branch")
        if then_g is None or else_g is None:
            return None
        if len(then_g.outputs) != len(else_g.outputs):
            return "the branches return different numbers of outputs"
        for i, (a, b) in enumerate(zip(then_g.outputs, else_g.outputs)):
            ra, rb = self._rank(a), self._rank(b)
            if ra is not None and rb is not None and ra != rb:
                return f"output {i} has rank {ra} in then_branch and {rb} in else_branch"
        return None

    def _c_rnn_same_activations(self, r, node, opset):
        if attr_of(node, "direction", opset) != "bidirectional":
            return None
        n = r["count"]
        for name in ("activations", "activation_alpha", "activation_beta"):
            v = node.attr(name)
            if v is not None and len(v) >= 2 * n and list(v[:n]) != list(v[n:2 * n]):
                return f"{name}={list(v)}"
        return None

    def _c_loop_scan_static(self, r, node, opset):
        body = node.attr("body")
        if body is None:
            return None
        n_carried = len(node.inputs) - 2
        n_scan = len(body.outputs) - 1 - n_carried
        trip = node.inputs[0] if node.inputs else None
        if n_scan > 0 and (trip is None or const_value(trip) is None):
            return f"{n_scan} scan output(s) with a trip count known only at run time"
        for i in range(max(n_carried, 0)):
            a = self.shapes.shape(body.inputs[2 + i]) if 2 + i < len(body.inputs) else None
            b = self.shapes.shape(body.outputs[1 + i])
            if a is not None and b is not None and len(a) != len(b):
                return f"loop-carried value {i} changes rank"
        return None

    # -- model level ----------------------------------------------------------------------------
    def check_model(self) -> None:
        m = self.model
        opset = m.opset("") or 0
        lim = self.matrix["opset"]
        if opset and opset > lim["max"]:
            self.add("opset", BLOCK, None, f"the model imports opset {opset}; the parser supports "
                     f"opsets {lim['min']} to {lim['max']}",
                     Fix("option", f"convert it: onnxopt MODEL --target-opset {lim['max']}"),
                     "opset-range", lim["source"])
        elif opset and opset < lim["min"]:
            self.add("opset", WARN, None, f"the model imports opset {opset}; the parser supports "
                     f"opsets {lim['min']} to {lim['max']}",
                     Fix("option", f"convert it: onnxopt MODEL --target-opset {lim['min']}"),
                     "opset-range", lim["source"])
        io_types = type_codes(self.matrix["dtypes"]["io"])
        for role, values in (("input", self._real_inputs()), ("output", m.graph.outputs)):
            for v in values:
                t = self._type(v)
                dt = (t.dtype or None) if isinstance(t, TensorType) else None
                if dt is None or dt in io_types:
                    continue
                sev = WARN if dt == 11 else BLOCK
                self.add("dtype", sev, None, f"model {role} {v.name!r} is {type_name(dt)}; "
                         f"network {role}s can be {', '.join(self.matrix['dtypes']['io'])}",
                         Fix("none", "change the model's interface type") if sev == BLOCK else
                         Fix("none", "DOUBLE is cast down to FLOAT"), "io-types", "operators")
        self.check_dynamic_inputs()

    def _real_inputs(self) -> list[Value]:
        return [v for v in self.model.graph.inputs if v.const_value is None]

    def check_dynamic_inputs(self) -> None:
        for v in self._real_inputs():
            t = self._type(v)
            if not isinstance(t, TensorType):
                continue
            if t.shape is None:
                self.add("dynamic-shape", BLOCK, None, f"input {v.name!r} has no known rank; "
                         "TensorRT needs every input's rank",
                         Fix("option", f"fix it: onnxopt MODEL --input-shape {v.name}:D1,D2,..."),
                         "input-rank", "dynamic_shapes")
                continue
            dyn = [(i, d) for i, d in enumerate(t.shape) if type(d) is not int]
            dims = ",".join(str(d) if type(d) is int else "?" for d in t.shape)
            if dyn:
                what = ", ".join(f"axis {i} = {d if d is not None else '?'}" for i, d in dyn)
                self.add("dynamic-shape", WARN, None,
                         f"input {v.name!r} {_dims_text(t.shape)} has dynamic dims ({what}); the "
                         "engine needs an optimization profile (min/opt/max) for them",
                         Fix("option", "give a profile (trtexec --minShapes/--optShapes/"
                             "--maxShapes), or fix the dims: onnxopt MODEL --input-shape "
                             f"{v.name}:{dims} (each ? a size)"),
                         "optimization-profile", "profile_api")
            if t.dtype in (6, 7) and len(t.shape) <= 1 and self._feeds_shape(v):
                self.add("dynamic-shape", WARN, None,
                         f"input {v.name!r} is a shape tensor (its values set tensor shapes); the "
                         "optimization profile must give its min/opt/max values",
                         Fix("option", "give shape values in the profile, or fold it: onnxopt "
                             "MODEL --input-shape is for dims only, so replace the input by a "
                             "constant before export"),
                         "shape-tensor-input", "profile_api")

    def _feeds_shape(self, v: Value) -> bool:
        seen: set[int] = set()
        stack = [v]
        while stack:
            cur = stack.pop()
            if id(cur) in seen:
                continue
            seen.add(id(cur))
            for user, idx in cur.uses():
                if idx in SHAPE_SLOTS.get(user.op_type, ()) and not user.domain:
                    return True
                if user.op_type in _SHAPE_FLOW and not user.domain:
                    stack.extend(user.outputs)
        return False

    def check_data_dependent(self) -> None:
        """Values whose shape depends on tensor data: outputs with a data-dependent symbol from
        shape inference, and nodes whose shape inputs (Reshape's shape, Range's bounds, Slice's
        starts...) are computed from data rather than from dims and constants."""
        symbols = (getattr(self.info, "symbols", {}) or {}) if self.info is not None else {}
        dd = {name: where for name, where in symbols.items()
              if isinstance(where, str) and where.startswith("data-dependent")}
        from ..shapes.context import node_label

        flagged = {(f.graph, f.node) for f in self.report.findings
                   if f.kind == "data-dependent-shape"}
        for g in self.model.graphs():
            glabel = graph_label(g)
            for node in g.nodes:
                if (glabel, node_id(node)) in flagged or node.domain:
                    continue
                reason = None
                if dd:
                    label = f"data-dependent, from {node_label(node)}"
                    mine = sorted({sym for o in node.outputs for d in (self.shapes.shape(o) or ())
                                   if isinstance(d, SymDim) for sym in _free_symbols(d)
                                   if dd.get(sym) == label})
                    if mine:
                        reason = f"output dim(s) {', '.join(mine)} depend on input values"
                if reason is None:
                    for i in SHAPE_SLOTS.get(node.op_type, ()):
                        v = node.inputs[i] if i < len(node.inputs) else None
                        if v is not None and not self.shape_only(v, inputs_ok=True):
                            reason = (f"input {i} ({v.name or 'unnamed'}) sets the output shape "
                                      "and is computed from tensor data")
                            break
                if reason is None:
                    continue
                flagged.add((glabel, node_id(node)))
                fix = _preset_fix(["fold"]) if self._fold_fixes(node, None) else Fix(
                    "none", "supported; an engine output with this shape needs an "
                    "IOutputAllocator")
                self.add("data-dependent-shape", WARN, node, reason, fix, "data-dependent",
                         "dynamic_shapes", g)


def _free_symbols(d: SymDim) -> list[str]:
    text = getattr(d, "text", None) or str(d)
    import re

    return re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", text)


def check_tensorrt(model: Model, ctx: Optional[PassContext] = None) -> Report:
    """Check ``model`` against the TensorRT support matrix; returns the :class:`Report`.
    Runs symbolic shape inference (annotating the in-memory IR) when it is available."""
    ctx = ctx or PassContext(model)
    info = None
    shapes = Shapes(None)
    from ..shapes import ShapeAnalysis

    try:
        info = ctx.analysis(ShapeAnalysis)
        shapes = Shapes(ctx)
    except Exception as e:  # a contradiction in the model: report what can be checked
        ctx.note(f"shape inference failed ({type(e).__name__}: {e}); dims and ranks unknown")
    c = _Checker(model, shapes, info)
    c.check_model()
    c.check_graph(model.graph)
    for f in model.functions.values():
        c.check_graph(f.graph)
    c.check_data_dependent()
    c.report.notes.extend(ctx.notes)
    m = c.matrix
    c.report.info = {"matrix_version": m["version"], "matrix_released": m["released"],
                     "matrix_source": m["sources"]["operators"]["url"],
                     "opset": model.opset(""),
                     "opset_range": [m["opset"]["min"], m["opset"]["max"]]}
    return c.report


__all__ = ["check_tensorrt", "Report", "Finding", "Fix", "BLOCK", "WARN", "KIND_ORDER",
           "node_id", "graph_label", "graph_opset"]
