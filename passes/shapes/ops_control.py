"""Control flow (If, Loop, Scan, SequenceMap), sequences and optionals.

Bodies are inferred in place with input types derived from the node. If: a known condition picks
its branch; otherwise both are inferred and dims on which the branches disagree become a fresh
``if_<node>`` symbol (ranks that disagree: unknown rank). Loop: loop-carried dims that change
between iterations are generalized (unknown) and the body is inferred once more; the trip count
is M when the loop has no condition, else a fresh ``loop_<node>`` symbol.
"""

from __future__ import annotations

from ...ir import OptionalType, SequenceType, Shape, TensorType
from . import dims as D
from .common import norm_axis
from .context import BOOL, INT64, NodeCtx, obj_array
from .infer import join_types
from .table import shape_fn


def _seq_items(n: NodeCtx, i: int) -> list | None:
    v = n.input(i)
    return None if v is None else n.inf.seq_items_of(v)


def _set_seq(n: NodeCtx, i: int, elem, items: list | None) -> None:
    n.set_type(i, SequenceType(elem))
    if items is not None and i < n.n_out:
        n.inf.set_seq_items(n.node.outputs[i], items)


def _join_fresh(n: NodeCtx, a, b, kind: str):
    """Join two types; dims that differ become one fresh symbol per axis."""
    if a is None or b is None:
        return None
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        dt = a.dtype if a.dtype == b.dtype else (a.dtype or b.dtype)
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorType(dt, None)
        out = []
        for x, y in zip(a.shape, b.shape):
            if D.eq(x, y):
                out.append(x)
            elif x is None or y is None:
                out.append(None)
            else:
                out.append(n.fresh(kind))
        return TensorType(dt, Shape(out))
    return join_types(a, b)


@shape_fn("", "If")
def _if(n: NodeCtx) -> None:
    cond = n.scalar(0)
    inf = n.inf
    then_g, else_g = n.attr("then_branch"), n.attr("else_branch")
    known = cond is not None and not isinstance(cond, D.SymDim)
    root = inf.root
    for g, runs in ((then_g, known and bool(cond)), (else_g, known and not cond)):
        # Contradictions in a branch that may not run are warnings, not errors.
        root.speculative += 0 if runs else 1
        try:
            res = inf.subgraph(g, [], None, n.opsets, n.fattrs)
        finally:
            root.speculative -= 0 if runs else 1
        if g is then_g:
            tt = res
        else:
            et = res
    for i in range(n.n_out):
        tv = inf.vals_of(then_g.outputs[i]) if i < len(then_g.outputs) else None
        ev = inf.vals_of(else_g.outputs[i]) if i < len(else_g.outputs) else None
        a = tt[i] if i < len(tt) else None
        b = et[i] if i < len(et) else None
        if cond is True or (cond is not None and not isinstance(cond, D.SymDim) and cond):
            t, vals = a, tv
        elif cond is not None and not isinstance(cond, D.SymDim):
            t, vals = b, ev
        else:
            t = _join_fresh(n, a, b, "if")
            vals = tv if (tv is not None and ev is not None and tv.shape == ev.shape and all(
                x == y and x is not None for x, y in zip(tv.flat, ev.flat))) else None
        if isinstance(t, TensorType):
            n.set(i, t.dtype, t.shape, vals)
        elif t is not None:
            n.set_type(i, t)


def _generalize(a, b):
    """Type of a loop-carried value across iterations: dims that change become unknown."""
    if a is None or b is None:
        return a if b is None else None
    if isinstance(a, TensorType) and isinstance(b, TensorType):
        if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
            return TensorType(a.dtype or b.dtype, None)
        return TensorType(a.dtype or b.dtype, Shape(
            [x if D.eq(x, y) else None for x, y in zip(a.shape, b.shape)]))
    return join_types(a, b)


@shape_fn("", "Loop")
def _loop(n: NodeCtx) -> None:
    inf = n.inf
    body = n.attr("body")
    ncarried = n.n_in - 2
    carried = [n.type(2 + i) for i in range(ncarried)]
    in_types = [TensorType(INT64, Shape([])), TensorType(BOOL, Shape([]))] + carried
    outs = inf.subgraph(body, in_types, None, n.opsets, n.fattrs)
    new = [_generalize(carried[i], outs[1 + i] if 1 + i < len(outs) else None)
           for i in range(ncarried)]
    if new != carried:
        in_types = in_types[:2] + new
        outs = inf.subgraph(body, in_types, None, n.opsets, n.fattrs)
        new = [_generalize(new[i], outs[1 + i] if 1 + i < len(outs) else None)
               for i in range(ncarried)]
    for i in range(ncarried):
        t = new[i]
        if isinstance(t, TensorType):
            n.set(i, t.dtype, t.shape)
        elif t is not None:
            n.set_type(i, t)
    trip = None
    m = n.scalar(0) if n.has(0) else None
    if not n.has(1) and m is not None:
        trip = m if isinstance(m, D.SymDim) else max(int(m), 0)  # a for loop: M iterations
    elif n.n_out > ncarried:
        trip = n.fresh("loop")
    for k in range(ncarried, n.n_out):
        t = outs[1 + k] if 1 + k < len(outs) else None
        if isinstance(t, TensorType):
            n.set(k, t.dtype, None if t.shape is None else [trip] + list(t.shape))


@shape_fn("", "Scan")
def _scan(n: NodeCtx) -> None:
    inf = n.inf
    body = n.attr("body")
    m = n.attr("num_scan_inputs")
    if n.opset < 9:
        _scan8(n, body, m)
        return
    nstate = n.n_in - m
    in_axes = list(n.attr("scan_input_axes", None) or [0] * m)
    seq = None
    elems = []
    for j in range(m):
        s = n.shape(nstate + j)
        dt = n.dtype(nstate + j)
        if s is None:
            elems.append(TensorType(dt, None))
            continue
        a = norm_axis(in_axes[j], len(s))
        seq = n.require_equal(seq, s[a], "Scan sequence lengths") if seq is not None else s[a]
        elems.append(TensorType(dt, Shape([d for i, d in enumerate(s) if i != a])))
    states = [n.type(i) for i in range(nstate)]
    outs = inf.subgraph(body, states + elems, None, n.opsets, n.fattrs)
    new = [_generalize(states[i], outs[i] if i < len(outs) else None) for i in range(nstate)]
    if new != states:
        outs = inf.subgraph(body, new + elems, None, n.opsets, n.fattrs)
    for i in range(nstate):
        t = new[i]
        if isinstance(t, TensorType):
            n.set(i, t.dtype, t.shape)
    k = n.n_out - nstate
    out_axes = list(n.attr("scan_output_axes", None) or [0] * k)
    for j in range(k):
        t = outs[nstate + j] if nstate + j < len(outs) else None
        if not isinstance(t, TensorType):
            continue
        if t.shape is None:
            n.set(nstate + j, t.dtype, None)
            continue
        r = len(t.shape) + 1
        a = norm_axis(out_axes[j], r)
        shape = list(t.shape)
        shape.insert(a, seq)
        n.set(nstate + j, t.dtype, shape)


def _scan8(n: NodeCtx, body, m: int) -> None:
    inf = n.inf
    nstate = n.n_in - 1 - m
    batch = seq = None
    elems = []
    for j in range(m):
        s = n.shape(1 + nstate + j)
        dt = n.dtype(1 + nstate + j)
        if s is None or len(s) < 2:
            elems.append(TensorType(dt, None))
            continue
        batch, seq = s[0], s[1]
        elems.append(TensorType(dt, Shape(list(s[2:]))))
    states = []
    for i in range(nstate):
        t = n.type(1 + i)
        if isinstance(t, TensorType) and t.shape is not None:
            batch = t.shape[0] if batch is None else batch
            states.append(TensorType(t.dtype, Shape(list(t.shape[1:]))))
        else:
            states.append(t)
    outs = inf.subgraph(body, states + elems, None, n.opsets, n.fattrs)
    for i in range(n.n_out):
        t = outs[i] if i < len(outs) else None
        if not isinstance(t, TensorType) or t.shape is None:
            continue
        if i < nstate:
            n.set(i, t.dtype, [batch] + list(t.shape))
        else:
            n.set(i, t.dtype, [batch, seq] + list(t.shape))


@shape_fn("", "SequenceMap")
def _sequence_map(n: NodeCtx) -> None:
    inf = n.inf
    body = n.attr("body")
    items = _seq_items(n, 0)
    in_types = []
    for i in range(n.n_in):
        t = n.type(i)
        in_types.append(t.elem if isinstance(t, SequenceType) else t)
    if items is not None:
        # Infer per element, joining the results.
        joined = None
        per = []
        for k in range(len(items)):
            ts = list(in_types)
            for i in range(n.n_in):
                it = _seq_items(n, i)
                if it is not None and k < len(it):
                    ts[i] = it[k]
            outs = inf.subgraph(body, ts, None, n.opsets, n.fattrs)
            per.append(outs)
            joined = outs if joined is None else [join_types(a, b) for a, b in zip(joined, outs)]
        for j in range(n.n_out):
            _set_seq(n, j, joined[j] if joined else None,
                     [p[j] for p in per] if per else [])
        return
    outs = inf.subgraph(body, in_types, None, n.opsets, n.fattrs)
    for j in range(n.n_out):
        n.set_type(j, SequenceType(outs[j] if j < len(outs) else None))


# -- sequences ------------------------------------------------------------------------------------


@shape_fn("", "SequenceEmpty")
def _seq_empty(n: NodeCtx) -> None:
    _set_seq(n, 0, TensorType(n.attr("dtype", 1), None), [])


@shape_fn("", "SequenceConstruct")
def _seq_construct(n: NodeCtx) -> None:
    items = [n.type(i) for i in range(n.n_in)]
    elem = items[0] if items else None
    for t in items[1:]:
        elem = join_types(elem, t)
    _set_seq(n, 0, elem, items)


def _joined(items: list, fallback):
    if not items:
        return fallback
    elem = items[0]
    for t in items[1:]:
        elem = join_types(elem, t)
    return elem


@shape_fn("", "SequenceInsert")
def _seq_insert(n: NodeCtx) -> None:
    st = n.type(0)
    t = n.type(1)
    items = _seq_items(n, 0)
    if items is not None:
        pos = n.scalar(2) if n.has(2) else len(items)
        if pos is None or isinstance(pos, D.SymDim):
            _set_seq(n, 0, _joined(items + [t], t), None)
            return
        pos = int(pos)
        if pos < 0:
            pos += len(items)
        new = list(items)
        new.insert(pos, t)
        _set_seq(n, 0, _joined(new, t), new)
        return
    elem = st.elem if isinstance(st, SequenceType) else None
    _set_seq(n, 0, join_types(elem, t) if elem is not None else None, None)


@shape_fn("", "SequenceErase")
def _seq_erase(n: NodeCtx) -> None:
    st = n.type(0)
    items = _seq_items(n, 0)
    if items is not None and items:
        pos = n.scalar(1) if n.has(1) else -1
        if pos is not None and not isinstance(pos, D.SymDim):
            new = list(items)
            del new[int(pos)]
            _set_seq(n, 0, _joined(new, st.elem if isinstance(st, SequenceType) else None), new)
            return
    n.set_type(0, st)


@shape_fn("", "SequenceAt")
def _seq_at(n: NodeCtx) -> None:
    st = n.type(0)
    items = _seq_items(n, 0)
    pos = n.scalar(1)
    if items is not None and pos is not None and not isinstance(pos, D.SymDim):
        p = int(pos)
        if -len(items) <= p < len(items):
            t = items[p]
            if t is not None:
                n.set_type(0, t)
            return
        n.error(f"SequenceAt: position {p} out of range for {len(items)} items")
        return
    if isinstance(st, SequenceType) and st.elem is not None:
        n.set_type(0, st.elem)


@shape_fn("", "SequenceLength")
def _seq_length(n: NodeCtx) -> None:
    items = _seq_items(n, 0)
    n.set(0, INT64, [], obj_array([len(items)], ()) if items is not None else None)


@shape_fn("", "SplitToSequence")
def _split_to_sequence(n: NodeCtx) -> None:
    s = n.shape(0)
    dt = n.dtype(0)
    if s is None:
        _set_seq(n, 0, TensorType(dt, None), None)
        return
    axis = norm_axis(n.attr("axis", 0), len(s))
    keep = n.attr("keepdims", 1)
    d = s[axis]
    if not n.has(1):
        shape = [x for i, x in enumerate(s) if i != axis] if not keep else \
            [1 if i == axis else x for i, x in enumerate(s)]
        t = TensorType(dt, Shape(shape))
        _set_seq(n, 0, t, [t] * d if type(d) is int else None)
        return
    split = n.dimlist(1)
    if split is None:
        _set_seq(n, 0, TensorType(dt, Shape([None if i == axis else x
                                             for i, x in enumerate(s)])), None)
        return
    rank1 = n.rank(1) == 1
    if not rank1:
        size = split[0]
        if type(size) is int and type(d) is int and size > 0:
            k, last = divmod(d, size)
            sizes = [size] * k + ([last] if last else [])
        else:
            t = TensorType(dt, Shape([None if i == axis else x for i, x in enumerate(s)]))
            _set_seq(n, 0, t, None)
            return
    else:
        sizes = split
    items = [TensorType(dt, Shape([z if i == axis else x for i, x in enumerate(s)]))
             for z in sizes]
    _set_seq(n, 0, _joined(items, TensorType(dt, None)), items)


@shape_fn("", "ConcatFromSequence")
def _concat_from_sequence(n: NodeCtx) -> None:
    st = n.type(0)
    items = _seq_items(n, 0)
    new_axis = n.attr("new_axis", 0)
    elem = st.elem if isinstance(st, SequenceType) else None
    if items is not None and items:
        elem = _joined(items, elem)
    if not isinstance(elem, TensorType) or elem.shape is None:
        n.set(0, elem.dtype if isinstance(elem, TensorType) else 0, None)
        return
    r = len(elem.shape)
    axis = n.attr("axis")
    if new_axis:
        a = norm_axis(axis, r + 1)
        out = list(elem.shape)
        out.insert(a, len(items) if items is not None else None)
        n.set(0, elem.dtype, out)
        return
    a = norm_axis(axis, r)
    out = list(elem.shape)
    if items is not None and all(isinstance(t, TensorType) and t.shape is not None
                                 and len(t.shape) == r for t in items):
        out[a] = D.fsum(t.shape[a] for t in items)
    else:
        out[a] = None
    n.set(0, elem.dtype, out)


# -- optionals -----------------------------------------------------------------------------------


@shape_fn("", "Optional")
def _optional(n: NodeCtx) -> None:
    if n.has(0):
        n.set_type(0, OptionalType(n.type(0)))
        return
    tp = n.attr("type")
    if tp is not None:
        from ...ir import lift_type

        n.set_type(0, OptionalType(lift_type(tp)))


@shape_fn("", "OptionalHasElement")
def _optional_has(n: NodeCtx) -> None:
    n.set(0, BOOL, [])


@shape_fn("", "OptionalGetElement")
def _optional_get(n: NodeCtx) -> None:
    t = n.type(0)
    if isinstance(t, OptionalType):
        if t.elem is not None:
            n.set_type(0, t.elem)
    elif t is not None:
        n.set_type(0, t)


__all__: list = []
