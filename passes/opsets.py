"""Does a node exist at the opsets its graph imports? The check behind "every node a pass creates
or edits respects the model's opset", run when a rewrite is applied and after plugin passes.

The IR verifier checks structure (uses, definitions); this checks vocabulary: ``Swish`` created
in an opset-17 model is a well-formed node that no runtime will load. ONNX's own domains are
checked against their schemas; any other domain must at least be imported by the model (or name
a model-local function).
"""

from __future__ import annotations

from functools import cache
from typing import Optional

from ..ir import Graph, Model, Node

# Domains whose ops onnx.defs knows; other domains (com.microsoft, a plugin's own) are vendor ops.
ONNX_DOMAINS = ("", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training")


def graph_imports(model: Model, graph: Graph) -> dict[str, int]:
    """The opset imports that govern ``graph``: its function's (a function body and the bodies
    it nests), else the model's."""
    g: Optional[Graph] = graph
    while g is not None:
        if g.function is not None:
            return dict(g.function.opset_imports)
        g = g.parent_node.graph if g.parent_node is not None else None
    return dict(model.opset_imports)


_NEWEST = 2**31 - 1  # any version: a schema lookup at it finds the op's latest


@cache
def any_schema(op: str, opset: int, domain: str = ""):
    """The schema of ``op`` in force at ``opset`` of ``domain``, deprecated or not (None when
    there is none). A deprecated op still exists for a node already in a model; whether one may
    be emitted is :func:`onnxopt.passes.opset.versions.schema`'s question."""
    import onnx.defs

    try:
        return onnx.defs.get_schema(op, opset, domain)
    except onnx.defs.SchemaError:
        return None


@cache
def first_version(op: str, domain: str = "") -> Optional[int]:
    """The first opset of ``domain`` that defines ``op``, deprecated or not (None: ONNX has no
    such op)."""
    s = any_schema(op, _NEWEST, domain)
    while s is not None and s.since_version > 1:
        older = any_schema(op, s.since_version - 1, domain)
        if older is None:
            break
        s = older
    return None if s is None else s.since_version


def node_problem(node: Node, imports: dict[str, int], model: Model) -> Optional[str]:
    """Why ``node`` cannot exist under ``imports`` (``"Swish (opset 24) at opset 17"``), or None.

    The phrase names the op and what it needs so a caller can say who made it and how to fix it.
    """
    domain = node.domain
    if (node.domain, node.op_type, node.overload) in model.functions:
        return None
    have = imports.get(domain)
    label = f"{domain}.{node.op_type}" if domain else node.op_type
    if domain not in ONNX_DOMAINS:
        if have is None:
            return f"{label}, but the graph imports no opset of domain {domain!r}"
        return None
    first = first_version(node.op_type, domain)
    if first is None:
        where = f"domain {domain!r}" if domain else "the default domain"
        return f"{label}, which is not an ONNX op of {where}"
    what = "opset" if not domain else f"{domain} opset"
    if have is None:
        return f"{label} ({what} {first}), but the graph imports no opset of domain {domain!r}"
    if any_schema(node.op_type, have, domain) is None:
        return f"{label} ({what} {first}) at {what} {have}"
    return None


def model_problem(model: Model, since: int = -1) -> Optional[tuple[Node, str]]:
    """The first node of ``model`` whose op its graph's opsets do not define, with the reason.
    ``since``: look only at nodes created or edited after this reading of the mutation clock
    (``onnxopt.ir.core.clock()``), so a pass is blamed only for what it touched. Distinct
    (domain, op, imports) triples are looked up once: a scan costs a set lookup per node."""
    seen: set = set()
    for g in model.graphs():
        imports = graph_imports(model, g)
        key_imports = tuple(sorted(imports.items()))
        for n in g.nodes:
            if n._stamp <= since:  # the IR's mutation stamp: untouched since the reading
                continue
            key = (n.domain, n.op_type, n.overload, key_imports)
            if key in seen:
                continue
            seen.add(key)
            why = node_problem(n, imports, model)
            if why is not None:
                return n, why
    return None


def fix_hint(reason: str) -> str:
    """What to do about :func:`node_problem`'s reason: raise the opset, or import the domain."""
    if " at opset " in reason:
        need = reason.split(" (opset ", 1)[1].split(")", 1)[0]
        return f"set opset = {need}"
    if "imports no opset" in reason:
        return "add the domain to the model's opset imports"
    return "use an op the opset defines"


__all__ = ["graph_imports", "any_schema", "first_version", "node_problem", "model_problem",
           "fix_hint", "ONNX_DOMAINS"]
