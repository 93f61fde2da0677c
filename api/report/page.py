"""The page itself: one HTML file with its data, style, script and layout library inlined.

Tables and the op chart are rendered here; the graphs are drawn by the page's script (with the
vendored dagre) from a JSON block. Every model-derived string is escaped here or set as text by
the script, and a Content-Security-Policy forbids every fetch, so a page cannot reach the network.
"""

from __future__ import annotations

import html
import json
from importlib import resources

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:")
CHART_OPS = 40  # op rows in the chart (changed ops first)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _dagre() -> str:
    text = _asset("dagre/dagre.min.js")
    # The map file is not shipped; without the comment a browser never asks for it.
    return "\n".join(line for line in text.splitlines()
                     if not line.startswith("//# sourceMappingURL"))


def _script_json(data) -> str:
    """JSON that cannot end its <script> element early (every "<" escaped, still valid JSON)."""
    return json.dumps(data, separators=(",", ":"), default=str).replace("<", "\\u003c")


def render(title: str, sections: list[str], graph: dict | None, graph_at: int = 2) -> str:
    """The whole page: ``sections`` are HTML fragments (already escaped), ``graph`` the diff data
    for the script (None: no graph), drawn after the first ``graph_at`` sections."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{e(title)}</title><style>{_asset('report.css')}</style></head><body>",
        f"<header><h1>{e(title)}</h1></header><main>", *sections[:graph_at],
    ]
    if graph is not None:
        parts.append(_asset("graph.html"))
    parts += sections[graph_at:]
    if graph is not None:
        parts.append(f'<script type="application/json" id="graph-data">{_script_json(graph)}'
                     "</script>")
        parts.append(f"<script>{_dagre()}</script><script>{_asset('report.js')}</script>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def section(title: str, inner: str, id_: str = "") -> str:
    """A titled block of the page."""
    anchor = f' id="{html.escape(id_)}"' if id_ else ""
    return f"<section{anchor}><h2>{html.escape(title)}</h2>{inner}</section>"


def table(head: list[str], rows: list[list], cls: str = "") -> str:
    """An HTML table of escaped cells."""
    e = html.escape
    c = f' class="{cls}"' if cls else ""
    out = [f"<table{c}><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead>"]
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def op_chart(before: dict, after: dict | None) -> str:
    """Op counts before/after as horizontal bars in an inline SVG (changed ops first)."""
    single = after is None
    after = before if after is None else after
    ops = sorted(set(before) | set(after),
                 key=lambda o: (before.get(o, 0) == after.get(o, 0), -before.get(o, 0), o))
    ops = ops[:CHART_OPS]
    if not ops:
        return "<p>no nodes</p>"
    top = max(max(before.get(o, 0), after.get(o, 0)) for o in ops) or 1
    row, label_w, bar_w = 22, 170, 420
    out = [(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}"'
            f' height="{row * len(ops) + 24}" role="img" aria-label="op counts">'),
           "" if single else ('<rect class="b" x="4" y="4" width="10" height="8"/><text x="18" '
                              'y="12">before</text><rect class="a" x="84" y="4" width="10" '
                              'height="8"/><text x="98" y="12">after</text>')]
    for k, op in enumerate(ops):
        y = 20 + k * row
        b, a = before.get(op, 0), after.get(op, 0)
        wb, wa = bar_w * b / top, bar_w * a / top
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">'
                   f"{html.escape(op)}</text>"
                   + (f'<rect class="a" x="{label_w}" y="{y + 4}" width="{wa:.1f}" height="12"/>'
                      if single else
                      f'<rect class="b" x="{label_w}" y="{y + 2}" width="{wb:.1f}" height="8"/>'
                      f'<rect class="a" x="{label_w}" y="{y + 10}" width="{wa:.1f}" height="8"/>')
                   + f'<text x="{label_w + max(wb, wa) + 4:.1f}" y="{y + 14}">'
                   + (f"{a}</text>" if single else f"{b} → {a}</text>"))
    out.append("</svg>")
    return "".join(out)


def notes(lines: list[str]) -> str:
    """Lines the reader must see (limits applied, verification failures)."""
    return "".join(f'<p class="note">{html.escape(x)}</p>' for x in lines)
