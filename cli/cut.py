"""``onnxopt cut``: split a model into pipeline stages, extract a subgraph, or run a pipeline.

    onnxopt cut MODEL --at T[,T...] [--at ...] -o DIR        N boundaries -> N+1 stages
    onnxopt cut MODEL --stages N [--balance flops|params|memory] -o DIR
    onnxopt cut MODEL --extract --inputs A,B --outputs C,D -o DIR
    onnxopt cut --run DIR --inputs x.npz [-o out.npz]

Exit codes: 0 success, 1 verification by composition failed (nothing written), 2 bad input (one
line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..ir.escape import escape
from .inputs import (add_input_args, add_output_args, check_output, parse_input_shapes,
                     read_feeds)


def _parser():
    from .main import _Parser

    p = _Parser(prog="onnxopt cut",
                description="Split a model into pipeline stages (--at, --stages) or extract a "
                            "subgraph (--extract); the stages, run in order, are checked to "
                            "reproduce the original's outputs bit for bit. --run DIR runs a "
                            "pipeline written here.")
    p.add_argument("model", nargs="?", help="model to cut (.onnx)")
    p.add_argument("--at", action="append", default=[], metavar="T[,T...]",
                   help="one boundary: the tensors that cross it (repeatable, in order)")
    p.add_argument("--stages", type=int, metavar="N", help="choose N-1 boundaries")
    p.add_argument("--balance", default="flops", choices=("flops", "params", "memory"),
                   help="what --stages balances (default flops)")
    p.add_argument("--extract", action="store_true",
                   help="take out the subgraph from --inputs to --outputs")
    p.add_argument("--inputs", metavar="A,B | NPZ",
                   help="--extract: the subgraph's input tensors; --run: feeds (.npz)")
    p.add_argument("--outputs", metavar="C,D", help="--extract: the subgraph's output tensors")
    p.add_argument("--run", metavar="DIR", help="run the pipeline in DIR on --inputs")
    p.add_argument("-o", "--output", help="folder to write (cut); .npz for the outputs (--run)")
    add_input_args(p, verification=False)  # --input-shape (costs and check), --seed (check)
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="check the composition against the original (default: on)")
    add_output_args(p, json_of="the manifest", quiet=True)
    return p


def run_cut(argv: list[str]) -> int:
    """Entry of ``onnxopt cut`` (``onnxopt.cli.main`` dispatches here); returns the exit code."""
    from ..ir.errors import UsageError

    args = _parser().parse_args(argv)
    if args.run:
        return _run(args)
    if not args.model:
        raise UsageError("cut: no model (see onnxopt cut --help)")
    if not args.output:
        raise UsageError("cut: give the output folder (-o DIR)")
    extract = None
    if args.extract:
        if not args.outputs:
            raise UsageError("--extract needs --outputs (and --inputs)")
        extract = (args.inputs or "", args.outputs)
    elif args.inputs or args.outputs:
        raise UsageError("--inputs/--outputs go with --extract (or --run)")
    from ..cutting import cut
    from ..verify import VerifyOptions

    result = cut(args.model, at=args.at or None, stages=args.stages, balance=args.balance,
                 extract=extract, input_shapes=parse_input_shapes(args.input_shape),
                 output_dir=args.output, verify=args.verify,
                 verify_options=VerifyOptions(seed=args.seed))
    if args.json:
        print(json.dumps(result.manifest, indent=2))
    elif not args.quiet:
        sys.stdout.write(summary(result, args.output))
    return 0


def summary(result: Any, out_dir: str) -> str:
    """The stages as a table, then the verdict."""
    man = result.manifest
    rows = [("stage", "nodes", "inputs", "outputs", "flops", "params", "boundary bytes")]
    for st in man["stages"]:
        ins = ", ".join(i["name"] + ("" if i["from"] == "input" else f" (<{i['from']})")
                        for i in st["inputs"])
        rows.append((str(st["index"]), str(st["nodes"]), _short(ins), _short(", ".join(
            st["outputs"])), _short(st["flops"], 28), _bytes(st["params_bytes"]),
            _short(st["boundary_bytes"], 24)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = {"ok": "verified", "off": "not verified (--no-verify)"}.get(
        result.verification, result.verification)
    lines.append(f"{len(man['stages'])} stage(s) written to {out_dir}/ ({verdict}"
                 + (f": {result.reason}" if result.reason else "") + ")")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(escape(line) for line in lines) + "\n"  # names come from the model


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _run(args) -> int:
    from ..ir.errors import UsageError

    if args.model or args.at or args.stages or args.extract:
        raise UsageError("--run takes a pipeline folder and --inputs only")
    if not args.inputs:
        raise UsageError("--run needs --inputs x.npz")
    if args.output:  # refused before the run, like the optimize command's -o
        if not args.output.endswith(".npz"):
            raise UsageError("--run -o: give a .npz file for the outputs")
        check_output(args.output)
    import numpy as np

    feeds = read_feeds(args.inputs)[0]  # a FIFO or a pickled .npz is refused, never read
    from ..cutting import run_pipeline

    outs = run_pipeline(args.run, feeds)
    if args.output:
        np.savez(args.output, **{k: np.asarray(v) for k, v in outs.items()})
    if not args.quiet:
        for name, v in outs.items():
            a = np.asarray(v)
            print(f"{escape(name)}: {a.dtype}{list(a.shape)}")
        if args.output:
            print(f"outputs written to {os.path.abspath(args.output)}")
    return 0
