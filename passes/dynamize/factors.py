"""The order of the factors in a merged dim: how a Reshape's symbolic size is split by dataflow.

A Reshape target that must change is solved from element counts and trace sizes
(:meth:`.algebra.Algebra.split`). That is ambiguous when a static size equals a product of
traced ones: MobileViT unfolds a ``[batch, 16, h, w]`` feature map into patches, and at the
trace the 16 channels equal the patch count ``h/2 * w/2`` of a 32x32 image, so in
``[batch*16*h/2, w/2, 2, 2] -> [3, 16, 4, 4]`` element 1 could be the channels (static) or the
patches. The counts cannot tell; the dataflow can. A row-major Reshape keeps its factors in
order (outer first), so following each data dim back through the Reshapes and Transposes that
made it gives an ordered list of factors (``[batch, 16, h/2]`` for the merged dim 0), and the
target takes them in order: ``3 <- batch``, ``16 <- 16``, ``4 <- h/2 * w/2``, ``4 <- 2 * 2``.
A factor that must be cut between two target elements gives its symbolic part to the outer
one and a static block to the inner one (``n -> (n/block, block)``, the window/patch layout
that :meth:`~.algebra.Algebra.split` prefers too).

The ordered split is used only when every symbolic factor is one atom (a symbol or a ``floor``
with a coefficient): a merged dim nobody can factor (``8*batch*h``, read from an op this walk
does not follow) leaves the choice to the counts, as before.
"""

from __future__ import annotations

from ...ir import Value
from .algebra import Algebra, is_int
from .conflicts import BROADCAST_OPS, group_by_trace, shape
from .provenance import UNARY_OPS

MAX_DEPTH = 16  # Reshapes followed back
MAX_STEPS = 100000  # ops walked through between two of them


def atomic(alg: Algebra, d) -> bool:
    """A static size, or a coefficient times one symbol or one ``floor(...)``."""
    if is_int(d):
        return True
    e = alg.expr(alg.simplify(d))
    _, rest = e.as_coeff_Mul()
    return not (rest.is_Mul or rest.is_Add or rest.is_Pow)


def factors(alg: Algebra, v: Value, axis: int, depth: int = 0) -> list:
    """Dim ``axis`` of ``v`` as an ordered list of factors (outer first), as far as the
    Reshapes and Transposes that made it say; ``[dim]`` when they say nothing finer. Ops that
    keep the dim whole (elementwise ops, a MatMul's rows, a Transpose) are walked through."""
    s = shape(v)
    d = s[axis] if s is not None and 0 <= axis < len(s) else None
    if d is None or is_int(d) or atomic(alg, d) or depth > MAX_DEPTH:
        return [d]
    x, a = v, axis
    for _ in range(MAX_STEPS):
        p = x.producer
        if p is None or p.domain != "":
            return [d]
        if p.op_type == "Reshape":
            got = _through_reshape(alg, p, a, depth)
            return got if got and alg.eq(alg.prod(got), d) else [d]
        step = _same_dim(alg, p, x, a)
        if step is None:
            return [d]
        x, a = step
    return [d]


def _same_dim(alg: Algebra, p, v: Value, a: int) -> tuple | None:
    """The input and axis of ``p`` that dim ``a`` of its output ``v`` is, unchanged."""
    s = shape(v)
    if p.op_type == "Transpose":
        perm = p.attr("perm")
        return (p.inputs[0], perm[a]) if perm is not None and a < len(perm) else None
    if p.op_type == "MatMul":
        if a == len(s) - 1:
            return None
        cands = [p.inputs[0]]
    elif p.op_type in BROADCAST_OPS or p.op_type in UNARY_OPS:
        cands = p.inputs
    else:
        return None
    for x in cands:
        sx = shape(x) if x is not None else None
        if sx is not None and len(sx) == len(s) and alg.eq(sx[a], s[a]):
            return x, a
    return None


def _through_reshape(alg: Algebra, p, axis: int, depth: int) -> list | None:
    ds, os_ = shape(p.inputs[0]), shape(p.outputs[0])
    if ds is None or os_ is None or None in ds or None in os_:
        return None
    dt = [alg.evaluate(x) for x in ds]
    ot = [alg.evaluate(x) for x in os_]
    if None in dt or None in ot:
        return None
    for gd, gt in group_by_trace(dt, ot) or ():
        if axis in gt:
            fs = [f for i in gd for f in factors(alg, p.inputs[0], i, depth + 1)]
            runs = ordered_split(alg, fs, [ot[j] for j in gt])
            return None if runs is None else runs[gt.index(axis)]
    return None


def ordered_split(alg: Algebra, fs: list, traces: list[int]) -> list[list] | None:
    """Factors ``fs`` (outer first) dealt in order to elements of trace sizes ``traces``: each
    element's run of factors, or None when the sizes do not line up (or a factor is not one
    atom, or a symbolic one is 1 at the trace, where its place cannot be told)."""
    if any(f is None or not atomic(alg, f) for f in fs):
        return None
    vals = [alg.evaluate(f) for f in fs]
    if any(v is None or v <= 0 or (v == 1 and not is_int(f)) for f, v in zip(fs, vals)):
        return None
    items = [(f, v) for f, v in zip(fs, vals) if v != 1]
    runs: list[list] = []
    k = 0
    for t in traces:
        run: list = []
        need = t
        while need > 1:
            if k >= len(items):
                return None
            f, v = items[k]
            if need % v == 0:
                run.append(f)
                need //= v
                k += 1
            elif v % need == 0:  # cut: the symbolic part outer, a static block inner
                run.append(alg.dim(alg.expr(f) * need / v))
                items[k] = (v // need, v // need)
                need = 1
            else:
                return None
        runs.append(run)
    return runs if k == len(items) else None


def ordered_elems(alg: Algebra, v: Value, axes: list[int], traces: list[int]) -> list | None:
    """The target elements for data dims ``axes`` of ``v`` when their ordered factors line up
    with ``traces`` (the group of a Reshape), else None."""
    fs = [f for a in axes for f in factors(alg, v, a)]
    if all(is_int(f) or f is None for f in fs):
        return None
    runs = ordered_split(alg, fs, traces)
    if runs is None:
        return None
    return [alg.prod(r) if r else 1 for r in runs]


__all__ = ["atomic", "factors", "ordered_elems", "ordered_split"]
