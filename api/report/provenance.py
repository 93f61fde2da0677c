"""Which pass created each node: a progress hook that notes the nodes new since the last pass.

The pass manager calls its progress hook before every pass with the number of passes already
recorded; a node first seen at that moment was made by the pass just recorded. Rewrite records
and the Builder's tag (the rule's name) then say which rule, and why.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class CreationTracker:
    """A progress hook (``name, done, total``) that records the creating pass of every node of
    the main graph and of its If/Loop/Scan bodies; ``finish(report)`` accounts for the last
    pass."""

    def __init__(self, model, forward: Callable[[str, int, int], None] | None = None):
        self.model = model
        self.forward = forward
        self.made_by: dict[int, int] = {}  # id(node) -> index of the pass record, -1: original
        self._keep: list = []  # the nodes themselves, so that ids are never reused
        self._scan(-1)

    def _scan(self, record: int) -> None:
        made = self.made_by
        for n in self.model.graph.all_nodes():
            if id(n) not in made:
                made[id(n)] = record
                self._keep.append(n)

    def __call__(self, name: str, done: int, total: int) -> None:
        self._scan(done - 1)
        if self.forward is not None:
            self.forward(name, done, total)

    def finish(self, report) -> None:
        """Attribute the nodes made by the last pass run."""
        self._scan(len(report.records) - 1)


@functools.cache
def rule_summary(pass_name: str, rule: str) -> str:
    """The rule's one-line reason (its summary or docstring), or "" when it has none."""
    from ..passes import registry

    try:
        cls = registry.get(pass_name).cls
        rules = getattr(registry.create(pass_name), "rules", None)
    except Exception:  # noqa: BLE001 - a plugin no longer loaded: the rule's name is still shown
        return ""
    short = rule.split(".", 1)[-1]
    for r in rules if isinstance(rules, (list, tuple)) else ():
        if getattr(r, "name", None) in (rule, short):
            return _first_line(getattr(r, "summary", None) or getattr(r, "__doc__", None))
    table = getattr(sys.modules.get(cls.__module__), "RULES", None)
    if isinstance(table, dict):
        r = table.get(rule, table.get(short))
        if r is not None:
            return r if isinstance(r, str) else _first_line(
                getattr(r, "summary", None) or getattr(r, "__doc__", None))
    return _first_line(cls.__doc__)


def _first_line(text) -> str:
    return (str(text or "").strip().splitlines() or [""])[0]


def provenance(record_index: int, tag: str, report, rewrite: int | None = None) -> dict:
    """What the page says about a created node: the pass run, the rule and its reason, and the
    nodes the rule's rewrites replaced (the records kept for bisection): the one rewrite that
    made it when ``rewrite`` (its index in the record) is known, else all of the rule's."""
    rec = report.records[record_index]
    rule = tag or ""
    if rewrite is not None:
        chosen = [(rewrite, rec.rewrites[rewrite])]
    else:
        chosen = [(i, rw) for i, rw in enumerate(rec.rewrites) if not rule or rw.rule == rule]
    if not rule and len({rw.rule for _, rw in chosen}) == 1:
        rule = chosen[0][1].rule
    where = f"run #{record_index + 1}" + (f", round {rec.iteration}" if rec.iteration else "")
    return {"pass": rec.spec, "run": where, "rule": rule,
            "reason": rule_summary(rec.name, rule) if rule else "",
            "rewrites": len(rec.rewrites) if not rule else
            sum(rw.rule == rule for rw in rec.rewrites),
            "replaced": [[f"#{i + 1}", *map(str, rw.replaced[:8])] for i, rw in chosen[:8]]}


def _node_id(n, values: dict) -> str:
    """How rewrite records name a node: its name, else ``Op(first output)``."""
    out = values[n.outputs[0]].name if n.outputs and n.outputs[0] in values else ""
    return n.name or (f"{n.op}({out})" if out else n.op)


def _neighbours(before, after, made: set) -> dict:
    """For each created node, the ids of the removed nodes it touched in the graph before:
    producers and users of what it reads, and what its users read before."""
    b_all, a_all = list(before.all_nodes()), list(after.all_nodes())
    gone = {n.key for n in b_all} - {n.key for n in a_all}
    values = before.all_values()
    b_ids = {n.key: _node_id(n, values) for n in b_all if n.key in gone}
    b_touch: dict[int, set] = {}  # value key -> removed nodes producing or reading it
    for n in b_all:
        if n.key in gone:
            for vk in (*n.inputs, *n.outputs):
                b_touch.setdefault(vk, set()).add(b_ids[n.key])
    b_inputs = {n.key: n.inputs for n in b_all}
    a_users: dict[int, list] = {}
    for n in a_all:
        for vk in n.inputs:
            a_users.setdefault(vk, []).append(n.key)
    out = {}
    for n in a_all:
        if n.key not in made:
            continue
        ids = set()
        for vk in n.inputs:
            ids |= b_touch.get(vk, set())
        for vk in n.outputs:
            for u in a_users.get(vk, ()):
                for old in b_inputs.get(u, ()):
                    ids |= b_touch.get(old, set())
        out[n.key] = ids
    return out


def provenance_table(before, after, made_by: dict, report, exact: bool = True):
    """(node key -> entry index, entries) for the created nodes of ``after``. With ``exact``,
    each node is tied to the rewrite whose replaced nodes it touched; else (large models) to
    its pass run and rule."""
    tags = {n.key: n.tag for n in after.all_nodes()}
    made = {k for k, r in made_by.items() if r >= 0 and k in tags}
    near = _neighbours(before, after, made) if exact and before is not None else {}
    table: list[dict] = []
    where: dict[tuple, int] = {}
    prov = {}
    by_name: dict[int, dict] = {}  # pass run -> (rule, replaced node) -> its first rewrite
    for k in made:
        r, tag = made_by[k], tags[k]
        if near.get(k) and r not in by_name:
            index: dict = {}
            for i, rw in enumerate(report.records[r].rewrites):
                for name in rw.replaced:
                    index.setdefault((rw.rule, name), i)
                    index.setdefault(("", name), i)
            by_name[r] = index
        hits = [by_name[r][tag, x] for x in near.get(k, ()) if (tag, x) in by_name.get(r, {})]
        hit = min(hits) if hits else None
        if (r, tag, hit) not in where:
            where[r, tag, hit] = len(table)
            table.append(provenance(r, tag, report, hit))
        prov[k] = where[r, tag, hit]
    return prov, table
