"""Emitting sizes: symbolic dims become small computations on the inputs' runtime shapes.

Every node made here depends only on graph inputs and constants, so all of them go in one block
at the top of the graph (before the first original node), where any later node can use them;
identical sizes and constants are made once. Each op respects the model's opset: ``Shape`` with
``start``/``end`` from opset 15 (``Shape`` + ``Gather`` before), scalars through ``Reshape`` to
``[]`` (no ``Squeeze``, whose axes moved from attribute to input at opset 13).
"""

from __future__ import annotations

import numpy as np

from ...ir import Builder, Graph, Model, Node, SymDim, Value
from .algebra import sp

INT64 = 7


class Unemittable(Exception):
    """A dim whose expression this emitter cannot compute from the inputs' shapes."""


class Emitter:
    """Builds int64 size computations in a block at the top of ``graph``."""

    def __init__(self, model: Model, graph: Graph, sources: dict[str, tuple[Value, int]],
                 anchor: Node | None):
        self.opset = model.opset("") or 21
        self.graph = graph
        self.sources = sources  # symbol name -> (graph input, axis) it is read from
        self.b = Builder(graph, before=anchor, tag="dynamize")
        self._cache: dict = {}
        self._names: set | None = None
        self.created = 0
        self.guards: dict[str, int] = {}  # symbol -> modulus the user promised (--constraint)
        self.bounds: dict[str, int] = {}  # symbol -> bound the user promised (--constraint)

    # -- primitives -------------------------------------------------------------------------
    def op(self, op_type: str, inputs, attrs: dict | None = None) -> Value:
        self.created += 1
        return self.b.op(op_type, list(inputs), attrs or {})

    def const(self, arr) -> Value:
        a = np.asarray(arr)
        key = ("c", a.dtype.str, a.shape, a.tobytes())
        v = self._cache.get(key)
        if v is None:
            v = self.b.const(a)
            self._cache[key] = v
        return v

    def i64(self, values) -> Value:
        return self.const(np.asarray(values, dtype=np.int64))

    def _memo(self, key, make):
        v = self._cache.get(key)
        if v is None:
            v = make()
            self._cache[key] = v
        return v

    # -- sizes --------------------------------------------------------------------------------
    def source(self, name: str) -> Value:
        """int64[1] holding the runtime size a symbol stands for."""
        if name not in self.sources:
            raise Unemittable(f"no input dim is named {name!r}")
        inp, axis = self.sources[name]

        def make():
            v = self._dim_of(inp, axis)
            m = self.guards.get(name)
            if m:
                # A size that breaks the promise must fail, not compute: n flags reshaped to
                # [-1, m] is an error unless m divides n; its row count times m gives n back.
                flags = self.op("ConstantOfShape", [v], {"value": np.zeros(1, np.bool_)})
                rows = self.op("Reshape", [flags, self.i64([-1, m])])
                v = self.op("Mul", [self._dim_of(rows, 0), self.i64([m])])
            top = self.bounds.get(name)
            if top is not None and self.opset >= 11:  # Range
                # Above the bound, positions 0..n-1 index past a table of top entries: an
                # error. The gathered length is n again, which shape inference follows.
                n = self.op("Reshape", [v, self.i64([])])
                idx = self.op("Range", [self.i64(0), n, self.i64(1)])
                rows = self.op("Gather", [self.const(np.zeros(top, np.uint8)), idx])
                v = self._dim_of(rows, 0)
            v.name = self._fresh_name(f"dynamize/{name}")
            return v

        return self._memo(("sym", name), make)

    def _dim_of(self, v: Value, axis: int) -> Value:
        """int64[1]: dim ``axis`` of ``v`` at run time (Shape start/end from opset 15)."""
        if self.opset >= 15:
            return self.op("Shape", [v], {"start": axis, "end": axis + 1})
        sh = self._memo(("shape", id(v)), lambda: self.op("Shape", [v]))
        return self.op("Gather", [sh, self.i64([axis])], {"axis": 0})

    def _fresh_name(self, base: str) -> str:
        """A value name no value of the graph has (the runtime size of a symbol is worth a
        readable name in the repaired model)."""
        if self._names is None:
            self._names = {v.name for v in self.graph.inputs} | \
                {v.name for v in self.graph.initializers} | \
                {o.name for n in self.graph.all_nodes() for o in n.outputs}
        name, k = base, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    def size(self, d) -> Value:
        """int64[1] holding dim ``d`` (an int or a SymDim)."""
        if type(d) is int:
            return self.i64([d])
        if isinstance(d, SymDim) and d.is_symbol and d._expr is None:
            return self.source(d.text)
        e = d.expr if isinstance(d, SymDim) else d
        return self._memo(("expr", str(e)), lambda: self._compile(e))

    def _compile(self, e) -> Value:
        S = sp()
        if e.is_Integer:
            return self.i64([int(e)])
        if e.is_Symbol:
            return self.source(e.name)
        num, den = S.fraction(S.together(e))
        if not den.is_Integer:
            raise Unemittable(f"cannot compute {e} from the input shapes")
        if den != 1:
            return self.op("Div", [self.size(S.expand(num)), self.i64([int(den)])])
        e = num
        if e.is_Add:
            pos, neg = [], []
            for t in e.as_ordered_terms():
                c, rest = t.as_coeff_Mul()
                (neg if c < 0 else pos).append(-t if c < 0 else t)
            if not pos:
                raise Unemittable(f"negative size {e}")
            v = self.size(pos[0])
            for t in pos[1:]:
                v = self.op("Add", [v, self.size(t)])
            for t in neg:
                v = self.op("Sub", [v, self.size(t)])
            return v
        if e.is_Mul:
            c, rest = e.as_coeff_Mul()
            factors = list(rest.as_ordered_factors()) if rest.is_Mul else [rest]
            v = None
            for f in factors:
                fv = self.size(f)
                v = fv if v is None else self.op("Mul", [v, fv])
            if c != 1:
                v = self.op("Mul", [v, self.i64([int(c)])])
            return v
        if e.is_Pow and e.exp.is_Integer and 0 < e.exp <= 8:
            base = self.size(e.base)
            v = base
            for _ in range(int(e.exp) - 1):
                v = self.op("Mul", [v, base])
            return v
        if isinstance(e, (S.Max, S.Min)):  # frame counts of strided convs: Max(0, ...)
            args = [self.size(a) for a in e.args]
            return self.op("Max" if isinstance(e, S.Max) else "Min", args)
        if isinstance(e, S.floor):
            num, den = S.fraction(S.together(e.args[0]))
            if den.is_Integer and den > 0:
                # floor division of a non-negative size: int64 Div truncates, the same thing
                return self.op("Div", [self.size(S.expand(num)), self.i64([int(den)])])
        raise Unemittable(f"cannot compute {e} from the input shapes")

    def vector(self, elems: list) -> Value:
        """int64[len(elems)] of ints and symbolic dims (consecutive ints share one constant)."""
        pieces: list[Value] = []
        run: list[int] = []
        for d in elems:
            if type(d) is int:
                run.append(d)
                continue
            if run:
                pieces.append(self.i64(run))
                run = []
            pieces.append(self.size(d))
        if run:
            pieces.append(self.i64(run))
        if len(pieces) == 1:
            return pieces[0]
        key = ("vec", tuple(id(p) for p in pieces))
        return self._memo(key, lambda: self.op("Concat", pieces, {"axis": 0}))

    def scalar(self, d, dtype: int = INT64) -> Value:
        """A rank-0 tensor holding dim ``d`` in ``dtype``."""
        if type(d) is int:
            from ...ir.types import np_dtype

            return self.const(np.asarray(d, dtype=np_dtype(dtype)))
        v = self._memo(("scalar", str(d)), lambda: self.op("Reshape", [self.size(d),
                                                                       self.i64([])]))
        if dtype != INT64:
            v = self._memo(("cast", id(v), dtype), lambda: self.op("Cast", [v], {"to": dtype}))
        return v


__all__ = ["INT64", "Emitter", "Unemittable"]
