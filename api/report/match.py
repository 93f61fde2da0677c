"""Matching two separately loaded models (``onnxopt view A --diff B``) by names.

Within one optimize run nodes keep their identity; two files share only names. A node of the
second model is the same node as one of the first when they have the same op and the same name
(or, unnamed, the same first output name); values are the same when their names are. Inside
the If/Loop/Scan bodies of two matched nodes, the same rule holds body by body.
"""

from __future__ import annotations

from .snapshot import Snapshot


def _node_name(n, values) -> tuple:
    if n.name:
        return (n.op, "n", n.name)
    first = values.get(n.outputs[0]) if n.outputs else None
    return (n.op, "v", first.name if first else "")


def match_by_name(first: Snapshot, second: Snapshot) -> None:
    """Rekey ``second`` in place so that its nodes and values that match ``first`` by name
    carry ``first``'s keys (a name used twice on a side matches nothing)."""
    vkey = _unique({v.name: k for k, v in first.values.items() if v.name},
                   [v.name for v in first.values.values() if v.name])
    nkey = _unique({_node_name(n, first.values): n.key for n in first.nodes},
                   [_node_name(n, first.values) for n in first.nodes])
    vmap = {k: vkey[v.name] for k, v in second.values.items() if v.name in vkey}
    nmap = {}
    for n in second.nodes:
        name = _node_name(n, second.values)
        if name[2] and name in nkey:
            nmap[n.key] = nkey[name]
    for n in second.nodes:  # both models are alive: their ids never collide
        n.key = nmap.get(n.key, n.key)
        n.inputs = tuple(vmap.get(k, k) if k is not None else None for k in n.inputs)
        n.outputs = tuple(vmap.get(k, k) for k in n.outputs)
    second.values = {vmap.get(k, k): v for k, v in second.values.items()}
    second.inputs = [vmap.get(k, k) for k in second.inputs]
    second.outputs = [vmap.get(k, k) for k in second.outputs]
    # Bodies of a matched node are matched body to body (names are unique only within one).
    firsts = {n.key: n for n in first.nodes}
    for n in second.nodes:
        mine = firsts.get(n.key)
        theirs = dict(mine.bodies) if mine is not None else {}
        for name, body in n.bodies:
            if name in theirs:
                match_by_name(theirs[name], body)


def _unique(mapping: dict, names: list) -> dict:
    seen: dict = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return {k: v for k, v in mapping.items() if seen.get(k) == 1}
