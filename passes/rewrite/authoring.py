"""Rule authors' mistakes, caught where they are made: a rewrite that creates an op the graph's
opsets do not have (refused when the rewrite is applied, naming the rule and the opset it needs),
and a near-miss that ``commutative=True`` would have matched (a hint in the ``-v`` trace).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ...ir import Node
from ..blame import RuleProblem, definition
from ..opsets import fix_hint, node_problem
from .match import match
from .patterns import Op, Opt, Or, Pattern

# Appended to a near-miss's reason (``-v`` reports such a miss at any depth: it is the fix).
COMMUTE_HINT = "; the inputs swapped would match (commutative=True)"


def check_created(rule, created: Sequence[Node], imports: Optional[tuple]) -> None:
    """Raise :class:`RuleProblem` for the first node ``rule`` created that its graph's opsets
    do not define. ``imports``: (model, the graph's opset imports), None to skip the check."""
    if imports is None:
        return
    model, have = imports
    for n in created:
        why = node_problem(n, have, model)
        if why is None:
            continue
        if " at opset " in why:  # the rule runs on models too old for what it creates
            need = why.split(" (opset ", 1)[1].split(")", 1)[0]
            fix = f"set opset = {need} on the rule"
        else:
            fix = fix_hint(why)
        raise RuleProblem(f"rule {rule.name!r}: created {why}: {fix} "
                          f"({definition(type(rule), 'rewrite')})")


def _commuted(p: Pattern) -> Pattern:
    """``p`` rebuilt with every Op of two or more inputs commutative (same names and flags)."""
    if isinstance(p, Op):
        return Op(p.op_types, *(_commuted(i) for i in p.inputs), name=p.name, domain=p.domain,
                  commutative=p.commutative or len(p.inputs) >= 2, attrs=p.attrs,
                  dtypes=p.dtypes, rank=p.rank, private=p.private, output=p.output)
    if isinstance(p, Opt):
        return Opt(_commuted(p.inner))
    if isinstance(p, Or):
        return Or(*(_commuted(a) for a in p.alternatives))
    return p


def _commutable(p: Pattern) -> bool:
    if isinstance(p, Op):
        return (len(p.inputs) >= 2 and not p.commutative) or any(map(_commutable, p.inputs))
    if isinstance(p, Opt):
        return _commutable(p.inner)
    if isinstance(p, Or):
        return any(map(_commutable, p.alternatives))
    return False


def commute_hint(rule, pats: Sequence[Op], node: Node, opset: int, shapes) -> str:
    """:data:`COMMUTE_HINT` when a pattern of ``rule`` that missed at ``node`` would match with
    the inputs of its binary ops swapped (only asked while tracing), else ""."""
    for pat in pats:
        if _commutable(pat) and match(rule, _commuted(pat), node, opset, shapes) is not None:
            return COMMUTE_HINT
    return ""


__all__ = ["check_created", "commute_hint", "COMMUTE_HINT"]
