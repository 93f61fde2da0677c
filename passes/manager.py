"""The pass manager: runs a pipeline and records what every pass did.

Instrumentation: per-pass wall time, node and initializer deltas, statistics counters, rewrites,
print IR after named passes, verify the IR after every pass (naming the pass that broke it), check
that a pass reporting ``modified=False`` left the IR untouched, and on failure a reproducer (the
model just before the failing pass plus the pipeline text). The IR of a plugin's pass (one not
shipped with onnxopt) is always verified after it runs, and errors name the plugin's origin.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import OnnxoptError, PassError
from ..ir import Model, check_model, print_model
from ..ir.gcpause import paused_gc
from . import registry
from .base import PassContext, PassResult, Rewrite
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
        for n in g.nodes:
            parts.append((id(n), n.domain, n.op_type, n.name, tuple(map(id, n.inputs)),
                          tuple((id(v), v.name) for v in n.outputs),
                          tuple((k, id(a)) for k, a in n.attributes.items())))
        h.update(repr(parts).encode())
    return h.hexdigest()


class PassManager:
    """Runs a pipeline (text or parsed items) over a model."""

    def __init__(self, pipeline, *, verify_each: bool = False, check_modified: bool = False,
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

    def _run_items(self, items, model, ctx, report, iteration) -> bool:
        changed = False
        for it in items:
            if self.limit is not None and self._executed >= self.limit:
                return changed
            if isinstance(it, Group):
                changed |= self._run_group(it, model, ctx, report)
            else:
                changed |= self._run_pass(it, model, ctx, report, iteration)
        return changed

    def _run_group(self, group: Group, model, ctx, report) -> bool:
        cap = int(group.options.get("max", 8))
        changed_any = False
        for i in range(cap):
            changed = self._run_items(group.items, model, ctx, report, i + 1)
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
        # Plugins are checked always: their errors name where they came from.
        whence = "" if entry.builtin else f" [{entry.origin}]"
        self._executed += 1
        if self.limit is not None and self._executed == self.limit and self.last_options:
            p = registry.create(spec.name, {**spec.options, **self.last_options})
        if self.progress:
            self.progress(spec.name, self._done, self._total)
        nodes_before = model.num_nodes()
        inits_before = _num_inits(model)
        before_fp = fingerprint(model) if self.check_modified else None
        snapshot = None
        if self.reproducer_dir:
            from ..ir import lower_model

            snapshot = lower_model(model).SerializeToString()
        t = time.perf_counter()
        try:
            try:
                result = p.run(model, ctx)
            finally:
                ctx.end_pass()
            if not isinstance(result, PassResult):
                raise PassError(f"pass {spec.name!r} returned {type(result).__name__}, "
                                "not a PassResult")
        except OnnxoptError as e:
            self._reproduce(snapshot, spec)
            if isinstance(e, PassError):
                raise
            raise PassError(f"pass {spec.name!r} failed: {e}{whence}") from e
        except Exception as e:
            self._reproduce(snapshot, spec)
            where = traceback.extract_tb(e.__traceback__)[-1]
            first = (str(e).strip().splitlines() or [""])[0]  # the error is one line
            raise PassError(f"pass {spec.name!r} raised {type(e).__name__}: {first} "
                            f"({os.path.basename(where.filename)}:{where.lineno}){whence}") from e
        seconds = time.perf_counter() - t
        if result.modified:
            ctx.invalidate(result.preserved)
        if before_fp is not None and not result.modified and fingerprint(model) != before_fp:
            self._reproduce(snapshot, spec)
            raise PassError(f"pass {spec.name!r} reported no change but changed the IR{whence}")
        if self.verify_each or not entry.builtin:
            problems = check_model(model)
            if problems:
                self._reproduce(snapshot, spec)
                raise PassError(f"pass {spec.name!r} broke the IR: {problems[0]}"
                                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                                + whence)
        rec = PassRecord(spec.name, str(spec), seconds, nodes_before, model.num_nodes(),
                         inits_before, _num_inits(model), result.modified, result.stats,
                         result.rewrites, iteration)
        report.records.append(rec)
        self._done += 1
        if spec.name in self.print_ir_after or "*" in self.print_ir_after:
            self.print_fn(f"// IR after {spec} ({'changed' if result.modified else 'unchanged'})\n"
                          + print_model(model))
        return result.modified

    def _reproduce(self, snapshot: Optional[bytes], spec: PassSpec) -> None:
        if snapshot is None or not self.reproducer_dir:
            return
        os.makedirs(self.reproducer_dir, exist_ok=True)
        with open(os.path.join(self.reproducer_dir, "reproducer.onnx"), "wb") as f:
            f.write(snapshot)
        with open(os.path.join(self.reproducer_dir, "reproducer.pipeline"), "w") as f:
            f.write(f"{spec}\n")


__all__ = ["PassManager", "PassRecord", "PipelineReport", "fingerprint"]
