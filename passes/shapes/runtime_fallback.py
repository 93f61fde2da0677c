"""Fallback for ops with neither a shape function here nor an onnx schema: ask onnxruntime.

The node alone becomes a one-node model whose inputs keep their dtypes and ranks; it runs in
onnxruntime at three bindings of the input symbols and, at each binding, on three data draws (all
zeros, all ones, random normal or small random integers). What is kept, per output:

- the dtype and the rank, when every run agrees;
- a dim equal at every run: that integer;
- a dim equal, at every binding and on every draw, to the value of one input symbol: that symbol;
- any other dim: unknown.

Why this is sound enough to state as a fact. An op's output shape is a function of its input
shapes, its attributes and its input values. Input values the graph proves (small shape tensors,
constants) are fed exactly, so they are the model's; every other input is data. A dim that
depends on the data (NonZero, Unique, a threshold filter: a count of selected elements) takes
different values on zeros, ones and random data, so it is dropped; a dim that depends on the
symbols varies with the bindings, where each symbol takes three spread-out values (2, 7 and 19 for
the first one, never the same number for two symbols of one binding), so it is either that one
symbol or dropped. What remains is a dim that no run could move, and ranks are kept only under the
same rule. An input dim the graph does not know (None), or one that is an expression of symbols
rather than a lone symbol, is bound like a symbol of its own, so nothing is claimed in terms of it.
If any run fails (inputs the op refuses, an op onnxruntime does not have), nothing is claimed.
Inputs are kept small (symbols bound to at most 23, at most 2**16 elements each) and results are
cached per signature, so the fallback costs milliseconds and runs once per kind of node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...ir import SymDim, TensorType
from . import dims as D
from .context import NodeCtx, is_concrete

_SYMBOL_VALUES = (2, 7, 19, 3, 11, 23, 5, 13, 17)  # symbol k, binding j -> [(3 * k + j) % 9]
_MAX_SYMBOLS = 3  # three symbols get pairwise-distinct values at every binding
_MAX_ELEMENTS = 1 << 16
_cache: dict[Any, Any] = {}


_DOMAINS = ("com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental")


def runtime_fallback(domain: str, op_type: str, ctx: NodeCtx) -> Callable | None:
    """A shape function that asks onnxruntime, for ops of onnxruntime's own domains (None for
    others, which stay reported as having no shape function)."""
    if domain not in _DOMAINS or any(a.type in (5, 10) for a in ctx.node.attributes.values()):
        return None
    return _run


def _signature(n: NodeCtx):
    """Per input: (dtype, dims, exact values or None); None when some input is unusable."""
    sig = []
    for i, v in enumerate(n.node.inputs):
        if v is None:
            sig.append(None)
            continue
        t = n.type(i)
        if not isinstance(t, TensorType) or not t.dtype or t.shape is None:
            return None
        vals = n.vals(i)
        if vals is None and v.const_value is not None and v.const_value.size <= _MAX_ELEMENTS:
            vals = v.const_value.numpy()
        exact = vals if vals is not None and is_concrete(vals) else None
        sig.append((t.dtype, tuple(t.shape), exact))
    return sig


def _symbols(sig) -> list:
    """Input dims to bind: lone symbols by name, anything else not an int on its own."""
    out: list = []
    for k, s in enumerate(sig):
        for a, d in enumerate(s[1] if s else ()):
            key = d.text if isinstance(d, SymDim) and D.is_lone(d) else (
                None if type(d) is int else ("anon", k, a))
            if key is not None and key not in out:
                out.append(key)
    return out


def _run(n: NodeCtx) -> None:
    sig = _signature(n)
    if sig is None:
        return
    syms = _symbols(sig)
    if len(syms) > _MAX_SYMBOLS:
        return
    key = _cache_key(n, sig)
    if key is not None and key in _cache:
        result = _cache[key]
    else:
        result = _evaluate(n, sig, syms)
        if key is not None and len(_cache) < 4096:
            _cache[key] = result
    for i, (dtype, dims) in enumerate(result or ()):
        if dtype is None:
            continue
        n.set(i, dtype, None if dims is None else [
            d if type(d) is int or d is None else _lone(sig, d) for d in dims])


def _lone(sig, name: str):
    """The SymDim object of an input for a lone symbol's name."""
    for s in sig:
        for d in s[1] if s else ():
            if isinstance(d, SymDim) and d.text == name:
                return d
    return None


def _cache_key(n: NodeCtx, sig):
    try:
        attrs = n.node.attributes
        a = tuple(sorted((k, repr(x.value)) for k, x in attrs.items()))
        s = tuple(None if x is None else (x[0], tuple(str(d) for d in x[1]),
                                          None if x[2] is None else np.asarray(x[2]).tobytes())
                  for x in sig)
        return (n.node.domain, n.node.op_type, n.opset, a, s, len(n.node.outputs))
    except Exception:  # an attribute without a stable repr: no caching
        return None


def _binding(syms: list, j: int) -> dict:
    return {s: _SYMBOL_VALUES[(3 * k + j) % len(_SYMBOL_VALUES)] for k, s in enumerate(syms)}


def _dims_at(sig_entry, k: int, b: dict) -> list[int]:
    out = []
    for a, d in enumerate(sig_entry[1]):
        if type(d) is int:
            out.append(d)
        else:
            out.append(b[d.text if isinstance(d, SymDim) and D.is_lone(d) else ("anon", k, a)])
    return out


def _draw(dtype, shape: list[int], how: int, rng: np.random.Generator) -> np.ndarray:
    if how == 0:
        return np.zeros(shape, dtype)
    if how == 1:
        return np.ones(shape, dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    return rng.integers(0, 4, shape).astype(dtype)


def _model(n: NodeCtx, sig):
    from onnx import helper

    from ...ir import lower_type
    from .fallback import attribute_protos

    names = [f"i{k}" if s is not None else "" for k, s in enumerate(sig)]
    vis = []
    for k, s in enumerate(sig):
        if s is not None:
            dims = [d if type(d) is int else f"d{k}_{a}" for a, d in enumerate(s[1])]
            vis.append(helper.make_value_info(names[k], lower_type(TensorType(s[0], dims))))
    outs = [f"o{i}" if v.name != "" else "" for i, v in enumerate(n.node.outputs)]
    node = helper.make_node(n.node.op_type, names, outs, domain=n.node.domain)
    node.attribute.extend(attribute_protos(n))
    graph = helper.make_graph([node], "g", vis, [helper.make_empty_tensor_value_info(o)
                                                  for o in outs if o])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v)
                                                   for d, v in n.opsets.items()])


def _evaluate(n: NodeCtx, sig, syms: list):
    """Per output: (dtype, dims with ints, symbol names or None), or None when a run failed."""
    import onnxruntime as ort

    from ...ir import from_np_dtype, np_dtype

    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 4
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(_model(n, sig).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        runs = []  # (binding index, output shapes, output dtypes)
        for j in range(3):
            b = _binding(syms, j)
            for how in range(3):
                feeds = {}
                for k, s in enumerate(sig):
                    if s is None:
                        continue
                    shape = _dims_at(s, k, b)
                    if int(np.prod(shape, dtype=np.int64)) > _MAX_ELEMENTS:
                        return None
                    dt = np_dtype(s[0])
                    feeds[f"i{k}"] = (np.asarray(s[2], dtype=dt).reshape(shape) if s[2] is not None
                                      else _draw(dt, shape, how, rng))
                res = sess.run(None, feeds)
                runs.append((j, [np.shape(r) for r in res], [from_np_dtype(r.dtype) for r in res]))
    except Exception:  # the runtime refuses the op or these inputs: claim nothing
        return None
    return [_agree(runs, o, syms) for o in range(len(runs[0][1]))]


def _agree(runs, o: int, syms: list):
    dtypes = {r[2][o] for r in runs}
    ranks = {len(r[1][o]) for r in runs}
    dtype = dtypes.pop() if len(dtypes) == 1 else None
    if dtype is None or len(ranks) != 1:
        return (dtype, None)
    dims: list = []
    for a in range(ranks.pop()):
        seen = [r[1][o][a] for r in runs]
        if len(set(seen)) == 1:
            dims.append(seen[0])
            continue
        match = [s for s in syms if isinstance(s, str)
                 and all(r[1][o][a] == _binding(syms, r[0])[s] for r in runs)]
        dims.append(match[0] if len(match) == 1 else None)
    return (dtype, dims)


__all__ = ["runtime_fallback"]
