"""What the graph says about its inputs: index ranges, compared constants, symbolic dims."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .common import _CONST_LIMIT, _STRING


def _all_graphs(g):
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.HasField("g"):
                yield from _all_graphs(a.g)
            for sg in a.graphs:
                yield from _all_graphs(sg)


def _dims_of(type_proto) -> Optional[list]:
    """Dims of a tensor type: int, symbol string, or None (unknown); None for unknown rank."""
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None
    out: list = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param and d.dim_param != "?":
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


_PASS_VALUES = {  # op -> input positions whose values flow unchanged (as a set) to the outputs
    "Identity": (0,), "Cast": (0,), "CastLike": (0,), "Reshape": (0,), "Unsqueeze": (0,),
    "Squeeze": (0,), "Flatten": (0,), "Expand": (0,), "Transpose": (0,), "Tile": (0,),
    "Slice": (0,), "Split": (0,), "Gather": (0,), "GatherElements": (0,), "Where": (1, 2),
    "Concat": None,  # every input
}
_BACK_VALUES = ("Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand")
_COMPARE = ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")


@dataclass
class _Hints:
    index_hi: list = field(default_factory=list)   # exclusive upper bounds: int or symbol
    compared: list = field(default_factory=list)   # arrays of constants the input is compared to


class _GraphFacts:
    """Consumers, producers, constants and shapes by value name, over all (sub)graphs."""

    def __init__(self, graph, infer: Optional[Callable[[], Any]] = None):
        """``infer``: returns the graph with inferred types (or None when inference fails),
        called the first time a value's shape is asked that no constant gives: most models'
        inputs reach no op whose hint needs one."""
        from onnx import helper, numpy_helper

        self.consumers: dict = defaultdict(list)
        self.producer: dict = {}
        self.const: dict = {}
        self._shape: dict = {}  # name -> dims, read from the types below when first asked
        self._types: Optional[dict] = None  # name -> its declared types, in order
        self._graph, self._infer = graph, infer
        self._decoded: dict = {}
        for g in _all_graphs(graph):
            for t in g.initializer:
                self.const[t.name] = t
                self._shape[t.name] = [int(d) for d in t.dims]
            for n in g.node:
                for i, x in enumerate(n.input):
                    if x:
                        self.consumers[x].append((n, i))
                for o in n.output:
                    if o:
                        self.producer[o] = n
                if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output:
                    value = self._constant_attr(n, helper, numpy_helper)
                    if value is not None:
                        self.const[n.output[0]] = value
                        self._shape[n.output[0]] = list(np.shape(value) if isinstance(
                            value, np.ndarray) else value.dims)

    @staticmethod
    def _constant_attr(n, helper, numpy_helper):
        for a in n.attribute:
            if a.name == "value":
                return a.t
            if a.name == "value_int":
                return np.array(a.i, np.int64)
            if a.name == "value_ints":
                return np.array(list(a.ints), np.int64)
            if a.name == "value_float":
                return np.array(a.f, np.float32)
            if a.name == "value_floats":
                return np.array(list(a.floats), np.float32)
        return None

    def _decode(self, name: str) -> Optional[np.ndarray]:
        if name in self._decoded:
            return self._decoded[name]
        from onnx import TensorProto, numpy_helper

        value = self.const[name]
        out = None
        if isinstance(value, np.ndarray):
            out = value
        elif (value.data_location != TensorProto.EXTERNAL and value.data_type != _STRING
              and math.prod(value.dims) <= _CONST_LIMIT):
            try:
                out = np.asarray(numpy_helper.to_array(value))
            except Exception:  # noqa: BLE001 - an odd encoding only costs us a hint
                out = None
        self._decoded[name] = out
        return out

    def const_value(self, name: str, depth: int = 0) -> Optional[np.ndarray]:
        """The values of ``name`` when it is a (small) constant, seen through reshapes/casts."""
        if name in self.const:
            return self._decode(name)
        n = self.producer.get(name)
        if n is None or depth > 8 or n.domain not in ("", "ai.onnx"):
            return None
        if n.op_type in _BACK_VALUES:
            return self.const_value(n.input[0], depth + 1)
        if n.op_type == "Range" and len(n.input) == 3:
            parts = [self.const_value(x, depth + 1) for x in n.input]
            if all(p is not None and p.size == 1 for p in parts):
                start, limit, delta = (p.ravel()[0].item() for p in parts)
                if delta and abs((limit - start) / delta) <= _CONST_LIMIT:
                    return np.arange(start, limit, delta)
        if n.op_type == "ConstantOfShape":
            for a in n.attribute:
                if a.name == "value":
                    from onnx import numpy_helper

                    return np.asarray(numpy_helper.to_array(a.t)).ravel()
            return np.zeros(1, np.float32)
        return None

    def shape(self, name: str) -> Optional[list]:
        """The dims of ``name``: a constant's, else the first declared type that has a shape
        (decoded only when asked: a large graph has a type per value, and few are asked)."""
        if name not in self._shape:
            types = self._declared_types().get(name, ())
            self._shape[name] = next((d for d in map(_dims_of, types) if d is not None), None)
        return self._shape[name]

    def _declared_types(self) -> dict:
        if self._types is None:
            graph = self._infer() if self._infer is not None else None
            if graph is None:
                graph = self._graph
            self._types = defaultdict(list)
            for g in _all_graphs(graph):
                for vi in (*g.input, *g.output, *g.value_info):
                    self._types[vi.name].append(vi.type)
        return self._types

    def dim(self, name: str, axis: int):
        """Static (int) or symbolic (str) size of ``name`` along ``axis``; None when unknown."""
        shape = self.shape(name)
        if shape is None:
            return None
        if axis < 0:
            axis += len(shape)
        if not 0 <= axis < len(shape):
            return None
        d = shape[axis]
        if isinstance(d, int) and d <= 0:
            return None
        return d

    def hints(self, name: str) -> _Hints:
        """Follow ``name`` forward through value-preserving ops to the ops that constrain it."""
        h = _Hints()
        seen: set = set()
        stack = [name]
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            for n, i in self.consumers.get(v, ()):
                if n.domain not in ("", "ai.onnx"):
                    continue
                op = n.op_type
                attrs = {a.name: a for a in n.attribute}
                axis = attrs["axis"].i if "axis" in attrs else 0
                if op in ("Gather", "GatherElements", "ScatterElements", "Scatter") and i == 1:
                    d = self.dim(n.input[0], axis)
                    if d is not None:
                        h.index_hi.append(d)
                elif op in ("GatherND", "ScatterND") and i == 1:
                    b = attrs["batch_dims"].i if "batch_dims" in attrs else 0
                    data = self.shape(n.input[0])
                    k = self.dim(v, -1)
                    if data is not None:
                        stop = b + k if isinstance(k, int) else len(data)
                        h.index_hi.extend(d for d in data[b:stop]
                                          if d is not None and not (isinstance(d, int) and d <= 0))
                elif op == "OneHot" and i == 0 and len(n.input) > 1:
                    depth = self.const_value(n.input[1])
                    if depth is not None and depth.size == 1 and int(depth.ravel()[0]) > 0:
                        h.index_hi.append(int(depth.ravel()[0]))
                elif op in _COMPARE and len(n.input) == 2:
                    values = self.const_value(n.input[1 - i])
                    if values is not None and values.size:
                        h.compared.append(values.ravel())
                elif op in _PASS_VALUES:
                    pos = _PASS_VALUES[op]
                    if pos is None or i in pos:
                        stack.extend(o for o in n.output if o)
        return h
