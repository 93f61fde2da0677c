"""Element types an older version of an op lacks: the op runs on a wider type that holds every
value exactly, between Casts. Which types a version takes is read from its schema's type
constraints; nothing is listed per op except which ops may also run integers as floats.

Why the result is exact: integer ops computed on a wider integer and cast back wrap the way the
narrow op does (two's complement, onnxruntime's Cast truncates); float16/bfloat16 computed in
float32 and rounded back round once more, which is exact for +, -, *, /, sqrt (float32 has
more than twice their precision plus two bits) and as good as the op for the rest. Integers may
run as floats only through ops that never compute a new value from several (order and
selection: Relu, Max, comparisons...), since a float sum may round where the integer wraps.
"""

from __future__ import annotations

from ...ir import Builder
from ..rewrite import Match
from .common import TAG, ConversionRule
from .versions import allows, bad_types, form_problem, schema

# element type -> the types that hold all its values exactly, narrowest first.
WIDER: dict[int, tuple[int, ...]] = {
    10: (1, 11), 16: (1, 11), 1: (11,),                    # float16, bfloat16, float
    3: (5, 6, 7), 5: (6, 7), 6: (7,),                      # int8, int16, int32
    2: (4, 5, 12, 6, 13, 7), 4: (12, 6, 13, 7), 12: (13, 7),  # uint8, uint16, uint32
}
AS_FLOAT: dict[int, tuple[int, ...]] = {
    3: (1, 11), 5: (1, 11), 2: (1, 11), 4: (1, 11), 6: (11,), 12: (11,), 9: (2, 6, 1),
}
SELECTING = frozenset({
    "Relu", "Max", "Min", "Abs", "Sign", "Clip", "ReduceMax", "ReduceMin", "ArgMax", "ArgMin",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Where", "TopK", "MaxPool",
})
_TYPE_ATTRS = ("to", "dtype", "output_dtype", "value", "stash_type")


class CastTypes(ConversionRule):
    # long: Casts on the way in and out of an op on a widened type: refuse and rewrite each walk
    #   inputs and outputs
    """An op the target has, on an element type the target's version lacks: Casts around it."""

    name = "cast_types"
    summary = "an op on a type its older version lacks -> the op on a wider type, Casts around"
    ops = ()
    benefit = 0

    def __init__(self, source: int, target: int):
        from .forms import Restate

        type(self).ops = Restate(source, target).ops
        super().__init__(source, target)

    def check(self, m: Match) -> str | None:
        if m.root.meta.get("tag") == TAG + self.name:
            return "made by this rule"
        return self.refuse(m)

    def refuse(self, m: Match) -> str | None:
        node, s = m.root, schema(m.root.op_type, self.target)
        if s is None or (not str(node.meta.get("tag", "")).startswith(TAG)
                         and form_problem(node, self.target, self.source) is not None):
            return "does not fit the target otherwise"
        if any(k in node.attributes for k in _TYPE_ATTRS) or any(
                a.type in (5, 10) for a in node.attributes.values()):
            return "an attribute holds a type, a tensor or a subgraph"
        bad = bad_types(node, s, m.dtype)
        if not bad:
            return "the target takes these types"
        if widening(m.root.op_type, s, bad) is None:
            return f"no exact wider type for {sorted(bad.items())}"
        return None

    def rewrite(self, m: Match, b: Builder):
        node, s = m.root, schema(m.root.op_type, self.target)
        plan = widening(node.op_type, s, bad_types(node, s, m.dtype))
        ins = []
        for v in node.inputs:
            dt = m.dtype(v) if v is not None else None
            ins.append(b.op("Cast", [v], {"to": plan[dt]}) if dt in plan else v)
        attrs = {k: a.value for k, a in node.attributes.items()}
        outs = b.op(node.op_type, ins, attrs, num_outputs=len(node.outputs))
        outs = (outs,) if len(node.outputs) == 1 else outs
        back = []
        for old, new in zip(node.outputs, outs):
            dt = m.dtype(old)
            back.append(b.op("Cast", [new], {"to": dt}) if dt in plan else new)
        return back[0] if len(back) == 1 else tuple(back)


def widening(op: str, s, bad: dict) -> dict[int, int] | None:
    """Narrow type -> the wide type it runs as in schema ``s`` (None when one has none)."""
    out = {}
    for param, dts in bad.items():
        for dt in dts:
            cands = WIDER.get(dt, ()) + (AS_FLOAT.get(dt, ()) if op in SELECTING else ())
            wide = next((w for w in cands if allows(s, param, w)), None)
            if wide is None:
                return None
            out[dt] = wide
    return out


RULES = (CastTypes,)

__all__ = ["RULES", "WIDER", "CastTypes"]
