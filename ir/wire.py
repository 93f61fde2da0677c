"""Protobuf's wire format, read and written by hand where the message API would copy weights.

Loading measures and sets apart big ``raw_data`` fields from a file's bytes before parsing
(:mod:`onnxopt.io`), saving splices big tensors into the output one at a time
(:mod:`onnxopt.splice`), and a tensor whose raw data was set apart serializes around it
(:meth:`onnxopt.ir.Tensor.serialized`). ONNX uses no groups; a field that cannot be read raises
ValueError or IndexError, and callers fall back to the message API.
"""

from __future__ import annotations


def read_varint(b, i: int) -> tuple[int, int]:
    """The varint at ``b[i]`` and where it ends."""
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, i
        shift += 7


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def fields(b, i: int, end: int):
    """(field number, wire type, payload start, payload end) of each field in b[i:end]."""
    while i < end:
        tag, i = read_varint(b, i)
        wt = tag & 7
        if wt == 0:
            _, j = read_varint(b, i)
        elif wt == 1:
            j = i + 8
        elif wt == 2:
            n, i = read_varint(b, i)
            j = i + n
        elif wt == 5:
            j = i + 4
        else:  # groups: never in ONNX
            raise ValueError("group")
        yield tag >> 3, wt, i, j
        i = j


def field_starts(b, i: int, end: int):
    """(field start, (number, wire type, payload start, payload end)) of each field."""
    for f in fields(b, i, end):
        yield i, f
        i = f[3]


def strict_field_starts(b, i: int, end: int):
    """:func:`field_starts`, refusing (ValueError) a field that runs past ``end``."""
    for t, f in field_starts(b, i, end):
        if f[3] > end:
            raise ValueError("field past its message")
        yield t, f


__all__ = ["encode_varint", "field_starts", "fields", "read_varint", "strict_field_starts"]
