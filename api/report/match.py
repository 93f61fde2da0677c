"""Matching two separately loaded models (``onnxopt view A --diff B``) by names.

Within one optimize run nodes keep their identity; two files share only names. A node of the
second model is the same node as one of the first when they have the same op and the same name
(or, unnamed, the same first output name); values are the same when their names are. Names are
compared across the whole model, If/Loop/Scan bodies included (ONNX names are unique across
nested scopes), so a node that an optimizer moved out of a branch is the same node afterwards.
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
    carry ``first``'s keys (a name used twice in a model matches nothing)."""
    fvals, svals = first.all_values(), second.all_values()
    vkey = _unique({v.name: k for k, v in fvals.items() if v.name},
                   [v.name for v in fvals.values() if v.name])
    fnodes = list(first.all_nodes())
    nkey = _unique({_node_name(n, fvals): n.key for n in fnodes},
                   [_node_name(n, fvals) for n in fnodes])
    vmap = {k: vkey[v.name] for k, v in svals.items() if v.name in vkey}
    nmap = {}
    for n in second.all_nodes():
        name = _node_name(n, svals)
        if name[2] and name in nkey:
            nmap[n.key] = nkey[name]
    _rekey(second, nmap, vmap)


def _rekey(snap: Snapshot, nmap: dict, vmap: dict) -> None:
    for n in snap.nodes:  # both models are alive: their ids never collide
        n.key = nmap.get(n.key, n.key)
        n.inputs = tuple(vmap.get(k, k) if k is not None else None for k in n.inputs)
        n.outputs = tuple(vmap.get(k, k) for k in n.outputs)
        for _, body in n.bodies:
            _rekey(body, nmap, vmap)
    snap.values = {vmap.get(k, k): v for k, v in snap.values.items()}
    snap.inputs = [vmap.get(k, k) for k in snap.inputs]
    snap.outputs = [vmap.get(k, k) for k in snap.outputs]


def _unique(mapping: dict, names: list) -> dict:
    seen: dict = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return {k: v for k, v in mapping.items() if seen.get(k) == 1}
