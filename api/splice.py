"""Serialize a model to a file with its big weights written one at a time.

``lower_model(model).SerializeToString()`` holds the model three times at its peak: the IR's
tensors, the lowered proto's copies of them, and the serialized bytes (a 622 MB GPT-2 peaked at
2.8 GB in ``save``, 1.9 GB above what the passes had left). Here the main graph's big
initializers are lowered as name-only placeholders, the small rest is serialized, and the file
is written from that, each placeholder replaced by its tensor's own serialization as the walk
reaches it. Protobuf serializes a submessage exactly as it serializes on its own, so the bytes
are the same as the whole serialization's; only the length prefixes of the graph field and of
each spliced initializer field are computed here.
"""

from __future__ import annotations

from typing import BinaryIO, Optional

from .ir.wire import encode_varint, field_starts

SPLICE_MIN_BYTES = 1 << 20  # initializers from this size are serialized one at a time
_GRAPH, _INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer


class _Placeholders:
    """The ``tensor_to_proto`` hook of ``lower_model``: a main-graph initializer of at least
    SPLICE_MIN_BYTES becomes a proto holding its name only (its tensor kept, in order)."""

    def __init__(self, model):
        self.main = {v.name: v.const_value for v in model.graph.initializers}
        self.big: list = []  # (name, tensor) in the order lowering met them
        self.placeholders = 0

    def __call__(self, tensor, name: str):
        if (tensor.nbytes or 0) >= SPLICE_MIN_BYTES and self.main.get(name) is tensor:
            import onnx

            self.big.append((name, tensor))
            self.placeholders += 1
            p = onnx.TensorProto()
            p.name = name
            return p
        return tensor.to_proto(name)


def write_model(model, f: BinaryIO) -> None:
    """Write ``model`` serialized to ``f`` (bytes equal to ``lower_model(model)
    .SerializeToString()``); big main-graph initializers go one at a time."""
    from .ir.lower import assign_names, lower_model

    assign_names(model)  # what lowering names them, so the placeholders can be recognized
    hook = _Placeholders(model)
    proto = lower_model(model, hook)
    head = proto.SerializeToString()
    del proto
    plan = _plan(head, hook.big) if hook.big else None
    if plan is None:  # nothing big, or the layout is not the one expected: the whole way
        f.write(head if not hook.big else lower_model(model).SerializeToString())
        return
    graph_tag, gs, ge, fields = plan
    graph_len = sum(len(x) if isinstance(x, range) else _spliced_len(x) for x in fields)
    f.write(head[:graph_tag])
    f.write(encode_varint(_GRAPH << 3 | 2) + encode_varint(graph_len))
    for x in fields:
        if isinstance(x, range):
            f.write(head[x.start:x.stop])
            continue
        parts = _serialized(x)
        f.write(encode_varint(_INITIALIZER << 3 | 2) + encode_varint(sum(map(len, parts))))
        for part in parts:
            f.write(part)
        del parts
    f.write(head[ge:])


def _plan(head: bytes, big: list) -> Optional[tuple]:
    """(graph field start, payload start, payload end, the graph's fields): a ``range`` of
    bytes to copy, or (name, tensor) for each placeholder in place; None when the placeholders are not where
    lowering put them (one graph field, every placeholder one initializer of it, in order)."""
    graphs = [(t, s, e) for t, (num, wt, s, e) in field_starts(head, 0, len(head))
              if num == _GRAPH and wt == 2]
    if len(graphs) != 1:
        return None
    graph_tag, gs, ge = graphs[0]
    fields: list = []
    queue = list(big)
    for t, (num, wt, s, e) in field_starts(head, gs, ge):
        if queue and num == _INITIALIZER and wt == 2 and head[s:e] == _placeholder(queue[0][0]):
            fields.append(queue.pop(0))
        else:
            fields.append(range(t, e))
    return None if queue else (graph_tag, gs, ge, fields)


def _placeholder(name: str) -> bytes:
    import onnx

    p = onnx.TensorProto()
    p.name = name
    return p.SerializeToString()


def _serialized(item: tuple) -> tuple:
    name, tensor = item
    return tensor.serialized(name)


def _spliced_len(item: tuple) -> int:
    """Bytes of the initializer field that replaces a placeholder (tag, length, tensor). The
    proto is built again when the tensor is written: keeping every serialization until then
    would hold the whole model again (an unchanged tensor's proto is its original, not a copy,
    and raw data parsed apart is not copied at all)."""
    name, tensor = item
    n = sum(map(len, tensor.serialized(name))) if tensor.raw_apart \
        else tensor.to_proto(name).ByteSize()
    return len(encode_varint(_INITIALIZER << 3 | 2)) + len(encode_varint(n)) + n


__all__ = ["SPLICE_MIN_BYTES", "write_model"]
