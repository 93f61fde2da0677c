"""Synthetic transformer-like ONNX models for the scaling benchmarks.

    python benchmarks/synth.py --nodes 10000 -o out.onnx
    python benchmarks/synth.py --external-gb 3 -o big.onnx

A model is an embedding prologue, N identical pre-norm transformer blocks and a final LayerNorm, with
symbolic ``batch`` and ``seq`` input dims. Each block has what exporters emit and what optimizers are
supposed to clean up: Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains (one of them computed
twice), Transposes, MatMul + Add bias, LayerNorm written out as nine ops, erf GELU, softmax attention
with an additive mask, Constant nodes and a redundant Identity. The node count is exact: blocks are
added until the next one would overshoot, then a short Neg chain fills the remainder.

Nodes are built as NodeProtos directly (onnx.helper costs several times more per node), so 100,000
nodes take a few seconds. Weights are tiny (hidden 16), so the file is mostly graph structure.

``--external-gb G`` builds a model whose weights (an embedding table and two MatMul weights, G/3 GB
each) live in ``<out>.data`` beside the model, referenced by a relative location. The data is written
in chunks, so the generator never holds more than a few tens of MB; the model still runs on small
inputs in onnxruntime (it needs the weights in memory, of course).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

OPSET = 17
IR_VERSION = 8
HIDDEN = 16
HEADS = 2
FFN = 32
VOCAB = 100
MAX_POS = 512

_NP_TO_ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}


class Builder:
    """Appends NodeProtos to a GraphProto with short unique value names."""

    def __init__(self, graph: onnx.GraphProto, rng: np.random.Generator) -> None:
        self.graph = graph
        self.rng = rng
        self._next = 0
        self._shared: dict[tuple, str] = {}
        # Parameter sharing: blocks cycle through `weight_sets` sets of weights (see build()).
        self.weight_set: int | None = None
        self._slot = 0
        self._params: dict[tuple[int, int], str] = {}

    def fresh(self, hint: str = "t") -> str:
        self._next += 1
        return f"{hint}{self._next}"

    @property
    def num_nodes(self) -> int:
        return len(self.graph.node)

    def op(self, op_type: str, inputs: list[str], attrs: dict | None = None, n_out: int = 1,
           name: str | None = None) -> str | list[str]:
        node = self.graph.node.add()
        node.op_type = op_type
        node.input.extend(inputs)
        outs = [self.fresh() for _ in range(n_out)]
        node.output.extend(outs)
        node.name = name or f"{op_type}_{self._next}"
        if attrs:
            for key, value in attrs.items():
                _set_attr(node.attribute.add(), key, value)
        return outs[0] if n_out == 1 else outs

    def init(self, array: np.ndarray, hint: str = "w") -> str:
        """A new initializer holding array."""
        name = self.fresh(hint)
        t = self.graph.initializer.add()
        t.name = name
        t.data_type = _NP_TO_ONNX[array.dtype]
        t.dims.extend(array.shape)
        t.raw_data = np.ascontiguousarray(array).tobytes()
        return name

    def shared(self, values, dtype=np.int64, shape=None) -> str:
        """An initializer shared by every user asking for the same small constant."""
        key = (tuple(np.ravel(values).tolist()), np.dtype(dtype).str, shape)
        if key not in self._shared:
            arr = np.array(values, dtype=dtype)
            if shape is not None:
                arr = arr.reshape(shape)
            self._shared[key] = self.init(arr, "c")
        return self._shared[key]

    def const(self, values, dtype=np.int64, shape=None) -> str:
        """A Constant node (exporters emit one per use)."""
        arr = np.array(values, dtype=dtype)
        if shape is not None:
            arr = arr.reshape(shape)
        return self.op("Constant", [], {"value": arr})

    def param(self, make, hint: str) -> str:
        """A block parameter; blocks with the same weight set share it (make() builds the array)."""
        if self.weight_set is None:
            return self.init(make(), hint)
        key = (self.weight_set, self._slot)
        self._slot += 1
        if key not in self._params:
            self._params[key] = self.init(make(), hint)
        return self._params[key]

    def start_block(self, index: int, weight_sets: int) -> None:
        self.weight_set = index % weight_sets if weight_sets > 0 else None
        self._slot = 0

    def weight(self, *shape: int, scale: float, hint: str = "w") -> str:
        return self.param(lambda: self.rng.standard_normal(shape, dtype=np.float32) * scale, hint)

    def vector(self, n: int, mean: float, scale: float, hint: str) -> str:
        return self.param(lambda: mean + scale * self.rng.standard_normal(n, dtype=np.float32), hint)


def _set_attr(a: AttributeProto, key: str, value) -> None:
    a.name = key
    if isinstance(value, (bool, int, np.integer)):
        a.type = AttributeProto.INT
        a.i = int(value)
    elif isinstance(value, float):
        a.type = AttributeProto.FLOAT
        a.f = value
    elif isinstance(value, (list, tuple)):
        a.type = AttributeProto.INTS
        a.ints.extend(int(v) for v in value)
    elif isinstance(value, np.ndarray):
        a.type = AttributeProto.TENSOR
        t = a.t
        t.data_type = _NP_TO_ONNX[value.dtype]
        t.dims.extend(value.shape)
        t.raw_data = value.tobytes()
    else:
        raise TypeError(f"attribute {key}: {type(value)}")


# ---------------------------------------------------------------- the pieces of a block


def layer_norm(b: Builder, x: str) -> str:
    """LayerNorm as exporters write it out: 9 nodes."""
    mean = b.op("ReduceMean", [x], {"axes": [-1], "keepdims": 1})
    d = b.op("Sub", [x, mean])
    sq = b.op("Pow", [d, b.shared(2.0, np.float32)])
    var = b.op("ReduceMean", [sq], {"axes": [-1], "keepdims": 1})
    ve = b.op("Add", [var, b.shared(1e-5, np.float32)])
    std = b.op("Sqrt", [ve])
    n = b.op("Div", [d, std])
    g = b.op("Mul", [n, b.vector(HIDDEN, 1.0, 0.1, "gamma")])
    return b.op("Add", [g, b.vector(HIDDEN, 0.0, 0.1, "beta")])


def batch_seq(b: Builder, x: str) -> tuple[str, str]:
    """Shape -> Gather -> Unsqueeze for dims 0 and 1: 5 nodes."""
    shape = b.op("Shape", [x])
    axes0 = b.shared([0])
    bs = b.op("Unsqueeze", [b.op("Gather", [shape, b.shared(0, shape=())], {"axis": 0}), axes0])
    sq = b.op("Unsqueeze", [b.op("Gather", [shape, b.shared(1, shape=())], {"axis": 0}), axes0])
    return bs, sq


def linear(b: Builder, x: str, n_in: int, n_out: int) -> str:
    w = b.weight(n_in, n_out, scale=1.0 / math.sqrt(n_in))
    return b.op("Add", [b.op("MatMul", [x, w]), b.vector(n_out, 0.0, 0.02, "bias")])


def block(b: Builder, x: str, mask_add: str) -> str:
    hd = HIDDEN // HEADS
    ln = layer_norm(b, x)
    bs, sq = batch_seq(b, ln)
    shape4 = b.op("Concat", [bs, sq, b.const([HEADS]), b.const([hd])], {"axis": 0})
    q = b.op("Transpose", [b.op("Reshape", [linear(b, ln, HIDDEN, HIDDEN), shape4])], {"perm": [0, 2, 1, 3]})
    k = b.op("Transpose", [b.op("Reshape", [linear(b, ln, HIDDEN, HIDDEN), shape4])], {"perm": [0, 2, 3, 1]})
    v = b.op("Transpose", [b.op("Reshape", [linear(b, ln, HIDDEN, HIDDEN), shape4])], {"perm": [0, 2, 1, 3]})
    scores = b.op("Div", [b.op("MatMul", [q, k]), b.const(math.sqrt(hd), np.float32)])
    probs = b.op("Softmax", [b.op("Add", [scores, mask_add])], {"axis": -1})
    ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], {"perm": [0, 2, 1, 3]})
    # The same Shape/Gather/Unsqueeze chain again, as a tracer exporter emits it.
    bs2, sq2 = batch_seq(b, ln)
    shape3 = b.op("Concat", [bs2, sq2, b.const([HIDDEN])], {"axis": 0})
    attn = b.op("Identity", [linear(b, b.op("Reshape", [ctx, shape3]), HIDDEN, HIDDEN)])
    x = b.op("Add", [x, attn])
    # MLP with erf GELU.
    h = linear(b, layer_norm(b, x), HIDDEN, FFN)
    erf = b.op("Erf", [b.op("Div", [h, b.const(math.sqrt(2.0), np.float32)])])
    gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, b.const(1.0, np.float32)])]), b.const(0.5, np.float32)])
    return b.op("Add", [x, linear(b, gelu, FFN, HIDDEN)])


def _value_info(vi: onnx.ValueInfoProto, name: str, elem: int, dims: list) -> None:
    vi.name = name
    tt = vi.type.tensor_type
    tt.elem_type = elem
    for d in dims:
        dim = tt.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def _new_model(graph_name: str) -> tuple[onnx.ModelProto, onnx.GraphProto]:
    model = onnx.ModelProto()
    model.ir_version = IR_VERSION
    model.producer_name = "onnxopt-benchmarks-synth"
    model.producer_version = "1"
    op = model.opset_import.add()
    op.domain = ""
    op.version = OPSET
    model.graph.name = graph_name
    return model, model.graph


def _inputs(b: Builder) -> tuple[str, str]:
    g = b.graph
    _value_info(g.input.add(), "input_ids", TensorProto.INT64, ["batch", "seq"])
    _value_info(g.input.add(), "attention_mask", TensorProto.INT64, ["batch", "seq"])
    # Additive mask [batch, 1, 1, seq]: (1 - mask) * -10000.
    m = b.op("Cast", ["attention_mask"], {"to": TensorProto.FLOAT})
    m = b.op("Unsqueeze", [m, b.shared([1, 2])])
    m = b.op("Sub", [b.shared(1.0, np.float32), m])
    mask_add = b.op("Mul", [m, b.shared(-10000.0, np.float32)])
    return "input_ids", mask_add


def _positions(b: Builder, ids: str) -> str:
    """Position embeddings: Shape -> Gather -> Range -> Gather (4 nodes)."""
    seq = b.op("Gather", [b.op("Shape", [ids]), b.shared(1, shape=())], {"axis": 0})
    pos = b.op("Range", [b.shared(0, shape=()), seq, b.shared(1, shape=())])
    return b.op("Gather", [b.weight(MAX_POS, HIDDEN, scale=0.1), pos], {"axis": 0})


def _finish(b: Builder, x: str, target: int | None) -> None:
    """Pad with Neg nodes to exactly target nodes (counting the final LayerNorm), then the output."""
    if target is not None:
        for _ in range(target - b.num_nodes - 9):
            x = b.op("Neg", [x])
    x = layer_norm(b, x)
    b.graph.node[-1].output[0] = "last_hidden_state"
    _value_info(b.graph.output.add(), "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", HIDDEN])


def block_size() -> int:
    b = Builder(onnx.GraphProto(), np.random.default_rng(0))
    block(b, "x", "m")
    return b.num_nodes


def build(nodes: int, seed: int = 0, weight_sets: int = 16) -> onnx.ModelProto:
    """A model with exactly `nodes` top-level nodes.

    Blocks cycle through `weight_sets` distinct sets of weights (0: every block has its own), so the
    file size stays dominated by graph structure at 100,000 nodes.
    """
    model, graph = _new_model(f"synth_{nodes}")
    b = Builder(graph, np.random.default_rng(seed))
    ids, mask_add = _inputs(b)
    emb = b.op("Gather", [b.weight(VOCAB, HIDDEN, scale=1.0), ids], {"axis": 0})
    x = b.op("Add", [emb, _positions(b, ids)])
    per_block = block_size()
    if nodes < b.num_nodes + per_block + 9:
        raise SystemExit(f"--nodes must be at least {b.num_nodes + per_block + 9}")
    index = 0
    while b.num_nodes + per_block + 9 <= nodes:
        b.start_block(index, weight_sets)
        x = block(b, x, mask_add)
        index += 1
    b.weight_set = None
    _finish(b, x, nodes)
    assert b.num_nodes == nodes, (b.num_nodes, nodes)
    return model


# ---------------------------------------------------------------- external weights

_CHUNK = 4 << 20  # floats per write: 16 MB


def _external_tensor(b: Builder, f, location: str, shape: tuple[int, ...], scale: float, hint: str) -> str:
    """Append a float tensor to the open data file f chunk by chunk; return its initializer name."""
    pos = f.tell()
    if pos % 4096:
        f.write(b"\0" * (4096 - pos % 4096))
        pos = f.tell()
    count = int(np.prod(shape))
    left = count
    while left:
        n = min(left, _CHUNK)
        chunk = b.rng.standard_normal(n, dtype=np.float32)
        chunk *= scale
        chunk.tofile(f)
        left -= n
    del chunk
    name = b.fresh(hint)
    t = b.graph.initializer.add()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(pos)), ("length", str(count * 4))):
        e = t.external_data.add()
        e.key = key
        e.value = value
    return name


def build_external(gb: float, out: str, blocks: int = 4, seed: int = 0) -> onnx.ModelProto:
    """A model with about `gb` GB of weights in `<out>.data`; see the module docstring."""
    wide = 1024
    per_tensor = gb * 1e9 / 3
    rows = max(1, int(per_tensor / (4 * wide)))
    model, graph = _new_model(f"synth_external_{gb:g}gb")
    b = Builder(graph, np.random.default_rng(seed))
    location = os.path.basename(out) + ".data"
    ids, mask_add = _inputs(b)
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), location), "wb") as f:
        table = _external_tensor(b, f, location, (rows, wide), 1.0, "embed")
        w_up = _external_tensor(b, f, location, (wide, rows), 1.0 / math.sqrt(wide), "up")
        w_down = _external_tensor(b, f, location, (rows, wide), 1.0 / math.sqrt(rows), "down")
    x = b.op("Gather", [table, ids], {"axis": 0})
    x = b.op("Relu", [b.op("MatMul", [x, w_up])])
    x = b.op("MatMul", [x, w_down])
    x = b.op("MatMul", [x, b.weight(wide, HIDDEN, scale=1.0 / math.sqrt(wide))])
    x = b.op("Add", [x, _positions(b, ids)])
    for _ in range(blocks):
        x = block(b, x, mask_add)
    _finish(b, x, None)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, help="exact number of top-level nodes (e.g. 1000, 10000, 100000)")
    p.add_argument("--external-gb", type=float, help="build the external-data model with about this many GB of weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-sets", type=int, default=16,
                   help="blocks cycle through this many weight sets (0: all distinct); default 16")
    p.add_argument("--check", action="store_true", help="run onnx.checker on the result")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    if (args.nodes is None) == (args.external_gb is None):
        p.error("give exactly one of --nodes and --external-gb")
    t0 = time.perf_counter()
    if args.nodes is not None:
        model = build(args.nodes, args.seed, args.weight_sets)
    else:
        model = build_external(args.external_gb, args.output, seed=args.seed)
    with open(args.output, "wb") as f:
        f.write(model.SerializeToString())
    if args.check:
        onnx.checker.check_model(args.output, full_check=args.nodes is not None and args.nodes <= 20000)
    print(f"{args.output}: {len(model.graph.node)} nodes, {os.path.getsize(args.output) / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
