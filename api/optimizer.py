"""``optimize()``: load, run a pipeline, verify against the original, bisect on failure.

Verification compares the lowered result with the original *file* (or proto), so it checks lift
and lower as well as the passes. When outputs diverge, the executed pass list is bisected by
replaying prefixes on a fresh copy of the original; when the culprit pass supports
``max_rewrites`` the rewrites inside it are bisected too, naming the rule and the nodes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

from .errors import NotVerifiedError, UsageError, VerificationError


# Weights up to this size: the original is verified while the passes run (see _OriginalRun).
OVERLAP_WEIGHT_BYTES = 32 << 20
# Larger weights overlap too, in a forked child, when the machine has this many times their size
# free: the child's onnxruntime loads its own copy of the original's weights while the passes
# may make new ones (a fused QKV), and the rest is room for both processes' activations.
CHILD_ROOM_FACTOR = 3
# A one-shot process (the CLI) sets this: the original runs in a forked child where that is
# safe (one thread, Linux), not in a thread that competes with the passes for the interpreter.
ORIGINAL_IN_CHILD = False


@dataclass
class ModelStats:
    """Size facts about a model, before or after optimization."""

    nodes: int
    nodes_without_constants: int
    initializers: int
    ops: Counter
    file_bytes: Optional[int] = None


@dataclass
class Culprit:
    """Where bisection found the first divergence."""

    pass_spec: str
    index: int  # position in the executed pass list (0-based)
    rule: Optional[str] = None
    replaced: tuple = ()
    rewrite_index: Optional[int] = None
    round: Optional[int] = None  # its fixpoint group's iteration, when inside one

    def __str__(self) -> str:
        # The index counts pass runs in execution order, each round of a fixpoint group anew.
        where = f"; round {self.round} of its fixpoint group" if self.round else ""
        s = f"pass {self.pass_spec!r} (pass run #{self.index + 1} of the pipeline{where})"
        if self.rule:
            s += f", rewrite #{self.rewrite_index} by rule {self.rule!r}"
            if self.replaced:
                s += f" replacing {', '.join(map(str, self.replaced[:4]))}"
        return s


@dataclass
class OptimizeResult:
    """What ``optimize`` did: the model, per-pass records, verification and bisection."""

    model: Any
    report: Any
    before: ModelStats
    after: ModelStats
    verification: Any = None  # onnxopt.verify.VerifyReport, None when verification is off
    culprit: Optional[Culprit] = None
    pipeline: str = ""
    notes: list = field(default_factory=list)
    # ``lower_model(model).SerializeToString()`` as verification ran it, when that held every
    # weight inline (None otherwise): ``save(model, path, serialized=...)`` writes it as is, as
    # long as ``model`` has not changed since.
    serialized: Optional[bytes] = None

    @property
    def verified(self) -> bool:
        """True when verification ran and the outputs matched."""
        return self.verification is not None and self.verification.status == "ok"


def model_stats(model, file_bytes: Optional[int] = None) -> ModelStats:
    """Node, initializer and op counts of an IR model (subgraphs included)."""
    from .passes.base import count_ops

    ops = count_ops(model)
    n = sum(ops.values())
    inits = sum(len(g.initializers) for g in model.graphs())
    return ModelStats(n, n - ops.get("Constant", 0), inits, ops, file_bytes)


def _has_external(model) -> bool:
    return any(v.const_value.is_external for g in model.graphs() for v in g.initializers)


class _Lowered:
    """The optimized model in a form onnxruntime can load: bytes, or a temp file with data."""

    def __init__(self, model, borrow: bool = False):
        from .ir import lower_model

        self.tmpdir = None
        if borrow:  # for onnxopt's own verifier: the IR's arrays are fed, not copied
            from .verify.sources import lower_borrowing

            self.ref = lower_borrowing(model)
            if self.ref is not None:
                return
        if _has_external(model):
            from .io import save

            self.tmpdir = tempfile.mkdtemp(prefix="onnxopt-verify-")
            self.ref: Any = os.path.join(self.tmpdir, "model.onnx")
            save(model, self.ref, external=True)
        else:
            self.ref = lower_model(model).SerializeToString()

    def close(self) -> None:
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _apply_input_shapes(model, input_shapes: dict) -> None:
    from .ir import Shape, TensorType

    by_name = {v.name: v for v in model.graph.inputs}
    for name, dims in input_shapes.items():
        v = by_name.get(name)
        if v is None:
            raise UsageError(f"--input-shape: the model has no input {name!r} "
                             f"(inputs: {', '.join(by_name)})")
        old = v.type
        if not isinstance(old, TensorType):
            raise UsageError(f"--input-shape: input {name!r} is not a tensor")
        for d in dims:  # what lowering can write: int64 dims, or names
            ok = (type(d) is int and 0 <= d < 2**62) or (
                isinstance(d, str) and d.replace(".", "_").isidentifier())
            if not ok:
                raise UsageError(f"--input-shape: input {name!r}: dim {d!r} is neither a "
                                 "non-negative integer below 2**62 nor a name")
        if old.shape is not None and len(old.shape) != len(dims):
            raise UsageError(f"--input-shape: input {name!r} has rank {len(old.shape)}, "
                             f"got {len(dims)} dims")
        v.type = TensorType(old.dtype, Shape(dims))
    _check_input_shapes(model)


def _check_input_shapes(model) -> None:
    """Refuse input shapes the graph contradicts (an Add with a [2,3] weight given x:4,5): the
    output would be a model onnxruntime cannot load."""
    from .passes.shapes import infer_shapes

    errors = getattr(infer_shapes(model), "errors", ())
    if errors:
        first = getattr(errors[0], "message", str(errors[0]))
        raise UsageError(f"--input-shape: the model contradicts the given shapes: {first}"
                         + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def _load_original(source):
    """(IR model, reference onnxruntime can load, file size) for the caller's input."""
    from .io import load

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        model = load(path)
        # The file itself, not a serialized copy held through the passes (a model's size in
        # memory, and a parse and a serialization of it); nothing writes it before verification.
        return model, path, os.path.getsize(path)
    from .ir import Model

    if isinstance(source, Model):
        from .ir import lower_model

        lowered = _Lowered(source)
        if lowered.tmpdir:
            return source, lowered.ref, None
        return load(lowered.ref), lowered.ref, len(lowered.ref)
    model = load(source)
    if hasattr(source, "SerializeToString"):
        data = source.SerializeToString()
    else:
        data = bytes(source)
    return model, data, len(data)


def _available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (0 when it does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _OriginalRun:
    """The verifier runs the original while the passes run (a context around them).

    onnxruntime releases the interpreter while it builds a session and runs it, so on a model
    with small weights the original's session and runs overlap the passes (with two cores,
    most of the verifier's time is hidden): in a forked child where that is safe and asked for
    (:data:`ORIGINAL_IN_CHILD`, see :mod:`.verify.child`), else in a thread. A model with large
    weights overlaps only in a child, and only when the machine has room for the child's copy
    of them (:data:`CHILD_ROOM_FACTOR`; the child shares the parent's pages, its onnxruntime
    session holds a copy of its own); otherwise it is run first, alone, so that its session is
    gone before the passes allocate and the peak memory stays one copy of the weights, not two.
    Whatever preparing
    raises (a bad ``--input-shape``, say) is raised when the context ends, before any error of
    the passes: it came first before the overlap too."""

    def __init__(self, original_ref, vopts, model):
        self.error: Optional[BaseException] = None
        self.thread = self.child = self.verifier = None
        self.opened: Optional[_Opened] = None
        if vopts is None:
            return
        from .io import tensor_bytes
        from .verify import Verifier
        from .verify.child import ChildRun, can_fork

        self.verifier = verifier = Verifier(original_ref, vopts)
        weights = tensor_bytes(model)
        big = weights > OVERLAP_WEIGHT_BYTES
        # Small weights: the original's runs are short, and on one thread they leave the
        # passes the other processor. Large ones compute for seconds and keep every thread.
        verifier.threads = None if big else 1
        if ORIGINAL_IN_CHILD and can_fork() and (
                not big or _available_memory() > CHILD_ROOM_FACTOR * weights):
            self.child = ChildRun(verifier)
            return
        if big:
            verifier.prepare()
            return
        import threading

        self.thread = threading.Thread(target=self._prepare, args=(verifier,),
                                       name="onnxopt-verify-original", daemon=True)
        self.thread.start()

    def open(self, model) -> Optional[_Opened]:
        """The optimized ``model`` opened for the check (None without verification): its
        session is built while the original's child or thread may still be running."""
        if self.verifier is not None:
            self.opened = _Opened(model, self.verifier)
        return self.opened

    def _prepare(self, verifier) -> None:
        try:
            verifier.prepare()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread in __exit__
            self.error = e

    def __enter__(self) -> "_OriginalRun":
        return self

    def __exit__(self, kind, *exc) -> None:
        try:
            # A child that failed is redone here, unless the user interrupted: then nothing
            # waits.
            if self.child is not None and not self.child.collect() \
                    and (kind is None or issubclass(kind, Exception)):
                self.verifier.prepare()
            if self.thread is not None:
                self.thread.join()
            if self.error is not None:
                raise self.error
        finally:
            if self.opened is not None and (kind is not None or self.error is not None):
                self.opened.lowered.close()  # no check follows


def _fresh(source_ref, base_dir):
    from .io import load

    if isinstance(source_ref, str):
        return load(source_ref)
    return load(source_ref, base_dir=base_dir)


def optimize(model_or_path: Union[str, os.PathLike, bytes, Any], passes: Union[str, Sequence] = "default",
             verify: bool = True, *, verify_options: Any = None, verify_each: bool = False,
             check_modified: Optional[bool] = None, print_ir_after: Sequence[str] = (),
             print_fn: Callable[[str], None] = print, plugins: Sequence[str] = (),
             progress: Optional[Callable[[str, int, int], None]] = None, bisect: bool = True,
             target_opset: Optional[int] = None, input_shapes: Optional[dict] = None,
             reproducer_dir: Optional[str] = None, raise_on_failure: bool = True,
             verbose: int = 0, require_verified: bool = False,
             report: Optional[Union[str, os.PathLike]] = None) -> OptimizeResult:
    """Optimize a model (path, bytes, ModelProto or IR Model) with a pipeline.

    ``passes`` is pipeline text (``"fold,fuse"``, ``"default"``) or parsed items. With ``verify``
    (the default) the result is run against the original in onnxruntime; on divergence the
    pipeline is bisected and :class:`~onnxopt.errors.VerificationError` is raised (with the
    result attached as ``.result``) unless ``raise_on_failure`` is False. The input is never
    modified; nothing is written (use :func:`onnxopt.save`).

    ``plugins``: plugin files to load first (``--plugin``). ``verify_each``: check the IR's
    invariants and the opsets of touched nodes after built-in passes too (they always run after
    plugin passes). ``check_modified``: fingerprint the IR around each pass and fail one that
    reports no change after changing it; None (the default) does it for plugin passes (and for
    every pass with ``verify_each``), True for every pass, False for none.

    When verification cannot run (onnxruntime cannot load or run the original, inputs too big to
    generate, a custom domain), ``result.verification.status`` is "not verified" and its
    ``reason`` says why; with ``require_verified`` that raises
    :class:`~onnxopt.errors.NotVerifiedError` (exit code 1 in the CLI) instead.

    ``report``: write an offline HTML page there (:mod:`onnxopt.report`: the run, op counts and
    the graph diff, each created node linked to its pass and rule), also when verification fails.
    """
    from .passes import PassManager, load_plugin_file
    from .passes.pipeline import PassSpec, parse_pipeline

    report = _check_arguments(model_or_path, verify, require_verified, reproducer_dir, report)
    for p in plugins:
        load_plugin_file(p)
    items = parse_pipeline(passes) if isinstance(passes, str) else list(passes)
    if target_opset is not None:  # down or up, checked before anything is loaded
        from .passes.opset import parse_target

        # The user's opset is pinned: passes that only ask for "at least" a newer one yield.
        items = [PassSpec("opset", {"target": parse_target(target_opset)})] + [
            it for it in items
            if not (isinstance(it, PassSpec) and it.name == "opset" and it.options.get("at_least"))]
    model, original_ref, size = _load_original(model_or_path)
    base_dir = model.base_dir
    if input_shapes:
        _apply_input_shapes(model, input_shapes)
    before = model_stats(model, size)
    page = None
    if report is not None:
        from .report import Recorder

        page = Recorder(model, progress)  # the graph before, and who creates each node
        progress = page.progress
    vopts = _verify_options(verify_options, input_shapes) if verify else None
    pm = PassManager(items, verify_each=verify_each, check_modified=check_modified,
                     print_ir_after=tuple(print_ir_after), print_fn=print_fn,
                     reproducer_dir=reproducer_dir, verbose=verbose, progress=progress)
    with _OriginalRun(original_ref, vopts, model) as original:
        run = pm.run(model)
        optimized = original.open(model)  # while the original may still be running
    result = OptimizeResult(model, run, before, model_stats(model), pipeline=pm.text,
                            notes=list(run.notes))
    src = os.fspath(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else ""
    if not verify:
        if page is not None:
            page.write(report, result, input_path=src)
        return result
    _verify_result(result, optimized)
    if result.verification.status == "failed" and bisect and run.records:
        result.culprit = _bisect(items, run, original_ref, base_dir, vopts, input_shapes)
    if page is not None:
        page.write(report, result, input_path=src)
    _raise_unverified(result, raise_on_failure, require_verified)
    return result


def _verify_options(verify_options, input_shapes):
    """The verifier's options: the caller's, with ``input_shapes`` where it gives none."""
    from .verify import VerifyOptions

    vopts = verify_options or VerifyOptions()
    if input_shapes and not vopts.input_shapes:
        vopts.input_shapes = dict(input_shapes)
    return vopts


def _verify_result(result: "OptimizeResult", optimized: "_Opened") -> None:
    """Compare the opened optimized model with the original (sets ``result.verification``)."""
    from .verify.sources import BorrowedWeights

    try:
        result.verification = optimized.verifier.check(optimized.opened)
    finally:
        optimized.lowered.close()
    ref = optimized.lowered.ref
    if isinstance(ref, BorrowedWeights) and not ref.initializers:
        result.serialized = ref.data  # nothing lent: the whole model's bytes


class _Opened:
    """The optimized model lowered for onnxruntime and opened by the verifier
    (``Verifier.open``); the lowered form lives until the check is done."""

    def __init__(self, model, verifier):
        self.verifier = verifier
        self.lowered = _Lowered(model, borrow=True)
        try:
            self.opened = verifier.open(self.lowered.ref)
        except BaseException:
            self.lowered.close()
            raise


def _check_arguments(model_or_path, verify: bool, require_verified: bool,
                     reproducer_dir: Optional[str], report) -> Optional[str]:
    """Refuse contradictory or unusable arguments before any pass runs; the report path."""
    if require_verified and not verify:
        raise UsageError("require_verified needs verify=True")
    if reproducer_dir is not None and os.path.exists(reproducer_dir) \
            and not os.path.isdir(reproducer_dir):
        raise UsageError(f"reproducer folder {reproducer_dir}: exists and is not a directory")
    if report is None:
        return None
    from .report import check_report_path

    report = os.fspath(report)
    check_report_path(report, model_or_path if isinstance(model_or_path, (str, os.PathLike))
                      else None)
    return report


def _raise_unverified(result: "OptimizeResult", raise_on_failure: bool,
                      require_verified: bool) -> None:
    """VerificationError when the result diverged (unless ``raise_on_failure`` is False),
    NotVerifiedError when it could not be checked and ``require_verified`` asks for it."""
    if result.verification.status == "failed":
        if raise_on_failure:
            msg = f"verification failed: {result.verification.reason}"
            if result.culprit:
                msg += f"; first divergence after {result.culprit}"
            err = VerificationError(msg)
            err.result = result  # type: ignore[attr-defined]
            raise err
    elif result.verification.status != "ok" and require_verified:
        err = NotVerifiedError(f"not verified: {result.verification.reason}")
        err.result = result  # type: ignore[attr-defined]
        raise err


def _run_prefix(items, k: int, original_ref, base_dir, vopts, input_shapes,
                last_options: Optional[dict] = None):
    from .passes import PassManager
    from .verify import verify as run_verify

    model = _fresh(original_ref, base_dir)
    if input_shapes:
        _apply_input_shapes(model, input_shapes)
    PassManager(items, limit=k, last_options=last_options).run(model)
    lowered = _Lowered(model, borrow=True)
    try:
        return run_verify(original_ref, lowered.ref, vopts).status != "failed"
    finally:
        lowered.close()


def _bisect(items, report, original_ref, base_dir, vopts, input_shapes) -> Optional[Culprit]:
    """Smallest prefix of the executed passes whose result diverges."""
    from .passes import registry

    n = len(report.records)
    lo, hi = 0, n  # prefix lo is good (0 = nothing ran), prefix hi is bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _run_prefix(items, mid, original_ref, base_dir, vopts, input_shapes):
            lo = mid
        else:
            hi = mid
    rec = report.records[hi - 1]
    culprit = Culprit(rec.spec, hi - 1, round=rec.iteration)
    cls = registry.get(rec.name).cls
    if "max_rewrites" in getattr(cls, "options", {}) and rec.rewrites:
        rlo, rhi = 0, len(rec.rewrites)
        while rhi - rlo > 1:
            mid = (rlo + rhi) // 2
            if _run_prefix(items, hi, original_ref, base_dir, vopts, input_shapes,
                           {"max_rewrites": mid}):
                rlo = mid
            else:
                rhi = mid
        rw = rec.rewrites[rhi - 1]
        culprit.rule, culprit.replaced, culprit.rewrite_index = rw.rule, rw.replaced, rhi
    return culprit


__all__ = ["optimize", "OptimizeResult", "ModelStats", "Culprit", "model_stats"]
