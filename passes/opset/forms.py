"""Down-conversion rules for ops whose attributes changed form or meaning: Constant's scalar
and list attributes (12), ConstantOfShape values of newer types (20+), Softmax & co's axis
(one axis since 13, a 2-D coercion before), Dropout (an identity at inference in every version)
and the attributes a newer version added that hold their default (dropped)."""

from __future__ import annotations

import numpy as np

from ...ir import Builder, Tensor, Value
from ..rewrite import Match
from .common import ConversionRule, norm_axes
from .versions import (
    NEGATIVE_AXES_AT,
    allows,
    form_problem,
    is_default,
    negative_axes,
    schema,
    since,
)

_WIDE_FLOAT = {10: 1, 16: 1}  # float16, bfloat16 -> float (every value exact)


class ConstantForm(ConversionRule):
    """Constant{value_float(s)/value_int(s)/value_string(s)} -> Constant{value} (below 12)."""

    name = "constant_value"
    summary = "Constant with a scalar or list attribute -> Constant{value=tensor}"
    ops = ("Constant",)

    def refuse(self, m: Match) -> str | None:
        attrs = m.root.attributes
        if "value" in attrs or "sparse_value" in attrs:
            return "already a tensor value"
        if any(a.ref_attr_name for a in attrs.values()):
            return "the value refers to a function attribute"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        (key, a), = m.root.attributes.items()
        kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                 "value_ints": np.int64, "value_string": object, "value_strings": object}
        data = np.array(a.value, dtype=kinds[key])
        return b.op("Constant", [], {"value": Tensor.from_numpy(data)})


class ConstantInitializer(ConversionRule):
    """A Constant whose element type its version at the target lacks (int64 before 9,
    bfloat16 before 13...) -> an initializer, which every opset takes (not in a function body,
    which has none)."""

    name = "constant_initializer"
    summary = "Constant of a type the target's Constant lacks -> an initializer"
    ops = ("Constant",)
    benefit = 2

    def refuse(self, m: Match) -> str | None:
        a = m.root.attributes.get("value")
        s = schema("Constant", self.target)
        if a is None or a.ref_attr_name or s is None:
            return "not a tensor value (another rule) or no Constant at the target"
        if allows(s, "T", a.value.dtype):
            return "the target's Constant takes this type"
        if m.graph.is_function_body:
            return "a function body has no initializers"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        return b.const(m.root.attributes["value"].value)


class ConstantOfShapeType(ConversionRule):
    """ConstantOfShape of a type the target lacks (bfloat16...) -> float filled, then Cast."""

    name = "constant_of_shape_type"
    summary = "ConstantOfShape{value: bfloat16/float16} -> ConstantOfShape float + Cast"
    ops = ("ConstantOfShape",)

    def refuse(self, m: Match) -> str | None:
        a = m.root.attributes.get("value")
        s = schema("ConstantOfShape", self.target)
        if a is None or a.ref_attr_name or s is None:
            return "no value attribute (float zeros) or no ConstantOfShape at the target"
        dt = a.value.dtype
        if allows(s, "T2", dt):
            return "the target has this type"
        if dt not in _WIDE_FLOAT or not allows(schema("Cast", self.target), "T2", dt):
            return "no exact wider type to fill with and cast back from"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        t = m.root.attributes["value"].value
        wide = Tensor.from_numpy(t.numpy().astype(np.float32))
        filled = b.op("ConstantOfShape", [m["i0"]], {"value": wide})
        return b.op("Cast", [filled], {"to": t.dtype})


class SoftmaxAxis(ConversionRule):
    """Softmax/LogSoftmax/Hardmax over one axis (13) -> the 2-D coerced form: over the last
    axis they agree; another axis is moved last and back with Transposes."""

    name = "softmax_axis"
    summary = "Softmax & co (one axis) -> the same over the last axis, transposed around"
    ops = ("Softmax", "LogSoftmax", "Hardmax")
    until = (13, "the same meaning at the target")

    def refuse(self, m: Match) -> str | None:
        if not m.rank("i0"):
            return "the rank is unknown (or 0)"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        op, r = m.root.op_type, m.rank("i0")
        axis = norm_axes([int(self.attr(m, "axis"))], r)[0]
        if axis == r - 1:
            return b.op(op, [m["i0"]], {"axis": r - 1})
        perm = list(range(r))
        perm[axis], perm[-1] = perm[-1], perm[axis]  # a swap is its own inverse
        t = b.op("Transpose", [m["i0"]], {"perm": perm})
        return b.op("Transpose", [b.op(op, [t], {"axis": r - 1})], {"perm": perm})


class DropoutIdentity(ConversionRule):
    """Dropout at inference (no training_mode, mask unread) -> Identity: every version agrees."""

    name = "dropout_identity"
    summary = "Dropout (inference, mask unused) -> Identity"
    ops = ("Dropout",)

    def refuse(self, m: Match) -> str | None:
        if len(m.root.outputs) > 1 and m.root.outputs[1].has_uses():
            return "the mask output is read"
        if m.get("i2") is not None and (m.const("i2") is None or bool(m.const("i2"))):
            return "training_mode may be on"
        return None

    def rewrite(self, m: Match, b: Builder) -> Value:
        ident = b.op("Identity", [m["i0"]])
        return (ident,) + tuple(None for _ in m.root.outputs[1:]) if len(m.root.outputs) > 1 \
            else ident


class Restate(ConversionRule):
    # long: dropping default attributes and making axes non-negative are one restatement of a node;
    #   the ops list is built once in __init__
    """A node that fits the target but for attributes the target lacks that hold their default
    (allowzero=0, select_last_index=0, reduction='none'...) or, below opset 11, negative axes:
    the same op without them, axes made non-negative."""

    name = "restate"
    summary = "drop newer attributes at their default; non-negative axes below opset 11"
    ops = ()  # every op: set in __init__
    benefit = 0

    def __init__(self, source: int, target: int):
        from onnx import defs

        type(self).ops = tuple(sorted({s.name for s in defs.get_all_schemas_with_history()
                                       if s.domain in ("", "ai.onnx")}))
        super().__init__(source, target)

    def refuse(self, m: Match) -> str | None:
        node, s = m.root, schema(m.root.op_type, self.target)
        if s is None or form_problem(node, self.target, self.source, axes=False) is not None:
            return "does not fit the target otherwise"
        if any(a.type == 5 or a.type == 10 for a in node.attributes.values()):
            return "holds subgraphs"
        extra = [k for k in node.attributes if k not in s.attributes]
        if not extra and not self.negatives(m):
            return "nothing to restate"
        if self.negatives(m) and m.rank(node.outputs[0] if node.op_type == "Unsqueeze"
                                        else "i0") is None:
            return "negative axes with an unknown rank"
        return None

    def negatives(self, m: Match) -> bool:
        return self.target < NEGATIVE_AXES_AT <= (since(m.root.op_type, self.source) or 0) \
            and negative_axes(m.root)

    def rewrite(self, m: Match, b: Builder):
        node, s = m.root, schema(m.root.op_type, self.target)
        attrs = {k: a.value for k, a in node.attributes.items()
                 if k in s.attributes or not is_default(node, k, self.source)}
        if self.negatives(m):
            r = m.rank(node.outputs[0] if node.op_type == "Unsqueeze" else "i0")
            for key in ("axis", "axes"):
                if key in attrs:
                    one = not isinstance(attrs[key], (list, tuple))
                    fixed = norm_axes([attrs[key]] if one else attrs[key], r)
                    attrs[key] = fixed[0] if one else fixed
        outs = b.op(node.op_type, list(node.inputs), attrs, num_outputs=len(node.outputs))
        return outs


RULES = (ConstantForm, ConstantInitializer, ConstantOfShapeType, SoftmaxAxis, DropoutIdentity, Restate)

__all__ = ["RULES"] + [r.__name__ for r in RULES]
