"""Scaled dot-product attention into the opset-23 ``Attention`` op.

Matched: ``Softmax(mask(scale(Q @ Kt)), axis=-1) @ V`` where scale is ``/ c``, ``* c`` or absent,
and mask is ``+ M`` (additive float mask), ``Where(C, -inf, s)`` / ``Where(C, s, -inf)`` (boolean
mask) or absent. Q, Kt and V are all 4-D ([B, H, S, D], heads inferred from the shapes) or all 3-D
(single head: ``q_num_heads = kv_num_heads = 1``), with batch and head dims provably equal (no
broadcasting between them). Recovered: ``scale`` (always written explicitly), the mask (as
``attn_mask``; a boolean one keeps True = attend), and ``is_causal=1`` when the boolean mask is
provably ``tril(ones(Sq, Sk)) == 0``. K is Kt transposed back (a Transpose that the
``transpose_transpose`` rule usually merges into Kt's own).

One documented difference: a row whose every score is masked to -inf is NaN in the decomposed
graph (softmax of all -inf) and 0 in onnxruntime's Attention. Every other row is exact up to
rounding. A recovered causal mask never masks a whole row.

onnxruntime requires the mask's last two dims to be exactly (Sq, Sk), while the spec allows
broadcasting: a mask broadcast along Sq ([B, 1, 1, Sk], the usual padding mask) is expanded to
[.., Sq, Sk] with an Expand whose shape comes from the mask itself when Sq == Sk (so CSE shares it
between layers). A mask that also broadcasts along Sk, or a 3-D pattern with a rank-3 mask, is
left alone.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..rewrite import Const, Match, Op, Opt, Or, Rule, attr_of, const_value, has_ref_attrs
from ._common import BOOL, FLOAT, FLOAT16, scalar

_QK = Op("MatMul", "q", "kt", name="qk")
_SCALED = Or(Op("Div", _QK, Const("sc"), name="scaled"),
             Op("Mul", _QK, Const("sc"), commutative=True, name="scaled"), _QK)
_MASKED = Or(Op("Add", _SCALED, "mask", commutative=True, name="masked"),
             Op("Where", "cond", Const("neg"), _SCALED, name="masked"),
             Op("Where", "cond", _SCALED, Const("neg"), name="masked"), _SCALED)


def _causal(m: Match, cond, sq, sk) -> bool:
    """True when ``cond`` is provably ``tril(ones(sq, sk)) == 0`` (True strictly above the
    diagonal), possibly through a Cast to bool. Read-only."""
    n = cond.producer
    if n is not None and n.op_type == "Cast" and not has_ref_attrs(n) and n.attr("to") == BOOL:
        n = n.inputs[0].producer
    if n is None or n.op_type != "Equal":
        return False
    a, z = n.inputs
    if scalar(const_value(z)) != 0:
        a, z = z, a
    t = a.producer if scalar(const_value(z)) == 0 else None
    if t is None or t.op_type != "Trilu" or has_ref_attrs(t) \
            or int(attr_of(t, "upper", m.opset) or 0) != 0:
        return False
    if len(t.inputs) > 1 and t.inputs[1] is not None and scalar(const_value(t.inputs[1])) != 0:
        return False
    ones = t.inputs[0]
    c = const_value(ones)
    if c is not None:
        dims = list(c.shape) if c.ndim == 2 and np.all(c != 0) else None
    elif ones.producer is not None and ones.producer.op_type == "ConstantOfShape" \
            and not has_ref_attrs(ones.producer):
        val = ones.producer.attr("value")
        fill = None if val is None else scalar(val.numpy())
        dims = m.shapes.sym_value(ones.producer.inputs[0]) if fill else None
    else:
        return False
    return dims is not None and len(dims) == 2 and m.shapes.dims_equal(dims[0], sq) \
        and m.shapes.dims_equal(dims[1], sk)


class Attention(Rule):
    # long: one rule for every mask form (none, causal, additive, bool, negated bool), each a short
    #   method (dims, mask_plan, plan, expand) over one pattern's names
    """Softmax(Q @ Kt * scale [+ mask], axis=-1) @ V -> Attention (opset 23)."""

    name = "attention"
    summary = "scaled dot-product attention (Q@Kt, scale, mask, Softmax, @V) into Attention"
    opset = 23
    benefit = 10
    pattern = Op("MatMul", Op("Softmax", _MASKED, name="sm"), "v", name="out")

    def dims(self, m: Match):
        """(rank, Sq, Sk) or a reason."""
        shapes = [m.shape(k) for k in ("q", "kt", "v")]
        if any(s is None for s in shapes):
            return "ranks of Q, Kt or V unknown"
        r = len(shapes[0])
        if r not in (3, 4) or any(len(s) != r for s in shapes):
            return "Q, Kt and V are not all 3-D or all 4-D"
        q, kt, v = shapes
        for i in range(r - 2):
            if not (m.shapes.dims_equal(q[i], kt[i]) and m.shapes.dims_equal(q[i], v[i])):
                return f"dim {i} of Q, Kt and V is not provably equal (broadcasting)"
        return r, q[-2], kt[-1]

    def mask_plan(self, m: Match, r: int, sq, sk):
        """('none'|'causal'|'add'|'bool'|'notbool', expand) or a reason."""
        if m.get("mask") is not None:
            kind, val = "add", m["mask"]
            if m.dtype("mask") != m.dtype("q"):
                return "additive mask has another element type"
        elif m.get("cond") is not None:
            neg = scalar(m.const("neg"))
            if neg is None or neg != -math.inf or m.const("neg").ndim > r:
                return "Where does not select -inf"
            if m.dtype("cond") != BOOL:
                return "Where condition is not bool"
            scores = m.get("scaled") or m["qk"]
            masked_if_true = m.node("masked").inputs[2] is scores
            if masked_if_true and _causal(m, m["cond"], sq, sk):
                return "causal", False
            kind, val = ("notbool" if masked_if_true else "bool"), m["cond"]
        else:
            return "none", False
        ms = m.shape(val)
        if ms is None or not 2 <= len(ms) <= (r if r == 4 else 2):
            return f"mask rank {None if ms is None else len(ms)} unsupported"
        scores = list(m.shape("q")[:-1]) + [sk]
        for d, s in zip(reversed(ms), reversed(scores)):
            if not (d == 1 or m.shapes.dims_equal(d, s)):
                return f"mask dim {d} is neither 1 nor provably {s} (it would broadcast)"
        if not m.shapes.dims_equal(ms[-1], sk):
            return "mask broadcasts along the key axis"
        return kind, not m.shapes.dims_equal(ms[-2], sq)

    def plan(self, m: Match):
        if m.dtype("q") not in (FLOAT, FLOAT16):
            return "Q is not float or float16"
        d = self.dims(m)
        if isinstance(d, str):
            return d
        r, sq, sk = d
        if 0 in (sq, sk, m.shape("q")[-1]):  # empty: onnxruntime refuses the fused op
            return "a sequence length or the head size is 0"
        axis = int(m.attr("sm", "axis"))
        if axis not in (-1, r - 1):
            return f"Softmax axis {axis} is not the last"
        scale = 1.0
        if m.get("sc") is not None:
            c = scalar(m.const("sc"))
            if c is None or not math.isfinite(c) or c == 0 or m.const("sc").ndim > r:
                return "scale is not a finite non-zero scalar"
            scale = 1.0 / c if m.node("scaled").op_type == "Div" else c
        mask = self.mask_plan(m, r, sq, sk)
        if isinstance(mask, str):
            return mask
        return r, sq, sk, scale, mask

    def check(self, m: Match) -> Optional[str]:
        p = self.plan(m)
        return p if isinstance(p, str) else None

    def rewrite(self, m: Match, b):
        r, sq, sk, scale, (kind, expand) = self.plan(m)
        perm = [0, 1, 3, 2] if r == 4 else [0, 2, 1]
        k = b.op("Transpose", [m["kt"]], {"perm": perm})
        attrs = {"scale": float(np.float32(scale))}
        if r == 3:
            attrs.update(q_num_heads=1, kv_num_heads=1)
        ins = [m["q"], k, m["v"]]
        if kind == "causal":
            attrs["is_causal"] = 1
        elif kind != "none":
            mask = m["mask"] if kind == "add" else m["cond"]
            if kind == "notbool":
                mask = b.op("Not", [mask])
            if expand:
                mask = self.expand(m, b, mask, sq, sk, r)
            ins.append(mask)
        return b.op("Attention", ins, attrs)

    def expand(self, m: Match, b, mask, sq, sk, r: int):
        """Expand a mask broadcast along Sq to [.., Sq, Sk] (onnxruntime needs it explicit)."""
        rank = len(m.shape(m["mask"] if m.get("mask") is not None else m["cond"]))
        head = b.const(np.ones(rank - 2, np.int64))
        tail = b.const(np.ones(1, np.int64))
        if type(sq) is int:
            rows = b.const(np.array([sq], np.int64))
        elif m.shapes.dims_equal(sq, sk):
            rows = b.op("Shape", [mask], {"start": -1})
        else:
            rows = b.op("Shape", [m["q"]], {"start": r - 2, "end": r - 1})
        shape = b.op("Concat", [head, rows, tail], {"axis": 0})
        return b.op("Expand", [mask, shape])


def _split(x: str, shape: str, t: str) -> Op:
    """Transpose(Reshape(x, shape), perm) (the head split of a [B, S, H*D] projection)."""
    return Op("Transpose", Op("Reshape", x, shape, name=t + "_r"), name=t)


class AttentionHeads(Rule):
    # long: head split and merge on Q, K, V and the output are one rewrite; the docstring states the
    #   layouts it proves
    """Head split and merge folded into Attention's 3-D form: Reshape([B, S, H*D] -> [B, S, H,
    D]) + Transpose(0, 2, 1, 3) on Q, K and V, and Transpose(0, 2, 1, 3) + Reshape back to
    [B, S, H*Dv] on the output, become ``q_num_heads=H, kv_num_heads=Hk`` on an Attention that
    reads and writes [B, S, hidden] directly. The mask and every other attribute are kept (the
    mask is broadcast to [B, H, Sq, Sk] in both forms)."""

    name = "attention_heads"
    summary = "fold the Reshape/Transpose head split and merge around Attention into its 3-D form"
    opset = 23
    benefit = 10
    pattern = Op("Reshape", Op("Transpose", Op("Attention", _split("q3", "qs", "tq"),
                                               _split("k3", "ks", "tk"), _split("v3", "vs", "tv"),
                                               Opt("mask"), name="att"), name="to"),
                 "os", name="out")

    def heads(self, m: Match, t: str, x: str):
        """H when t is Transpose(0,2,1,3) of x reshaped [B, S, E] -> [B, S, H, D], else None."""
        if tuple(m.attr(t, "perm") or ()) != (0, 2, 1, 3):
            return None
        src, dst = m.shape(x), m.shape(t + "_r")
        if src is None or dst is None or len(src) != 3 or len(dst) != 4:
            return None
        if not all(m.shapes.dims_equal(src[i], dst[i]) for i in (0, 1)):
            return None
        return dst[2] if type(dst[2]) is int else None

    def check(self, m: Match) -> Optional[str]:
        att = m.node("att")
        if len(att.outputs) > 1 and any(o.has_uses() for o in att.outputs[1:]):
            return "Attention's cache outputs are used"
        hq, hk, hv = (self.heads(m, t, x) for t, x in (("tq", "q3"), ("tk", "k3"), ("tv", "v3")))
        if None in (hq, hk, hv) or hk != hv:
            return "Q, K or V is not a [B, S, H*D] -> [B, H, S, D] head split"
        if tuple(m.attr("to", "perm") or ()) != (0, 2, 1, 3):
            return "output is not transposed back to [B, S, H, D]"
        y, out = m.shape("to"), m.shape("out")
        if y is None or out is None or len(y) != 4 or len(out) != 3:
            return "output is not merged back to [B, S, H*D]"
        if not all(m.shapes.dims_equal(y[i], out[i]) for i in (0, 1)):
            return "output reshape does not keep [B, S]"
        return None

    def rewrite(self, m: Match, b):
        att = m.node("att")
        hq, hk = self.heads(m, "tq", "q3"), self.heads(m, "tk", "k3")
        ins = [m["q3"], m["k3"], m["v3"]] + ([m["mask"]] if m.get("mask") is not None else [])
        attrs = {k: a for k, a in att.attributes.items()}
        attrs.update(q_num_heads=int(hq), kv_num_heads=int(hk))
        return b.op("Attention", ins, attrs, name=att.name)


RULES = [Attention(), AttentionHeads()]

__all__ = ["RULES", "Attention", "AttentionHeads"]
