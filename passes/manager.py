"""The pass manager: runs a pipeline and records what every pass did.

Instrumentation: per-pass wall time, node and initializer deltas, statistics counters, rewrites,
print IR after named passes, verify the IR after every pass (naming the pass that broke it), check
that a pass reporting ``modified=False`` left the IR untouched, and on failure a reproducer (the
model just before the failing pass, the pipeline text, the plugin file and the command that replays
it). After a plugin's pass (one not shipped with onnxopt) all three checks always run: the IR
invariants, the ops of the nodes it created or edited against the model's opsets, and the
"modified is honest" fingerprint; errors name the plugin's origin and the line in its code.
``verify_each`` runs them after built-ins too; ``check_modified=True`` runs the fingerprint after
every pass, ``False`` after none (None, the default: plugins, or all with ``verify_each``).

In a fixed-point group, a pass that found nothing is not run again until the IR changes
(:class:`_Rounds`); such skips are counted as ``fixpoint.skipped`` in that pass's stats.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..ir.errors import IRError, OnnxoptError, PassCrash, PassError
from ..ir import Model, check_model, print_model
from ..ir.core import clock
from ..ir.gcpause import paused_gc
from ..ir.nodelist import node_visits
from . import blame, registry
from .base import PassContext, PassResult, Rewrite
from .opsets import fix_hint, model_problem
from .pipeline import Group, Item, PassSpec, format_pipeline, parse_pipeline


@dataclass
class PassRecord:
    """One execution of one pass."""

    name: str
    spec: str
    seconds: float
    nodes_before: int
    nodes_after: int
    inits_before: int
    inits_after: int
    modified: bool
    stats: Counter = field(default_factory=Counter)
    rewrites: list[Rewrite] = field(default_factory=list)
    iteration: Optional[int] = None  # fixed-point round, when inside a group
    node_visits: int = 0  # nodes the pass iterated or popped (ir.nodelist.node_visits)

    @property
    def node_delta(self) -> int:
        """Nodes after minus nodes before."""
        return self.nodes_after - self.nodes_before


@dataclass
class PipelineReport:
    """Everything the manager recorded while running a pipeline."""

    pipeline: str
    records: list[PassRecord] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)  # groups that hit their iteration cap
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def executed(self) -> list[str]:
        """The flat list of pass specs executed, in order (what bisection replays)."""
        return [r.spec for r in self.records]


def _num_inits(model: Model) -> int:
    return sum(g.num_initializers() for g in model.graphs())


def fingerprint(model: Model) -> str:
    """A digest of the IR's structure by object identity: changes iff the IR was mutated.

    Types of intermediate values are left out: they are analysis facts (shape inference writes
    them), not semantics, and an analysis never makes a pass "modified". Graph input and output
    types are the model's interface and count.
    """
    h = hashlib.sha256()
    for g in model.graphs():
        parts = [id(g), tuple(map(id, g.inputs)), tuple(map(id, g.outputs)),
                 tuple((id(v), id(v.const_value)) for v in g.initializers)]
        for v in g.inputs:
            parts.append((v.name, v.type))
        for v in g.outputs:
            parts.append((v.name, v.type))
        h.update(repr(parts).encode())  # the interface: types compare by content
        # Nodes by identity and plain fields: Python's tuple hash is a C loop, where repr would
        # print every tuple (this runs twice around every plugin pass: 100,000 nodes, 1.6 s).
        nodes = hash(tuple((id(n), n.domain, n.op_type, n.name, tuple(map(id, n.inputs)),
                            tuple((id(v), v.name) for v in n.outputs),
                            tuple((k, id(a)) for k, a in n.attributes.items()))
                           for n in g.nodes))
        h.update(nodes.to_bytes(8, "little", signed=True))
    return h.hexdigest()


class PassManager:
    """Runs a pipeline (text or parsed items) over a model."""

    def __init__(self, pipeline, *, verify_each: bool = False,
                 check_modified: Optional[bool] = None,
                 print_ir_after: tuple[str, ...] = (), print_fn: Callable[[str], None] = print,
                 reproducer_dir: Optional[str] = None, verbose: int = 0,
                 progress: Optional[Callable[[str, int, int], None]] = None,
                 limit: Optional[int] = None, last_options: Optional[dict] = None):
        self.items: list[Item] = parse_pipeline(pipeline) if isinstance(pipeline, str) \
            else list(pipeline)
        self.text = format_pipeline(self.items)
        self.verify_each = verify_each
        self.check_modified = check_modified
        self.print_ir_after = set(print_ir_after)
        self.print_fn = print_fn
        self.reproducer_dir = reproducer_dir
        self.verbose = verbose
        self.progress = progress
        self.limit = limit  # stop after this many pass executions (bisection)
        self.last_options = last_options or {}  # extra options for the last execution
        self._executed = 0
        # Instantiate every pass now, so an unknown name or option fails before any work.
        self._instances: dict[int, object] = {}
        self._check(self.items)

    def _check(self, items: list[Item]) -> None:
        for it in items:
            if isinstance(it, Group):
                self._check(it.items)
            else:
                self._instances[id(it)] = registry.create(it.name, it.options)

    def count_leaves(self, items: Optional[list[Item]] = None) -> int:
        """Number of pass specs in the pipeline (groups counted once)."""
        n = 0
        for it in items if items is not None else self.items:
            n += self.count_leaves(it.items) if isinstance(it, Group) else 1
        return n

    def run(self, model: Model, ctx: Optional[PassContext] = None) -> PipelineReport:
        """Run the pipeline in place; raise :class:`PassError` naming a failing pass."""
        ctx = ctx or PassContext(model, self.verbose)
        report = PipelineReport(self.text)
        t0 = time.perf_counter()
        self._total = self.count_leaves()
        self._done = 0
        # Passes allocate in bursts; full-heap collections of a big IR find nothing to free.
        with paused_gc():
            self._run_items(self.items, model, ctx, report, None)
        report.seconds = time.perf_counter() - t0
        report.notes = ctx.notes
        return report

    def _run_items(self, items, model, ctx, report, iteration,
                   rounds: Optional["_Rounds"] = None) -> bool:
        changed = False
        for it in items:
            if self.limit is not None and self._executed >= self.limit:
                return changed
            if isinstance(it, Group):
                step = self._run_group(it, model, ctx, report)
                if rounds is not None and step:
                    rounds.changes += 1
            elif rounds is not None and rounds.skip(it):
                continue
            else:
                step = self._run_pass(it, model, ctx, report, iteration)
                if rounds is not None:
                    rounds.ran(it, step, report.records[-1])
            changed |= step
        return changed

    def _run_group(self, group: Group, model, ctx, report) -> bool:
        cap = int(group.options.get("max", 8))
        changed_any = False
        rounds = _Rounds()
        for i in range(cap):
            changed = self._run_items(group.items, model, ctx, report, i + 1, rounds)
            changed_any |= changed
            if not changed or (self.limit is not None and self._executed >= self.limit):
                return changed_any
        msg = (f"{group}: still changing after {cap} iterations (cap reached; raise it with "
               f"{{max=N}})")
        report.capped.append(msg)
        ctx.note(msg)
        return changed_any

    def _run_pass(self, spec: PassSpec, model: Model, ctx: PassContext, report, iteration) -> bool:
        p = self._instances[id(spec)]
        entry = registry.get(spec.name)
        self._executed += 1
        if self.limit is not None and self._executed == self.limit and self.last_options:
            p = registry.create(spec.name, {**spec.options, **self.last_options})
        if self.progress:
            self.progress(spec.name, self._done, self._total)
        nodes_before = model.num_nodes()
        inits_before = _num_inits(model)
        # Plugins are always checked (cheap, and their authors need it); built-ins on request.
        checked = self.verify_each or not entry.builtin
        honest = self.check_modified if self.check_modified is not None else checked
        before_fp = fingerprint(model) if honest else None
        start = clock()
        snapshot = None
        if self.reproducer_dir:
            from ..ir import lower_model

            snapshot = lower_model(model).SerializeToString()
        t = time.perf_counter()
        visits = node_visits()
        try:
            try:
                result = p.run(model, ctx)
            finally:
                ctx.end_pass()
            if not isinstance(result, PassResult):
                raise PassError(f"pass {spec.name!r} returned {type(result).__name__}, "
                                "not a PassResult")
        except Exception as e:
            self._reproduce(snapshot, spec, entry)
            if isinstance(e, PassError) and not isinstance(e, blame.RuleProblem):
                raise
            # A built-in pass that crashes is onnxopt's bug (exit 3), not the input's.
            crashed = entry.builtin and (isinstance(e, IRError) or not isinstance(
                e, (OnnxoptError, MemoryError, RecursionError)))
            cls = PassCrash if crashed else PassError
            raise cls(_raised_message(spec.name, e, entry)) from e
        seconds = time.perf_counter() - t
        visits = node_visits() - visits
        if result.modified:
            ctx.invalidate(result.preserved)
        problem = None
        if before_fp is not None and not result.modified and fingerprint(model) != before_fp:
            problem = _dishonest_message(spec.name, entry, nodes_before, model.num_nodes())
        elif checked:
            problem = _ir_problem(spec.name, entry, model, start)
        if problem is not None:
            self._reproduce(snapshot, spec, entry)
            # A built-in pass that breaks the IR is onnxopt's bug too; a plugin's is the plugin's.
            raise (PassCrash if entry.builtin else PassError)(problem + _whence(entry))
        rec = PassRecord(spec.name, str(spec), seconds, nodes_before, model.num_nodes(),
                         inits_before, _num_inits(model), result.modified, result.stats,
                         result.rewrites, iteration, visits)
        report.records.append(rec)
        self._done += 1
        if spec.name in self.print_ir_after or "*" in self.print_ir_after:
            self.print_fn(f"// IR after {spec} ({'changed' if result.modified else 'unchanged'})\n"
                          + print_model(model))
        return result.modified

    def _reproduce(self, snapshot: Optional[bytes], spec: PassSpec, entry) -> None:
        """Write the model before the failing pass, the pipeline that fails on it, a copy of
        the pass's plugin file and the command that replays the failure from this folder."""
        if snapshot is None or not self.reproducer_dir:
            return
        d = self.reproducer_dir
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "reproducer.onnx"), "wb") as f:
            f.write(snapshot)
        with open(os.path.join(d, "reproducer.pipeline"), "w") as f:
            f.write(f"{spec}\n")
        plugin = ""
        if entry.plugin_file and os.path.isfile(entry.plugin_file):
            copy = os.path.basename(entry.plugin_file)
            shutil.copyfile(entry.plugin_file, os.path.join(d, copy))
            plugin = f" --plugin {shlex.quote(copy)}"
        with open(os.path.join(d, "reproducer.sh"), "w") as f:
            f.write(f"# Replays the failure (run it in this folder); from {entry.origin}.\n"
                    f"onnxopt reproducer.onnx{plugin} -p {shlex.quote(str(spec))} "
                    "-o reproducer.opt.onnx\n")


class _Rounds:
    """A fixed-point group's memory of which passes found nothing: such a pass is skipped until
    the IR changes (the mutation clock moves, ``ir.core.clock``, or a pass reports a change the
    clock does not see, such as a removed function). A pass is a function of the IR, so on the
    same IR it would find nothing again. Skips are counted in the stats of the pass's last run
    (``fixpoint.skipped``)."""

    def __init__(self):
        self.changes = 0  # passes (and nested groups) of the group that reported a change
        self.clean: dict[int, tuple[int, int, PassRecord]] = {}  # id(spec) -> when it was clean

    def skip(self, spec: PassSpec) -> bool:
        last = self.clean.get(id(spec))
        if last is None or last[:2] != (clock(), self.changes):
            return False
        stats = last[2].stats
        stats["fixpoint.skipped"] = stats.get("fixpoint.skipped", 0) + 1
        return True

    def ran(self, spec: PassSpec, changed: bool, record: PassRecord) -> None:
        if changed:
            self.changes += 1
            self.clean.pop(id(spec), None)
        else:
            self.clean[id(spec)] = (clock(), self.changes, record)


def _whence(entry) -> str:
    """`` [plugin file x.py]`` for a plugin's pass (errors name where it came from)."""
    return "" if entry.builtin else f" [{entry.origin}]"


def _raised_message(name: str, e: Exception, entry) -> str:
    """The one line for an exception out of a pass: the pass, the rule it escaped (when the
    rewrite driver marked one), and the innermost line of the author's own code."""
    if isinstance(e, blame.RuleProblem):  # the driver refused what a rule did, and said where
        return f"pass {name!r}, {e}{_whence(entry)}"
    root = None if entry.builtin else blame.code_root(entry.cls, entry.plugin_file)
    rule = blame.rule_of(e)
    who = f"pass {name!r}" + (f", rule {rule!r}:" if rule else "")
    if isinstance(e, OnnxoptError):  # e.g. the mutation API refusing an edit: say where
        at = f" ({blame.where(e, root)})" if root or rule else ""
        return f"{who} failed: {e}{at}{_whence(entry)}"
    first = (str(e).strip().splitlines() or [""])[0]  # the error is one line
    return (f"{who} raised {type(e).__name__}: {first} ({blame.where(e, root)})"
            f"{_whence(entry)}")


def _dishonest_message(name: str, entry, nodes_before: int, nodes_after: int) -> str:
    what = (f"nodes {nodes_before} -> {nodes_after}" if nodes_before != nodes_after
            else "a name, an input, an attribute or the interface")
    at = blame.definition(entry.cls, "run_on_graph", "run")
    return (f"pass {name!r} reported no change but changed the IR ({what}): its PassResult "
            f"must say modified=True ({at})")


def _ir_problem(name: str, entry, model: Model, start: int) -> Optional[str]:
    """What the pass left wrong: a broken IR invariant, or a node it created or edited whose
    op the graph's opsets do not define."""
    problems = check_model(model)
    if problems:
        return (f"pass {name!r} broke the IR: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    bad = model_problem(model, since=start)
    if bad is None:
        return None
    node, why = bad
    label = f" (node {node.name!r})" if node.name else ""
    if " at opset " in why:  # the default domain is too old for the op
        need = why.split(" (opset ", 1)[1].split(")", 1)[0]
        fix = f"create it only when ctx.model.opset('') >= {need}"
    else:
        fix = fix_hint(why)
    return (f"pass {name!r} created {why}{label}: {fix} "
            f"({blame.definition(entry.cls, 'run_on_graph', 'run')})")


__all__ = ["PassManager", "PassRecord", "PipelineReport", "fingerprint"]
