"""``onnxopt show MODEL``: print a model in ONNX textual syntax (what ``onnx.parser`` reads back).

Names and strings from the model are escaped, so a hostile model cannot drive the terminal.
"""

from __future__ import annotations

import sys


def _parser():
    from .inputs import add_output_args
    from .main import _Parser

    p = _Parser(prog="onnxopt show", description="Print a model in ONNX textual syntax.")
    p.add_argument("model")
    p.add_argument("--max-inline", type=int, default=16,
                   help="print initializer data up to this many elements (default 16)")
    add_output_args(p)  # --debug
    return p


def run_show(argv: list[str]) -> int:
    """Entry of ``onnxopt show``; returns the exit code."""
    args = _parser().parse_args(argv)
    from .. import load
    from ..ir import print_model
    from ..ir.escape import escape

    sys.stdout.write(escape(print_model(load(args.model), max_inline=args.max_inline),
                            newlines=True))
    return 0
