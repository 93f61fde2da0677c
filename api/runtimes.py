"""Where the model will run: verify and time the optimized model on a deployment runtime.

:mod:`onnxopt.verify` proves a rewrite in onnxruntime with its graph optimizations off. Users
deploy elsewhere, so each runtime here compares the optimized model with the original **on that
runtime** (both models run there, on the inputs the verifier generated), per output, with the
verifier's per-dtype tolerances:

- ``ort``: onnxruntime, CPU, graph optimizations off (the verifier's own setting);
- ``ort-full``: onnxruntime, CPU, ``ORT_ENABLE_ALL`` (its fusions on: the deployment setting);
- ``openvino``: the ``openvino`` package (``onnxopt[openvino]``), CPU device, fp32 inference
  (OpenVINO's CPU plugin would otherwise run in bf16 where the CPU has it, which hides nothing
  but blurs every comparison);
- ``ort:<ExecutionProvider>``: onnxruntime with that provider first (CPU for what it leaves),
  ``ORT_ENABLE_ALL``; any provider the installed onnxruntime lists.

A runtime that is missing is a :class:`~onnxopt.errors.UsageError` naming what to install. A
runtime that cannot run even the original gives status "not verified" with its reason; the
other runtimes' results stand. :func:`bench` times a model on a runtime (median and spread over
a time budget, warm-up excluded).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UsageError
from .ortsession import CPU, run_options
from .ortsession import session as ort_session
from .verify import Verifier, compare_output, onnx_dtype

RUNTIMES = ("ort", "ort-full", "openvino", "ort:<ExecutionProvider>")


@dataclass
class Runtime:
    """A parsed runtime spec: ``kind`` is "ort" or "openvino"; ``full`` turns ORT's
    optimizations on; ``provider`` is the ORT execution provider."""

    spec: str
    kind: str
    full: bool = False
    provider: str = "CPUExecutionProvider"

    def load(self, model: Any, threads: int = 0) -> Session:
        """A session for ``model`` (path or serialized bytes); ``threads`` 0 means all."""
        if self.kind == "openvino":
            return _openvino_session(model, threads)
        return _ort_session(self, model, threads)


@dataclass
class Session:
    """A loaded model: input names, output names and ``run(feed) -> list of arrays``."""

    inputs: list[str]
    outputs: list[str]
    run: Callable[[dict], list]
    aliases: list[set] = field(default_factory=list)  # every name of each output (OpenVINO)

    def same_outputs(self, other: Session) -> bool:
        """Same outputs in the same order (OpenVINO may call an output by any of its names)."""
        if len(self.outputs) != len(other.outputs):
            return False
        mine = self.aliases or [{n} for n in self.outputs]
        theirs = other.aliases or [{n} for n in other.outputs]
        return all(a & b for a, b in zip(mine, theirs))


def parse_runtimes(text: str) -> list[Runtime]:
    """``"ort-full,openvino"`` -> runtimes, each checked to be installed and available here."""
    out: list[Runtime] = []
    for spec in (s.strip() for s in text.split(",")):
        if not spec:
            continue
        rt = _parse_one(spec)
        if all(r.spec != rt.spec for r in out):
            out.append(rt)
    if not out:
        raise UsageError(f"no runtime named in {text!r} (runtimes: {', '.join(RUNTIMES)})")
    return out


def _parse_one(spec: str) -> Runtime:
    if spec == "ort":
        return Runtime(spec, "ort")
    if spec == "ort-full":
        return Runtime(spec, "ort", full=True)
    if spec == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise UsageError("runtime 'openvino' is not installed: pip install "
                             "'onnxopt[openvino]'") from None
        return Runtime(spec, "openvino")
    if spec.startswith("ort:"):
        import onnxruntime as ort

        provider = spec[4:]
        if provider and not provider.endswith("ExecutionProvider"):
            provider += "ExecutionProvider"  # ort:CUDA is ort:CUDAExecutionProvider
        have = ort.get_available_providers()
        if provider not in have:
            raise UsageError(f"runtime {spec!r}: the installed onnxruntime has no {provider} "
                             f"(it has {', '.join(have)}); install the onnxruntime build that "
                             "ships it (e.g. onnxruntime-gpu for CUDA and TensorRT, "
                             "onnxruntime-openvino, onnxruntime-directml)")
        return Runtime(spec, "ort", full=True, provider=provider)
    raise UsageError(f"unknown runtime {spec!r} (runtimes: {', '.join(RUNTIMES)})")


def _ort_session(rt: Runtime, model: Any, threads: int) -> Session:
    providers = [rt.provider] + ([CPU] if rt.provider != CPU else [])
    sess = ort_session(model, optimize=rt.full, threads=threads, providers=providers)
    if rt.provider not in sess.get_providers():  # onnxruntime fell back silently
        raise RuntimeError(f"{rt.provider} could not be initialised on this machine")
    ro = run_options()
    return Session([i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()],
                   lambda feed: sess.run(None, feed, ro))


def _openvino_session(model: Any, threads: int) -> Session:
    import openvino as ov

    core = ov.Core()
    if isinstance(model, (bytes, bytearray)):
        ov_model = core.read_model(bytes(model), b"")
    else:
        ov_model = core.read_model(os.fspath(model))
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(ov_model, "CPU", config)
    names = [p.get_any_name() for p in compiled.outputs]
    inputs = [p.get_any_name() for p in compiled.inputs]
    request = compiled.create_infer_request()

    def run(feed: dict) -> list:
        res = request.infer({k: v for k, v in feed.items() if k in inputs})
        return [np.array(res[p]) for p in compiled.outputs]

    return Session(inputs, names, run, [set(p.get_names()) for p in compiled.outputs])


_NOISE = ("Check '", "Exception from", "Summary:", "To facilitate")


def first_line(err: BaseException, limit: int = 400) -> str:
    """An exception as one line (runtimes raise pages of log)."""
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # OpenVINO puts its reason after a "Check ... failed at ..." banner and spreads it over
    # several lines ("...OpConversionFailure:", "No conversion rule found for operations: X"):
    # drop the banners and the advice, join the rest.
    useful = [ln for ln in lines if not ln.startswith(_NOISE)]
    line = " ".join(useful[:4]) if useful else (lines or [type(err).__name__])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Verification on a runtime


@dataclass
class RuntimeReport:
    """One runtime's verdict: "ok" | "failed" | "not verified", one-line reason, per-output diffs."""

    runtime: str
    status: str
    reason: str
    diffs: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"runtime": self.runtime, "status": self.status, "reason": self.reason,
                "outputs": [{"name": d.name, "binding": d.binding, "max_abs": d.max_abs,
                             "max_rel": d.max_rel, "ok": d.ok, "note": d.note}
                            for d in self.diffs],
                "seconds": round(self.seconds, 4)}


def verify_on(original: Any, optimized: Any, runtimes: list[Runtime],
              options: Any = None) -> list[RuntimeReport]:
    """Compare ``optimized`` with ``original`` on each runtime (paths or serialized bytes).

    Inputs are the verifier's (:meth:`onnxopt.verify.Verifier.feeds`): generated so the original
    runs, or the user's feeds. Never raises for a runtime's failure: it is in the report.
    """
    verifier = Verifier(original, options)
    feeds = verifier.feeds()
    if not feeds:  # the reference run cannot even start: same reason on every runtime
        why = verifier.check(optimized).reason
        return [RuntimeReport(rt.spec, "not verified", why) for rt in runtimes]
    return [_verify_one(rt, original, optimized, feeds, verifier.options) for rt in runtimes]


def _verify_one(rt: Runtime, original, optimized, feeds, options) -> RuntimeReport:
    t0 = time.perf_counter()

    def report(status: str, reason: str, diffs=()) -> RuntimeReport:
        return RuntimeReport(rt.spec, status, reason, list(diffs), time.perf_counter() - t0)

    try:
        ref_sess = rt.load(original)
    except Exception as e:  # noqa: BLE001 - the runtime's reason is the finding
        return report("not verified", f"{rt.spec} cannot load the original: {first_line(e)}")
    refs, why = [], None
    for binding, feed in feeds:
        try:
            refs.append((binding, feed, ref_sess.run(feed)))
        except Exception as e:  # noqa: BLE001
            why = why or f"{rt.spec} cannot run the original at {_fmt(binding)}: {first_line(e)}"
    if not refs:
        return report("not verified", why or "no inputs")
    try:
        sess = rt.load(optimized)
    except Exception as e:  # noqa: BLE001
        return report("failed", f"{rt.spec} cannot load the optimized model: {first_line(e)}")
    if not sess.same_outputs(ref_sess):
        return report("failed", f"outputs differ on {rt.spec}: original "
                      f"({', '.join(ref_sess.outputs)}) vs optimized ({', '.join(sess.outputs)})")
    return _compare_runs(rt, sess, refs, options, report, ref_sess.outputs)


def _compare_runs(rt: Runtime, sess: Session, refs, options, report,
                  names: list[str] | None = None) -> RuntimeReport:
    diffs, first_fail = [], None
    names = names or sess.outputs
    for binding, feed, ref_outs in refs:
        try:
            outs = sess.run({n: feed[n] for n in sess.inputs if n in feed})
        except Exception as e:  # noqa: BLE001 - a runtime failure is a finding
            first_fail = first_fail or (f"{rt.spec}: the optimized model fails at "
                                        f"{_fmt(binding)}: {first_line(e)}")
            continue
        for name, ref, got in zip(names, ref_outs, outs):
            dtype = onnx_dtype(ref.dtype) if isinstance(ref, np.ndarray) else 0
            atol, rtol = options.tolerances(dtype)
            d = compare_output(name, binding, ref, got, atol, rtol)
            diffs.append(d)
            if not d.ok and first_fail is None:
                detail = d.note or "values differ"
                if math.isfinite(d.max_abs):
                    detail = f"max abs {d.max_abs:.3g} (atol {atol:g}, rtol {rtol:g}); {detail}"
                first_fail = f"{rt.spec}: output {name!r} differs at {_fmt(binding)}: {detail}"
    if first_fail:
        return report("failed", first_fail, diffs)
    worst = max((d.max_abs for d in diffs), default=0.0)
    return report("ok", f"{len(sess.outputs)} output(s) match at {len(refs)} input set(s); "
                  f"max abs {worst:.3g}", diffs)


def _fmt(binding: dict) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in binding.items()) + "}" if binding else "{}"


# --------------------------------------------------------------------------------------------
# Latency


@dataclass
class Timing:
    """Latency of one model on one runtime at one thread count, in milliseconds."""

    runtime: str
    threads: int  # 0: all
    runs: int
    median_ms: float
    p10_ms: float
    p90_ms: float

    def as_dict(self) -> dict:
        return {"runtime": self.runtime, "threads": self.threads or "all", "runs": self.runs,
                "median_ms": round(self.median_ms, 4), "p10_ms": round(self.p10_ms, 4),
                "p90_ms": round(self.p90_ms, 4)}


def bench(rt: Runtime, model: Any, feed: dict, threads: int = 1, budget_s: float = 2.0,
          min_runs: int = 20, warmup: int = 3) -> Timing:
    """Time ``model`` on ``rt`` (see :func:`bench_many`)."""
    return bench_many(rt, [model], feed, threads, budget_s, min_runs, warmup)[0]


def bench_many(rt: Runtime, models: list, feed: dict, threads: int = 1, budget_s: float = 2.0,
               min_runs: int = 20, warmup: int = 3) -> list[Timing]:
    """Time each model on ``rt``: ``warmup`` runs each discarded, then rounds that run every
    model once, until ``budget_s`` has passed and ``min_runs`` rounds were timed. Interleaving
    puts the models under the same load (a shared machine's load drifts over seconds); the
    median and 10th/90th percentiles are the result, as a loaded machine makes means lie."""
    sessions = [rt.load(m, threads) for m in models]
    feeds = [{n: feed[n] for n in s.inputs if n in feed} for s in sessions]
    for s, f in zip(sessions, feeds):
        for _ in range(warmup):
            s.run(f)
    times: list[list[float]] = [[] for _ in sessions]
    start = time.perf_counter()
    while len(times[0]) < min_runs or time.perf_counter() - start < budget_s:
        for s, f, acc in zip(sessions, feeds, times):
            t = time.perf_counter()
            s.run(f)
            acc.append((time.perf_counter() - t) * 1e3)
        if len(times[0]) >= 10 * min_runs and time.perf_counter() - start >= budget_s:
            break
    out = []
    for acc in times:
        q = statistics.quantiles(acc, n=10) if len(acc) >= 2 else acc * 9
        out.append(Timing(rt.spec, threads, len(acc), statistics.median(acc), q[0], q[-1]))
    return out


def bench_pair(rt: Runtime, original: Any, optimized: Any, feed: dict,
               budget_s: float = 2.0) -> list[dict]:
    """Original vs optimized on ``rt`` at 1 thread and all threads: one dict per thread count,
    with ``slower`` set when the optimized median is more than 5 % above the original's and
    its fastest tenth is still above the original's median (a loaded machine's noise is not a
    finding)."""
    rows = []
    for threads in (1, 0):
        a, b = bench_many(rt, [original, optimized], feed, threads, budget_s)
        rows.append({"runtime": rt.spec, "threads": threads or "all",
                     "original": a.as_dict(), "optimized": b.as_dict(),
                     "speedup": round(a.median_ms / b.median_ms, 3) if b.median_ms else None,
                     "slower": b.median_ms > 1.05 * a.median_ms and b.p10_ms > a.median_ms})
    return rows


__all__ = ["RUNTIMES", "Runtime", "RuntimeReport", "Session", "Timing", "bench", "bench_many",
           "bench_pair", "first_line", "parse_runtimes", "verify_on"]
