"""Where a baked dim comes from: walk back from a conflict to the constants that fixed it.

A conflict names a dim of some value that is static (say 7) where a symbolic size (seq) is
needed. Walking back through the producers, using the shapes inference annotated to map the
axis through each op (a Transpose permutes it, a Gather moves it into its indices, an Expand
takes it from its target or its input), ends at the culprits:

- :class:`VecCulprit`: an element of a shape vector a node consumes (a Reshape, Expand,
  ConstantOfShape or Tile target, Resize sizes);
- :class:`DataCulprit`: a dim of a constant tensor (an initializer or a Constant node), read by
  one particular node input;
- :class:`RangeCulprit`: the length of a Range;
- :class:`Dead`: a path that cannot be followed (an op this walk does not know, a static dim of
  an input that was not freed), reported to the user as is.

Only inputs whose dim really is the static value are followed, so a dim that came from a weight
is never blamed on an unrelated constant of the same value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...ir import Node, Value
from .algebra import Algebra, is_int
from .conflicts import BROADCAST_OPS, group_by_trace, label, shape, symval
from .indexing import INDEX_OPS, follow_index

UNARY_OPS = frozenset({
    "Cast", "CastLike", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf",
    "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Neg",
    "Abs", "Not", "Softmax", "LogSoftmax", "Hardmax", "Identity", "Dropout", "Clip", "Gelu", "Elu",
    "Selu", "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "IsNaN", "IsInf",
    "BitwiseNot", "LayerNormalization", "BatchNormalization", "InstanceNormalization", "Trilu",
    "LpNormalization", "MeanVarianceNormalization", "Shrink", "CumSum", "GroupNormalization",
    "RMSNormalization",
})
POOL_OPS = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool",
                      "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ConvInteger",
                      "QLinearConv"})
REDUCE_OPS = frozenset({"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                        "ReduceSumSquare", "ArgMax", "ArgMin"})


@dataclass
class VecCulprit:
    """Element ``elem`` of ``node``'s input ``index``; a size X needed downstream makes it
    ``X * mul / div + add`` (a Tile repeat is X / rows, a Slice end is start + X * step)."""

    node: Node
    index: int
    elem: int
    mul: int = 1
    div: int = 1
    add: int = 0
    bound: int | None = None  # the largest X this element can take (a Slice of a table)
    trace: int | None = None  # the static size on this culprit's path (a factor of the conflict's)


@dataclass
class DataCulprit:
    value: Value
    use: tuple
    dim: int
    trace: int | None = None


@dataclass
class RangeCulprit:
    node: Node
    trace: int | None = None


@dataclass
class Dead:
    why: str


def _ints(node: Node, attr: str, index: int) -> list | None:
    if attr in node.attributes:
        return list(node.attr(attr))
    if index < len(node.inputs) and node.inputs[index] is not None:
        sv = symval(node.inputs[index])
        if sv is not None and all(is_int(x) for x in sv):
            return sv
    return None


class Tracer:
    """Finds the culprits of one static dim."""

    def __init__(self, alg: Algebra):
        self.alg = alg
        self.revisits = 0

    def culprits(self, value: Value, axis: int, static: int, use: tuple) -> list:
        out: list = []
        self._walk(value, axis, static, use, out, set(), 0)
        return out or [Dead(f"dim {axis} of {value.name or 'a value'} ({static}): no source found")]

    def _walk(self, v: Value, a: int, c: int, use: tuple, out: list, seen: set, depth: int):
        key = (id(v), a)
        if key in seen:  # reached again through another consumer: already walked, not dead
            self.revisits += 1
            return
        seen.add(key)
        if depth > 200:
            out.append(Dead(f"dim {a} of {v.name!r}: too deep to trace"))
            return
        p = v.producer
        if p is None:
            if v.const_value is not None:
                out.append(DataCulprit(v, use, a, c))
            elif v.is_graph_input():
                out.append(Dead(f"dim {a} of input {v.name!r} is a static {c} (free it too, "
                                f"e.g. --dynamic {v.name}:{a}=NAME)"))
            else:
                out.append(Dead(f"dim {a} of {v.name!r} has no producer"))
            return
        if p.op_type == "Constant" and p.domain == "":
            out.append(DataCulprit(v, use, a, c))
            return
        n, hits = len(out), self.revisits
        self._step(p, v, a, c, out, seen, depth)
        if len(out) == n and self.revisits == hits:
            out.append(Dead(f"{label(p)}: dim {a} of its output ({c}) does not come from any "
                            "input this walk can follow"))
        # A path that split a merged dim (Reshape -1) carries a factor of the conflict's size:
        # each culprit remembers the static size of its own path (innermost frame wins).
        for cu in out[n:]:
            if getattr(cu, "trace", 0) is None:
                cu.trace = c

    def _follow(self, node: Node, i: int, b: int, c: int, out, seen, depth) -> bool:
        if i >= len(node.inputs) or node.inputs[i] is None:
            return False
        x = node.inputs[i]
        s = shape(x)
        if c is None and s is not None and 0 <= b < len(s) and is_int(s[b]):
            c = s[b]  # a factor of a merged dim: follow it with its own size
        if s is None or not 0 <= b < len(s) or not (is_int(s[b]) and s[b] == c):
            return False
        self._walk(x, b, c, (node, i), out, seen, depth + 1)
        return True

    def _step(self, p: Node, v: Value, a: int, c: int, out, seen, depth) -> None:
        """Follow dim ``a`` (static size ``c``) of ``v`` back through its producer ``p``, by the
        op's entry in :data:`_STEPS` (an op without one is a dead end)."""
        fn = _STEPS.get(p.op_type) if p.domain == "" else None
        if fn is None:
            return
        vs = shape(v)
        fn(_Step(self, p, v, a, c, len(vs) if vs is not None else 0, out, seen, depth))

    def _reshape(self, p: Node, a: int, c: int, out: list, f, seen=None, depth=0) -> None:
        if len(p.inputs) < 2 or p.inputs[1] is None:
            return
        tv = symval(p.inputs[1])
        if tv is None or a >= len(tv):
            return
        t = tv[a]
        if is_int(t) and t == 0 and not p.attr("allowzero", 0):
            f(0, a)
            return
        if is_int(t) and t == -1:
            ds = shape(p.inputs[0])
            vs = shape(p.outputs[0])
            if ds is None or vs is None:
                return
            dt = [self.alg.evaluate(d) for d in ds]
            tt = [self.alg.evaluate(d) for d in vs]
            if None in dt or None in tt:
                return
            groups = group_by_trace(dt, tt)
            for gd, gt in groups or ():
                if a in gt and all(tt[j] == 1 for j in gt if j != a):
                    cands = [i for i in gd if dt[i] != 1]
                    if len(cands) == 1:
                        f(0, cands[0])
                    else:  # -1 merged several dims: each factor is followed on its own
                        for i in cands:
                            self._follow(p, 0, i, None, out, seen, depth)
            return
        out.append(VecCulprit(p, 1, a))


@dataclass
class _Step:
    """One step of the walk: dim ``a`` (static size ``c``) of output ``v`` (rank ``r``) of
    ``p``. A step either follows the dim into its producer's inputs (:meth:`f`) or records a
    culprit in ``out``."""

    tracer: Tracer
    p: Node
    v: Value
    a: int
    c: int
    r: int
    out: list
    seen: set
    depth: int

    def f(self, i: int, b: int) -> bool:
        """Walk on into dim ``b`` of input ``i`` (when its size there is the same ``c``)."""
        return self.tracer._follow(self.p, i, b, self.c, self.out, self.seen, self.depth)


# op type -> how a dim of its output maps back to its inputs (the first registration wins).
_STEPS: dict[str, Callable[[_Step], None]] = {}


def _steps(*ops: str):
    def deco(fn: Callable[[_Step], None]) -> Callable[[_Step], None]:
        for op in ops:
            _STEPS.setdefault(op, fn)
        return fn
    return deco


@_steps(*BROADCAST_OPS)
def _broadcast(st: _Step) -> None:
    for i, x in enumerate(st.p.inputs):
        s = shape(x) if x is not None else None
        if s is not None:
            st.f(i, st.a - (st.r - len(s)))


@_steps(*UNARY_OPS)
def _unary(st: _Step) -> None:
    x = st.p.inputs[0]
    s = shape(x) if x is not None else None
    if s is not None:
        st.f(0, st.a - (st.r - len(s)))


@_steps("Transpose")
def _transpose(st: _Step) -> None:
    s = shape(st.p.inputs[0])
    perm = st.p.attr("perm") or (list(range(len(s) - 1, -1, -1)) if s else None)
    if perm is not None and st.a < len(perm):
        st.f(0, perm[st.a])


@_steps("Unsqueeze")
def _unsqueeze(st: _Step) -> None:
    axes = _ints(st.p, "axes", 1)
    if axes is None:
        return
    axes = sorted(x + st.r if x < 0 else x for x in axes)
    if st.a not in axes:
        st.f(0, st.a - sum(1 for x in axes if x < st.a))


@_steps("Squeeze")
def _squeeze(st: _Step) -> None:
    s = shape(st.p.inputs[0])
    if s is None:
        return
    axes = _ints(st.p, "axes", 1)
    if axes is None:
        axes = [k for k, d in enumerate(s) if d == 1]
    axes = {x + len(s) if x < 0 else x for x in axes}
    kept = [k for k in range(len(s)) if k not in axes]
    if st.a < len(kept):
        st.f(0, kept[st.a])


@_steps("Reshape")
def _reshape(st: _Step) -> None:
    st.tracer._reshape(st.p, st.a, st.c, st.out, st.f, st.seen, st.depth)


@_steps("Expand")
def _expand(st: _Step) -> None:
    s = shape(st.p.inputs[0])
    tv = symval(st.p.inputs[1])
    if s is not None:
        st.f(0, st.a - (st.r - len(s)))
    if tv is not None:
        e = st.a - (st.r - len(tv))
        if 0 <= e < len(tv) and is_int(tv[e]) and tv[e] == st.c:
            st.out.append(VecCulprit(st.p, 1, e))


@_steps("Tile")
def _tile(st: _Step) -> None:
    reps = symval(st.p.inputs[1])
    s = shape(st.p.inputs[0])
    a = st.a
    if reps is None or s is None or a >= len(reps):
        return
    if reps[a] == 1:
        st.f(0, a)
    elif s[a] == 1:
        st.out.append(VecCulprit(st.p, 1, a))
    elif is_int(s[a]) and is_int(reps[a]) and s[a] * reps[a] == st.c:
        st.out.append(VecCulprit(st.p, 1, a, div=s[a]))


@_steps("ConstantOfShape")
def _constant_of_shape(st: _Step) -> None:
    st.out.append(VecCulprit(st.p, 0, st.a))


@_steps("Range")
def _range(st: _Step) -> None:
    st.out.append(RangeCulprit(st.p))


@_steps(*INDEX_OPS)
def _index(st: _Step) -> None:
    follow_index(st.p, st.a, st.f)


@_steps("Gather")
def _gather(st: _Step) -> None:
    sd, si = shape(st.p.inputs[0]), shape(st.p.inputs[1])
    if sd is None or si is None:
        return
    ax = st.p.attr("axis", 0)
    ax = ax + len(sd) if ax < 0 else ax
    if st.a < ax:
        st.f(0, st.a)
    elif st.a < ax + len(si):
        st.f(1, st.a - ax)
    else:
        st.f(0, st.a - len(si) + 1)


@_steps("MatMul")
def _matmul(st: _Step) -> None:
    sa, sb = shape(st.p.inputs[0]), shape(st.p.inputs[1])
    if sa is None or sb is None or len(sa) < 2 or len(sb) < 2:
        return
    a, r = st.a, st.r
    if a == r - 1:
        st.f(1, len(sb) - 1)
    elif a == r - 2:
        st.f(0, len(sa) - 2)
    else:
        st.f(0, a - (r - len(sa)))
        st.f(1, a - (r - len(sb)))


@_steps("Gemm")
def _gemm(st: _Step) -> None:
    p = st.p
    if st.a == 0:
        st.f(0, 1 if p.attr("transA", 0) else 0)
    else:
        st.f(1, 0 if p.attr("transB", 0) else 1)
    if len(p.inputs) > 2 and p.inputs[2] is not None:
        sc = shape(p.inputs[2])
        if sc is not None:
            st.f(2, st.a - (2 - len(sc)))


@_steps("Concat")
def _concat(st: _Step) -> None:
    ax = st.p.attr("axis", 0)
    ax = ax + st.r if ax < 0 else ax
    if st.a != ax:
        for i in range(len(st.p.inputs)):
            st.f(i, st.a)


@_steps("Split")
def _split(st: _Step) -> None:
    ax = st.p.attr("axis", 0)
    ax = ax + st.r if ax < 0 else ax
    if st.a != ax:
        st.f(0, st.a)


@_steps("Slice")
def _slice(st: _Step) -> None:
    p, a = st.p, st.a
    s = shape(p.inputs[0])
    axes = _ints(p, "axes", 3) if ("axes" in p.attributes or len(p.inputs) > 3) \
        else (list(range(len(_ints(p, "starts", 1) or []))))
    if s is None or axes is None:
        return
    axes = [x + len(s) if x < 0 else x for x in axes]
    if a not in axes:
        st.f(0, a)
        return
    k = axes.index(a)
    starts, ends = _ints(p, "starts", 1), _ints(p, "ends", 2)
    steps = _ints(p, "steps", 4) if len(p.inputs) > 4 and p.inputs[4] is not None \
        else [1] * len(axes)
    if starts is None or ends is None or steps is None or not is_int(s[a]):
        return
    st_, en, sp_ = starts[k], ends[k], steps[k]
    if sp_ > 0 and 0 <= st_ < en <= s[a] and -(-(en - st_) // sp_) == st.c \
            and "ends" not in p.attributes:
        # the end cut the length: it becomes start + X*step (X at most what x holds)
        st.out.append(VecCulprit(p, 2, k, mul=sp_, add=st_, bound=(s[a] - st_) // sp_))


@_steps(*POOL_OPS)
def _pool(st: _Step) -> None:
    if st.a == 0:
        st.f(0, 0)
    elif st.a >= 2 and _keeps_size(st.p, st.a - 2):
        st.f(0, st.a)


def _keeps_size(p: Node, k: int) -> bool:
    """A Conv or pool whose spatial axis ``k`` has stride 1 and pads that make up for the kernel
    (a 1x1 projection, a 'same' 3x3): its output there is its input's size, whatever it is."""
    if p.op_type not in ("Conv", "MaxPool", "AveragePool", "LpPool"):
        return False
    kernel = p.attr("kernel_shape", None)
    if kernel is None and p.op_type == "Conv" and len(p.inputs) > 1:
        ws = shape(p.inputs[1])
        kernel = ws[2:] if ws is not None else None
    if kernel is None or k >= len(kernel) or not is_int(kernel[k]):
        return False
    n = len(kernel)
    strides = p.attr("strides", None) or [1] * n
    dil = p.attr("dilations", None) or [1] * n
    if strides[k] != 1:
        return False
    auto = p.attr("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return True
    pads = p.attr("pads", None) or [0] * 2 * n
    return auto == "NOTSET" and pads[k] + pads[k + n] == dil[k] * (kernel[k] - 1)


@_steps("Resize", "Upsample")
def _resize(st: _Step) -> None:
    p, op = st.p, st.p.op_type
    sizes = symval(p.inputs[3]) if len(p.inputs) > 3 and p.inputs[3] is not None else None
    if sizes is not None:
        st.out.append(VecCulprit(p, 3, st.a))
        return
    k = 2 if op == "Resize" else 1
    scales = symval(p.inputs[k]) if len(p.inputs) > k and p.inputs[k] is not None else None
    if scales is None and op == "Resize" and p.inputs[k] is not None:
        scales = _float_vals(p.inputs[k])
    if scales is not None and st.a < len(scales) and scales[st.a] == 1:
        st.f(0, st.a)


@_steps("LSTM", "GRU", "RNN")
def _rnn(st: _Step) -> None:
    layout = st.p.attr("layout", 0)
    idx = st.v.index
    batch_axis = (0 if layout else 2) if idx == 0 else (0 if layout else 1)
    if st.a == batch_axis:
        st.f(0, 0 if layout else 1)
        for i in (5, 6):
            st.f(i, 0 if layout else 1)
    elif idx == 0 and st.a == (1 if layout else 0):
        st.f(0, 1 if layout else 0)


@_steps(*REDUCE_OPS)
def _reduce(st: _Step) -> None:
    p = st.p
    s = shape(p.inputs[0])
    if s is None:
        return
    if p.op_type in ("ArgMax", "ArgMin"):
        axes = [p.attr("axis", 0)]
    else:
        axes = _ints(p, "axes", 1)
        if axes is None:
            return
    axes = {x + len(s) if x < 0 else x for x in axes}
    if p.attr("keepdims", 1):
        if st.a not in axes:
            st.f(0, st.a)
    else:
        kept = [k for k in range(len(s)) if k not in axes]
        if st.a < len(kept):
            st.f(0, kept[st.a])


@_steps("Flatten")
def _flatten(st: _Step) -> None:
    if st.a == 0 and st.p.attr("axis", 1) == 1:
        st.f(0, 0)


def _float_vals(v: Value) -> list | None:
    arr = const_array(v)
    return None if arr is None else [float(x) for x in arr.reshape(-1)]


def const_array(v: Value):
    """The numpy value of an initializer or a Constant node's output, else None."""
    if v.const_value is not None:
        return v.const_value.numpy()
    p = v.producer
    if p is None or p.op_type != "Constant" or p.domain != "":
        return None
    import numpy as np

    for name, a in p.attributes.items():
        val = a.value
        if name == "value":
            return val.numpy()
        if name == "value_float":
            return np.asarray(val, dtype=np.float32)
        if name == "value_floats":
            return np.asarray(val, dtype=np.float32)
        if name == "value_int":
            return np.asarray(val, dtype=np.int64)
        if name == "value_ints":
            return np.asarray(val, dtype=np.int64)
    return None


__all__ = ["DataCulprit", "Dead", "RangeCulprit", "Tracer", "VecCulprit", "const_array"]
