"""The IR: Value, Node, Attr, Graph, Function and Model.

Invariants every mutation keeps true (checked by :mod:`onnxopt.ir.verify`):

- A Value knows its producer ``(node, index)`` or that it is a graph input or an initializer.
- A Value knows its uses exactly, as ``(node, input_index)`` pairs; a value used twice by one node
  has two uses. Being a graph output is tracked beside the uses and counts as a use.
- A value of an enclosing graph used inside an If/Loop/Scan body is the same Value object, and the
  inner node is a real use of it.
- Nodes of a graph are kept in a valid topological order.

Identity is object identity; names are labels. Nothing here defines a structural ``__eq__``.

Bookkeeping for speed, kept exact by the mutation API: each graph caches the list of graphs nested
in it (until a node holding graphs comes or goes) and the output slots of each value; every node
carries a stamp of the mutation clock (:func:`clock`), moved forward whenever its neighbourhood
changes, so a pass can revisit only what changed since it last looked (:func:`changed_since`).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from .errors import IRError
from .nodelist import NodeList
from .shape import Shape
from .tensor import Tensor
from .types import TensorType, Type

# AttributeProto.AttributeType values.
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_GRAPH = 1, 2, 3, 4, 5
A_FLOATS, A_INTS, A_STRINGS, A_TENSORS, A_GRAPHS = 6, 7, 8, 9, 10
A_SPARSE_TENSOR, A_SPARSE_TENSORS, A_TYPE_PROTO, A_TYPE_PROTOS = 11, 12, 13, 14

_ids = itertools.count()


def std_domain(domain: str) -> str:
    """The IR's one spelling of a domain: the default domain is always "" (ONNX also accepts
    "ai.onnx"). Nodes and opset imports are normalized when created or lifted, so passes
    compare with "" only."""
    return "" if domain == "ai.onnx" else domain


def std_imports(imports: dict[str, int]) -> dict[str, int]:
    """Opset imports keyed by :func:`std_domain` ("" wins when a model lists both spellings)."""
    out = {std_domain(d): v for d, v in imports.items() if d != "ai.onnx"}
    if "ai.onnx" in imports:
        out.setdefault("", imports["ai.onnx"])
    return out

# The mutation clock. A node's ``_stamp`` is the clock when its neighbourhood last changed: it was
# created, inserted or moved, its inputs or attributes were set, or the use list or graph-output
# role of one of its outputs changed. A pass that examined every node at clock c needs to look
# again only near nodes stamped after c (the rewrite driver does; see ``changed_since``).
_now = [0]
_MAX_TOUCH = 16  # a producer-less value's users are stamped only up to this many


def _tick() -> int:
    _now[0] += 1
    return _now[0]


def clock() -> int:
    """The mutation clock now: every later stamp is greater, and two equal readings mean the
    IR did not change in between (caches valid for one reading can rely on that)."""
    return _now[0]


def touch_value(v: "Value") -> None:
    """Record that what a pass can see of ``v`` changed (its use list, its role, its type or an
    analysis' facts about it): its producer is stamped, or, for a graph input or initializer,
    its users (when there are few: with many, one more or less changes no rewrite's mind)."""
    t = _tick()
    p = v.producer
    if p is not None:
        p._stamp = t
    elif len(v._uses) <= _MAX_TOUCH:
        for n, _ in v._uses:
            n._stamp = t


# Bumped whenever the set of graphs nested in some graph may change (a node holding graphs is
# adopted, erased or detached, or a graph attribute is set): Graph.subgraphs() caches its walk
# for the current value.
_nesting = [0]


def bump_nesting() -> None:
    """Invalidate every cached subgraph list (call after changing nesting outside this module)."""
    _nesting[0] += 1


class Value:
    """One SSA value: a graph input, an initializer, or a node output."""

    __slots__ = ("name", "type", "producer", "index", "_uses", "_outputs_of", "graph",
                 "_is_input", "const_value", "doc_string", "meta", "_uid")

    def __init__(self, name: Optional[str] = None, type: Optional[Type] = None):
        self.name = name
        self.type = type
        self.producer: Optional[Node] = None
        self.index: Optional[int] = None
        self._uses: dict[tuple[Node, int], None] = {}
        self._outputs_of: list[Graph] = []
        self.graph: Optional[Graph] = None  # owner for graph inputs and initializers
        self._is_input = False
        self.const_value: Optional[Tensor] = None
        self.doc_string = ""
        self.meta: dict[str, Any] = {}
        self._uid = next(_ids)

    @classmethod
    def lifted(cls, name: str, producer: Optional["Node"] = None,
               index: Optional[int] = None) -> "Value":
        """The fast constructor, for lifting (see :meth:`Node.lifted`): a value with a name and
        no type, the output ``index`` of ``producer`` when given."""
        v = cls.__new__(cls)
        v.name = name
        v.type = None
        v.producer = producer
        v.index = index
        v._uses = {}
        v._outputs_of = []
        v.graph = None
        v._is_input = False
        v.const_value = None
        v.doc_string = ""
        v.meta = {}
        v._uid = next(_ids)
        return v

    # -- type convenience ---------------------------------------------------------------------
    @property
    def dtype(self) -> Optional[int]:
        """Element type of a tensor value, None when unknown or not a tensor."""
        t = self.type
        return t.dtype or None if isinstance(t, TensorType) else None

    @property
    def shape(self) -> Optional[Shape]:
        """Shape of a tensor value, None when the rank is unknown."""
        t = self.type
        return t.shape if isinstance(t, TensorType) else None

    def set_tensor_type(self, dtype: Optional[int], shape: Optional[Iterable] = None) -> None:
        """Set the type to a tensor of ``dtype`` and ``shape`` (dims: int, str, SymDim, None)."""
        self.type = TensorType(dtype or 0, None if shape is None else Shape(shape))

    # -- role ---------------------------------------------------------------------------------
    def is_graph_input(self) -> bool:
        """True for an input of its graph (also when it is an initializer, IR < 4 style)."""
        return self._is_input

    def is_initializer(self) -> bool:
        """True for an initializer of its graph."""
        return self.const_value is not None and self.producer is None

    def is_graph_output(self) -> bool:
        """True when some graph returns this value."""
        return bool(self._outputs_of)

    def owning_graph(self) -> Optional["Graph"]:
        """The graph where this value is defined."""
        return self.producer.graph if self.producer is not None else self.graph

    # -- uses -----------------------------------------------------------------------------------
    def uses(self) -> list[tuple["Node", int]]:
        """Every ``(node, input_index)`` that reads this value, in no particular order."""
        return list(self._uses)

    def consumers(self) -> list["Node"]:
        """The distinct nodes that read this value."""
        return list(dict.fromkeys(n for n, _ in self._uses))

    def num_uses(self) -> int:
        """Node uses plus graph-output uses."""
        return len(self._uses) + len(self._outputs_of)

    def has_uses(self) -> bool:
        """True when a node reads this value or a graph returns it."""
        return bool(self._uses) or bool(self._outputs_of)

    def output_of(self) -> list["Graph"]:
        """Graphs that return this value (one entry per output slot)."""
        return list(self._outputs_of)

    def replace_all_uses_with(self, new: "Value", outputs: bool = False) -> None:
        """Make every node that reads this value read ``new`` instead.

        With ``outputs=True`` graph outputs are redirected too, keeping the output's name (the
        model's interface): ``new`` takes the name when it can, otherwise an Identity carries it.
        """
        if new is self:
            return
        for node, i in list(self._uses):
            node.set_input(i, new)
        if outputs:
            for g in list(dict.fromkeys(self._outputs_of)):
                g._redirect_output(self, new)

    def __repr__(self) -> str:
        return f"Value({self.name!r})"


class Attr:
    """A node attribute. Decoded from its proto on first access; graphs are IR Graphs."""

    __slots__ = ("name", "type", "_value", "_proto", "ref_attr_name", "doc_string")

    _UNSET = object()

    def __init__(self, name: str, type: int, value: Any = _UNSET, proto: Any = None,
                 ref_attr_name: str = ""):
        self.name = name
        self.type = type
        self._value = value
        self._proto = proto
        self.ref_attr_name = ref_attr_name
        self.doc_string = ""

    @classmethod
    def make(cls, name: str, value: Any) -> "Attr":
        """An attribute with its type inferred from a Python value."""
        if isinstance(value, Attr):
            return value
        if isinstance(value, bool):
            return cls(name, A_INT, int(value))
        if isinstance(value, int):
            return cls(name, A_INT, value)
        if isinstance(value, float):
            return cls(name, A_FLOAT, value)
        if isinstance(value, (str, bytes)):
            return cls(name, A_STRING, value)
        if isinstance(value, Tensor):
            return cls(name, A_TENSOR, value)
        if isinstance(value, Graph):
            return cls(name, A_GRAPH, value)
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            return cls(name, A_TENSOR, Tensor.from_numpy(value))
        if isinstance(value, (list, tuple)):
            vals = list(value)
            if all(isinstance(v, (bool, int)) for v in vals):
                return cls(name, A_INTS, tuple(int(v) for v in vals))
            if all(isinstance(v, (int, float)) for v in vals):
                return cls(name, A_FLOATS, tuple(float(v) for v in vals))
            if all(isinstance(v, (str, bytes)) for v in vals):
                return cls(name, A_STRINGS, tuple(vals))
            if all(isinstance(v, Graph) for v in vals):
                return cls(name, A_GRAPHS, tuple(vals))
            if all(isinstance(v, Tensor) for v in vals):
                return cls(name, A_TENSORS, tuple(vals))
        raise IRError(f"attribute {name!r}: cannot infer the type of {value!r}")

    @property
    def value(self) -> Any:
        """The Python value: int, float, str, Tensor, Graph, or a tuple of those."""
        if self._value is Attr._UNSET:
            self._value = _decode_attr(self._proto, self.type)
        return self._value

    @property
    def proto(self):
        """The AttributeProto this came from, when unchanged since lift."""
        return self._proto

    def __repr__(self) -> str:
        return f"Attr({self.name}={self.value!r})"


def _decode_attr(p, t: int) -> Any:
    if t == A_INT:
        return p.i
    if t == A_FLOAT:
        return p.f
    if t == A_STRING:
        try:
            return p.s.decode("utf-8")
        except UnicodeDecodeError:
            return p.s
    if t == A_INTS:
        return tuple(p.ints)
    if t == A_FLOATS:
        return tuple(p.floats)
    if t == A_STRINGS:
        out = []
        for s in p.strings:
            try:
                out.append(s.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(s)
        return tuple(out)
    if t == A_TENSOR:
        return Tensor.from_proto(p.t)
    if t == A_TENSORS:
        return tuple(Tensor.from_proto(x) for x in p.tensors)
    if t == A_SPARSE_TENSOR:
        return p.sparse_tensor
    if t == A_SPARSE_TENSORS:
        return tuple(p.sparse_tensors)
    if t == A_TYPE_PROTO:
        return p.tp
    if t == A_TYPE_PROTOS:
        return tuple(p.type_protos)
    raise IRError(f"attribute {p.name!r} has unknown type {t}")


class Node:
    """One operator application. Inputs are an immutable tuple; change them with set_input."""

    __slots__ = ("domain", "op_type", "name", "attributes", "_inputs", "_outputs", "graph",
                 "overload", "doc_string", "metadata_props", "meta", "_link", "_uid", "_stamp")

    def __init__(self, domain: str, op_type: str, inputs: Sequence[Optional[Value]] = (),
                 attributes: Union[dict[str, Any], Iterable[Attr]] = (), num_outputs: int = 1,
                 outputs: Optional[Sequence[Value]] = None, name: str = "", overload: str = ""):
        self.domain = std_domain(domain)
        self.op_type = op_type
        self.name = name
        self.overload = overload
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}
        self.meta: dict[str, Any] = {}
        self.graph: Optional[Graph] = None
        self._link = None  # its place in the graph's NodeList
        self._uid = next(_ids)
        self._stamp = _tick()
        if isinstance(attributes, dict):
            self.attributes = {k: Attr.make(k, v) for k, v in attributes.items()}
        else:
            self.attributes = {a.name: a for a in attributes}
        self._inputs: tuple[Optional[Value], ...] = tuple(inputs)
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses[(self, i)] = None
                touch_value(v)
        if outputs is None:
            outputs = [Value() for _ in range(num_outputs)]
        for i, v in enumerate(outputs):
            if v.producer is not None or v._is_input or v.const_value is not None:
                raise IRError(f"value {v.name!r} already has a definition")
            v.producer = self
            v.index = i
        self._outputs: tuple[Value, ...] = tuple(outputs)

    @classmethod
    def lifted(cls, domain: str, op_type: str, inputs: Sequence[Optional[Value]],
               output_names: Sequence[str], name: str = "", overload: str = "",
               doc_string: str = "", metadata_props: Optional[dict[str, str]] = None) -> "Node":
        """The fast constructor, for lifting: like ``Node(...)`` without its checks (the lifter
        has made them) and without a clock tick (a loaded model starts at stamp 0). The outputs
        are new untyped values named ``output_names``; attributes are added by the caller."""
        node = cls.__new__(cls)
        node.domain = "" if domain == "ai.onnx" else domain  # std_domain, inlined: hot path
        node.op_type = op_type
        node.name = name
        node.overload = overload
        node.doc_string = doc_string
        node.metadata_props = metadata_props if metadata_props is not None else {}
        node.meta = {}
        node.graph = None
        node._link = None
        node._uid = next(_ids)
        node._stamp = 0
        node.attributes = {}
        node._inputs = ins = tuple(inputs)
        for i, v in enumerate(ins):
            if v is not None:
                v._uses[(node, i)] = None
        new_value = Value.lifted
        node._outputs = tuple([new_value(o, node, k) for k, o in enumerate(output_names)])
        return node

    @property
    def inputs(self) -> tuple[Optional[Value], ...]:
        """Input values in order; None for an omitted optional input."""
        return self._inputs

    @property
    def outputs(self) -> tuple[Value, ...]:
        """Output values in order (an omitted optional output has the name "")."""
        return self._outputs

    def set_input(self, index: int, value: Optional[Value]) -> None:
        """Replace one input, keeping both values' use lists exact."""
        old = self._inputs[index]
        if old is value:
            return
        if old is not None:
            del old._uses[(self, index)]
            touch_value(old)
        if value is not None:
            value._uses[(self, index)] = None
            touch_value(value)
        self._inputs = self._inputs[:index] + (value,) + self._inputs[index + 1:]
        self._stamp = _tick()

    def set_inputs(self, values: Sequence[Optional[Value]]) -> None:
        """Replace the whole input list (its length may change)."""
        for i, v in enumerate(self._inputs):
            if v is not None:
                del v._uses[(self, i)]
                touch_value(v)
        self._inputs = tuple(values)
        for i, v in enumerate(self._inputs):
            if v is not None:
                v._uses[(self, i)] = None
                touch_value(v)
        self._stamp = _tick()

    def attr(self, name: str, default: Any = None) -> Any:
        """The decoded value of an attribute, or ``default`` when absent."""
        a = self.attributes.get(name)
        return default if a is None else a.value

    def set_attr(self, name: str, value: Any) -> None:
        """Set or replace an attribute (type inferred unless an Attr is given)."""
        self._stamp = _tick()
        old = self.attributes.get(name)
        if old is not None and old.type in (A_GRAPH, A_GRAPHS):
            _nesting[0] += 1
            for g in _attr_graphs(old):
                g._detach_captures()
        self.attributes[name] = Attr.make(name, value) if not isinstance(value, Attr) else value
        for g in _attr_graphs(self.attributes[name]):
            _nesting[0] += 1
            g.parent_node = self

    def subgraphs(self) -> list["Graph"]:
        """Graphs held in this node's attributes."""
        if not self.attributes:
            return _NO_GRAPHS
        out: list[Graph] = []
        for a in self.attributes.values():
            t = a.type
            if t == A_GRAPH:
                out.append(a.value)
            elif t == A_GRAPHS:
                out.extend(a.value)
        return out

    @property
    def op(self) -> tuple[str, str]:
        """``(domain, op_type)``."""
        return (self.domain, self.op_type)

    def __repr__(self) -> str:
        dom = f"{self.domain}::" if self.domain else ""
        return f"Node({dom}{self.op_type} {self.name!r})"


_NO_GRAPHS: list = []  # shared, never mutated: most nodes hold no graph


def _attr_graphs(a: Attr) -> list["Graph"]:
    if a.type == A_GRAPH:
        return [a.value]
    if a.type == A_GRAPHS:
        return list(a.value)
    return []


SHARED_BYTES = 1024  # the largest constant Graph.equal_initializer shares


def _shared_key(t: Tensor) -> Optional[tuple]:
    n = t.nbytes
    if n is None or n > SHARED_BYTES or t.is_external:
        return None
    return (t.dtype, t.dims, t.raw_bytes())


class Graph:
    """A graph: inputs, outputs, initializers and nodes in topological order."""

    def __init__(self, inputs: Sequence[Value] = (), outputs: Sequence[Value] = (),
                 nodes: Sequence[Node] = (), initializers: Sequence[Value] = (), name: str = ""):
        self.name = name
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}
        self.parent_node: Optional[Node] = None  # the node whose attribute holds this graph
        self.function: Optional[Function] = None  # set for a function body
        self.sparse_initializers: list[Any] = []  # SparseTensorProto, kept opaque
        self.quantization_annotation: list[Any] = []  # TensorAnnotation protos, kept opaque
        self.meta: dict[str, Any] = {}
        self._subs: Optional[tuple] = None  # (nesting generation, every nested graph)
        self._nodes = NodeList()
        self._inputs: list[Value] = []
        self._outputs: list[Value] = []
        self._out_pos: dict[Value, list[int]] = {}  # value -> the output slots holding it
        self._inits: dict[Value, None] = {}
        self._shared: Optional[dict[tuple, tuple[Value, Tensor]]] = None  # see equal_initializer
        for v in inputs:
            self.add_input(v)
        for v in initializers:
            self.add_initializer(v)
        for n in nodes:
            self.append(n)
        self.outputs = outputs

    # -- structure ------------------------------------------------------------------------------
    @property
    def nodes(self) -> NodeList:
        """The nodes, in order. Iteration survives insertions and erasures."""
        return self._nodes

    @property
    def inputs(self) -> tuple[Value, ...]:
        """Graph inputs, in order."""
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value, ...]:
        """Graph outputs, in order."""
        return tuple(self._outputs)

    @outputs.setter
    def outputs(self, values: Sequence[Value]) -> None:
        for v in self._outputs:
            v._outputs_of.remove(self)
            touch_value(v)
        self._outputs = list(values)
        self._out_pos = {}
        for i, v in enumerate(self._outputs):
            v._outputs_of.append(self)
            self._out_pos.setdefault(v, []).append(i)
            touch_value(v)

    def output_slots(self, value: Value) -> list[int]:
        """The output positions holding ``value`` (without scanning the outputs)."""
        return list(self._out_pos.get(value, ()))

    def set_output(self, index: int, value: Value) -> None:
        """Replace one graph output."""
        old = self._outputs[index]
        old._outputs_of.remove(self)
        pos = self._out_pos[old]
        pos.remove(index)
        if not pos:
            del self._out_pos[old]
        self._outputs[index] = value
        value._outputs_of.append(self)
        self._out_pos.setdefault(value, []).append(index)
        touch_value(old)
        touch_value(value)

    @property
    def initializers(self) -> list[Value]:
        """Initializer values, in order."""
        return list(self._inits)

    @property
    def parent(self) -> Optional["Graph"]:
        """The enclosing graph of a subgraph, else None."""
        return self.parent_node.graph if self.parent_node is not None else None

    @property
    def is_function_body(self) -> bool:
        """Function bodies cannot hold initializers; builders emit Constant nodes there."""
        return self.function is not None

    def add_input(self, value: Value) -> Value:
        """Append a graph input."""
        if value.producer is not None:
            raise IRError(f"value {value.name!r} is a node output and cannot be a graph input")
        value._is_input = True
        value.graph = self
        self._inputs.append(value)
        touch_value(value)
        return value

    def remove_input(self, value: Value) -> None:
        """Remove a graph input that nothing reads."""
        if value.has_uses():
            raise IRError(f"graph input {value.name!r} is still used")
        self._inputs.remove(value)
        value._is_input = False
        if value not in self._inits:
            value.graph = None
        touch_value(value)

    def add_initializer(self, value: Value, tensor: Optional[Tensor] = None) -> Value:
        """Register ``value`` as an initializer (``tensor`` sets its data)."""
        if tensor is not None:
            value.const_value = tensor
        if value.const_value is None:
            raise IRError(f"initializer {value.name!r} has no tensor")
        if value.producer is not None:
            raise IRError(f"value {value.name!r} is a node output and cannot be an initializer")
        if value.type is None:
            t = value.const_value
            value.type = TensorType(t.dtype, Shape(t.dims))
        value.graph = self
        self._inits[value] = None
        if self._shared is not None:
            self._share(value)
        touch_value(value)
        return value

    def equal_initializer(self, t: Tensor) -> Optional[Value]:
        """The earliest initializer of this graph holding exactly ``t`` (dtype, dims and bytes)
        when ``t`` is a small constant (at most ``SHARED_BYTES``), None otherwise. Graph inputs
        (overridable defaults) and graph outputs (the model's interface) are never handed out.
        Builders read such an initializer instead of adding a copy: a copy costs a cse merge
        later, and that merge rewires every reader, which every incremental pass then revisits."""
        key = _shared_key(t)
        if key is None:
            return None
        if self._shared is None:
            self._shared = {}
            for v in self._inits:
                self._share(v)
        hit = self._shared.get(key)
        if hit is None:
            return None
        v, held = hit
        if v.const_value is held and v in self._inits and not v._is_input \
                and not v._outputs_of:
            return v
        del self._shared[key]  # removed, overwritten or given a role since it was shared
        return None

    def _share(self, value: Value) -> None:
        t = value.const_value
        key = None if value._is_input else _shared_key(t)
        if key is not None:
            self._shared.setdefault(key, (value, t))

    def remove_initializer(self, value: Value) -> None:
        """Drop an initializer that nothing reads (and that is not also a graph input)."""
        if value.has_uses():
            raise IRError(f"initializer {value.name!r} is still used")
        del self._inits[value]
        value.const_value = None
        if not value._is_input:
            value.graph = None
        touch_value(value)

    def num_initializers(self) -> int:
        """Number of initializers."""
        return len(self._inits)

    def initializer(self, name: str) -> Optional[Value]:
        """Look an initializer up by name (linear; passes hold Values instead)."""
        for v in self._inits:
            if v.name == name:
                return v
        return None

    # -- node mutation --------------------------------------------------------------------------
    def _adopt(self, node: Node) -> None:
        if node.graph is not None:
            raise IRError(f"{node!r} already belongs to a graph")
        node.graph = self
        node._stamp = _tick()
        subs = node.subgraphs()
        if subs:
            _nesting[0] += 1
            for g in subs:
                g.parent_node = node

    def append(self, node: Node) -> Node:
        """Add a node at the end."""
        self._adopt(node)
        self._nodes.append(node)
        return node

    def insert_before(self, anchor: Optional[Node], nodes: Union[Node, Sequence[Node]]) -> None:
        """Insert nodes, in order, right before ``anchor`` (None: at the end)."""
        if anchor is not None and anchor.graph is not self:
            raise IRError(f"{anchor!r} is not in this graph")
        for n in [nodes] if isinstance(nodes, Node) else nodes:
            self._adopt(n)
            self._nodes.insert_before(anchor, n)

    def insert_after(self, anchor: Optional[Node], nodes: Union[Node, Sequence[Node]]) -> None:
        """Insert nodes, in order, right after ``anchor`` (None: at the front)."""
        if anchor is not None and anchor.graph is not self:
            raise IRError(f"{anchor!r} is not in this graph")
        for n in [nodes] if isinstance(nodes, Node) else nodes:
            self._adopt(n)
            self._nodes.insert_after(anchor, n)
            anchor = n

    def erase(self, node: Node) -> None:
        """Remove a node whose outputs nothing uses; its inputs lose the uses."""
        if node.graph is not self:
            raise IRError(f"{node!r} is not in this graph")
        for v in node._outputs:
            if v.has_uses():
                who = "a graph output" if v._outputs_of else repr(next(iter(v._uses))[0])
                raise IRError(f"cannot erase {node!r}: output {v.name!r} is used by {who}")
        self._nodes.unlink(node)
        node.graph = None
        for i, v in enumerate(node._inputs):
            if v is not None:
                del v._uses[(node, i)]
                touch_value(v)
        subs = node.subgraphs()
        if subs:
            _nesting[0] += 1
            for g in subs:
                g._detach_captures()

    def detach(self, node: Node) -> None:
        """Take a node out of the order without touching any use (to move it elsewhere)."""
        if node.graph is not self:
            raise IRError(f"{node!r} is not in this graph")
        self._nodes.unlink(node)
        node.graph = None
        if node.subgraphs():
            _nesting[0] += 1

    def _detach_captures(self) -> None:
        """Drop every use this graph's nodes make, recursively (the graph is going away)."""
        for n in self._nodes:
            for i, v in enumerate(n._inputs):
                if v is not None:
                    v._uses.pop((n, i), None)
                    touch_value(v)
            for g in n.subgraphs():
                g._detach_captures()
        for v in self._outputs:
            v._outputs_of.remove(self)
        self._outputs = []
        self._out_pos = {}

    def _redirect_output(self, old: Value, new: Value) -> None:
        can_rename = (new.producer is not None and new.producer.graph is self
                      and not new._outputs_of)
        if can_rename:
            new.name, old.name = old.name, None
            if new.type is None:  # the output keeps its declared type
                new.type = old.type
            carrier = new
        else:
            carrier = Value(old.name, old.type)
            old.name = None
            ident = Node("", "Identity", [new], outputs=[carrier])
            self.append(ident)
        for i in self.output_slots(old):
            self.set_output(i, carrier)

    # -- walking --------------------------------------------------------------------------------
    def all_nodes(self) -> Iterator[Node]:
        """Every node of this graph and of its subgraphs, depth first, parents first."""
        if not self._nested():
            yield from self._nodes
            return
        for n in self._nodes:
            yield n
            if n.attributes:
                for g in n.subgraphs():
                    yield from g.all_nodes()

    def _nested(self) -> list["Graph"]:
        c = self._subs
        gen = _nesting[0]
        if c is None or c[0] != gen:
            out: list[Graph] = []
            for n in self._nodes:
                if n.attributes:
                    for g in n.subgraphs():
                        out.append(g)
                        out.extend(g._nested())
            self._subs = c = (gen, out)
        return c[1]

    def subgraphs(self) -> Iterator["Graph"]:
        """Every graph nested in this one, recursively (not including this one), parents
        first. The walk is cached until the nesting changes; the iterator is over a snapshot."""
        return iter(list(self._nested()))

    def num_nodes(self, recursive: bool = True) -> int:
        """Node count, with subgraph nodes when ``recursive``."""
        if not recursive:
            return len(self._nodes)
        return len(self._nodes) + sum(len(g._nodes) for g in self._nested())

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self._nodes)} nodes)"


class Function:
    """A model-local function. Its body is a Graph whose inputs/outputs are the formal ones."""

    def __init__(self, domain: str, name: str, graph: Graph, attributes: Sequence[str] = (),
                 attribute_defaults: Sequence[Attr] = (), opset_imports: Optional[dict] = None,
                 overload: str = ""):
        self.domain = std_domain(domain)
        self.name = name
        self.overload = overload
        self.graph = graph
        graph.function = self
        self.attributes = list(attributes)
        self.attribute_defaults = list(attribute_defaults)
        self.opset_imports: dict[str, int] = std_imports(opset_imports or {})
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}

    @property
    def key(self) -> tuple[str, str, str]:
        """``(domain, name, overload)``, how nodes refer to this function."""
        return (self.domain, self.name, self.overload)

    def __repr__(self) -> str:
        return f"Function({self.domain}::{self.name})"


class Model:
    """A model: the main graph, opset imports, functions and metadata."""

    def __init__(self, graph: Graph, ir_version: int = 10,
                 opset_imports: Optional[dict[str, int]] = None):
        self.graph = graph
        self.ir_version = ir_version
        self.opset_imports: dict[str, int] = std_imports(opset_imports or {"": 21})
        self.producer_name = ""
        self.producer_version = ""
        self.domain = ""
        self.model_version = 0
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}
        self.functions: dict[tuple[str, str, str], Function] = {}
        self.base_dir: Optional[str] = None  # folder external data paths are relative to
        self.opaque: dict[str, Any] = {}  # proto fields the IR does not model, written back
        self.meta: dict[str, Any] = {}

    def opset(self, domain: str = "") -> Optional[int]:
        """The imported version of a domain (``""`` and ``ai.onnx`` are one domain)."""
        return self.opset_imports.get(std_domain(domain))

    def graphs(self) -> Iterator[Graph]:
        """The main graph, every subgraph, and every function body (with their subgraphs)."""
        yield self.graph
        yield from self.graph.subgraphs()
        for f in self.functions.values():
            yield f.graph
            yield from f.graph.subgraphs()

    def all_nodes(self) -> Iterator[Node]:
        """Every node in every graph of :meth:`graphs`."""
        for g in self.graphs():
            yield from g.nodes

    def num_nodes(self) -> int:
        """Nodes in the main graph and its subgraphs (not counting function bodies)."""
        return self.graph.num_nodes()

    def __repr__(self) -> str:
        return f"Model(opset={self.opset_imports}, {self.graph!r})"


def changed_since(graph: "Graph", since: int, depth: int) -> dict:
    """Nodes of ``graph`` stamped after ``since``, with everything up to ``depth`` uses
    downstream of them (the roots whose patterns can see a change), each mapped to its distance
    in uses from the nearest stamped node (0 for a stamped one): a pattern that reaches fewer
    nodes upstream than that distance sees no change from its root."""
    frontier = list(graph._nodes.where(since))
    seen = dict.fromkeys(frontier, 0)
    for d in range(1, depth + 1):
        nxt = []
        for n in frontier:
            for v in n._outputs:
                for u, _ in v._uses:
                    if u not in seen and u.graph is graph:
                        seen[u] = d
                        nxt.append(u)
        if not nxt:
            break
        frontier = nxt
    return seen


__all__ = ["Value", "Node", "Attr", "Graph", "Function", "Model", "clock", "touch_value",
           "changed_since", "std_domain", "std_imports"]
