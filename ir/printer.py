"""Print a model or graph in ONNX's textual syntax (what ``onnx.parser`` reads).

The output is deterministic: original names are kept (quoted when they are not plain
identifiers), anonymous values are numbered in order of definition, attributes are sorted and
typed, symbolic dims are quoted (``float["2*seq"]`` parses back), and shapes of intermediate values
go into the value-info list. Initializers up to ``max_inline`` elements are printed with their
data; bigger ones are printed as a declaration, with a sha256 digest comment in the body.
"""

from __future__ import annotations

import re
from typing import Optional

import numpy as np

from .core import (
    A_FLOAT, A_FLOATS, A_GRAPH, A_GRAPHS, A_INT, A_INTS, A_STRING, A_STRINGS, A_TENSOR,
    A_TENSORS, Attr, Function, Graph, Model, Node, Value,
)
from .escape import escape
from .shape import SymDim
from .tensor import Tensor
from .types import MapType, OptionalType, SequenceType, SparseTensorType, TensorType, dtype_name

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ATTR_TYPES = {A_FLOAT: "float", A_INT: "int", A_STRING: "string", A_TENSOR: "tensor",
               A_GRAPH: "graph", A_FLOATS: "floats", A_INTS: "ints", A_STRINGS: "strings"}


def _quote(s) -> str:
    if isinstance(s, bytes):
        s = s.decode("utf-8", "backslashreplace")
    # Control and bidi characters become visible escapes (the parser reads them as text).
    return '"' + escape(s.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _float(x, kind=np.float32) -> str:
    """Shortest text that reads back to the same value of ``kind``."""
    return repr(float(x)) if kind is np.float64 else str(kind(x))


class _Names:
    """Printable names: originals when set, ``_0``, ``_1``... for anonymous values."""

    def __init__(self):
        self.map: dict[int, str] = {}
        self.n = 0

    def __call__(self, v: Optional[Value]) -> str:
        if v is None:
            return ""
        key = id(v)
        name = self.map.get(key)
        if name is None:
            if v.name:
                name = v.name
            elif v.name == "":
                name = ""
            else:
                name = f"_{self.n}"
                self.n += 1
            self.map[key] = name
        return name if _PLAIN.match(name) or name == "" else _quote(name)


def _dim(d) -> str:
    if d is None:
        return "?"
    if isinstance(d, SymDim):
        return d.text if _PLAIN.match(d.text) else _quote(d.text)
    return str(d)


def format_type(t) -> str:
    """A type in textual syntax: ``float[N,"2*seq"]``, ``seq(int64[3])``..."""
    if isinstance(t, (TensorType, SparseTensorType)):
        base = dtype_name(t.dtype) if t.dtype else "float"
        if t.shape is None:
            return base
        return base + "[" + ",".join(_dim(d) for d in t.shape) + "]"
    if isinstance(t, SequenceType):
        return f"seq({format_type(t.elem)})"
    if isinstance(t, OptionalType):
        return f"optional({format_type(t.elem)})"
    if isinstance(t, MapType):
        return f"map({dtype_name(t.key)}, {format_type(t.value)})"
    return "float"


def _tensor_data(t: Tensor) -> str:
    arr = t.numpy().reshape(-1)
    if t.dtype == 8:
        items = [_quote(x) for x in arr.tolist()]
    elif arr.dtype.kind == "f" or t.dtype in (1, 10, 11, 16):
        kind = {10: np.float16, 11: np.float64}.get(t.dtype, np.float32)
        items = [_float(x, kind) for x in arr.astype(np.float64)]
    elif arr.dtype.kind == "b":
        items = [str(int(x)) for x in arr]
    else:
        items = [str(int(x)) for x in arr]
    return "{" + ", ".join(items) + "}"


def _literal_type(t: Tensor) -> str:
    """The type written before a tensor's data. A scalar has no brackets: onnx's parser reads
    ``float[]`` before data as a missing shape."""
    shape = "[" + ",".join(str(d) for d in t.dims) + "]" if t.dims else ""
    return f"{dtype_name(t.dtype)}{shape}"

class Printer:
    """Writes models, graphs and functions as text. ``max_inline``: initializer data limit."""

    def __init__(self, max_inline: int = 16, indent: str = "   "):
        self.max_inline = max_inline
        self.ind = indent
        self.names = _Names()

    def tensor_literal(self, t: Tensor) -> str:
        return f"{_literal_type(t)} {_tensor_data(t)}"

    def elided(self, a: Attr) -> bool:
        """A tensor attribute printed without its data (over ``max_inline`` elements)."""
        return a.type == A_TENSOR and not a.ref_attr_name and a.value.size > self.max_inline

    def attr(self, a: Attr, depth: int) -> str:
        v = a.value if not a.ref_attr_name else None
        tname = _ATTR_TYPES.get(a.type, "")
        name = escape(a.name)  # names the textual syntax cannot quote: escaped, never raw
        if a.ref_attr_name:
            return f"{name}: {tname} = @{escape(a.ref_attr_name)}"
        if a.type == A_FLOAT:
            body = _float(v)
        elif a.type == A_INT:
            body = str(v)
        elif a.type == A_STRING:
            body = _quote(v)
        elif a.type == A_FLOATS:
            body = "[" + ", ".join(_float(x) for x in v) + "]"
        elif a.type == A_INTS:
            body = "[" + ", ".join(str(x) for x in v) + "]"
        elif a.type == A_STRINGS:
            body = "[" + ", ".join(_quote(x) for x in v) + "]"
        elif a.type == A_TENSOR:
            body = f"{dtype_name(v.dtype)}[{','.join(map(str, v.dims))}] {{}}" \
                if self.elided(a) else self.tensor_literal(v)
        elif a.type == A_GRAPH:
            body = self.graph(v, depth + 1, nested=True)
        elif a.type == A_GRAPHS:
            body = "[" + ", ".join(self.graph(g, depth + 1, nested=True) for g in v) + "]"
        else:
            return f"{name} = <opaque attribute type {a.type}>"
        return f"{name}: {tname} = {body}"

    def node(self, n: Node, depth: int) -> str:
        outs = ", ".join(self.names(v) for v in n.outputs)
        op = f"{n.domain}.{n.op_type}" if n.domain else n.op_type
        op = escape(op)
        attrs = ""
        if n.attributes:
            attrs = " <" + ", ".join(self.attr(n.attributes[k], depth)
                                     for k in sorted(n.attributes)) + ">"
        ins = ", ".join(self.names(v) for v in n.inputs)
        # An elided tensor's digest goes after the node: a comment inside <...> would hide the
        # rest of the line, and the text would no longer parse.
        elided = [f"{escape(k)} sha256:{a.value.digest()}"
                  for k, a in sorted(n.attributes.items()) if self.elided(a)]
        note = f"  # {', '.join(elided)}" if elided else ""
        return f"{outs} = {op}{attrs} ({ins}){note}"

    def graph(self, g: Graph, depth: int = 0, nested: bool = False) -> str:
        pad = self.ind * depth
        for v in list(g.inputs) + list(g.initializers):
            self.names(v)
        sig_in = ", ".join(f"{format_type(v.type)} {self.names(v)}" for v in g.inputs)
        body: list[str] = []
        decls: list[str] = []
        inputs = set(map(id, g.inputs))
        for v in g.initializers:
            t = v.const_value
            if id(v) in inputs:
                continue
            if t.size <= self.max_inline and not t.is_external:
                decls.append(f"{_literal_type(t)} {self.names(v)} = {_tensor_data(t)}")
            else:
                decls.append(f"{format_type(v.type)} {self.names(v)}")
                body.append(f"{pad}{self.ind}# {self.names(v)}: initializer "
                            f"{dtype_name(t.dtype)}{list(t.dims)} sha256:{t.digest()}")
        for n in g.nodes:
            body.append(pad + self.ind + self.node(n, depth + 1))
        outs = set(map(id, g.outputs))
        for n in g.nodes:
            for v in n.outputs:
                if v.type is not None and v.name != "" and id(v) not in outs:
                    decls.append(f"{format_type(v.type)} {self.names(v)}")
        sig_out = ", ".join(f"{format_type(v.type)} {self.names(v)}" for v in g.outputs)
        name = g.name if _PLAIN.match(g.name or "") else ("g" if not g.name else _quote(g.name))
        head = f"{name} ({sig_in}) => ({sig_out})"
        if decls:
            head += "\n" + pad + self.ind + "<" + ", ".join(decls) + ">"
        return head + (" {\n" if not decls else "\n" + pad + "{\n") + "\n".join(body) + \
            ("\n" if body else "") + pad + "}"

    def function(self, f: Function) -> str:
        imports = ", ".join(f'{_quote(d)} : {v}' for d, v in sorted(f.opset_imports.items()))
        head = f'<\n{self.ind}domain: {_quote(f.domain)},\n{self.ind}opset_import: [{imports}]\n>\n'
        attrs = f" <{escape(', '.join(f.attributes))}>" if f.attributes else ""
        ins = ", ".join(self.names(v) for v in f.graph.inputs)
        body = "\n".join(self.ind + self.node(n, 1) for n in f.graph.nodes)
        outs = ", ".join(self.names(v) for v in f.graph.outputs)
        return f"{head}{escape(f.name)}{attrs} ({ins}) => ({outs}) {{\n{body}\n}}"

    def model(self, m: Model) -> str:
        fields = [f"ir_version: {m.ir_version}"]
        imports = ", ".join(f"{_quote(d)} : {v}" for d, v in sorted(m.opset_imports.items()))
        fields.append(f"opset_import: [{imports}]")
        if m.producer_name:
            fields.append(f"producer_name: {_quote(m.producer_name)}")
        if m.producer_version:
            fields.append(f"producer_version: {_quote(m.producer_version)}")
        if m.domain:
            fields.append(f"domain: {_quote(m.domain)}")
        if m.model_version:
            fields.append(f"model_version: {m.model_version}")
        head = "<\n" + ",\n".join(self.ind + f for f in fields) + "\n>\n"
        parts = [head + self.graph(m.graph)]
        for f in m.functions.values():
            parts.append(self.function(f))
        return "\n".join(parts) + "\n"


def print_model(model: Model, max_inline: int = 16) -> str:
    """The model as ONNX textual syntax (deterministic; see the module docstring)."""
    return Printer(max_inline).model(model)


def print_graph(graph: Graph, max_inline: int = 16) -> str:
    """One graph as ONNX textual syntax."""
    return Printer(max_inline).graph(graph) + "\n"


__all__ = ["print_model", "print_graph", "format_type", "Printer"]
