"""``onnxopt check``: a model health report, or a readiness report for a target runtime.

    onnxopt check MODEL [--json]                      health: checker errors, unknown shapes,
                                                      unused initializers, ops beyond the opset
    onnxopt check --target tensorrt MODEL [--json]    what TensorRT 10's ONNX parser rejects or
                                                      restricts, node by node, with the fix

Exit codes: 0 when nothing blocks, 1 when something does, 2 for bad input (one-line error).
The text report groups findings by kind; ``--json`` prints the same data for CI. The model is
only read: shape inference annotates the in-memory IR, nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

TARGETS = ("tensorrt",)
EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
# Lists of values in the text report stop after this many (the JSON report has them all).
TEXT_LIMIT = 12

HEALTH_KINDS = {
    "checker": "onnx.checker errors",
    "opset": "ops beyond the declared opset",
    "shape-error": "shape contradictions",
    "unknown-shape": "values with unknown shapes",
    "declared-shape": "declared shapes the graph disproves",
    "unused-initializer": "unused initializers",
    "unused-input": "unused inputs",
}


def _parser():
    from .inputs import add_output_args
    from .main import _Parser

    p = _Parser(prog="onnxopt check",
                description="Check a model: its health (no --target), or what a target runtime's "
                            "ONNX importer rejects or restricts (--target tensorrt). Exit code 0 "
                            "when nothing blocks, 1 when something does, 2 for bad input.")
    p.add_argument("model", help="model to check (.onnx)")
    p.add_argument("--target", choices=TARGETS, help="check readiness for this runtime")
    p.add_argument("--html", metavar="PAGE", help="also write an offline HTML page with the "
                   "findings on the graph")
    add_output_args(p, json_of="the report")
    return p


def run_check(argv: list[str]) -> int:
    """Entry of ``onnxopt check`` (``onnxopt.cli.main`` dispatches here); returns the exit code."""
    args = _parser().parse_args(argv)
    from .inputs import check_model_path

    check_model_path(args.model)
    if args.html:
        from ..report import check_report_path

        check_report_path(args.html, args.model)
    from .. import load

    problems: list = []  # what the runtime would refuse in a node: findings, not a load error
    model = load(args.model, problems=problems)
    if args.target == "tensorrt":
        from ..passes.tensorrt.support import check_tensorrt

        report = check_tensorrt(model)
        title = f"TensorRT readiness of {args.model}"
        kinds = _tensorrt_kinds()
    else:
        report = check_health(model, args.model)
        title = f"health of {args.model}"
        kinds = HEALTH_KINDS
    _add_load_problems(report, problems)
    if args.html:
        from ..report import write_check

        write_check(args.html, model, title, report)
    if args.json:
        print(json.dumps(report_dict(report, args.model, kinds), indent=2, default=str))
    else:
        sys.stdout.write(format_report(report, title, kinds))
    return EXIT_OK if report.ok else EXIT_BLOCKED


def _add_load_problems(report, problems: list) -> None:
    """Node problems load() set aside (schema, control-flow arity) as blocking "checker"
    findings, unless onnx.checker found one already (it stops at its first: the same one);
    ops beyond the opset are the health report's "opset" findings already."""
    from ..passes.tensorrt.support import BLOCK, Finding, Fix

    if any(f.kind == "checker" for f in report.findings):
        return
    for kind, msg in problems:
        if kind == "opset" and report.target != "tensorrt":
            continue
        report.findings.append(Finding("checker", BLOCK, "", "", msg, Fix("none", ""),
                                       "checker", "", ""))


def _tensorrt_kinds() -> dict[str, str]:
    from ..passes.tensorrt.matrix import load_matrix

    return dict(load_matrix()["kinds"])


# -- the health report ----------------------------------------------------------------------------


def check_health(model, path: Optional[str] = None):
    """Health findings for an IR model (``path``, when given, is what onnx.checker reads, so
    external data and models over 2 GB are checked as files)."""
    from ..passes.tensorrt.support import BLOCK, WARN, Fix, Report

    report = Report("health")
    none = Fix("none", "")

    def add(kind: str, severity: str, node: str, op: str, reason: str, fix: Fix = none,
            graph: str = "") -> None:
        from ..passes.tensorrt.support import Finding

        report.findings.append(Finding(kind, severity, node, op, reason, fix, kind, "", graph))

    # onnx.checker: the first error it meets (it stops there).
    err = _onnx_checker(model, path)
    if err:
        add("checker", BLOCK, "", "", err)

    # Ops that the imported opset does not have.
    for node, graph, domain, version in _versioned_nodes(model):
        problem = _opset_problem(node, domain, version)
        if problem:
            add("opset", BLOCK, _node_id(node), node.op_type, problem,
                Fix("option", "import a newer opset or convert: onnxopt MODEL --target-opset N"),
                graph)
        report.checked_nodes += 1

    # Shapes: contradictions, unknown shapes, declared shapes the graph disproves.
    info = None
    from ..passes.shapes import infer_shapes

    try:
        info = infer_shapes(model)
    except Exception as e:  # a contradiction stops inference: that is the finding
        add("shape-error", BLOCK, "", "", f"{type(e).__name__}: {str(e).splitlines()[0]}")
    if info is not None:
        for issue in getattr(info, "errors", ()):
            n = getattr(issue, "node", None)
            add("shape-error", BLOCK, _node_id(n) if n is not None else "",
                n.op_type if n is not None else "", getattr(issue, "message", str(issue)))
        for issue in getattr(info, "hint_conflicts", ()):
            n = getattr(issue, "node", None)
            add("declared-shape", WARN, _node_id(n) if n is not None else "",
                n.op_type if n is not None else "", getattr(issue, "message", str(issue)),
                Fix("preset", "run -p shapes to rewrite the declared shapes", ("shapes",)))
    unknown = _unknown_shapes(model)
    for v, node, graph, why in unknown:
        add("unknown-shape", WARN, _node_id(node) if node is not None else "",
            node.op_type if node is not None else "", f"{v.name or 'an unnamed value'}: {why}",
            graph=graph)

    # Unused initializers and inputs.
    from ..passes.tensorrt.support import graph_label

    for g in model.graphs():
        label = graph_label(g)
        for v in g.initializers:
            if not v.has_uses():
                size = v.const_value.size if v.const_value is not None else 0
                add("unused-initializer", WARN, v.name or "", "",
                    f"initializer {v.name!r} ({size} elements) is never read",
                    Fix("preset", "run -p dce", ("dce",)), label)
        if g is model.graph:
            for v in g.inputs:
                if v.const_value is None and not v.has_uses():
                    add("unused-input", WARN, v.name or "", "",
                        f"input {v.name!r} is never read", none, label)
    report.info = {"opset": dict(model.opset_imports), "nodes": model.num_nodes(),
                   "shape_summary": info.summary() if info is not None else None}
    report.info["lowest_opset"], report.info["lowest_opset_stop"] = _lowest_opset(model)
    return report


def _lowest_opset(model):
    """(lowest default-domain opset the opset pass converts the model to, why not one lower)."""
    from ..errors import OnnxoptError
    from ..passes.opset import lowest_opset

    try:
        return lowest_opset(model)
    except OnnxoptError as e:  # a model the rules cannot read is reported by the other checks
        return None, str(e)


def _node_id(node) -> str:
    from ..passes.tensorrt.support import node_id

    return node_id(node)


def _onnx_checker(model, path: Optional[str]) -> Optional[str]:
    """onnx.checker's error as one line, or None when the model passes."""
    import onnx

    try:
        if path is not None and str(path).endswith(".onnx"):
            onnx.checker.check_model(os.fspath(path))
        else:
            from ..ir import lower_model

            onnx.checker.check_model(lower_model(model))
    except Exception as e:  # ValidationError and friends: the message is the finding
        text = " ".join(str(e).split())
        return text[:400] + ("..." if len(text) > 400 else "")
    return None


def _versioned_nodes(model):
    """(node, graph label, domain, imported version) for every node in every graph."""
    from ..passes.tensorrt.support import graph_label

    def walk(g, imports, label_prefix=""):
        for node in g.nodes:
            yield node, graph_label(g), node.domain, imports.get(node.domain)
            for sub in node.subgraphs():
                yield from walk(sub, imports)

    imports = dict(model.opset_imports)
    yield from walk(model.graph, imports)
    for f in model.functions.values():
        yield from walk(f.graph, {**imports, **f.opset_imports})


def _opset_problem(node, domain: str, version: Optional[int]) -> Optional[str]:
    """Why the op is not in the imported opset of its domain, or None when it is (or when onnx
    has no schemas for the domain, e.g. a custom or model-local op)."""
    from onnx import defs

    known_domain = domain in ("", "ai.onnx.ml", "ai.onnx.preview.training")
    if not known_domain:
        return None
    if version is None:
        return f"domain {domain or 'ai.onnx'!r} is not imported"
    try:
        schema = defs.get_schema(node.op_type, version, domain)
    except Exception:
        try:
            latest = defs.get_schema(node.op_type, domain)
        except Exception:
            return f"{node.op_type} is not an operator of {domain or 'ai.onnx'}"
        return (f"{node.op_type} appears in {domain or 'ai.onnx'} opset {latest.since_version}; "
                f"the model imports opset {version}")
    if schema.deprecated:
        return f"{node.op_type} is deprecated (removed) in {domain or 'ai.onnx'} opset {version}"
    return None


def _unknown_shapes(model):
    """(value, producer, graph label, why) for tensor values whose rank or some dim is unknown."""
    from ..ir import TensorType
    from ..passes.tensorrt.support import graph_label

    out = []
    for g in model.graphs():
        label = graph_label(g)
        for node in g.nodes:
            for v in node.outputs:
                if v.name == "" or not (v.has_uses() or v.is_graph_output()):
                    continue
                t = v.type
                if t is not None and not isinstance(t, TensorType):
                    continue  # sequences, maps, optionals: no tensor shape to know
                if t is None or t.shape is None:
                    out.append((v, node, label, "rank unknown"))
                elif any(d is None for d in t.shape):
                    dims = ", ".join("?" if d is None else str(d) for d in t.shape)
                    out.append((v, node, label, f"dims [{dims}]"))
    return out


# -- rendering ----------------------------------------------------------------------------------


def report_dict(report, model_path: str, kinds: dict[str, str]) -> dict[str, Any]:
    """The report as JSON-ready data."""
    groups = report.by_kind()
    return {
        "model": model_path,
        "target": report.target,
        "ok": report.ok,
        "exit_code": EXIT_OK if report.ok else EXIT_BLOCKED,
        "blocking": len(report.blocking),
        "warnings": len(report.warnings),
        "checked_nodes": report.checked_nodes,
        "info": report.info,
        "kinds": {k: {"title": kinds.get(k, k), "count": len(v),
                      "blocking": sum(f.severity == "block" for f in v)}
                  for k, v in groups.items()},
        "findings": [f.as_dict() for f in report.findings],
        "notes": list(report.notes),
    }


def format_report(report, title: str, kinds: dict[str, str]) -> str:
    """The report as text, grouped by kind."""
    lines = [f"onnxopt check: {title}"]
    info = report.info or {}
    if report.target == "tensorrt":
        lines.append(f"  support matrix: TensorRT {info.get('matrix_version')} "
                     f"({info.get('matrix_released')}), {info.get('matrix_source')}")
        lo, hi = info.get("opset_range", (None, None))
        lines.append(f"  model opset {info.get('opset')} (parser: {lo} to {hi}); "
                     f"{report.checked_nodes} nodes checked")
    else:
        lines.append(f"  opsets {info.get('opset')}; {info.get('nodes')} nodes"
                     + (f"; shapes: {info['shape_summary']}" if info.get("shape_summary") else ""))
        if info.get("lowest_opset") is not None:
            stop = info.get("lowest_opset_stop")
            lines.append(f"  lowest opset it converts to: {info['lowest_opset']} "
                         f"(--target-opset N)" + (f"; below: {stop}" if stop else ""))
    for k, fs in report.by_kind().items():
        nb = sum(f.severity == "block" for f in fs)
        lines.append("")
        lines.append(f"{kinds.get(k, k)} ({len(fs)}{', ' + str(nb) + ' blocking' if nb else ''})")
        shown = fs if len(fs) <= TEXT_LIMIT + 2 else fs[:TEXT_LIMIT]
        for f in shown:
            tag = "BLOCK" if f.severity == "block" else "warn "
            where = f"node {f.node!r} ({f.op})" if f.node and f.op else (f.node or "model")
            if f.graph:
                where += f" in {f.graph}"
            lines.append(f"  {tag} {where}: {f.reason}")
            if f.fix.text:
                lines.append(f"        fix: {f.fix.text}")
        if len(shown) < len(fs):
            lines.append(f"  ... and {len(fs) - len(shown)} more (--json lists all)")
    for n in report.notes:
        lines.append(f"note: {n}")
    lines.append("")
    if report.ok:
        verdict = "nothing blocks" if report.target != "tensorrt" else \
            "nothing blocks the TensorRT parser"
    else:
        verdict = f"{len(report.blocking)} blocking"
    lines.append(f"result: {verdict}; {len(report.warnings)} warning(s)")
    from ..ir.escape import escape

    # Each line holds names and messages from the model: one line each, no control characters.
    return "\n".join(escape(line) for line in lines) + "\n"


__all__ = ["run_check", "check_health", "report_dict", "format_report", "TARGETS"]
