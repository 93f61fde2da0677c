"""``onnxopt verify A B``: does B compute what A computes, on the runtimes it will run on?

    onnxopt verify ORIGINAL OPTIMIZED [--verify-on RUNTIME[,RUNTIME...]] [--bench-on RUNTIME]
                   [--input-shape NAME:DIMS] [--inputs NPZ] [--seed N] [--json]

Runtimes: ``ort`` (default: onnxruntime, optimizations off), ``ort-full`` (ORT_ENABLE_ALL),
``openvino`` (``pip install 'onnxopt[openvino]'``), ``ort:<ExecutionProvider>``. Exit codes:
0 every runtime matches (a runtime that cannot run the original is "not verified", said in one
line, and exits 0 unless ``--require-verified``), 1 a runtime finds a mismatch (or, with
``--require-verified``, one cannot verify), 2 bad input or a runtime not installed.
The same checks run after ``onnxopt IN --verify-on ... --bench-on ...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .inputs import add_input_args, add_output_args
from .main import EXIT_OK, EXIT_VERIFY, _Parser


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """``--verify-on``/``--bench-on``/``--bench-seconds`` (shared with the optimize command)."""
    p.add_argument("--verify-on", metavar="RUNTIME[,RUNTIME...]",
                   help="also compare on these runtimes: ort, ort-full, openvino, "
                        "ort:<ExecutionProvider>")
    p.add_argument("--bench-on", metavar="RUNTIME",
                   help="time original vs optimized on this runtime (1 thread and all threads)")
    p.add_argument("--bench-seconds", type=float, default=2.0, metavar="S",
                   help="time budget per model and thread count for --bench-on (default 2)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="onnxopt verify", description="Compare two models' outputs on the runtimes "
                "they will run on (same generated or given inputs, per-dtype tolerances).")
    p.add_argument("original")
    p.add_argument("optimized")
    add_runtime_options(p)
    add_input_args(p)  # --input-shape, --inputs, --input-range, --seed, --atol, --rtol
    p.add_argument("--require-verified", action="store_true",
                   help="exit 1 when a runtime cannot run the original")
    add_output_args(p, json_of="the verdicts")
    return p


def check_specs(verify_on: str | None, bench_on: str | None) -> tuple[list, Any]:
    """Parse and check the runtimes before any work: a missing one is a usage error."""
    if not verify_on and not bench_on:
        return [], None  # onnxopt.runtimes (and what it imports) is not needed
    from ..ir.errors import UsageError
    from ..runtimes import parse_runtimes

    runtimes = parse_runtimes(verify_on) if verify_on else []
    bench = None
    if bench_on:
        found = parse_runtimes(bench_on)
        if len(found) != 1:
            raise UsageError(f"--bench-on takes one runtime, got {bench_on!r}")
        bench = found[0]
    return runtimes, bench


def runtime_checks(original, optimized, runtimes: list, bench_rt, vopts,
                   budget_s: float = 2.0) -> dict:
    """Run --verify-on and --bench-on; {"runtimes": [...], "bench": [...]} as plain data."""
    from ..runtimes import bench_pair, first_line, verify_on
    from ..verify import Verifier

    out: dict = {"runtimes": [r.as_dict() for r in verify_on(original, optimized, runtimes,
                                                              vopts)] if runtimes else []}
    if bench_rt is not None:
        feeds = Verifier(original, vopts).feeds()
        if not feeds:
            out["bench"] = {"error": "no inputs the original runs on"}
        else:
            try:
                out["bench"] = bench_pair(bench_rt, original, optimized, feeds[0][1], budget_s)
            except Exception as e:  # noqa: BLE001 - a runtime that cannot run it says why
                out["bench"] = {"error": f"{bench_rt.spec}: {first_line(e)}"}
    return out


def all_ok(checks: dict) -> bool:
    """Every runtime verdict is "ok" (the JSON reports' ``verified``)."""
    return all(r["status"] == "ok" for r in checks["runtimes"])


def summary_lines(checks: dict) -> list[str]:
    """One line per runtime verdict and per timed thread count, plus warnings; escaped, since
    runtimes' reasons quote names from the model."""
    lines = [f"verify on {r['runtime']}: {r['status']}: {r['reason']}"
             for r in checks.get("runtimes", [])]
    bench = checks.get("bench")
    if isinstance(bench, dict):
        lines.append(f"bench: {bench['error']}")
    for row in bench or []:
        if isinstance(row, str):
            continue
        a, b = row["original"], row["optimized"]
        lines.append(f"bench on {row['runtime']}, {row['threads']} thread(s): original "
                     f"{a['median_ms']:.3f} ms [{a['p10_ms']:.3f}-{a['p90_ms']:.3f}], optimized "
                     f"{b['median_ms']:.3f} ms [{b['p10_ms']:.3f}-{b['p90_ms']:.3f}] "
                     f"({a['runs']}/{b['runs']} runs, median [p10-p90])")
        if row["slower"]:
            lines.append(f"warning: the optimized model is slower on {row['runtime']} at "
                         f"{row['threads']} thread(s) ({b['median_ms']:.3f} ms vs "
                         f"{a['median_ms']:.3f} ms)")
    from ..ir.escape import escape

    return [escape(line) for line in lines]


def exit_code(checks: dict, require_verified: bool) -> int:
    """1 when a runtime fails (or cannot verify, with require_verified), else 0."""
    statuses = [r["status"] for r in checks.get("runtimes", [])]
    if "failed" in statuses:
        return EXIT_VERIFY
    if require_verified and any(s != "ok" for s in statuses):
        return EXIT_VERIFY
    return EXIT_OK


def run_verify(argv: list[str]) -> int:
    """Entry point of ``onnxopt verify``."""
    from .inputs import check_model_path, verify_options

    args = _parser().parse_args(argv)
    for path in (args.original, args.optimized):
        check_model_path(path)
    runtimes, bench_rt = check_specs(args.verify_on or "ort", args.bench_on)
    vopts = verify_options(args, input_shapes=True)
    checks = runtime_checks(args.original, args.optimized, runtimes, bench_rt, vopts,
                            args.bench_seconds)
    code = exit_code(checks, args.require_verified)
    if args.json:
        import json

        print(json.dumps({"original": args.original, "optimized": args.optimized, **checks,
                          "verified": all_ok(checks)}, indent=2, default=str))
    else:
        for line in summary_lines(checks):
            print(line)
    return code
