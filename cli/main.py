"""``onnxopt``: optimize a model, show it as text, or check it.

    onnxopt IN [-o OUT] [-p PIPELINE | --preset NAME] [--list-passes] [--plugin FILE]
               [--verify/--no-verify] [--input-shape NAME:DIMS] [--seed N] [-q | -v] ...
    onnxopt show MODEL
    onnxopt check [--target tensorrt] MODEL
    onnxopt view MODEL [--diff OTHER]
    onnxopt verify A B [--verify-on RUNTIME,...] [--bench-on RUNTIME]

Exit codes: 0 success, 1 verification failed (or a check found blockers), 2 bad input or usage,
or a pass failed (a plugin that raised, broke the IR, created an op outside the model's opsets or
hid a change: nothing is written, even with --no-verify), 3 an internal error (a bug in onnxopt:
please report it).
Errors are one line on stderr; ``--debug`` shows the traceback. Only argparse is imported before
the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from typing import Optional

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        from ..ir.escape import escape

        sys.stderr.write(f"onnxopt: error: {escape(message)}\n")
        raise SystemExit(EXIT_USAGE)


def _optimize_parser() -> argparse.ArgumentParser:
    from .inputs import add_input_args, add_output_args

    p = _Parser(
        prog="onnxopt",
        description="Optimize an ONNX model with a pipeline of passes, verified against the "
                    "original in onnxruntime. Other commands: `onnxopt show MODEL`, "
                    "`onnxopt check [--target tensorrt] MODEL`, `onnxopt view MODEL`.",
    )
    p.add_argument("input", nargs="?", help="model to optimize (.onnx)")
    p.add_argument("--version", action=_VersionAction)
    p.add_argument("-o", "--output", help="where to write (default: IN with .opt.onnx)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-p", "--passes", help="pipeline, e.g. 'fold,fuse' or "
                   "'fixpoint(fold,simplify,dce){max=8}'")
    g.add_argument("--preset", help="a named pipeline (see --list-passes)")
    p.add_argument("--list-passes", action="store_true", help="list passes, rules and presets")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="load passes from a Python file (repeatable)")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="compare with the original in onnxruntime (default: on)")
    add_input_args(p)  # --input-shape, --inputs, --input-range, --seed, --atol, --rtol
    p.add_argument("--overwrite", action="store_true",
                   help="allow -o to name the input itself (it is replaced atomically)")
    p.add_argument("--force", action="store_true",
                   help="write the output even when verification fails")
    p.add_argument("--require-verified", action="store_true",
                   help="exit 1 and write nothing when verification cannot run (default: write "
                        "the output and say why it is not verified)")
    p.add_argument("--target-opset", type=int, metavar="N",
                   help="convert the model to default-domain opset N first, down or up "
                        "(the opset pass; the rest of the pipeline then respects N)")
    p.add_argument("--dynamic", action="append", default=[], metavar="SPEC",
                   help="for -p dynamize: free input dims, e.g. input_ids:0=batch,1=seq or batch")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="for -p dynamize: assume a freed size satisfies EXPR (height%%16==0, or "
                        "seq<=7 to allow slicing a table folded at the trace length; repeatable)")
    p.add_argument("--dynamize-values", action="store_true",
                   help="for -p dynamize: also rewrite values that merely equal a freed size")
    p.add_argument("--report", action="store_true", help="print the passes' detailed reports")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                   help="print the IR after each run of PASS ('*' for all)")
    p.add_argument("--verify-each", action="store_true",
                   help="after every pass, check IR invariants, the opsets of the nodes it "
                   "touched and that 'modified' is honest (always done after plugin passes)")
    p.add_argument("--check-modified", action="store_true",
                   help="fingerprint the IR around every pass and fail one whose 'modified' is "
                   "wrong (always done after plugin passes; cheap, unlike --verify-each)")
    p.add_argument("--reproducer", metavar="DIR",
                   help="on a pass failure, write the model before it and the pipeline here")
    p.add_argument("--html", metavar="PAGE", help="write an offline HTML report: the run, op "
                   "counts and the graph diff (each new node linked to its pass and rule)")
    from .verify import add_runtime_options

    add_runtime_options(p)  # --verify-on, --bench-on: where the model will run
    add_output_args(p, json_of="the summary", quiet=True, verbose=True)
    return p


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    from ..ir.escape import escape

    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    sys.stderr.write(f"onnxopt: error: {escape(first)}\n")  # model text never reaches the tty raw
    return code


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: reading the installed distribution's metadata
    scans site-packages, about 35 ms that every run would pay while building the parser."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"onnxopt {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxopt")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


def _list_passes(args) -> int:
    from ..passes import all_entries, load_plugin_file
    from ..passes.presets import PRESETS, SUMMARIES
    from ..passes.registry import broken_plugins

    for p in args.plugin:
        load_plugin_file(p)
    rows = []
    for e in all_entries():
        rows.append((e.name, e.summary, e.origin))
        for rname, summary in _rules_of(e.cls):
            rows.append((f"  {e.name}.{rname}", summary, "rule"))
    for name, why in sorted(broken_plugins().items()):  # listed, marked, and the rest goes on
        rows.append((name, f"BROKEN: {why}", "broken"))
    if args.json:
        import json

        print(json.dumps({"passes": [{"name": n.strip(), "summary": s, "origin": o}
                                     for n, s, o in rows],
                          "presets": [{"name": k, "pipeline": v, "summary": SUMMARIES.get(k, "")}
                                      for k, v in PRESETS.items()]}, indent=2))
        return EXIT_OK
    width = max(len(r[0]) for r in rows) if rows else 10
    print("passes:")
    for name, summary, _origin in rows:
        print(f"  {name:<{width}}  {summary}")
    print("presets:")
    for k, v in PRESETS.items():
        print(f"  {k:<{width}}  {SUMMARIES.get(k, '')}: {v}")
    return EXIT_OK


def _rules_of(cls) -> list[tuple[str, str]]:
    """(name, summary) of a pass's rules: its ``rules`` (every RewritePass has them), else its
    module's RULES table."""
    rules = getattr(cls, "rules", None)
    if isinstance(rules, (list, tuple)) and all(getattr(r, "name", "") for r in rules):
        table = getattr(sys.modules.get(cls.__module__), "RULES", None)
        given = table if isinstance(table, dict) else {}
        return sorted((r.name, _rule_summary(given.get(r.name) or r)) for r in rules)
    table = getattr(sys.modules.get(cls.__module__), "RULES", None)
    if isinstance(table, dict):
        return [(n, _rule_summary(r)) for n, r in sorted(table.items()) if _rule_summary(r)]
    return []


def _rule_summary(rule) -> str:
    """A rule's one-line summary, whether the table holds text, a rule object or a function."""
    if isinstance(rule, str):
        return rule
    text = getattr(rule, "summary", None) or (getattr(rule, "__doc__", None) or "")
    return text.strip().split("\n")[0]


def _default_output(path: str) -> str:
    base = path[:-5] if path.endswith(".onnx") else path
    return base + ".opt.onnx"


def _run_optimize(args) -> int:
    out, pipeline = _optimize_arguments(args)
    from .. import io, optimize, optimizer
    from ..errors import VerificationError
    from ..ir import gcpause

    gcpause.FREEZE_AFTER = True  # one process, one model: never rescan the IR
    # One process: forked children may audit a big model while it is lifted, and run the
    # original while the passes run.
    io.AUDIT_IN_CHILD = True
    optimizer.ORIGINAL_IN_CHILD = True
    from .inputs import parse_input_shapes, verify_options
    from .report import Progress

    vopts = verify_options(args) if args.verify else None
    input_shapes = parse_input_shapes(args.input_shape)
    from .verify import check_specs

    runtimes, bench_rt = check_specs(args.verify_on, args.bench_on)  # missing one: exit 2 now
    if args.dynamic or args.dynamize_values or args.constraint:
        from ..passes.pipeline import parse_pipeline

        items = parse_pipeline(pipeline)
        _attach_dynamic(items, args.dynamic, args.dynamize_values, args.constraint)
        pipeline = items
    interactive = sys.stdout.isatty() and not args.quiet and not args.json
    progress = Progress() if interactive else None
    failed = None
    try:
        result = optimize(args.input, pipeline, verify=args.verify, verify_options=vopts,
                          verify_each=args.verify_each, print_ir_after=args.print_ir_after,
                          check_modified=True if args.check_modified else None,
                          plugins=args.plugin, progress=progress, input_shapes=input_shapes,
                          target_opset=args.target_opset, reproducer_dir=args.reproducer,
                          verbose=args.verbose, print_fn=_print_escaped,
                          require_verified=args.require_verified, report=args.html)
    except VerificationError as e:
        result = getattr(e, "result", None)
        failed = e
        if result is None:
            raise
    finally:
        if progress:
            progress.stop()
    checks = None
    if failed is None and (runtimes or bench_rt):
        failed, checks = _runtime_checks(args, result, runtimes, bench_rt, vopts, input_shapes)
    wrote = _write_output(args, result, out, failed)
    _print_result(args, result, out if wrote else None, checks, interactive)
    if failed is not None:
        return _fail(str(failed) + ("" if wrote else " (no output written; --force writes it)"),
                     EXIT_VERIFY)
    return EXIT_OK


def _optimize_arguments(args) -> tuple[str, str]:
    """Refuse unusable arguments before anything is loaded: the output path and pipeline."""
    from ..errors import UsageError

    if not args.input:
        raise UsageError("no input model (see onnxopt --help)")
    from .inputs import check_model_path, check_output, check_reproducer_dir

    check_model_path(args.input)
    out = args.output or _default_output(args.input)
    pipeline = args.passes or args.preset or "default"
    if args.preset:
        from ..passes.presets import PRESETS

        if args.preset not in PRESETS:
            raise UsageError(f"unknown preset {args.preset!r} (presets: {', '.join(PRESETS)})")
    check_output(out)
    if os.path.exists(out) and os.path.samefile(out, args.input) and not args.overwrite:
        raise UsageError(f"{out}: is the input model; pass --overwrite to replace it")
    if args.reproducer:
        check_reproducer_dir(args.reproducer)
    if args.html:
        from ..report import check_report_path

        check_report_path(args.html, args.input, out)
    if args.require_verified and not args.verify:
        raise UsageError("--require-verified needs verification (drop --no-verify)")
    return out, pipeline


def _write_output(args, result, out: str, failed) -> bool:
    """Save the result unless verification failed (and no --force); True when written."""
    from .. import save
    from ..errors import UsageError

    if failed is not None and not args.force:
        return False
    try:
        save(result.model, out, serialized=result.serialized)
    except OSError as e:  # the folder filled up or changed under us: nothing is left behind
        raise UsageError(f"{out}: cannot write ({e.strerror or e})") from None
    result.after.file_bytes = os.path.getsize(out)
    return True


def _print_result(args, result, written: Optional[str], checks, interactive: bool) -> None:
    """The summary: JSON with --json, else the table (unless -q), with --verify-on checks."""
    from .report import print_summary, summary_dict
    from .verify import all_ok, summary_lines

    if args.json:
        import json

        d = summary_dict(result, args.input, written)
        if checks is not None:
            d.update(checks)
            d["verified"] = d["verified"] and all_ok(checks)
        print(json.dumps(d, indent=2, default=str))
    elif not args.quiet:
        print_summary(result, args.input, written, rich_ok=interactive,
                      verbose=args.verbose, report=args.report)
        if checks is not None:
            for line in summary_lines(checks):
                print(line)


def _runtime_checks(args, result, runtimes, bench_rt, vopts, input_shapes):
    """--verify-on/--bench-on on the optimized model before it is written: (error, checks)."""
    from ..errors import NotVerifiedError, VerificationError
    from ..optimizer import _Lowered
    from ..verify import VerifyOptions
    from .verify import EXIT_VERIFY as failed_code
    from .verify import exit_code, runtime_checks

    vopts = vopts or VerifyOptions(seed=args.seed)
    if input_shapes and not vopts.input_shapes:
        vopts.input_shapes = dict(input_shapes)
    lowered = _Lowered(result.model)
    try:
        checks = runtime_checks(args.input, lowered.ref, runtimes, bench_rt, vopts,
                                args.bench_seconds)
    finally:
        lowered.close()
    if exit_code(checks, args.require_verified) != failed_code:
        return None, checks
    bad = next(r for r in checks["runtimes"] if r["status"] != "ok")
    cls = VerificationError if bad["status"] == "failed" else NotVerifiedError
    return cls(f"verification on {bad['runtime']} {bad['status']}: {bad['reason']}"), checks


def _print_escaped(text: str) -> None:
    """``--print-ir-after``: the IR text with any control character from the model escaped."""
    from ..ir.escape import escape

    print(escape(text, newlines=True))


def _attach_dynamic(items, dynamic: list[str], values: bool, constraint=()) -> None:
    """Give --dynamic/--dynamize-values/--constraint to every dynamize pass in the pipeline
    (groups too)."""
    from ..errors import UsageError

    if not _set_dynamic(items, dynamic, values, list(constraint)):
        raise UsageError("--dynamic, --constraint and --dynamize-values need the dynamize pass "
                         "in the pipeline (-p dynamize)")


def _set_dynamic(items, dynamic: list[str], values: bool, constraint=()) -> bool:
    from ..passes.pipeline import Group, PassSpec

    found = False
    for it in items:
        if isinstance(it, Group):
            found |= _set_dynamic(it.items, dynamic, values, constraint)
        elif isinstance(it, PassSpec) and it.name == "dynamize":
            if dynamic:
                it.options["dynamic"] = ";".join(dynamic)
            if values:
                it.options["values"] = True
            if constraint:
                it.options["constraint"] = ";".join(constraint)
            found = True
    return found


# Subcommand -> "module:entry", imported only when named (``--help`` imports none of them).
_COMMANDS = {"show": "show:run_show", "check": "check:run_check", "verify": "verify:run_verify",
             "cut": "cut:run_cut", "view": "view:run_view"}


def _command(name: str):
    from importlib import import_module

    module, _, entry = _COMMANDS[name].partition(":")
    return getattr(import_module(f".{module}", __package__), entry)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the ``onnxopt`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    _open_closed_streams()
    try:
        if argv and argv[0] in _COMMANDS:
            return _command(argv[0])(argv[1:])
        args = _optimize_parser().parse_args(argv)
        if args.list_passes:
            return _list_passes(args)
        return _run_optimize(args)
    except SystemExit as e:
        return int(e.code or 0)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # `onnxopt --list-passes | head`: the reader left, not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except Exception as e:  # the one place errors become exit codes
        if debug:
            raise
        from ..errors import OnnxoptError

        if isinstance(e, OnnxoptError):
            if e.exit_code == EXIT_INTERNAL:  # a pass crashed: onnxopt's bug, say so
                return _fail(f"internal error: {e} (please report it; --debug shows the "
                             "traceback)", EXIT_INTERNAL)
            return _fail(str(e), e.exit_code)
        if isinstance(e, MemoryError):
            return _fail("out of memory", EXIT_USAGE)
        if isinstance(e, RecursionError):
            return _fail("the model is nested too deeply", EXIT_USAGE)
        return _fail(f"internal error: {type(e).__name__}: {e} (run with --debug for the "
                     "traceback)", EXIT_INTERNAL)


def _open_closed_streams() -> None:
    """A command started with stdout or stderr closed (``>&-``) sees None there: what it would
    print goes nowhere, and the model is still optimized and the exit code still tells."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")


def run() -> None:
    """The ``onnxopt`` console script: exit with :func:`main`'s code without finalizing the
    interpreter. When main returns, the command has done all it owes (the output renamed into
    place); the streams are flushed and the exit handlers run here, so finalization would only
    free every module and run onnxruntime's static destructors: 10-45 ms a run on small models
    (benchmarks/RESULTS.md). A thread still running gets the normal exit, which waits for it."""
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that left, a closed stream: as main treats it
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    run()
