"""The page's tables: the run (passes, verification), op counts, rewritten constants."""

from __future__ import annotations

import html

from .page import notes as note_html
from .page import op_chart, section, table


def run_sections(result, input_path: str, output_path: str | None, notes: list[str],
                 constants: list[dict]) -> list[str]:
    """Sections for an optimize run, from the same data as ``onnxopt --json``."""
    from ..cli.report import summary_dict

    d = summary_dict(result, input_path, output_path)
    lines = list(notes) + [str(x) for x in d["capped"]]
    head = table(["input", "pipeline", "seconds", "nodes", "verification"],
                 [[d["input"] or "(in memory)", d["pipeline"], d["seconds"],
                   f"{d['before']['nodes']} → {d['after']['nodes']}",
                   (d["verification"] or {}).get("status", "off")]])
    out = [note_html(lines), section("Run", head, "run"), section("Passes", _passes(d), "passes"),
           section("Verification", _verification(d), "verification"),
           section("Op counts", _totals(d) + op_chart(d["before"]["ops"], d["after"]["ops"]),
                   "ops")]
    if constants:
        out.append(section("Rewritten constants", _constants(constants), "constants"))
    if d["notes"]:
        out.append(section("Notes", "".join(f"<p>{html.escape(str(n))}</p>" for n in d["notes"]),
                           "notes"))
    return out


def _passes(d: dict) -> str:
    rows = [[r["pass"], r["runs"], r["changed"], f"{r['seconds']:.3f}s", f"{r['node_delta']:+d}",
             ", ".join(f"{k}={v}" for k, v in sorted(r["stats"].items(), key=lambda kv: -kv[1]))]
            for r in d["passes"]]
    return table(["pass", "runs", "changed", "time", "nodes Δ", "stats"], rows, "passes")


def _verification(d: dict) -> str:
    v = d["verification"]
    if v is None:
        return "<p>off</p>"
    cls = "good" if v["status"] == "ok" else "bad"
    head = f'<p class="{cls}">{html.escape(v["status"])}</p>'
    if v["reason"]:
        head += f"<p>{html.escape(str(v['reason']))}</p>"
    if d.get("culprit"):
        head += f"<p>first divergence after {html.escape(d['culprit'])}</p>"
    binds = table(["binding"], [[_binding(b)] for b in v["bindings"]]) if v["bindings"] else ""
    outs = table(["output", "binding", "max abs error", "max rel error", "ok"],
                 [[o["name"], o["binding"], f"{o['max_abs']:.3g}", f"{o['max_rel']:.3g}", o["ok"]]
                  for o in v["outputs"]])
    return head + binds + outs


def _binding(b) -> str:
    if isinstance(b, dict):
        return ", ".join(f"{k}={v}" for k, v in b.items())
    return str(b)


def _totals(d: dict) -> str:
    b, a = d["before"], d["after"]
    rows = [[k, b[k], a[k]] for k in ("nodes", "nodes_without_constants", "initializers",
                                      "file_bytes")]
    return table(["", "before", "after"], rows)


def _constants(rows: list[dict]) -> str:
    return table(["node", "op", "input", "before", "after"],
                 [[r["node"], r["op"], r["slot"], r["before"], r["after"]] for r in rows])


def view_sections(models: list, notes: list[str], constants: list | None = None) -> list[str]:
    """Sections for ``onnxopt view``: each model's size, the op chart, changed constants."""
    from ..passes.base import count_ops

    ops = [count_ops(m) for _, m in models]
    rows = [[p, sum(c.values()), sum(len(g.initializers) for g in m.graphs()), m.opset("")]
            for (p, m), c in zip(models, ops)]
    out = [note_html(notes), section("Models", table(["model", "nodes", "initializers", "opset"],
                                                     rows), "models")]
    after = dict(ops[1]) if len(ops) > 1 else None
    out.append(section("Op counts", op_chart(dict(ops[0]), after), "ops"))
    if constants:
        out.append(section("Changed constants", _constants(constants), "constants"))
    return out
