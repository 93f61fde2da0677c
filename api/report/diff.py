"""The graph diff as page data: node states, collapsed unchanged regions, created-by records.

A node is *removed* (only before), *created* (only after), *edited* (on both sides, with other
inputs or attributes) or *kept*. Changed nodes and their direct neighbours are drawn; the other
unchanged nodes are folded into regions (connected pieces, at most ``CHUNK`` nodes each, in graph
order) that the page expands on a click. Above ``DRAW_LIMIT`` nodes a side embeds only the changed
nodes and their neighbours: the regions keep their size and nothing else. Past ``DRAW_AT_ONCE``
changed nodes, the later changes start folded as well (regions of kind "changed").
"""

from __future__ import annotations

from .snapshot import NodeInfo, Snapshot

DRAW_LIMIT = 5000  # nodes per side embedded in a page; above it only changed regions are
CHUNK = 150  # nodes per collapsed region
OPEN_ALL = 300  # a side without changes and at most this many nodes starts expanded
DRAW_AT_ONCE = 400  # changed nodes (and neighbours) drawn at first; more start folded
MIN_FOLD = 4  # smaller unchanged pieces are drawn, not folded
MAX_REGIONS = 40  # folded regions per kind and side (each is one box to lay out)


def node_states(before: Snapshot | None, after: Snapshot) -> tuple[dict, dict]:
    """(state by key on the before side, state by key on the after side), for the nodes of
    both graphs and of their If/Loop/Scan bodies."""
    if before is None:
        return {}, {n.key: "kept" for n in after.all_nodes()}
    b, a = before.by_key(), after.by_key()
    sb = {k: ("removed" if k not in a else _edit_state(b[k], a[k], before, after)) for k in b}
    sa = {k: ("created" if k not in b else sb[k]) for k in a}
    return sb, sa


def _edit_state(nb: NodeInfo, na: NodeInfo, before: Snapshot, after: Snapshot) -> str:
    if nb.inputs != na.inputs or nb.attrs != na.attrs or nb.op != na.op:
        return "edited"
    return "kept"


def side_data(snap: Snapshot, states: dict, prov: dict, label: str,
              focus: frozenset = frozenset()) -> dict:
    """One side of the page: embedded nodes, their values, regions, inputs and outputs.
    Nodes in ``focus`` (keys: a checker's findings) are drawn like changed ones."""
    producer = {vk: i for i, n in enumerate(snap.nodes) for vk in n.outputs}
    users: dict[int, list[int]] = {}
    for i, n in enumerate(snap.nodes):
        for vk in n.inputs:
            if vk is not None:
                users.setdefault(vk, []).append(i)
    changed = [i for i, n in enumerate(snap.nodes)
               if states.get(n.key, "kept") != "kept" or n.key in focus]
    shown = set(changed)
    for i in changed:  # the neighbours give a change its context
        n = snap.nodes[i]
        shown.update(producer[vk] for vk in n.inputs if vk in producer)
        for vk in n.outputs:
            shown.update(users.get(vk, ()))
    rest = [i for i in range(len(snap.nodes)) if i not in shown]
    groups, group_of = _regions(snap, rest, producer)
    small = {i for g in groups if len(g) < MIN_FOLD for i in g}
    if small:  # folding two nodes into one box saves nothing: draw them
        shown |= small
        rest = [i for i in rest if i not in small]
        groups, group_of = _regions(snap, rest, producer)
    kinds = ["unchanged"] * len(groups)
    order = sorted(shown)
    if len(order) > DRAW_AT_ONCE:  # the rest of the changes start folded too
        more, more_of = _regions(snap, order[DRAW_AT_ONCE:], producer)
        group_of.update({i: g + len(groups) for i, g in more_of.items()})
        groups += more
        kinds += ["changed"] * len(more)
    too_big = len(snap.nodes) > DRAW_LIMIT
    embedded = order if too_big else list(range(len(snap.nodes)))
    return _encode(snap, states, prov, label, embedded, (groups, kinds), group_of, producer,
                   too_big)


def _regions(snap: Snapshot, rest: list[int], producer: dict) -> tuple[list, dict]:
    """Connected pieces of the folded nodes, split into chunks of CHUNK in graph order."""
    parent = {i: i for i in rest}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in rest:
        for vk in snap.nodes[i].inputs:
            j = producer.get(vk)
            if j is not None and j in parent:
                parent[find(i)] = find(j)
    pieces: dict[int, list[int]] = {}
    for i in rest:  # rest is in graph order, so each piece is too
        pieces.setdefault(find(i), []).append(i)
    ordered = sorted(pieces.values(), key=lambda m: m[0])
    size = CHUNK
    if sum(-(-len(m) // CHUNK) for m in ordered) > MAX_REGIONS:
        # Thousands of small pieces would swamp the layout: fold by graph order instead.
        size = max(CHUNK, -(-len(rest) // MAX_REGIONS))
        ordered = [rest]
    groups, group_of = [], {}
    for members in ordered:
        for s in range(0, len(members), size):
            chunk = members[s:s + size]
            for i in chunk:
                group_of[i] = len(groups)
            groups.append(chunk)
    return groups, group_of


def body_data(snap: Snapshot, states: dict, prov: dict, label: str) -> dict:
    """One If/Loop/Scan body: all its nodes, no folded regions (the page lays it out only when
    its node is expanded); a body over ``DRAW_LIMIT`` nodes is counted, not embedded."""
    producer = {vk: i for i, n in enumerate(snap.nodes) for vk in n.outputs}
    too_big = len(snap.nodes) > DRAW_LIMIT
    embedded = [] if too_big else list(range(len(snap.nodes)))
    d = _encode(snap, states, prov, label, embedded, ([], []), {}, producer, too_big)
    d["open"] = True
    return d


def _encode(snap, states, prov, label, embedded, regions, group_of, producer, too_big) -> dict:
    groups, kinds = regions
    index = {i: k for k, i in enumerate(embedded)}
    vals: dict[int, int] = {}
    vlist: list[dict] = []

    def val(vk: int) -> int:
        if vk not in vals:
            v = snap.values.get(vk)
            d = {"n": v.name if v else "", "t": v.type if v else "?", "k": v.kind if v else "node"}
            if v is not None and v.const is not None:
                d["c"] = v.const
            p = producer.get(vk)
            if p is not None:
                d["p"] = index.get(p)
                if p not in index:  # folded and not embedded: edges go to its region
                    d["g"] = group_of[p]
            vals[vk] = len(vlist)
            vlist.append(d)
        return vals[vk]

    nodes = []
    for i in embedded:
        n = snap.nodes[i]
        d = {"op": n.op, "name": n.name, "s": states.get(n.key, "kept"),
             "i": [-1 if vk is None else val(vk) for vk in n.inputs],
             "o": [val(vk) for vk in n.outputs], "a": n.attrs, "g": group_of.get(i, -1)}
        if n.domain:
            d["dom"] = n.domain
        if n.key in prov:
            d["by"] = prov[n.key]
        if n.bodies:
            d["b"] = [body_data(body, states, prov, name) for name, body in n.bodies]
        nodes.append(d)
    return {"label": label, "total": len(snap.nodes), "limited": too_big,
            "nodes": nodes, "values": vlist,
            "groups": [{"size": len(m), "kind": kind, "ops": _top_ops(snap, m),
                        "members": None if too_big and kind == "unchanged"
                        else [index[i] for i in m]} for m, kind in zip(groups, kinds)],
            # A small model is drawn whole; in a diff, unchanged regions start folded.
            "open": len(snap.nodes) <= OPEN_ALL and not any(s != "kept" for s in states.values()),
            "inputs": [val(vk) for vk in snap.inputs],
            "outputs": [val(vk) for vk in snap.outputs]}


def _top_ops(snap: Snapshot, members: list[int]) -> str:
    from collections import Counter

    c = Counter(snap.nodes[i].op for i in members)
    return ", ".join(f"{op} x{k}" for op, k in c.most_common(3))


def rewritten_constants(before: Snapshot, after: Snapshot) -> list[dict]:
    """Every input slot of a surviving node that read a constant before and reads something
    else now: the constant, and what replaced it (another constant, or a computed value)."""
    rows = []
    a_nodes = after.by_key()
    a_producer = {vk: n for n in after.nodes for vk in n.outputs}
    b_const = {k: v.const for k, v in before.values.items() if v.const is not None}
    for n in before.nodes:
        if n.op == "Constant":
            for vk in n.outputs:
                b_const.setdefault(vk, n.attrs.get("value", "Constant"))
    for nb in before.nodes:
        na = a_nodes.get(nb.key)
        if na is None or na.op == "Constant":
            continue
        for slot, (vb, va) in enumerate(zip(nb.inputs, na.inputs)):
            if vb == va or vb not in b_const:
                continue
            rows.append({"node": nb.name or nb.op, "op": nb.op, "slot": slot,
                         "before": b_const[vb], "after": _now_text(va, after, a_producer)})
    return rows


def _now_text(vk, after: Snapshot, a_producer: dict) -> str:
    if vk is None:
        return "(omitted)"
    v = after.values.get(vk)
    if v is not None and v.const is not None:
        return v.const
    p = a_producer.get(vk)
    if p is not None and p.op == "Constant":
        return p.attrs.get("value", "Constant")
    if p is not None:
        return f"computed by {p.op} {p.name or ''} ({v.type if v else '?'})".replace("  ", " ")
    return f"input {v.name if v else '?'}"
