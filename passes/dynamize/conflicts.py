"""Where the freed sizes meet a baked one: per-node conflicts after shape inference.

With the freed input dims symbolic, inference propagates them until they meet a dim the
exporter baked in: ``Add`` of ``[batch, seq, 32]`` and a position table ``[3, 7, 32]``, a ``Reshape``
of ``[batch, seq, 32]`` to ``[3, 7, 2, 16]``, an ``Expand`` of a zero state ``[1, 3, 16]`` to
``[1, batch, 16]``. Each such meeting is a conflict: a static dim of one input that must equal
a symbolic one (a :class:`DimConflict`, traced back to its constant by
:mod:`.provenance`), an element of a node's own shape input (:class:`VecConflict`), or a
Reshape whose target does not conserve the element count (:class:`ReshapeConflict`). Reshape
targets are solved group by group: the data dims and target elements whose trace-size products
match form a group, and within a group element-count conservation plus the trace sizes decide
which element carries which symbol (``[3, 7, 2, 16]`` on ``[batch, seq, 32]`` groups as
``batch | seq | 32 = 2*16``, so the 16 stays 16 even when seq's trace size is 16). Where the
counts leave a choice (a static size equal to a product of traced ones), the order of the data's
own factors decides (:mod:`.factors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...ir import Node, TensorType, Value
from ..shapes.infer import best_type
from .algebra import Algebra, fmt_dims, is_int

BROADCAST_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Where", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "And", "Or", "Xor", "Max", "Min", "Sum", "Mean", "PRelu", "BitShift",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor",
})
RNN_OPS = frozenset({"LSTM", "GRU", "RNN"})
HANDLED = BROADCAST_OPS | RNN_OPS | {"MatMul", "Gemm", "Concat", "Expand", "Reshape", "Resize"}


def shape(v: Value | None) -> list | None:
    """The inferred shape of ``v`` (the analysis' fact; the declared type without one)."""
    if v is None:
        return None
    t = best_type(v)
    return list(t.shape) if isinstance(t, TensorType) and t.shape is not None else None


def dtype(v: Value | None) -> int | None:
    """The inferred element type of ``v`` (the analysis' fact, else the declared one)."""
    t = best_type(v) if v is not None else None
    return (t.dtype or None) if isinstance(t, TensorType) else None


def symval(v: Value | None) -> list | None:
    if v is None:
        return None
    sv = v.meta.get("symval")
    return list(sv) if sv is not None else None


def label(node: Node) -> str:
    return f"{node.op_type} {node.name!r}" if node.name else f"an unnamed {node.op_type}"


@dataclass
class DimConflict:
    """Dim ``axis`` of ``value`` (read by ``use``) is ``static`` but must be ``want``."""

    node: Node
    value: Value
    use: tuple
    axis: int
    static: int
    want: object
    why: str


@dataclass
class VecConflict:
    """Element ``elem`` of ``node``'s input ``index`` (a shape vector) must be ``want``."""

    node: Node
    index: int
    elem: int
    want: object
    why: str


@dataclass
class ReshapeConflict:
    """A Reshape whose target elements must change (``target``: elem -> dim), or whose data dims
    are static where the target is symbolic (``data``: list of DimConflict)."""

    node: Node
    target: dict = field(default_factory=dict)
    data: list = field(default_factory=list)
    ambiguous: list = field(default_factory=list)


@dataclass
class Unhandled:
    node: Node
    why: str


def _pick(alg: Algebra, syms: list, static: int):
    for s in syms:
        if alg.evaluate(s) == static:
            return s
    return syms[0]


def _broadcast(node: Node, ins: list, alg: Algebra, why: str) -> list:
    shapes = [(i, v, shape(v)) for i, v in ins]
    if any(s is None for _, _, s in shapes) or not shapes:
        return []
    r = max(len(s) for _, _, s in shapes)
    out = []
    for k in range(r):
        entries = []
        for i, v, s in shapes:
            a = k - (r - len(s))
            if a >= 0:
                entries.append((i, v, a, s[a]))
        syms = [alg.freed_dim(d) for *_, d in entries]
        syms = [d for d in syms if d is not None]
        if not syms:
            continue
        for i, v, a, d in entries:
            if is_int(d) and d != 1:
                want = _pick(alg, syms, d)
                out.append(DimConflict(node, v, (node, i), a, d, want, f"{why} with {want}"))
    return out


def _pair(node: Node, a: tuple, b: tuple, alg: Algebra, why: str) -> list:
    """Two dims that must be equal: (input index, value, axis) each."""
    out = []
    (ia, va, xa), (ib, vb, xb) = a, b
    da, db = shape(va)[xa], shape(vb)[xb]
    for (i, v, x, d), other in (((ia, va, xa, da), db), ((ib, vb, xb, db), da)):
        other = alg.freed_dim(other)
        if is_int(d) and other is not None:
            out.append(DimConflict(node, v, (node, i), x, d, other, f"{why} with {other}"))
    return out


def _matmul(node: Node, alg: Algebra) -> list:
    a, b = node.inputs[0], node.inputs[1]
    sa, sb = shape(a), shape(b)
    if sa is None or sb is None or len(sa) < 2 or len(sb) < 2:
        return []
    out = _pair(node, (0, a, len(sa) - 1), (1, b, len(sb) - 2), alg, "MatMul inner dim")
    ba, bb = sa[:-2], sb[:-2]
    r = max(len(ba), len(bb))
    for k in range(r):
        ka, kb = k - (r - len(ba)), k - (r - len(bb))
        if ka >= 0 and kb >= 0 and ba[ka] != 1 and bb[kb] != 1:
            out += _pair(node, (0, a, ka), (1, b, kb), alg, "MatMul batch dim")
    return out


def _gemm(node: Node, alg: Algebra) -> list:
    a, b = node.inputs[0], node.inputs[1]
    sa, sb = shape(a), shape(b)
    if sa is None or sb is None or len(sa) != 2 or len(sb) != 2:
        return []
    ka = 0 if node.attr("transA", 0) else 1
    kb = 1 if node.attr("transB", 0) else 0
    return _pair(node, (0, a, ka), (1, b, kb), alg, "Gemm inner dim")


def _conv_pads(node: Node):
    """``(input, pads)`` of a Conv: its input before a constant-mode Pad that feeds it (the
    tracer's explicit ``F.pad``), and the spatial pads of both together (begins then ends)."""
    n = len(node.attr("strides", None) or [])
    pads = list(node.attr("pads", None) or [0] * 2 * n)
    x, p = node.inputs[0], node.inputs[0].producer
    if p is not None and p.op_type == "Pad" and p.attr("mode", "constant") in (
            "constant", b"constant") and len(p.inputs) > 1 and p.inputs[1] is not None:
        from .provenance import const_array

        arr = const_array(p.inputs[1])
        pv = symval(p.inputs[1]) if arr is None else [int(v) for v in arr.reshape(-1)]
        r = len(pv or []) // 2
        if pv and all(is_int(v) for v in pv) and r == n + 2 and len(p.inputs) < 4:
            pads = [a + b for a, b in zip(pads, pv[2:r] + pv[r + 2:])]
            x = p.inputs[0]
    return x, pads


def _asymmetric_strides(node: Node, k: int) -> int:
    """The stride of ``node`` on spatial axis ``k`` when it is a Conv with asymmetric pads
    there, else 1."""
    strides = node.attr("strides", None)
    if node.op_type != "Conv" or not strides or k >= len(strides):
        return 1
    pads, n = _conv_pads(node)[1], len(strides)
    return strides[k] if len(pads) == 2 * n and pads[k] != pads[k + n] else 1


def _whole_chain(node: Node, k: int, d, alg: Algebra) -> str | None:
    """One constraint for every strided Conv with asymmetric pads (a backbone's downsampling
    stages), so the user does not discover them one at a time: the product of their strides,
    when the trace size of each freed symbol of ``d`` is a multiple of it."""
    m = 1
    for n in node.graph.nodes:
        m *= _asymmetric_strides(n, k)
    syms = sorted(alg.symbols_of(d) & alg.freed)
    if m <= 1 or not syms or any(alg.binding[s] % m for s in syms):
        return None
    return "' --constraint '".join(f"{s}%{m}==0" for s in syms)


def _conv(node: Node, alg: Algebra) -> list:
    """Asymmetric pads on a strided axis (``[0, 0, 1, 1]`` at stride 2) are TF-style "same"
    padding computed for the trace size, or a fixed ``F.pad``: the file cannot tell which, and
    the two differ when the input size is not a multiple of the stride (TF pads ``1, 1`` at an
    odd size). They agree at every multiple, so the repair holds only under that constraint."""
    from .constraints import suggest_modulus

    strides = node.attr("strides", None)
    if not strides or node.attr("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        return []
    x, pads = _conv_pads(node)
    sx = shape(x)
    if sx is None or len(sx) != len(strides) + 2 or len(pads) != 2 * len(strides):
        return []
    n = len(strides)
    for k, s in enumerate(strides):
        d = sx[2 + k]
        if s <= 1 or pads[k] == pads[k + n] or alg.freed_dim(d) is None:
            continue
        q = alg.dim(alg.expr(d) / s)
        if alg.integral(alg.expr(q)):
            continue
        every = [_whole_chain(node, j, sx[2 + j], alg) for j in range(n)
                 if _asymmetric_strides(node, j) > 1 and alg.freed_dim(sx[2 + j]) is not None]
        hint = "' --constraint '".join(h for h in every if h) if all(every) else None
        hint = hint or suggest_modulus(alg, q)
        hint = f" (it is with --constraint '{hint}')" if hint else ""
        return [Unhandled(node, f"asymmetric pads {list(pads)} on a stride-{s} axis (TF-style "
                                f"'same' padding baked at the trace size, or a fixed pad: the "
                                f"file cannot tell which) are right only when {alg.fmt(d)} is a "
                                f"multiple of {s}{hint}")]
    return []


def _concat(node: Node, alg: Algebra) -> list:
    ins = [(i, v) for i, v in enumerate(node.inputs) if v is not None]
    shapes = [shape(v) for _, v in ins]
    if any(s is None for s in shapes) or not shapes:
        return []
    r = len(shapes[0])
    if any(len(s) != r for s in shapes):
        return []
    axis = node.attr("axis", 0)
    axis = axis + r if axis < 0 else axis
    out = []
    for k in range(r):
        if k == axis:
            continue
        syms = [alg.freed_dim(s[k]) for s in shapes]
        syms = [d for d in syms if d is not None]
        if not syms:
            continue
        for (i, v), s in zip(ins, shapes):
            if is_int(s[k]):
                want = _pick(alg, syms, s[k])
                out.append(DimConflict(node, v, (node, i), k, s[k], want,
                                       f"Concat with {want}"))
    return out


def _expand(node: Node, alg: Algebra) -> list:
    x = node.inputs[0]
    s, tv = shape(x), symval(node.inputs[1])
    if s is None or tv is None:
        return []
    r = max(len(s), len(tv))
    out: list = []
    for k in range(r):
        a, e = k - (r - len(s)), k - (r - len(tv))
        xd = s[a] if a >= 0 else 1
        td = tv[e] if e >= 0 else 1
        if xd is None or td is None:
            continue
        fx, ft = alg.freed_dim(xd), alg.freed_dim(td)
        if is_int(td) and td != 1 and fx is not None:
            out.append(VecConflict(node, 1, e, fx, f"Expand of a {fx} dim"))
        if is_int(xd) and xd != 1 and ft is not None:
            out.append(DimConflict(node, x, (node, 0), a, xd, ft, f"Expand to {ft}"))
    return out


def _resize(node: Node, alg: Algebra) -> list:
    """A Resize to baked ``sizes`` keeps its input's batch and channels (dims 0 and 1, where
    the sizes equal the input's at the trace): those elements follow the input. Its spatial
    sizes are left to the conflicts downstream (a U-Net's upsampling meets its skip) and to
    :func:`.reach.baked_resizes`."""
    if len(node.inputs) < 4 or node.inputs[3] is None or node.attr("axes", None) is not None:
        return []
    sx, sizes = shape(node.inputs[0]), symval(node.inputs[3])
    if sx is None or sizes is None or len(sx) != len(sizes):
        return []
    out: list = []
    for a in range(min(2, len(sx))):
        d = alg.freed_dim(sx[a])
        if d is not None and is_int(sizes[a]) and sizes[a] == alg.evaluate(d):
            out.append(VecConflict(node, 3, a, d, f"Resize keeps dim {a} ({d})"))
    return out


def _rnn(node: Node, alg: Algebra) -> list:
    x = node.inputs[0]
    sx = shape(x)
    if sx is None or len(sx) != 3:
        return []
    layout = node.attr("layout", 0)
    bx = 0 if layout else 1
    bh = 0 if layout else 1
    out = []
    for idx in (5, 6):
        if idx < len(node.inputs) and node.inputs[idx] is not None:
            h = node.inputs[idx]
            sh = shape(h)
            if sh is not None and len(sh) == 3:
                out += _pair(node, (0, x, bx), (idx, h, bh), alg, f"{node.op_type} batch")
    return out


def group_by_trace(dt: list, tt: list) -> list | None:
    """Pair runs of data dims with runs of target elements whose trace products are equal."""
    if 0 in dt or 0 in tt:
        return None
    pd = pt = 1
    for d in dt:
        pd *= d
    for t in tt:
        pt *= t
    if pd != pt:
        return None
    groups = []
    i = j = 0
    while i < len(dt) or j < len(tt):
        gd, gt = [], []
        p, q = 1, 1
        if i < len(dt):
            gd.append(i)
            p = dt[i]
            i += 1
        if j < len(tt):
            gt.append(j)
            q = tt[j]
            j += 1
        while p != q:
            if p < q and i < len(dt):
                gd.append(i)
                p *= dt[i]
                i += 1
            elif q < p and j < len(tt):
                gt.append(j)
                q *= tt[j]
                j += 1
            else:
                return None
        groups.append((gd, gt))
    return groups


def analyse_reshape(node: Node, alg: Algebra):
    """None when the Reshape is consistent, else a ReshapeConflict or Unhandled."""
    data = node.inputs[0]
    dshape = shape(data)
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        tv = symval(node.inputs[1])
    else:
        tv = list(node.attr("shape", ())) or None
    if dshape is None or tv is None or None in dshape or None in tv:
        return None
    if not any(alg.has_freed(d) for d in dshape) and not any(alg.has_freed(t) for t in tv):
        return None
    resolved = _reshape_target(tv, dshape, node.attr("allowzero", 0))
    if resolved is None:
        return None
    target, minus = resolved
    dt = [alg.evaluate(d) for d in dshape]
    tt = _trace_target(node, alg, dshape, tv, dt, target, minus)
    if isinstance(tt, Unhandled):
        return tt
    groups = group_by_trace(dt, tt)
    if groups is None:
        if minus is None and alg.eq(alg.prod(dshape), alg.prod(target)):
            return None
        return Unhandled(node, f"Reshape of {fmt_dims(dshape)} to {fmt_dims(tv)}: no grouping "
                               "of dims matches at the trace size")
    conflict = ReshapeConflict(node)
    for gd, gt in groups:
        args = (node, alg, conflict, dshape, tv, dt, tt, target, minus, gd, gt)
        bad = _minus_group(*args) if minus in gt else _plain_group(*args)
        if bad is not None:
            return bad
    if not conflict.target and not conflict.data:
        return None
    return conflict


def _reshape_target(tv: list, dshape: list, allowzero) -> Optional[tuple[list, Optional[int]]]:
    """The target dims with 0 (copy the data dim) resolved and -1 as None, and the position of
    the -1; None when the shape is malformed (the runtime would refuse it)."""
    target: list = []
    minus = None
    for i, t in enumerate(tv):
        if is_int(t) and t == 0 and not allowzero:
            if i >= len(dshape):
                return None
            target.append(dshape[i])
        elif is_int(t) and t == -1:
            if minus is not None:
                return None
            minus = i
            target.append(None)
        else:
            target.append(t)
    return target, minus


def _trace_target(node: Node, alg: Algebra, dshape, tv, dt, target, minus):
    """The target's sizes at the trace binding (the -1 computed), or Unhandled."""
    tt = [alg.evaluate(t) if t is not None else None for t in target]
    if None in dt or any(t is None for k, t in enumerate(tt) if k != minus):
        return Unhandled(node, f"Reshape of {fmt_dims(dshape)} to {fmt_dims(tv)}: sizes not "
                               "known at the trace binding")
    if minus is not None:
        rest = 1
        for k, t in enumerate(tt):
            if k != minus:
                rest *= t
        total = 1
        for d in dt:
            total *= d
        if rest == 0 or total % rest:
            return Unhandled(node, f"Reshape of {fmt_dims(dshape)} to {fmt_dims(tv)} does not "
                                   "fit at the trace size")
        tt[minus] = total // rest
    return tt


def _minus_group(node, alg, conflict, dshape, tv, dt, tt, target, minus, gd, gt):
    """A group of dims holding the -1: the data product must divide by the other targets.
    None when the group is fine (conflicts recorded), else Unhandled."""
    pdim = alg.prod(dshape[i] for i in gd)
    others = [target[j] for j in gt if j != minus]
    q = alg.expr(pdim) / alg.expr(alg.prod(others))
    if alg.integral(q):
        return None
    if alg.has_freed(pdim) and not any(alg.has_freed(t) for t in others):
        sp_ = _split_data(node, alg, pdim, gd, [tt[j] for j in gt])
        if sp_ is None:
            return Unhandled(node, f"cannot split {pdim} over {fmt_dims(tv)}")
        for j, e in zip(gt, sp_[0]):
            if j != minus and not alg.eq(e, target[j]):
                conflict.target[j] = e
        return None
    return Unhandled(node, f"Reshape of {fmt_dims(dshape)} to {fmt_dims(tv)}: "
                           f"{pdim} does not divide into {fmt_dims(others)}")


def _split_data(node, alg, pdim, gd: list, traces: list):
    """``pdim`` (the product of the Reshape's data dims ``gd``) split over target elements of
    trace sizes ``traces``: in the order of the data's own factors where the dataflow gives
    them (:mod:`.factors`), else by the counts (:meth:`Algebra.split`)."""
    from .factors import ordered_elems

    elems = ordered_elems(alg, node.inputs[0], gd, traces)
    if elems is not None and alg.eq(alg.prod(elems), pdim):
        return elems, False
    return alg.split(pdim, traces)


def _plain_group(node, alg, conflict, dshape, tv, dt, tt, target, minus, gd, gt):
    """A group of dims without -1: equal products, or the freed side split over the other.
    None when the group is fine (conflicts recorded), else Unhandled."""
    pdim = alg.prod(dshape[i] for i in gd)
    ptgt = alg.prod(target[j] for j in gt)
    if alg.eq(pdim, ptgt):
        return None
    fd, ft = alg.has_freed(pdim), alg.has_freed(ptgt)
    if fd and not ft:
        sp_ = _split_data(node, alg, pdim, gd, [tt[j] for j in gt])
        if sp_ is None:
            return Unhandled(node, f"cannot split {pdim} over target elements "
                                   f"{[tt[j] for j in gt]}")
        elems, amb = sp_
        for j, e in zip(gt, elems):
            if not alg.eq(e, target[j]):
                conflict.target[j] = e
        if amb:
            conflict.ambiguous.append((pdim, [tt[j] for j in gt], elems))
    elif ft and not fd:
        sp_ = alg.split(ptgt, [dt[i] for i in gd])
        if sp_ is None:
            return Unhandled(node, f"cannot split {ptgt} over data dims {[dt[i] for i in gd]}")
        for i, e in zip(gd, sp_[0]):
            if not alg.eq(e, dshape[i]) and is_int(dshape[i]):
                conflict.data.append(DimConflict(node, node.inputs[0], (node, 0), i, dshape[i],
                                                 e, f"Reshape to {fmt_dims(tv)}"))
    else:
        from .constraints import suggest_equal

        hint = suggest_equal(alg, pdim, ptgt)
        hint = f" (equal with --constraint '{hint}')" if hint else ""
        return Unhandled(node, f"Reshape of {fmt_dims(dshape)} to {fmt_dims(tv)}: "
                               f"{pdim} != {ptgt}{hint}")
    return None


def node_conflicts(node: Node, alg: Algebra, constraints: list) -> list:
    """The conflicts at one node."""
    op = node.op_type
    if node.domain != "":
        op = ""
    if op in BROADCAST_OPS:
        ins = [(i, v) for i, v in enumerate(node.inputs) if v is not None]
        if op == "PRelu":
            ins = ins[:2]
        return _broadcast(node, ins, alg, op)
    if op == "MatMul":
        return _matmul(node, alg)
    if op == "Gemm":
        return _gemm(node, alg)
    if op == "Concat":
        return _concat(node, alg)
    if op == "Conv":
        out = _conv(node, alg)
        if out:
            return out
    if op == "Expand":
        return _expand(node, alg)
    if op in RNN_OPS:
        return _rnn(node, alg)
    if op == "Resize":
        out = _resize(node, alg)
        if out:
            return out
    if op == "Reshape":
        r = analyse_reshape(node, alg)
        return [r] if r is not None else []
    if op == "Gather":
        from .indexing import gather_canvas_conflicts

        out = gather_canvas_conflicts(node, alg)
        if out:
            return out
    if op in ("GatherElements", "ScatterND", "ScatterElements"):
        from .indexing import gather_elements_conflicts, scatter_conflicts

        out = (gather_elements_conflicts if op == "GatherElements" else scatter_conflicts)(
            node, alg)
        if out:
            return out
    out = []
    for c in constraints:
        sides = (c.lhs, c.rhs)
        if any(alg.has_freed(s) for s in sides if s is not None and not is_int(s)) and \
                any(is_int(s) and s != 1 for s in sides):
            out.append(Unhandled(node, f"shapes require {c}"))
            break
    return out


__all__ = [
    "HANDLED",
    "DimConflict",
    "ReshapeConflict",
    "Unhandled",
    "VecConflict",
    "analyse_reshape",
    "group_by_trace",
    "label",
    "node_conflicts",
    "dtype",
    "shape",
    "symval",
]
