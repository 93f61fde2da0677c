"""The run summary: rich tables on a terminal, plain text otherwise, or a JSON dict."""

from __future__ import annotations

import sys
from collections import Counter, OrderedDict
from typing import Any, Optional

from ..ir.escape import escape


def _size(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def pass_rows(report) -> list[dict[str, Any]]:
    """Records aggregated per pass spec: runs, seconds, changes, node delta, node visits,
    stats."""
    rows: "OrderedDict[str, dict]" = OrderedDict()
    for r in report.records:
        row = rows.setdefault(r.spec, {"pass": r.spec, "runs": 0, "changed": 0, "seconds": 0.0,
                                       "node_delta": 0, "node_visits": 0,
                                       "stats": Counter()})
        row["runs"] += 1
        row["changed"] += int(r.modified)
        row["seconds"] += r.seconds
        row["node_delta"] += r.node_delta
        row["node_visits"] += r.node_visits
        row["stats"].update(r.stats)
    return list(rows.values())


def op_rows(before: Counter, after: Counter, all_ops: bool = False) -> list[tuple[str, int, int]]:
    """(op, before, after) for ops whose count changed (all ops with ``all_ops``)."""
    ops = sorted(set(before) | set(after), key=lambda o: (-(before.get(o, 0)), o))
    return [(o, before.get(o, 0), after.get(o, 0)) for o in ops
            if all_ops or before.get(o, 0) != after.get(o, 0)]


def _verification_line(result) -> str:
    v = result.verification
    if v is None:
        return "off"
    if v.status == "ok":
        worst = max((d.max_abs for d in v.diffs), default=0.0)
        return (f"ok ({len(v.bindings)} bindings, {len(v.diffs)} comparisons, max abs error "
                f"{worst:.3g}, {v.seconds:.2f} s)")
    reason = (str(v.reason).strip().splitlines() or ["no reason given"])[0]
    line = f"{v.status}: {reason}"  # one line saying why, whatever onnxruntime printed
    if result.culprit is not None:
        line += f" — first divergence after {result.culprit}"
    return line


def summary_dict(result, input_path: str, output_path: Optional[str]) -> dict[str, Any]:
    """The summary as plain data (for --json)."""
    v = result.verification
    return {
        "input": input_path,
        "output": output_path,
        "pipeline": result.pipeline,
        "seconds": round(result.report.seconds, 4),
        "passes": [{**r, "seconds": round(r["seconds"], 4), "stats": dict(r["stats"])}
                   for r in pass_rows(result.report)],
        "capped": result.report.capped,
        "before": {"nodes": result.before.nodes,
                   "nodes_without_constants": result.before.nodes_without_constants,
                   "initializers": result.before.initializers,
                   "file_bytes": result.before.file_bytes, "ops": dict(result.before.ops)},
        "after": {"nodes": result.after.nodes,
                  "nodes_without_constants": result.after.nodes_without_constants,
                  "initializers": result.after.initializers,
                  "file_bytes": result.after.file_bytes, "ops": dict(result.after.ops)},
        "verification": None if v is None else {
            "status": v.status, "reason": v.reason, "bindings": v.bindings,
            "outputs": [{"name": d.name, "binding": d.binding, "max_abs": d.max_abs,
                         "max_rel": d.max_rel, "ok": d.ok} for d in v.diffs],
            "seconds": round(v.seconds, 4)},
        "verified": result.verified,  # False: failed, not verified (reason above) or off
        "culprit": None if result.culprit is None else str(result.culprit),
        "notes": result.notes,
    }


def print_summary(result, input_path: str, output_path: Optional[str], rich_ok: bool,
                  verbose: int = 0, report: bool = False) -> None:
    """Print the human summary: per-pass table, op deltas, totals, verification."""
    rows = pass_rows(result.report)
    ops = op_rows(result.before.ops, result.after.ops, all_ops=verbose > 0)
    b, a = result.before, result.after
    totals = [("nodes", str(b.nodes), str(a.nodes)),
              ("nodes (without Constant)", str(b.nodes_without_constants),
               str(a.nodes_without_constants)),
              ("initializers", str(b.initializers), str(a.initializers)),
              ("file size", _size(b.file_bytes), _size(a.file_bytes))]
    # Names, paths and reasons come from the model: escaped (control characters, and rich's
    # [markup] on a terminal), so a hostile model cannot drive the user's terminal.
    e = _rich_safe if rich_ok else escape
    input_path, output_path = e(input_path), e(output_path) if output_path else output_path
    rows = [{**r, "pass": e(r["pass"])} for r in rows]
    ops = [(e(o), x, y) for o, x, y in ops]
    if rich_ok:
        from rich.console import Console
        from rich.table import Table

        con = Console()
        t = Table(title=f"onnxopt {input_path} -> {output_path or '(not written)'}")
        for col in ("pass", "runs", "changed", "time", "nodes Δ", "stats"):
            t.add_column(col, justify="left" if col in ("pass", "stats") else "right")
        for r in rows:
            t.add_row(r["pass"], str(r["runs"]), str(r["changed"]), f"{r['seconds']:.3f}s",
                      f"{r['node_delta']:+d}", e(_stats_text(r["stats"], verbose)))
        con.print(t)
        if ops:
            ot = Table(title="op counts")
            for col in ("op", "before", "after"):
                ot.add_column(col, justify="left" if col == "op" else "right")
            for o, x, y in ops:
                ot.add_row(o, str(x), str(y))
            con.print(ot)
        tt = Table(title="model")
        for col in ("", "before", "after"):
            tt.add_column(col, justify="left" if col == "" else "right")
        for row in totals:
            tt.add_row(*row)
        con.print(tt)
        for line in _closing_lines(result, e, verbose or report, "[yellow]warning:[/yellow]"):
            con.print(line)
        return
    out = sys.stdout
    out.write(f"onnxopt {input_path} -> {output_path or '(not written)'}\n")
    out.write(f"{'pass':<40} {'runs':>5} {'changed':>8} {'time':>9} {'nodes Δ':>8}  stats\n")
    for r in rows:
        out.write(f"{r['pass']:<40} {r['runs']:>5} {r['changed']:>8} {r['seconds']:>8.3f}s "
                  f"{r['node_delta']:>+8d}  {e(_stats_text(r['stats'], verbose))}\n")
    if ops:
        out.write("op counts (before -> after):\n")
        for o, x, y in ops:
            out.write(f"  {o:<30} {x:>6} -> {y:<6}\n")
    for name, x, y in totals:
        out.write(f"{name + ':':<26} {x} -> {y}\n")
    for line in _closing_lines(result, e, verbose or report, "warning:"):
        out.write(line + "\n")


def _closing_lines(result, e, notes: bool, warning: str) -> list[str]:
    """The verdict, the capped passes' warnings and (``notes``) the notes, each escaped by ``e``;
    ``warning`` is the label, coloured on a terminal."""
    lines = [f"verification: {e(_verification_line(result))}"]
    lines += [f"{warning} {e(msg)}" for msg in result.report.capped]
    if notes:
        lines += [f"note: {e(note)}" for note in result.notes]
    return lines


def _rich_safe(text: str) -> str:
    from rich.markup import escape as markup_escape

    return markup_escape(escape(text))


def _stats_text(stats: Counter, verbose: int) -> str:
    items = sorted(stats.items(), key=lambda kv: -kv[1])
    if not verbose:
        items = items[:4]
    return ", ".join(f"{k}={v}" for k, v in items)


class Progress:
    """A transient progress line on stderr while passes run (terminal only)."""

    def __init__(self):
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._p = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                               transient=True)
        self._task = None
        self._p.start()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._p.add_task(name, total=total)
        self._p.update(self._task, description=name, completed=done, total=max(total, done + 1))

    def stop(self) -> None:
        """Remove the progress display."""
        self._p.stop()
