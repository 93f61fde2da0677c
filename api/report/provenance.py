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
    the main graph; ``finish(report)`` accounts for the last pass."""

    def __init__(self, model, forward: Callable[[str, int, int], None] | None = None):
        self.model = model
        self.forward = forward
        self.made_by: dict[int, int] = {}  # id(node) -> index of the pass record, -1: original
        self._keep: list = []  # the nodes themselves, so that ids are never reused
        self._scan(-1)

    def _scan(self, record: int) -> None:
        made = self.made_by
        for n in self.model.graph.nodes:
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


def provenance(record_index: int, tag: str, report) -> dict:
    """What the page says about a created node: the pass run, the rule and its reason, and the
    nodes the rule's rewrites replaced (the records kept for bisection)."""
    rec = report.records[record_index]
    rule = tag or ""
    rewrites = [rw for rw in rec.rewrites if not rule or rw.rule == rule]
    if not rule and len({rw.rule for rw in rewrites}) == 1:
        rule = rewrites[0].rule
    where = f"run #{record_index + 1}" + (f", round {rec.iteration}" if rec.iteration else "")
    replaced = [list(map(str, rw.replaced[:6])) for rw in rewrites[:8]]
    return {"pass": rec.spec, "run": where, "rule": rule,
            "reason": rule_summary(rec.name, rule) if rule else "",
            "rewrites": len(rewrites), "replaced": replaced}
