"""Model texts that several test files build: a chain of unary ops, and the erf form of GELU
that exporters write out."""

from __future__ import annotations

import textwrap


def chain(*ops: str, opset: int = 17, ir: int = 8) -> str:
    """``x -> ops[0] -> ops[1] -> ... -> y`` on float[N,4], the values named a, b, c, ...:
    ``chain("Identity", "Relu")`` is ``a = Identity (x)`` then ``y = Relu (a)``."""
    names = ["x"] + [chr(ord("a") + k) for k in range(len(ops) - 1)] + ["y"]
    body = "\n".join(f"    {out} = {op} ({src})" for op, src, out in zip(ops, names, names[1:]))
    return (f'<ir_version: {ir}, opset_import: ["" : {opset}]>\n'
            f"g (float[N,4] x) => (float[N,4] y) {{\n{body}\n}}\n")


def erf_gelu(x: str, y: str, indent: str = "   ") -> str:
    """``y = GELU(x)`` as exporters write it out: x * 0.5 * (1 + erf(x / sqrt 2)), seven ops of
    which three are Constants. Its values are named k, one, half, s, e, h and a."""
    return textwrap.indent(f"""\
k = Constant <value = float {{1.4142135}}> ()
one = Constant <value = float {{1.0}}> ()
half = Constant <value = float {{0.5}}> ()
s = Div ({x}, k)
e = Erf (s)
h = Add (one, e)
a = Mul ({x}, half)
{y} = Mul (a, h)""", indent)
