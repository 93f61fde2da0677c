"""``--stages N``: choose N-1 boundaries that balance a per-stage cost and carry few bytes.

Boundaries are cuts of the node order (a prefix before, the rest after), which for the layer-by-
layer order exporters write puts them between blocks or inside one. First the smallest possible
cost of the costliest stage, M*, is found (bisection with a greedy check). Then, among the
partitions whose costliest stage stays within ``SLACK`` of M*, a dynamic program picks the one
whose boundaries carry the fewest bytes in all (a sliding-window minimum keeps it O(N * nodes)).
"""

from __future__ import annotations

from collections import deque

from ..errors import UsageError
from ..ir import Node
from .cost import CostModel
from .graphview import GraphView

SLACK = 0.05  # the costliest stage may exceed the best possible by this fraction
_BISECT_STEPS = 60


def node_costs(view: GraphView, nodes: list[Node], costs: CostModel, balance: str) -> list[float]:
    """The cost each node adds to its stage (a shared initializer counts at its first reader)."""
    seen: set = set()
    out = []
    for n in nodes:
        params = 0.0
        for v in view.reads[n]:
            if v.is_initializer() and v not in seen:
                seen.add(v)
                params += float(v.const_value.nbytes or 0)
        if balance == "flops":
            out.append(costs.number(costs.flops(n)))
        elif balance == "params":
            out.append(params)
        else:
            out.append(params + sum(costs.number(costs.nbytes(o)) for o in n.outputs))
    return out


def crossing_bytes(view: GraphView, nodes: list[Node], costs: CostModel) -> list[float]:
    """``b[q]``: bytes that cross a cut placed before ``nodes[q]`` (values made before it and
    read at or after it)."""
    pos = {n: i for i, n in enumerate(nodes)}
    diff = [0.0] * (len(nodes) + 1)
    for i, n in enumerate(nodes):
        for v in n.outputs:
            last = max((pos[u] for u in view.readers.get(v, ()) if u in pos), default=i)
            if last > i:
                size = costs.number(costs.nbytes(v))
                diff[i + 1] += size
                diff[last + 1] -= size
    out, run = [], 0.0
    for d in diff:
        run += d
        out.append(run)
    return out


def _fits(c: list[float], cap: float, n: int) -> bool:
    stages, cur = 1, 0.0
    for x in c:
        if cur + x > cap:
            stages += 1
            cur = x
            if stages > n:
                return False
        else:
            cur += x
    return True


def best_max(c: list[float], n: int) -> float:
    """The smallest cost of the costliest stage over all splits into ``n`` stages."""
    lo, hi = max(c, default=0.0), float(sum(c))
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if _fits(c, mid, n):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-9 * max(hi, 1.0):
            break
    return hi


def choose_cuts(c: list[float], b: list[float], n: int) -> list[int]:
    """Cut positions (indices into the node list, increasing) for ``n`` stages."""
    p = len(c)
    if p < n:
        raise UsageError(f"--stages {n}: the model has only {p} node(s) to place")
    cap = best_max(c, n) * (1 + SLACK) + 1e-9
    prefix = [0.0]
    for x in c:
        prefix.append(prefix[-1] + x)
    inf = float("inf")
    prev = [0.0 if prefix[q] <= cap and q > 0 else inf for q in range(p + 1)]
    choice: list[list[int]] = []
    for s in range(2, n + 1):
        cur, arg = [inf] * (p + 1), [-1] * (p + 1)
        window: deque = deque()
        lo = 0
        for q_end in range(1, p + 1):
            q = q_end - 1  # the newest start of the last stage
            if q >= s - 1 and prev[q] < inf:
                val = prev[q] + b[q]
                while window and window[-1][0] >= val:
                    window.pop()
                window.append((val, q))
            while prefix[q_end] - prefix[lo] > cap:
                lo += 1
            while window and window[0][1] < lo:
                window.popleft()
            if window:
                cur[q_end], arg[q_end] = window[0]
        choice.append(arg)
        prev = cur
    if prev[p] == inf:  # cannot happen (the cap is feasible); kept for a clear message
        raise UsageError(f"--stages {n}: no balanced split found")
    cuts, end = [], p
    for arg in reversed(choice):
        end = arg[end]
        cuts.append(end)
    return sorted(cuts)


def assign_stages(view: GraphView, costs: CostModel, n: int, balance: str) -> dict[Node, int]:
    """Stage of every stage node for ``--stages n``."""
    nodes = view.stage_nodes()
    c = node_costs(view, nodes, costs, balance)
    b = crossing_bytes(view, nodes, costs)
    cuts = choose_cuts(c, b, n)
    stage, s = {}, 0
    for i, node in enumerate(nodes):
        while s < len(cuts) and i >= cuts[s]:
            s += 1
        stage[node] = s
    return stage
