"""Numerical verification: does the optimized model compute what the original computes?

Both models run in onnxruntime (CPU, graph optimizations disabled so the runtime's own fusions
cannot hide a broken graph) on the same seeded inputs, and every output is compared with
tolerances suited to its dtype.

Inputs are generated so the model can actually take them (or come from the user):

- every symbolic input dim (``dim_param``, unknown dims, ``-1``) is bound to two or more values,
  and the bindings differ in every symbol where the model allows it, so a pass that breaks
  dynamic shapes is caught. Candidate bindings are tried in a fixed order and only those the
  *original* runs at are kept (its outputs are cached). Batch-like symbols (named like a batch,
  or dim 0 of an input of rank >= 2) take 1, 2, 3...; others walk a ladder of sizes;
- an integer that reaches the indices of Gather/GatherElements/GatherND/Scatter*/OneHot (directly
  or through Cast, Reshape, Unsqueeze, Squeeze, Flatten, ...) stays inside the table, whose size
  comes from the static (or bound) shape of the data input;
- an integer tensor compared against a constant range (one-hot written as Equal) stays in that
  range; a scalar compared against constants takes one of those constants;
- masks (name contains "mask") are mostly 1 with the first position set, bools are 0/1;
- other integers are small and non-negative (uint8 spans 0..255), floats are standard normal;
- ``VerifyOptions.input_ranges`` overrides all of that per input, ``feeds`` replaces it.

:func:`verify` never raises for a mismatch: it returns a :class:`VerifyReport` whose status is
"ok", "failed" (the optimized model differs or does not run) or "not verified" (onnxruntime
cannot run the original). :class:`Verifier` keeps the original's session and outputs for
several checks (bisection).
"""

from __future__ import annotations

import hashlib
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import UsageError
from ..ortsession import run_options, session
from .common import (
    _BATCH_LADDER,
    _FEED_LIMIT,
    _FREE_TRIES,
    _INFER_LIMIT,
    _MAX_CANDIDATES,
    _PROBE_SECONDS,
    _SIZE_LADDER,
)
from .options import ModelSource, OutputDiff, VerifyOptions, VerifyReport
from .sources import _Source, _first_line
from .facts import _GraphFacts, _dims_of
from .inputs import _Input, _generate, _generated_bytes, _resolve, onnx_dtype
from .compare import _fmt_binding, compare_output


def verify(original: ModelSource, optimized: ModelSource,
           options: Optional[VerifyOptions] = None) -> VerifyReport:
    """Run both models (ModelProto, serialized bytes or file path) and compare their outputs."""
    return Verifier(original, options).check(optimized)


@dataclass(eq=False)
class OpenedModel:
    """An optimized model opened for :meth:`Verifier.check`: its onnxruntime session and the
    weights fed to it as inputs, or why the runtime refused it; ``seconds`` it took."""

    session: Any
    lent: dict
    error: Optional[str]
    seconds: float


@dataclass(eq=False)
class _Run:
    binding: dict
    feed: dict
    outputs: list


class _Prepared:
    """The original's session, its inputs and its outputs at the chosen bindings."""

    def __init__(self):
        self.error: Optional[str] = None   # set: the original cannot be verified
        self.note: str = ""
        self.runs: list[_Run] = []
        self.input_names: list[str] = []
        self.all_input_names: set = set()
        self.output_names: list[str] = []
        self.output_dtypes: dict = {}
        self.unreported = 0.0  # seconds spent preparing that no report has counted yet


_CACHE: dict = {}  # one entry: the last original prepared (bisection verifies it many times)


class Verifier:
    """Verify one original against one or more optimized models, preparing the original once."""

    def __init__(self, original: ModelSource, options: Optional[VerifyOptions] = None):
        self.options = options or VerifyOptions()
        self._original = _Source(original, "original model")
        self._prepared: Optional[_Prepared] = None
        self._generated = 0  # bytes allocated for generated inputs so far (all bindings)
        # Intra-op threads of the original's session (None: the runtime's default). Prepared
        # beside the passes it takes one, and leaves them the other processor.
        self.threads: Optional[int] = None

    # ---- the original

    def _options_key(self) -> tuple:
        o = self.options
        feeds = None
        if o.feeds is not None:
            h = hashlib.blake2b(digest_size=16)
            for f in o.feeds:
                for name in sorted(f):
                    a = np.asarray(f[name])
                    h.update(f"{name}:{a.dtype}:{a.shape}".encode())
                    h.update(a.tobytes() if a.dtype.kind != "O" else repr(a.tolist()).encode())
            feeds = h.hexdigest()
        return (o.seed, repr(o.bindings), feeds,
                repr(sorted(o.input_shapes.items())), repr(sorted(o.input_ranges.items())),
                o.min_bindings)

    def _key(self) -> Optional[tuple]:
        try:
            return (self._original.key(), self._options_key())
        except (OSError, ValueError):
            return None

    def _prepare(self) -> _Prepared:
        if self._prepared is not None:
            return self._prepared
        key = self._key()
        if key is not None and key in _CACHE:
            self._prepared = _CACHE[key]
            return self._prepared
        prep = _Prepared()
        t0 = time.perf_counter()
        try:
            self._prepare_into(prep)
        finally:
            self._original.close()
            prep.unreported = time.perf_counter() - t0
        self._keep(key, prep)
        return prep

    def _keep(self, key: Optional[tuple], prep: _Prepared) -> None:
        _CACHE.clear()
        if key is not None:
            _CACHE[key] = prep
        self._prepared = prep

    def _inputs(self, proto, size: int) -> list[_Input]:
        import onnx

        graph = proto.graph

        def inferred():
            if size >= _INFER_LIMIT:  # the full model's size: the same decision as before
                return None           # stripping
            try:
                return onnx.shape_inference.infer_shapes(proto).graph
            except Exception:  # noqa: BLE001 - shape inference is only a source of hints
                return None

        facts = _GraphFacts(graph, inferred)
        inits = {t.name for t in graph.initializer}
        by_name = {vi.name: vi for vi in graph.input}
        for name in list(self.options.input_shapes) + list(self.options.input_ranges):
            if name not in by_name or name in inits:
                raise UsageError(f"verify: the model has no input {name!r} (inputs: "
                                 f"{', '.join(n for n in by_name if n not in inits)})")
        for name, (lo, hi) in self.options.input_ranges.items():
            if not lo <= hi:
                raise UsageError(f"verify: input range of {name!r} is empty ({lo} > {hi})")
        out = []
        for vi in graph.input:
            if vi.name in inits:
                continue
            if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.elem_type:
                raise _NotVerified(f"input {vi.name!r} is not a tensor of known type; "
                                   "pass feeds (--inputs data.npz)")
            dims = _dims_of(vi.type)
            override = self.options.input_shapes.get(vi.name)
            if override is not None:
                if dims is not None and len(dims) != len(override):
                    raise UsageError(f"verify: input {vi.name!r} has rank {len(dims)}, "
                                     f"got {len(override)} dims")
                dims = [_parse_dim(d) for d in override]
            if dims is None:
                raise _NotVerified(f"input {vi.name!r} has unknown rank; give its shape "
                                   "(--input-shape NAME:DIMS) or feeds")
            dims = [f"{vi.name}[{ax}]" if d is None else d for ax, d in enumerate(dims)]
            out.append(_Input(vi.name, vi.type.tensor_type.elem_type, dims, facts.hints(vi.name)))
        return out

    def _prepare_into(self, prep: _Prepared) -> None:
        proto = self._original.proto()
        try:
            inputs = self._inputs(proto, self._original.size)
        except _NotVerified as e:
            prep.error = str(e)
            return
        prep.input_names = [i.name for i in inputs]
        prep.all_input_names = {vi.name for vi in proto.graph.input}
        prep.output_names = [o.name for o in proto.graph.output]
        prep.output_dtypes = {o.name: o.type.tensor_type.elem_type for o in proto.graph.output
                              if o.type.HasField("tensor_type")}
        try:
            sess = session(self._original.ort_ref(), prepack=False, spin=False,
                           threads=self.threads)
        except Exception as e:  # noqa: BLE001 - any load failure is a finding
            prep.error = f"onnxruntime cannot load the original model: {_first_line(e)}"
            return
        prep.output_names = [o.name for o in sess.get_outputs()]
        ro = run_options()

        def run(feed: dict):
            try:
                return sess.run(None, feed, ro), None
            except Exception as e:  # noqa: BLE001 - any runtime failure is a finding
                return None, _first_line(e)

        symbols = _symbols(inputs)
        try:
            self._run_original(prep, inputs, symbols, run)
        except _NotVerified as e:
            prep.error = str(e)

    def _run_original(self, prep, inputs, symbols, run) -> None:
        opts = self.options
        if opts.feeds is not None:
            self._explicit_feeds(prep, inputs, symbols, run)
        elif opts.bindings is not None:
            for k, given in enumerate(opts.bindings):
                unknown = [s for s in given if s not in symbols]
                if unknown:
                    raise UsageError(f"verify: binding names unknown symbol(s) "
                                     f"{', '.join(unknown)} (symbols: {', '.join(symbols)})")
                binding = {**_candidate(symbols, k, skew=False), **given}
                feed = self._feed(inputs, binding, k)
                outs, err = run(feed)
                if err:
                    prep.error = (f"onnxruntime cannot run the original at "
                                  f"{_fmt_binding(binding)}: {err}")
                    return
                prep.runs.append(_Run(binding, feed, outs))
        else:
            self._probe(prep, inputs, symbols, run)

    def _explicit_feeds(self, prep, inputs, symbols, run) -> None:
        names = {i.name for i in inputs}
        for k, given in enumerate(self.options.feeds or []):
            unknown = [n for n in given if n not in names]
            if unknown:
                raise UsageError(f"verify: feeds name unknown input(s) {', '.join(unknown)} "
                                 f"(inputs: {', '.join(names)})")
            binding: dict = {}
            for inp in inputs:
                if inp.name in given:
                    shape = np.shape(given[inp.name])
                    for ax, d in enumerate(inp.dims):
                        if isinstance(d, str) and ax < len(shape):
                            binding.setdefault(d, int(shape[ax]))
            for s, v in _candidate(symbols, k, skew=False).items():
                binding.setdefault(s, v)
            binding = {s: binding[s] for s in symbols}
            feed = self._feed(inputs, binding, k, given)
            outs, err = run(feed)
            if err:
                prep.error = f"onnxruntime cannot run the original on feeds #{k + 1}: {err}"
                return
            prep.runs.append(_Run(binding, feed, outs))

    def _probe(self, prep, inputs, symbols, run) -> None:
        """Try candidate bindings in order; keep those the original runs at.

        A binding is kept when it gives every symbol a value no kept binding gave it. When the
        ladder cannot provide enough of those (a symbol the model pins to one value, say), the
        symbols are moved one at a time from the first kept binding to find those that are free,
        and all free ones are moved together.
        """
        want = 1 if not symbols else max(1, self.options.min_bindings)
        ran: list[_Run] = []
        first_err = None
        start = time.perf_counter()

        def attempt(binding: dict, k: int) -> Optional[_Run]:
            nonlocal first_err
            try:
                feed = self._feed(inputs, binding, k)
            except _NotVerified as e:
                first_err = first_err or (binding, str(e))
                return None
            outs, err = run(feed)
            if err:
                first_err = first_err or (binding, err)
                return None
            r = _Run(binding, feed, outs)
            ran.append(r)
            return r

        def out_of_time(tries: int) -> bool:
            return time.perf_counter() - start > _PROBE_SECONDS and (bool(prep.runs) or tries >= 8)

        for k, binding in enumerate(_candidates(symbols)):
            if len(prep.runs) >= want or k >= _MAX_CANDIDATES or out_of_time(k):
                break
            r = attempt(binding, k)
            if r and all(all(binding[s] != p.binding[s] for s in symbols) for p in prep.runs):
                prep.runs.append(r)
        if prep.runs and len(prep.runs) < want:
            self._probe_free_symbols(prep, symbols, attempt, want, out_of_time)
        for r in ran:  # last resort: differing in some symbol beats a single binding
            if len(prep.runs) >= want:
                break
            if all(r.binding != p.binding for p in prep.runs):
                prep.runs.append(r)
        if not prep.runs:
            binding, err = first_err if first_err else ({}, "no binding tried")
            prep.error = (f"onnxruntime cannot run the original model at any of the bindings "
                          f"tried (first: {_fmt_binding(binding)}): {err}")
        elif len(prep.runs) < want:
            prep.note = (f"only {len(prep.runs)} binding of the symbolic dims runs in the "
                         "original")

    @staticmethod
    def _probe_free_symbols(prep, symbols, attempt, want: int, out_of_time) -> None:
        base = prep.runs[0].binding
        k = _MAX_CANDIDATES  # feed seeds continue after the ladder's
        moved: dict[str, _Run] = {}
        for s, batch in symbols.items():
            used = {p.binding[s] for p in prep.runs}
            ladder = [v for v in (_BATCH_LADDER if batch else _SIZE_LADDER) if v not in used]
            for v in ladder[:_FREE_TRIES]:
                if out_of_time(k):
                    return
                r = attempt({**base, s: v}, k)
                k += 1
                if r:
                    moved[s] = r
                    break
        if len(moved) > 1:
            r = attempt({**base, **{s: r.binding[s] for s, r in moved.items()}}, k)
            if r:
                prep.runs.append(r)
                return
        for r in moved.values():
            if len(prep.runs) >= want:
                break
            prep.runs.append(r)

    def _feed(self, inputs: list[_Input], binding: dict, cand: int,
              given: Optional[dict] = None) -> dict:
        seed = self.options.seed % (2**63)
        ranges = self.options.input_ranges
        feed = {}
        total = 0
        for inp in inputs:
            if given is not None and inp.name in given:
                feed[inp.name] = np.asarray(given[inp.name])
                continue
            # A static 0 is fed as 0 (an empty input is what the model declares); an unbound
            # symbol as 1.
            shape = tuple(int(1 if v is None else v)
                          for v in (_resolve(d, binding) for d in inp.dims))
            total += math.prod(shape) * _generated_bytes(inp.dtype)
            if self._generated + total > _FEED_LIMIT:  # never allocate what dims make absurd
                raise _NotVerified(f"input {inp.name!r} of shape {list(shape)} is too big to "
                                   f"generate ({(self._generated + total) / 2**30:.3g} GiB of "
                                   "inputs over the bindings tried); give smaller shapes "
                                   "(--input-shape) or feeds")
            rng = np.random.default_rng([seed, cand, zlib.crc32(inp.name.encode())])
            # numpy returns 0-d results as scalars, which onnxruntime will not take
            feed[inp.name] = np.asarray(_generate(inp, shape, binding, rng, cand, ranges))
        self._generated += total
        return feed

    def feeds(self) -> list[tuple[dict[str, int], dict[str, np.ndarray]]]:
        """The (binding, inputs) pairs the original ran at: what every check feeds both models.

        Empty when the original cannot be verified (``check`` says why).
        """
        return [(dict(r.binding), dict(r.feed)) for r in self._prepare().runs]

    def prepare(self) -> _Prepared:
        """Run the original now. ``optimize`` calls this before or while the passes run; the
        time it takes is counted in the next report. What it returns is picklable: a verifier
        of the same original in another process can :meth:`adopt` it."""
        return self._prepare()

    def adopt(self, prep: _Prepared) -> None:
        """Take ``prep`` (:meth:`prepare` of a verifier of the same original and options, in
        another process) as this original's run."""
        self._keep(self._key(), prep)

    # ---- the optimized model

    def open(self, optimized: ModelSource) -> "OpenedModel":
        """The optimized model's session, or why onnxruntime refused it. It needs nothing of
        the original: a caller may open it while the original is still being prepared
        elsewhere (a forked child, a thread), and pass it to :meth:`check`."""
        t0 = time.perf_counter()
        src = _Source(optimized, "optimized model")
        lent = src.borrowed()
        sess, error = None, None
        try:
            sess = session(src.ort_ref(), prepack=False, spin=False)
        except Exception as e:  # noqa: BLE001 - any load failure is a finding
            error = f"onnxruntime cannot load the optimized model: {_first_line(e)}"
        finally:
            src.close()
        return OpenedModel(sess, lent, error, time.perf_counter() - t0)

    def check(self, optimized: "ModelSource | OpenedModel") -> VerifyReport:
        """Compare ``optimized`` (a model, or what :meth:`open` made of it) with the original
        at the prepared bindings."""
        t0 = time.perf_counter()
        prep = self._prepare()
        t0 -= prep.unreported  # preparing counts once, in the first report after it
        prep.unreported = 0.0
        bindings = [r.binding for r in prep.runs]

        def report(status: str, reason: str, diffs=()) -> VerifyReport:
            return VerifyReport(status, reason, bindings, list(diffs), time.perf_counter() - t0)

        if prep.error:
            return report("not verified", prep.error)
        if isinstance(optimized, OpenedModel):
            t0 -= optimized.seconds  # opened before this call: its time counts here
            opened = optimized
        else:
            opened = self.open(optimized)
        if opened.error:
            return report("failed", opened.error)
        sess, lent = opened.session, opened.lent
        opt_in = [i.name for i in sess.get_inputs() if i.name not in lent]
        opt_out = [o.name for o in sess.get_outputs()]
        extra = [n for n in opt_in if n not in prep.all_input_names]
        missing = [n for n in prep.input_names if n not in opt_in]
        if extra or missing:
            what = (f"has new input(s) {', '.join(extra)}" if extra
                    else f"lost input(s) {', '.join(missing)}")
            return report("failed", f"the optimized model {what}")
        if opt_out != prep.output_names:
            return report("failed", f"outputs differ: original ({', '.join(prep.output_names)}) "
                          f"vs optimized ({', '.join(opt_out)})")
        ro = run_options()
        diffs: list[OutputDiff] = []
        first_fail: Optional[str] = None
        failures = 0
        for r in prep.runs:
            feed = {n: r.feed[n] for n in opt_in if n in r.feed}
            feed.update(lent)
            try:
                outs = sess.run(None, feed, ro)
            except Exception as e:  # noqa: BLE001 - any runtime failure is a finding
                failures += 1
                first_fail = first_fail or (f"the optimized model fails at "
                                            f"{_fmt_binding(r.binding)}: {_first_line(e)}")
                continue
            for name, ref, got in zip(prep.output_names, r.outputs, outs):
                dtype = prep.output_dtypes.get(name) or (
                    onnx_dtype(ref.dtype) if isinstance(ref, np.ndarray) else 0)
                atol, rtol = self.options.tolerances(dtype)
                d = compare_output(name, r.binding, ref, got, atol, rtol)
                diffs.append(d)
                if not d.ok:
                    failures += 1
                    if first_fail is None:
                        detail = d.note or "values differ"
                        if math.isfinite(d.max_abs):
                            detail = (f"max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g} "
                                      f"(atol {atol:g}, rtol {rtol:g}); {detail}")
                        first_fail = (f"output {name!r} differs at {_fmt_binding(r.binding)}: "
                                      f"{detail}")
        if first_fail is not None:
            more = f" ({failures} failing check(s) in all)" if failures > 1 else ""
            return report("failed", first_fail + more, diffs)
        max_abs = max((d.max_abs for d in diffs), default=0.0)
        max_rel = max((d.max_rel for d in diffs), default=0.0)
        where = (f"{len(bindings)} binding(s) {', '.join(_fmt_binding(b) for b in bindings)}"
                 if any(bindings) else "the static shapes")
        reason = (f"{len(prep.output_names)} output(s) match at {where}; "
                  f"max abs {max_abs:.3g}, max rel {max_rel:.3g}")
        if prep.note:
            reason += f" ({prep.note})"
        return report("ok", reason, diffs)


class _NotVerified(Exception):
    pass


def _parse_dim(d):
    if isinstance(d, (int, np.integer)):
        return int(d) if d >= 0 else None
    s = str(d).strip()
    if s.lstrip("-").isdigit():
        return int(s) if int(s) >= 0 else None
    return None if s in ("", "?") else s


def _symbols(inputs: list[_Input]) -> dict[str, bool]:
    """Symbol -> batch-like, in order of first appearance."""
    out: dict[str, bool] = {}
    for inp in inputs:
        for ax, d in enumerate(inp.dims):
            if not isinstance(d, str):
                continue
            low = d.lower()
            batch = ("batch" in low or d in ("N", "B", "bs")
                     or (ax == 0 and len(inp.dims) >= 2))
            out[d] = out.get(d, False) or batch
    return out


def _candidate(symbols: dict[str, bool], k: int, skew: bool) -> dict[str, int]:
    """The k-th binding: batch-like symbols on the batch ladder, others on the size ladder.

    With ``skew`` the j-th symbol of each kind is shifted j steps along its ladder, so symbols
    get different values (catches swapped dims); without, they move together (for models that
    need some symbols equal).
    """
    out = {}
    nb = ns = 0
    for s, batch in symbols.items():
        if batch:
            out[s] = _BATCH_LADDER[(k + (nb if skew else 0)) % len(_BATCH_LADDER)]
            nb += 1
        else:
            out[s] = _SIZE_LADDER[(k + (ns if skew else 0)) % len(_SIZE_LADDER)]
            ns += 1
    return out


def _candidates(symbols: dict[str, bool]):
    seen = []
    for k in range(len(_SIZE_LADDER)):
        for skew in (True, False):
            c = _candidate(symbols, k, skew)
            if c not in seen:
                seen.append(c)
                yield c


__all__ = ["OpenedModel", "OutputDiff", "Verifier", "VerifyOptions", "VerifyReport",
           "compare_output", "onnx_dtype", "verify"]
