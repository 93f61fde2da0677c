"""What a parsed model must satisfy before it is lifted: one walk over every graph, function body
and tensor-bearing field, refusing what onnx.checker or onnxruntime would refuse later (or what
would make onnxopt fail in the middle of a pass) with one specific line.

Nodes: the domain is imported, an op of a domain onnx knows exists there, the op's schema at the
imported version has every attribute the node sets and every one it requires, and control flow
agrees with its bodies (If has both branches and they return as many values as the node; a Loop
or Scan body takes and returns as many as the node says). Local functions never call themselves.

Tensors (initializers, sparse initializers' values and indices, tensor and sparse attributes, in
subgraphs and function bodies too): a known data type, no segments, dims whose element count is
representable, strings that are UTF-8, and external data whose keys are unique and whose location
is relative and stays inside the model's folder (checked against the files when loading from one).
"""

from __future__ import annotations

from typing import Optional

from .errors import ExternalDataError, InvalidModelError

MAX_DEPTH = 64  # subgraph nesting onnxopt reads at most (protobuf stops at about 30 anyway)
_MAX_ELEMENTS = 2**62  # an element count beyond this fits no memory and overflows numpy
_STRING, _EXTERNAL = 8, 1
_CONTROL = ("If", "Loop", "Scan")
# AttributeProto types that hold tensors or graphs (TENSOR, GRAPH, TENSORS, GRAPHS, SPARSE_TENSOR,
# SPARSE_TENSORS), and 0 (UNDEFINED: the type is not set, so look at the fields).
_BEARING = frozenset((0, 4, 5, 9, 10, 11, 12))
# The field a single-valued type needs, and the type's name.
_VALUE_FIELDS = frozenset(("f", "i", "s", "t", "g", "sparse_tensor", "tp", "floats", "ints",
                           "strings", "tensors", "graphs", "sparse_tensors", "type_protos"))
_FIELD_OF = {4: ("t", "tensor"), 5: ("g", "graph"), 11: ("sparse_tensor", "sparse tensor")}


def _count(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    return f"at least {lo}" if hi >= 2**31 - 1 else f"{lo} to {hi}"


def _dim_params(type_proto) -> list:
    """The dim_params of a tensor or sparse tensor type (nested types have their own walk in
    lift, which reads only these)."""
    which = type_proto.WhichOneof("value")
    if which not in ("tensor_type", "sparse_tensor_type"):
        return []
    t = getattr(type_proto, which)
    return [d.dim_param for d in t.shape.dim] if t.HasField("shape") else []


def _dtypes() -> frozenset:
    """The ONNX data types whose storage onnxopt can check and decode (strings, and those with a
    known element size): a newer one (float6, say) would fail in the middle of a pass."""
    import onnx

    from .ir.tensor import _ITEMSIZE

    return frozenset(v for v in onnx.TensorProto.DataType.values()
                     if v == _STRING or v in _ITEMSIZE)


class Audit:
    """One pass over a ModelProto (see the module docstring); ``run`` raises on the first
    problem. ``base_dir``: the model's folder, so external data files are checked too."""

    def __init__(self, proto, what: str, base_dir: Optional[str] = None,
                 problems: Optional[list] = None):
        from onnx import defs

        self.proto, self.what, self.base_dir = proto, what, base_dir
        self.problems = problems  # a list: node problems go there instead of raising
        self.defs = defs
        # Domains onnx has schemas for: the default one, and the others when a node first uses
        # one (:meth:`op`); building every schema object to list them costs ~12 ms per load.
        self.known_domains = {""}
        self.all_domains = False
        self.dtypes = _dtypes()
        self.local = {(f.domain, f.name) for f in proto.functions}
        self.schemas: dict = {}  # (domain, op, version) -> (attribute names, required) or None
        self.seen_ops: set = set()
        self.passed: set = set()  # node shapes whose schema check passed (see ``schema``)

    def run(self) -> None:
        p = self.proto
        self.text("the model's header", p.producer_name, p.producer_version, p.domain,
                  p.doc_string,
                  *(o.domain for o in p.opset_import),
                  *(x for e in p.metadata_props for x in (e.key, e.value)))
        for f in p.functions:
            self.text(f"function {f.name!r}", f.name, f.domain, f.doc_string, *f.input,
                      *f.output, *f.attribute)
        imports = self._imports(p.opset_import)
        for f in p.functions:
            imports.setdefault(f.domain, 1)
        self.graph(p.graph, imports, 0)
        for f in p.functions:
            fi = {**imports, **self._imports(f.opset_import)}
            self.nodes(f.node, fi, 1, f"function {f.name!r}")
            for a in f.attribute_proto:
                self.attribute(a, fi, 1)
        self.function_cycles()

    @staticmethod
    def _imports(opset_import) -> dict:
        out = {(o.domain or ""): o.version for o in opset_import}
        if "ai.onnx" in out:
            out.setdefault("", out["ai.onnx"])
        return out

    def fail(self, msg: str, cls=InvalidModelError):
        raise cls(f"{self.what}: {msg}")

    def text(self, where: str, *values) -> None:
        """Names and strings must be text: protobuf hands out a string field that is not UTF-8
        as bytes, which nothing downstream expects (a name, an op type, a dim)."""
        for x in values:
            if x.__class__ is bytes:
                self.fail(f"{where}: the string {x[:40]!r} is not UTF-8")

    def node_problem(self, msg: str, kind: str = "schema") -> None:
        """A node the runtime would refuse but the IR can hold: raised, or appended to
        ``problems`` as (kind, message) with kind "opset", "schema" or "control-flow"."""
        if self.problems is None:
            self.fail(msg)
        self.problems.append((kind, f"{self.what}: {msg}"))

    # -- graphs and nodes

    def graph(self, g, imports: dict, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(f"subgraphs are nested more than {MAX_DEPTH} deep")
        self.text("a graph", g.name, g.doc_string)
        for vi in (*g.input, *g.output, *g.value_info):
            self.text(f"graph {g.name!r}", vi.name, vi.doc_string, *_dim_params(vi.type))
        for t in g.initializer:
            self.tensor(t)
        for s in g.sparse_initializer:
            self.sparse(s)
        self.nodes(g.node, imports, depth, f"graph {g.name!r}")

    def nodes(self, nodes, imports: dict, depth: int, where: str) -> None:
        # Each protobuf field read costs a lookup: the hot loop reads each field once.
        for n in nodes:
            name, op, domain = n.name, n.op_type, n.domain
            try:  # str + bytes raises: the cheap test on the hot path, the message below
                name + op + domain + n.doc_string + "".join(n.input) + "".join(n.output)
            except TypeError:
                self.text(where, name, op, domain, n.doc_string, *n.input, *n.output)
            dom = "" if domain in ("", "ai.onnx") else domain
            if (dom, op) not in self.seen_ops:
                self.op(n, dom, imports)
                self.seen_ops.add((dom, op))
            # bodies first: a nesting bomb is refused as that
            attrs = tuple([self.attribute(a, imports, depth) for a in n.attribute]) \
                if len(n.attribute) else ()
            if dom in self.known_domains and dom in imports and (domain, op) not in self.local:
                self.schema(n, dom, imports[dom], attrs)
            if dom == "" and op in _CONTROL:
                self.control(n, where)

    def op(self, n, dom: str, imports: dict) -> None:
        label = n.name or n.op_type
        if dom not in self.known_domains and not self.all_domains:
            self.known_domains.update(s.domain for s in self.defs.get_all_schemas())
            self.all_domains = True
        if dom not in imports:
            self.fail(f"node {label!r} uses domain {dom!r}, which the model does not import")
        if dom in self.known_domains and (n.domain, n.op_type) not in self.local \
                and not self.defs.has(n.op_type, dom):
            where = "an ONNX operator" if dom == "" else f"an operator of domain {dom!r}"
            self.fail(f"node {label!r} uses {n.op_type!r}, which is not {where}")

    def schema(self, n, dom: str, version: int, attrs: tuple) -> None:
        """The node against its op's schema; a node shaped like one that passed (op, arity,
        ``attrs``: what :meth:`attribute` returned for each) is not checked again: the checks
        read nothing else."""
        shape = (dom, n.op_type, version, len(n.input), len(n.output), attrs)
        if shape in self.passed:
            return
        listed = len(self.problems or ())
        self._schema(n, dom, version)  # raises, or lists a problem, unless the node passes
        if len(self.problems or ()) == listed:
            self.passed.add(shape)

    def _schema(self, n, dom: str, version: int) -> None:
        key = (dom, n.op_type, version)
        if key not in self.schemas:
            try:
                s = self.defs.get_schema(n.op_type, version, dom)
                self.schemas[key] = (frozenset(s.attributes),
                                     frozenset(k for k, a in s.attributes.items() if a.required),
                                     s.min_input, s.max_input, s.min_output, s.max_output,
                                     {k: int(a.type) for k, a in s.attributes.items()})
            except self.defs.SchemaError:  # the op is newer than the imported opset
                self.schemas[key] = None
        known = self.schemas[key]
        label = n.name or n.op_type
        if known is None:
            return self.node_problem(f"node {label!r}: {n.op_type!r} does not exist in opset "
                                     f"{version} of domain {dom or 'ai.onnx'!r}", "opset")
        lo, hi = known[2], known[3]
        if not lo <= len(n.input) <= hi:
            self.node_problem(f"node {label!r}: {n.op_type!r} (opset {version}) takes "
                              f"{_count(lo, hi)} inputs, not {len(n.input)}", "arity")
        lo, hi = known[4], known[5]
        if not lo <= len(n.output) <= hi:
            self.node_problem(f"node {label!r}: {n.op_type!r} (opset {version}) has "
                              f"{_count(lo, hi)} outputs, not {len(n.output)}", "arity")
        # An attribute that refers to a function's attribute (``@p``) gets its value at the call
        # site: only plain attributes are held against the op's schema here.
        names = {a.name for a in n.attribute if not a.ref_attr_name}
        if not names <= known[0]:
            extra = sorted(names - known[0])
            self.node_problem(f"node {label!r}: {n.op_type!r} (opset {version}) has no "
                              f"attribute {extra[0]!r}")
        if not known[1] <= names | {a.name for a in n.attribute if a.ref_attr_name}:
            missing = sorted(known[1] - names)
            self.node_problem(f"node {label!r}: {n.op_type!r} requires attribute {missing[0]!r}")
        types = known[6]
        for a in n.attribute:  # what the op reads must be of the type it reads
            if a.type and not a.ref_attr_name and types.get(a.name, a.type) != a.type:
                self.node_problem(f"node {label!r}: attribute {a.name!r} of {n.op_type!r} has "
                                  f"type {a.type}, the op takes type {types[a.name]}")

    def control(self, n, where: str) -> None:
        """Bodies agree with the node: If's two branches, Loop's and Scan's input and output
        counts (what onnxruntime checks when it loads the model)."""
        label = n.name or n.op_type
        bodies = {a.name: a.g for a in n.attribute if a.HasField("g")}
        outs = len(n.output)
        if n.op_type == "If":
            for b in ("then_branch", "else_branch"):
                if b in bodies and len(bodies[b].output) != outs:
                    self.node_problem(f"node {label!r} in {where}: {b} returns "
                                      f"{len(bodies[b].output)} values, the node has {outs} "
                                      "outputs", "control-flow")
            return
        body = bodies.get("body")
        if body is None:
            return  # the schema check names the missing attribute
        ins = len(n.input)
        if n.op_type == "Loop":
            carried = ins - 2
            if len(body.input) != 2 + carried or len(body.output) != 1 + outs or outs < carried:
                self.node_problem(f"node {label!r} in {where}: a Loop with {carried} carried "
                                  f"values and {outs} outputs needs a body of {2 + carried} "
                                  f"inputs and {1 + outs} outputs, not {len(body.input)} and "
                                  f"{len(body.output)}", "control-flow")
            return
        scan_in = next((a.i for a in n.attribute if a.name == "num_scan_inputs"), None)
        feeds = ins - (1 if self._scan8(n) else 0)
        if scan_in is None or not 0 < scan_in <= feeds or len(body.input) != feeds \
                or len(body.output) != outs:
            self.node_problem(f"node {label!r} in {where}: a Scan with {feeds} inputs "
                              f"({scan_in} scanned) and {outs} outputs has a body of "
                              f"{len(body.input)} inputs and {len(body.output)} outputs",
                              "control-flow")

    def _scan8(self, n) -> bool:
        return self.proto.opset_import and min(
            (o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")),
            default=9) < 9

    def attribute(self, a, imports: dict, depth: int) -> tuple:
        """Check ``a`` and what it holds; its (name, type, reference)."""
        name, kind, ref = a.name, a.type, a.ref_attr_name
        if name.__class__ is bytes or ref.__class__ is bytes:
            self.text("an attribute", name, ref)
        if kind not in _BEARING:  # ints, floats, strings: nothing to look into
            return name, kind, ref
        field = _FIELD_OF.get(kind)
        if field and not ref and not a.HasField(field[0]):
            self.fail(f"attribute {name!r} is of type {field[1]} but holds no {field[1]}")
        if kind == 0 and (self.proto.ir_version >= 2 or not any(
                fd.name in _VALUE_FIELDS for fd, _ in a.ListFields())):
            self.fail(f"attribute {name!r} has no type (required from IR version 2)")
        if a.HasField("t"):
            self.tensor(a.t)
        for t in a.tensors:
            self.tensor(t)
        if a.HasField("sparse_tensor"):
            self.sparse(a.sparse_tensor)
        for s in a.sparse_tensors:
            self.sparse(s)
        if a.HasField("g"):
            self.graph(a.g, imports, depth + 1)
        for g in a.graphs:
            self.graph(g, imports, depth + 1)
        return name, kind, ref

    def function_cycles(self) -> None:
        """Refuse local functions that call themselves, directly or through others."""
        calls = {(f.domain, f.name): {(n.domain, n.op_type) for n in f.node} & self.local
                 for f in self.proto.functions}
        state: dict = {}
        for start in calls:
            stack = [(start, iter(calls[start]))]
            state[start] = state.get(start, 0) or 1
            if state[start] == 2:
                continue
            while stack:
                key, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[key] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    self.fail(f"local function {nxt[1]!r} calls itself (recursion is not "
                              "allowed in ONNX)")
                elif not state.get(nxt):
                    state[nxt] = 1
                    stack.append((nxt, iter(calls[nxt])))

    # -- tensors

    def sparse(self, s) -> None:
        self.tensor(s.values)
        self.tensor(s.indices)
        if any(d < 0 for d in s.dims):
            self.fail(f"sparse tensor {s.values.name!r}: dims {list(s.dims)} include a negative "
                      "dim")

    def tensor(self, t) -> None:
        name = t.name
        self.text("a tensor", name, t.doc_string)
        if t.data_type not in self.dtypes:
            self.fail(f"tensor {name!r} has data type {t.data_type}, which is not an ONNX type "
                      "onnxopt supports")
        if t.HasField("segment"):
            self.fail(f"tensor {name!r} is segmented, which onnxopt does not support")
        n = 1
        for d in t.dims:
            if d > 0:
                n *= d
        if n > _MAX_ELEMENTS:
            self.fail(f"tensor {name!r}: dims {list(t.dims)} are impossibly large",
                      ExternalDataError if t.data_location == _EXTERNAL else InvalidModelError)
        if t.data_type == _STRING:
            if t.HasField("raw_data"):
                self.fail(f"tensor {name!r}: strings in raw_data (ONNX keeps them in string_data)")
            for i, s in enumerate(t.string_data):
                try:
                    s.decode("utf-8")
                except UnicodeDecodeError:
                    self.fail(f"tensor {name!r}: string #{i} is not UTF-8")
        if t.data_location == _EXTERNAL:
            self.external(t)

    def external(self, t) -> None:
        keys = [e.key for e in t.external_data]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            self.fail(f"tensor {t.name!r}: external data key {dup!r} is given twice",
                      ExternalDataError)
        if self.base_dir is None:
            return  # loading from bytes: lift refuses external data without a folder
        from .ir.tensor import _int_field, resolve_external

        info = {e.key: e.value for e in t.external_data}
        resolve_external(self.base_dir, info.get("location", ""),
                         _int_field(info, "offset", t.name), _int_field(info, "length", t.name),
                         t.name)


def audit(proto, what: str, base_dir: Optional[str] = None,
          problems: Optional[list] = None) -> None:
    """Refuse a model that breaks a rule of the module docstring (InvalidModelError,
    ExternalDataError), naming the node or tensor. With a ``problems`` list, what only a node's
    schema or control-flow arity gets wrong is appended there instead (``check`` reports it)."""
    Audit(proto, what, base_dir, problems).run()


__all__ = ["MAX_DEPTH", "Audit", "audit"]
