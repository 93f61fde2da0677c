"""Big weights are parsed apart: loading reads the raw_data of big main-graph initializers in
place from the file's bytes instead of parsing a second copy into the message, and everything
that reads a tensor (numpy, digests, lowering, saving) sees exactly what a whole parse gives."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxopt
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxopt import io
from onnxopt.ir import lower_model
from onnxopt.ir.wire import encode_varint
from onnxopt.testing import assert_equivalent

BIG = io.APART_MIN_BYTES


def model_with(*tensors: TensorProto) -> onnx.ModelProto:
    """y = x + the sum of every tensor's element count (each read by a Size node)."""
    nodes, total = [], "x"
    for i, t in enumerate(tensors):
        nodes += [helper.make_node("Size", [t.name], [f"n{i}"]),
                  helper.make_node("Cast", [f"n{i}"], [f"c{i}"], to=TensorProto.FLOAT),
                  helper.make_node("Add", [total, f"c{i}"], [f"s{i}"])]
        total = f"s{i}"
    nodes.append(helper.make_node("Identity", [total], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1])],
                          [helper.make_tensor_value_info("y", 1, [1])], list(tensors))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def tensors() -> list[TensorProto]:
    rng = np.random.default_rng(0)
    n = BIG // 2 + 7  # every plain type below is over the limit
    return [
        numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "f32"),
        numpy_helper.from_array(rng.standard_normal((n // 8, 8)).astype(np.float16), "f16"),
        numpy_helper.from_array(rng.integers(-9, 9, n, dtype=np.int64), "i64"),
        numpy_helper.from_array(rng.integers(-9, 9, BIG + 1, dtype=np.int8), "i8"),
        helper.make_tensor("bf16", TensorProto.BFLOAT16, [n],
                           rng.standard_normal(n).astype(ml_dtypes.bfloat16).view(np.uint16)
                           .tobytes(), raw=True),
        helper.make_tensor("i4", TensorProto.INT4, [2 * BIG + 2],
                           bytes(range(256)) * (BIG // 256) + b"\x12", raw=True),
        numpy_helper.from_array(np.arange(4, dtype=np.float32), "small"),
    ]


def test_big_plain_weights_are_apart_and_read_as_a_whole_parse_reads_them(tmp_path):
    proto = model_with(*tensors())
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    m = onnxopt.load(str(path))
    got = {v.name: v.const_value for v in m.graph.initializers}
    assert {k for k, t in got.items() if t.raw_apart} == {"f32", "f16", "i64", "i8", "bf16"}
    for t in proto.graph.initializer:
        mine = got[t.name]
        assert mine.proto is None or not mine.proto.HasField("raw_data") or not mine.raw_apart
        whole = numpy_helper.to_array(t)
        np.testing.assert_array_equal(mine.numpy().view(np.uint8), whole.view(np.uint8))
        assert mine.to_proto().SerializeToString() == t.SerializeToString()
        assert b"".join(bytes(p) for p in mine.serialized()) == t.SerializeToString()
        assert mine.raw_bytes() == t.raw_data
    assert lower_model(m).SerializeToString() == proto.SerializeToString()
    io.save(m, tmp_path / "o.onnx")
    assert (tmp_path / "o.onnx").read_bytes() == path.read_bytes()


def test_a_weight_read_in_place_is_read_only_and_passes_still_rewrite_around_it(tmp_path):
    proto = model_with(*tensors()[:2])
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    m = onnxopt.load(str(path))
    w = m.graph.initializers[0].const_value
    assert w.raw_apart and not w.numpy().flags.writeable
    result = onnxopt.optimize(str(path), "default")
    assert result.verified
    assert_equivalent(proto, result.model)


def _raw_field(data: bytes) -> bytes:
    return encode_varint(9 << 3 | 2) + encode_varint(len(data)) + data


def _with_initializer_bytes(proto: onnx.ModelProto, extra: bytes) -> bytes:
    """``proto`` serialized, with ``extra`` appended to its first initializer's message."""
    t = proto.graph.initializer[0]
    g = onnx.GraphProto()
    g.CopyFrom(proto.graph)
    del g.initializer[:]
    head = g.SerializeToString()
    body = t.SerializeToString() + extra
    graph = head + encode_varint(5 << 3 | 2) + encode_varint(len(body)) + body
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    m.ClearField("graph")
    return m.SerializeToString() + encode_varint(7 << 3 | 2) + encode_varint(len(graph)) + graph


@pytest.mark.parametrize("last", ["big", "small"])
def test_of_two_raw_data_fields_the_last_wins_as_in_parsing(last):
    big = np.arange(BIG // 4 + 1, dtype=np.float32)
    small = np.arange(3, dtype=np.float32)
    t = numpy_helper.from_array(big, "w")  # dims of big
    first, second = (small, big) if last == "big" else (big, small)
    t.raw_data = first.tobytes()
    data = _with_initializer_bytes(model_with(t), _raw_field(second.tobytes()))
    whole = onnx.ModelProto.FromString(data).graph.initializer[0]
    assert whole.raw_data == second.tobytes()
    if last == "small":  # the dims want more than the last raw_data: refused, as whole
        with pytest.raises(onnxopt.InvalidModelError, match="raw_data holds 12 bytes"):
            onnxopt.load(data)
        return
    w = onnxopt.load(data).graph.initializers[0].const_value
    assert w.raw_apart
    np.testing.assert_array_equal(w.numpy(), big)
    assert w.to_proto().SerializeToString() == numpy_helper.from_array(big, "w") \
        .SerializeToString()


def test_odd_layouts_are_parsed_whole():
    t = numpy_helper.from_array(np.zeros(BIG, np.float32), "w")
    t.data_location = TensorProto.EXTERNAL  # raw_data beside an external location: not ours
    assert io._split_weights(model_with(t).SerializeToString(), BIG)[2] == {}
    # The graph in two fields, which parsing merges: the walk steps aside, the load still works.
    proto = model_with(numpy_helper.from_array(np.ones(BIG, np.float32), "w"))
    rest = onnx.GraphProto()
    rest.initializer.extend(proto.graph.initializer)
    del proto.graph.initializer[:]
    tail = rest.SerializeToString()
    data = proto.SerializeToString() + encode_varint(7 << 3 | 2) + encode_varint(len(tail)) + tail
    with pytest.raises(ValueError):
        io._split_weights(data, BIG)
    w = onnxopt.load(data).graph.initializers[0].const_value
    assert not w.raw_apart and w.numpy().sum() == BIG


def test_corrupted_files_load_as_a_whole_parse_reads_them_or_are_refused():
    """Flipped, cut and inserted bytes: a file that loads has exactly the initializers a whole
    parse gives; one that does not is refused with an onnxopt error, never anything else."""
    import random

    data = model_with(*tensors()).SerializeToString()
    rng = random.Random(5)
    loaded = 0
    for _ in range(80):
        b = bytearray(data)
        kind = rng.randrange(3)
        if kind == 0:
            for _ in range(rng.randrange(1, 6)):
                b[rng.randrange(min(len(b), 4000))] = rng.randrange(256)
        elif kind == 1:
            b = b[:rng.randrange(len(b))]
        else:
            at = rng.randrange(len(b))
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        try:
            m = onnxopt.load(bytes(b))
        except onnxopt.OnnxoptError:
            continue
        loaded += 1
        whole = onnx.ModelProto.FromString(bytes(b))
        for t, v in zip(whole.graph.initializer, m.graph.initializers, strict=True):
            assert v.const_value.to_proto().SerializeToString() == t.SerializeToString()
    assert loaded
