"""``opset{target=N}``: convert the model's default domain to opset N, down or up.

Down: every node written for a version newer than N is rewritten by the conversion rules (the
modules beside this one) into its equivalent at N; then every node is checked against N's
schemas (op, inputs, attributes, element types). A node with no equivalent stops the pass with
one line naming the op, the node and the lowest opset that has it; the pipeline stops there, so
nothing is written.

Up: onnx's version converter where it works (it is the reference for the forward adapters), and
where it gives up, the same machinery: rules that move values into the newer form, then the
schema check.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from ...ir.errors import PassError, UsageError
from ...ir import Model, lift_model, lower_model
from ..base import ALL, Pass, PassContext, PassResult, iter_graphs
from ..registry import register
from ..rewrite import Shapes, TraceEvent, apply_rules
from . import attention, decompose, forms, io, types, up
from .common import TAG
from .versions import (
    MIN_OPSET,
    bad_types,
    dtype_str,
    first_opset,
    form_problem,
    max_opset,
    schema,
    since,
)

DOWN_RULES = io.RULES + forms.RULES + decompose.RULES + attention.RULES + types.RULES
UP_RULES = up.RULES + types.RULES


def parse_target(value) -> int:
    """The target opset from an option or flag value; UsageError when it is not one."""
    try:
        n = int(str(value).strip())
    except ValueError:
        raise UsageError(f"target opset {value!r} is not an integer") from None
    if n < MIN_OPSET or n > max_opset():
        raise UsageError(f"target opset {n} is outside {MIN_OPSET}..{max_opset()} (the opsets "
                         f"the installed onnx knows, from {MIN_OPSET})")
    return n


def source_opset(model: Model) -> int:
    """The model's default-domain opset; UsageError when it imports none."""
    v = model.opset("")
    if not v:
        raise UsageError("the model imports no default-domain opset (\"\" or ai.onnx): there is "
                         "nothing to convert")
    return int(v)


@register
class Opset(Pass):
    """Convert the default domain to opset ``target`` (down or up)."""

    name = "opset"
    summary = "convert the model to default-domain opset N, down or up (rules + onnx's converter)"
    # ``at_least``: raise to ``target`` but never lower (a preset that wants newer ops asks
    # this way, so a model already newer keeps its opset and a user's --target-opset wins).
    options: ClassVar[dict] = {"target": 0, "only": "", "at_least": 0}
    rules: ClassVar[tuple] = tuple(dict.fromkeys(DOWN_RULES + UP_RULES))  # for --list-passes

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        try:
            target = parse_target(self.opts["target"])
            source = source_opset(model)
        except UsageError as e:  # one line naming the pass, without a source location
            raise PassError(f"opset: {e}") from None
        if target == source or (self.opts.get("at_least") and target < source):
            return PassResult(preserved=ALL)
        if target > source and _converter(model, source, target, ctx):
            return PassResult(modified=True, stats=Counter({f"opset {source}->{target}": 1}))
        return convert(model, ctx, source, target, only=str(self.opts.get("only") or ""))


def convert(model: Model, ctx: PassContext, source: int, target: int, only: str = "") -> PassResult:
    """Rewrite with the rules of the direction (``only``: that one), declare the target, check
    every node (a node another rule would have converted is then refused)."""
    kinds = DOWN_RULES if target < source else UP_RULES
    if only and only not in {r.name for r in kinds}:
        raise PassError(f"opset: no rule {only!r} for this direction "
                        f"(rules: {', '.join(sorted(r.name for r in kinds))})")
    rules = [cls(source, target) for cls in kinds if not only or cls.name == only]
    per_op: Counter = Counter()

    def count(ev: TraceEvent) -> None:
        if ev.stage == "applied":
            per_op[f"{ev.node.op_type}: {ev.rule[len(TAG):]}"] += 1

    if target > source:
        # Going up, rules create ops the source lacks (Resize from Upsample): the target is
        # declared first, with the shape facts taken while the nodes still mean what they did.
        from ..shapes import ShapeAnalysis

        ctx.analysis(ShapeAnalysis)
        declare(model, target)
    result = apply_rules(model, rules, ctx, prefix=TAG, tracer=count)
    declare(model, target)
    problem = first_problem(model, ctx, source, target)
    if problem is not None:
        raise PassError(problem)
    result.stats = Counter({f"opset {source}->{target}": 1, **per_op})
    result.modified = True
    result.preserved = frozenset()
    ctx.note(f"opset: {source} -> {target}")
    return result


def declare(model: Model, target: int) -> None:
    """Set the default domain's opset of the model and of its functions to ``target``."""
    import onnx

    for imports in [model.opset_imports] + [f.opset_imports for f in model.functions.values()]:
        if "" in imports or imports is model.opset_imports:  # a function may import none
            imports[""] = target
    need = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", target)])
    model.ir_version = max(model.ir_version or 0, need)


def first_problem(model: Model, ctx: PassContext, source: int, target: int) -> str | None:
    """The first node that is not valid at ``target``, as one line (None when all are)."""
    shapes = Shapes(ctx)
    for g in iter_graphs(model):
        for node in g.nodes:
            if node.domain != "":
                continue
            why = node_problem(node, source, target, shapes.dtype)
            if why is not None:
                label = f"{node.op_type} node {node.name!r}" if node.name else node.op_type
                return f"opset: {label} has no equivalent at opset {target}: {why}"
    return None


def node_problem(node, source: int, target: int, dtype) -> str | None:
    """Why ``node`` is not valid at ``target`` (None when it is)."""
    s = schema(node.op_type, target)
    if s is None:
        low = first_opset(node.op_type)
        if low is None:
            return "the default domain has no such op"
        return (f"the lowest opset that has it is {low}" if low > target
                else f"it is deprecated at opset {target}")
    mine = str(node.meta.get("tag", "")).startswith(TAG)
    why = None if mine else form_problem(node, target, source)
    if why is not None:
        return f"{why} (the lowest opset that has this form is {since(node.op_type, source)})"
    extra = sorted(k for k in node.attributes if k not in s.attributes)
    if extra:  # the rules drop those at their default: one left here is not
        return f"attribute {extra[0]} does not exist at opset {target}"
    bad = bad_types(node, s, dtype)
    if bad:
        kinds = ", ".join(sorted(dtype_str(d) for ds in bad.values() for d in ds))
        return f"its opset-{target} version takes no {kinds}"
    return None


def _converter(model: Model, source: int, target: int, ctx: PassContext) -> bool:
    """Upgrade with onnx.version_converter in place; False (model untouched) when it fails."""
    import onnx
    from onnx import version_converter

    proto = lower_model(model)
    try:
        converted = version_converter.convert_version(proto, target)
        onnx.checker.check_model(converted)
    # The converter reports unsupported ops with many exception types.
    except Exception as e:  # noqa: BLE001
        ctx.note(f"opset: onnx's converter gave up ({type(e).__name__}: "
                 f"{str(e).strip()[:120]}); converting with the rules")
        return False
    new = lift_model(converted, model.base_dir)
    model.graph = new.graph
    model.functions = new.functions
    model.opset_imports = dict(new.opset_imports)
    model.ir_version = max(model.ir_version, new.ir_version)
    model.opaque = new.opaque
    ctx.note(f"opset: {source} -> {target} (onnx's version converter)")
    return True


__all__ = [
    "DOWN_RULES",
    "UP_RULES",
    "Opset",
    "convert",
    "declare",
    "first_problem",
    "node_problem",
    "parse_target",
    "source_opset",
]
