"""``onnxopt.report``: a self-contained HTML page showing what a pipeline did to a model.

    rec = Recorder(model)            # before the passes run: snapshot + creation tracker
    ... PassManager(..., progress=rec.progress).run(model) ...
    rec.write("report.html", result)  # the run, op chart, graph diff, rewritten constants

``write_view`` draws one model, or the diff of two files; ``write_check`` draws a model with a
checker's findings on its nodes. Pages inline everything (dagre for the layout) and forbid every
fetch with a Content-Security-Policy. Limits: a side embeds up to ``DRAW_LIMIT`` (5,000) nodes;
above it only changed regions are embedded (the page says so); the page draws at most 600
nodes per side at once and folds unchanged regions until they are clicked. If/Loop/Scan bodies
are embedded whole (up to ``DRAW_LIMIT`` nodes each) and laid out only when their node's [+] is
clicked, each in a box of its own under its side (at most 600 nodes a body).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from .diff import DRAW_LIMIT, node_states, rewritten_constants, side_data
from .provenance import CreationTracker, provenance_table
from .snapshot import Snapshot, fill_shapes, snapshot

SHAPE_LIMIT = DRAW_LIMIT  # above it, shapes are the declared ones (no inference on a copy)


def check_report_path(path: str, *others: str | None) -> None:
    """Refuse a report path before any work: its folder must exist, and it must not name the
    model or the output (``others``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"report {path}: no such folder {folder}")
    if os.path.isdir(path):
        raise UsageError(f"report {path}: is a directory")
    for other in others:
        if other is None or not isinstance(other, (str, os.PathLike)):
            continue
        same = os.path.abspath(path) == os.path.abspath(other) or (
            os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other))
        if same:
            raise UsageError(f"report {path}: is the same file as {other}")


class Recorder:
    """Watches one optimize run: the graph before, and which pass created each node."""

    def __init__(self, model, forward: Callable[[str, int, int], None] | None = None):
        self.big = model.graph.num_nodes(recursive=False) > DRAW_LIMIT
        self.before = snapshot(model, details=not self.big)
        self.before_bytes = None
        if not self.big:
            from ..ir import lower_model

            self.before_bytes = lower_model(model).SerializeToString()
        self.tracker = CreationTracker(model, forward)

    @property
    def progress(self) -> Callable[[str, int, int], None]:
        """The hook to give the pass manager."""
        return self.tracker

    def write(self, path: str, result: Any, title: str = "", input_path: str = "",
              output_path: str | None = None) -> None:
        """Write the page for ``result`` (an :class:`~onnxopt.OptimizeResult`)."""
        from .run import run_sections

        self.tracker.finish(result.report)
        after = snapshot(result.model, details=not self.big)
        if not self.big:
            from ..ir import lower_model

            fill_shapes(self.before, self.before_bytes)
            fill_shapes(after, lower_model(result.model).SerializeToString())
        prov, table = provenance_table(self.before, after, self.tracker.made_by, result.report,
                                       exact=not self.big)
        graph, notes = _graph(self.before, after, prov)
        graph["prov"] = table
        sections = run_sections(result, input_path, output_path, notes,
                                rewritten_constants(self.before, after))
        _write(path, title or f"onnxopt report: {input_path or 'model'}", sections, graph)


def _graph(before: Snapshot | None, after: Snapshot, prov: dict,
           flags: dict | None = None) -> tuple[dict, list[str]]:
    from ..ir.gcpause import paused_gc

    with paused_gc():  # many small objects beside a big IR: no full-heap scans meanwhile
        return _graph_data(before, after, prov, flags)


def _graph_data(before, after, prov, flags) -> tuple[dict, list[str]]:
    sb, sa = node_states(before, after)
    sides = []
    if before is not None:
        sides.append(side_data(before, sb, {}, "before"))
    focus = frozenset(n.key for n in after.nodes if _checker_id(n, after) in (flags or {}))
    sides.append(side_data(after, sa, prov, "after" if before is not None else "model", focus))
    if flags:
        _flag(sides[-1], flags)
    notes = []
    for d, snap in zip(sides, [s for s in (before, after) if s is not None]):
        if snap.nested:
            notes.append(f"The {d['label']} graph has {snap.nested} nodes inside control-flow "
                         "bodies: click the [+] of an If/Loop/Scan node to draw its bodies.")
        if d["limited"]:
            notes.append(f"The {d['label']} graph has {d['total']} nodes, over the drawing limit "
                         f"of {DRAW_LIMIT}: the diff shows only the changed regions and their "
                         "neighbours; unchanged regions are counted, not embedded.")
        if any(g["kind"] == "changed" for g in d["groups"]):
            notes.append(f"The {d['label']} graph has more changes than the page draws at once: "
                         "the later ones start folded (purple regions; click to expand).")
    return {"sides": sides, "prov": []}, notes


def _checker_id(n, snap: Snapshot) -> str:
    """How the checkers name a node: its name, else ``Op(first output)``."""
    out = snap.values[n.outputs[0]].name if n.outputs else ""
    return n.name or (f"{n.op}({out})" if out else n.op)


def _flag(side: dict, flags: dict) -> None:
    """Attach findings to the embedded nodes, bodies included, keyed as :func:`_checker_id`
    names them."""
    for n in side["nodes"]:
        out = side["values"][n["o"][0]]["n"] if n["o"] else ""
        key = n["name"] or (f"{n['op']}({out})" if out else n["op"])
        if key in flags:
            n["f"] = flags[key]
        for body in n.get("b", ()):
            _flag(body, flags)


def _write(path: str, title: str, sections: list[str], graph: dict | None) -> None:
    from .page import render

    text = render(title, sections, graph)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"report {path}: cannot write ({e.strerror or e})") from None


def write_view(path: str, model_path: str, other_path: str | None = None) -> None:
    """The page for one model, or the diff of two (nodes matched by name and op)."""
    from .. import load
    from .run import view_sections

    model = load(model_path)
    big = model.graph.num_nodes(recursive=False) > DRAW_LIMIT
    snap = _loaded_snapshot(model, model_path, big)
    if other_path is None:
        graph, notes = _graph(None, snap, {})
        sections = view_sections([(model_path, model)], notes)
        _write(path, f"onnxopt view: {model_path}", sections, graph)
        return
    other = load(other_path)
    big = big or other.graph.num_nodes(recursive=False) > DRAW_LIMIT
    snap2 = _loaded_snapshot(other, other_path, big)
    from .match import match_by_name

    match_by_name(snap, snap2)
    graph, notes = _graph(snap, snap2, {})
    sections = view_sections([(model_path, model), (other_path, other)], notes,
                             rewritten_constants(snap, snap2))
    _write(path, f"onnxopt view: {model_path} vs {other_path}", sections, graph)


def _loaded_snapshot(model, model_path: str, big: bool) -> Snapshot:
    snap = snapshot(model, details=not big)
    if not big:
        from ..io import read_model_proto

        fill_shapes(snap, read_model_proto(model_path).SerializeToString())
    return snap


def write_check(path: str, model, title: str, report) -> None:
    """The page for ``onnxopt check --html``: the model with each finding of ``report`` (a
    checker Report) on its node, and the findings as a table."""
    from .page import notes as note_html
    from .page import section, table

    flags: dict[str, list[str]] = {}
    for f in report.findings:
        if f.node:  # on its node, in the main graph or in a body
            flags.setdefault(f.node, []).append(f"{f.severity}: {f.reason}"
                                                + (f" (fix: {f.fix.text})" if f.fix.text else ""))
    snap = snapshot(model, details=model.graph.num_nodes(recursive=False) <= DRAW_LIMIT)
    graph, notes = _graph(None, snap, {}, flags=flags)
    verdict = "nothing blocks" if report.ok else f"{len(report.blocking)} blocking"
    rows = [[f.severity, f.kind, f.node or "model", f.op, f.graph, f.reason, f.fix.text]
            for f in report.findings]
    summary = section("Findings", f"<p>{verdict}; {len(report.warnings)} warning(s)</p>"
                      + table(["severity", "kind", "node", "op", "graph", "reason", "fix"], rows),
                      "findings")
    _write(path, title, [note_html(notes + list(report.notes)), summary], graph)


__all__ = ["DRAW_LIMIT", "Recorder", "check_report_path", "write_check", "write_view"]
