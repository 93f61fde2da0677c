"""``onnxopt.cut``: split a model into pipeline stages or extract a subgraph, verified by
composition (see ``docs/cut.md``)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError, VerificationError
from ..ir import Model, Node
from .build import INPUT, StageIO, split
from .cost import CostModel, add_all
from .graphview import GraphView

BALANCES = ("flops", "params", "memory")


@dataclass
class CutResult:
    """The stage models (in order), the manifest (what ``pipeline.json`` holds) and the
    verification verdict ("ok", "failed", "not verified" or "off") with its reason."""

    stages: list[Model]
    manifest: dict
    verification: str = "off"
    reason: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _source(model: Any) -> tuple[Model, Any, str]:
    """(the IR to consume, what onnxruntime loads as the original, a label)."""
    from ..io import load

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file")
        return load(path), path, path
    if isinstance(model, Model):
        from ..ir import lower_model

        data = lower_model(model).SerializeToString()
        return load(data, base_dir=model.base_dir), data, "<model>"
    if isinstance(model, (bytes, bytearray)):
        return load(bytes(model)), bytes(model), "<bytes>"
    if hasattr(model, "SerializeToString"):
        data = model.SerializeToString()
        return load(data), data, "<ModelProto>"
    raise UsageError(f"cannot cut a {type(model).__name__}")


def _binding(model: Model, input_shapes: dict[str, list]) -> dict[str, int]:
    """Symbol -> value for the dims the user fixed (``--input-shape``)."""
    from ..ir import SymDim

    by_name = {v.name: v for v in model.graph.inputs}
    out: dict[str, int] = {}
    for name, dims in input_shapes.items():
        v = by_name.get(name)
        if v is None:
            raise UsageError(f"--input-shape {name}: the model has no input {name!r}")
        t = v.meta.get("shapes_type") or v.type
        shape = getattr(t, "shape", None)
        if shape is not None and len(shape) != len(dims):
            raise UsageError(f"--input-shape {name}: rank {len(dims)}, the input has {len(shape)}")
        for d, given in zip(shape or (), dims):
            if isinstance(d, SymDim) and d.is_symbol and isinstance(given, int):
                out[d.text] = given
    return out


def _stage_costs(view: GraphView, costs: CostModel, members: list[list[Node]]) -> list[dict]:
    out = []
    for nodes in members:
        params, inits = 0, set()
        for n in nodes:
            for v in view.reads[n]:
                if v.is_initializer() and v not in inits:
                    inits.add(v)
                    params += v.const_value.nbytes or 0
        flops = add_all(costs.flops(n) for n in nodes)
        memory = add_all([params] + [costs.nbytes(o) for n in nodes for o in n.outputs])
        out.append({"nodes": len(nodes), "flops": costs.text(flops),
                    "flops_value": costs.number(flops), "params_bytes": params,
                    "memory_bytes": costs.text(memory), "memory_value": costs.number(memory)})
    return out


def _manifest(label: str, view: GraphView, finals: list, ios: list[StageIO], stage_costs,
              costs: CostModel, mode: str, balance: str | None) -> dict:
    from .store import stage_file

    stages = []
    for k, (io, c) in enumerate(zip(ios, stage_costs)):
        bbytes = add_all(costs.nbytes(v) for v in io.boundary)
        stages.append({
            "index": k, "file": stage_file(k),
            "inputs": [{"name": n, "from": src if src == INPUT else int(src)}
                       for n, src in io.inputs],
            "outputs": io.outputs, "initializers": len(io.initializers), **c,
            "boundary": [v.name for v in io.boundary],
            "boundary_bytes": costs.text(bbytes), "boundary_bytes_value": costs.number(bbytes)})
    return {"model": label, "mode": mode, "balance": balance,
            "binding": {**costs.binding, "*": "1 for batch-like symbols, else 128"},
            "inputs": sorted({n for io in ios for n, s in io.inputs if s == INPUT},
                             key=_input_order(view)),
            "outputs": [v.name for v in finals], "stages": stages}


def _input_order(view: GraphView):
    order = {v.name: i for i, v in enumerate(view.model_inputs)}
    return lambda n: (order.get(n, len(order)), n)


def _members(view: GraphView, stage_of: dict, n: int) -> list[list[Node]]:
    out: list[list[Node]] = [[] for _ in range(n)]
    for node in view.order:
        if node in stage_of:
            out[stage_of[node]].append(node)
    return out


def _names(spec: None | str | Sequence[str]) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [s.strip() for s in spec.split(",") if s.strip()]
    return [s for part in spec for s in _names(part)]


def _check_modes(at, stages, extract, balance) -> None:
    modes = sum(x is not None and x != [] for x in (at, stages, extract))
    if modes != 1:
        raise UsageError("cut: give exactly one of at (tensors), stages (a count) or extract "
                         "(inputs, outputs)")
    if stages is not None and (not isinstance(stages, int) or stages < 2):
        raise UsageError(f"--stages {stages}: give 2 or more")
    if balance not in BALANCES:
        raise UsageError(f"--balance {balance}: choose one of {', '.join(BALANCES)}")


def _plan(view: GraphView, costs: CostModel, at, stages, balance, extract):
    """(stage of each node, number of stages, the pipeline's outputs, mode, extract inputs)."""
    from . import partition
    from .balance import assign_stages

    if at is not None:
        boundaries = [_names(b) for b in ([at] if isinstance(at, str) else at)]
        if any(not b for b in boundaries):
            raise UsageError("--at: an empty boundary")
        tensors = [partition.resolve(view, b, "--at") for b in boundaries]
        stage_of = partition.assign_at(view, tensors)
        return stage_of, len(tensors) + 1, list(view.graph.outputs), "at", []
    if stages is not None:
        stage_of = assign_stages(view, costs, stages, balance)
        return stage_of, stages, list(view.graph.outputs), "stages", []
    ins, outs = _names(extract[0]), _names(extract[1])
    if not outs:
        raise UsageError("--extract: give --outputs")
    inputs = partition.resolve(view, ins, "--inputs")
    outputs = partition.resolve(view, outs, "--outputs")
    chosen = partition.assign_extract(view, inputs, outputs)
    if not chosen:
        raise UsageError("--extract: the outputs need no computation from the inputs")
    return {n: 0 for n in chosen}, 1, outputs, "extract", [v.name for v in inputs]


def cut(model: Any, at: None | str | Sequence = None, stages: int | None = None,
        balance: str = "flops", extract: tuple | None = None,
        input_shapes: dict[str, list] | None = None, output_dir: str | None = None,
        verify: bool = True, verify_options: Any = None) -> CutResult:
    """Split ``model`` (a path, bytes, ModelProto or ir.Model, left unchanged) into stages.

    One of: ``at`` (a list of boundaries, each a list of tensor names or a comma-separated
    string: N boundaries give N+1 stages), ``stages`` (a count; boundaries chosen to balance
    ``balance`` = "flops" | "params" | "memory" and carry few bytes) or ``extract`` (``(inputs,
    outputs)``: the subgraph between them, one stage). ``input_shapes`` fixes input dims for the
    costs. With ``output_dir`` the stages and ``pipeline.json`` are written there atomically.
    Verification by composition (on by default) raises :class:`VerificationError` when the
    stages, run in order, do not reproduce the original's outputs bit for bit; nothing is written
    then. Bad cuts raise :class:`UsageError` with one line.
    """
    from ..ir import assign_names
    from ..passes.shapes import shape_of
    from ..passes.shapes.infer import run_inference

    t0 = time.perf_counter()
    _check_modes(at, stages, extract, balance)
    if output_dir is not None:
        from .store import check_target

        check_target(output_dir)
    ir, ref, label = _source(model)
    assign_names(ir)
    run_inference(ir)
    view = GraphView(ir.graph)
    costs = CostModel(shape_of, _binding(ir, input_shapes or {}))
    stage_of, n, finals, mode, given = _plan(view, costs, at, stages, balance, extract)
    stage_costs = _stage_costs(view, costs, _members(view, stage_of, n))
    models, ios = split(ir, view, stage_of, n, finals)
    manifest = _manifest(label, view, finals, ios, stage_costs, costs, mode,
                         balance if mode == "stages" else None)
    result = CutResult(models, manifest)
    if costs.uncosted:
        result.notes.append(f"{len(set(costs.uncosted))} node(s) of unknown rank count 0 FLOPs")
    if costs.unknown_dims:
        result.notes.append(f"{len(costs.unknown_dims)} value(s) have dims inference cannot "
                            "bound; each such dim counts as 1 in the costs")
    check = None
    if verify:
        def check(folder: str) -> None:
            _verify(folder, result, ref, given, input_shapes or {}, verify_options)
    if output_dir is not None:
        from .store import write_atomic

        write_atomic(output_dir, models, manifest, check)
    elif check is not None:
        from .store import fill

        tmp = tempfile.mkdtemp(prefix="onnxopt-cut-")
        try:
            fill(tmp, models, manifest)
            check(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    result.seconds = time.perf_counter() - t0
    return result


def _verify(folder: str, result: CutResult, ref: Any, given: list[str],
            input_shapes: dict, options: Any) -> None:
    """Run the stages written in ``folder`` in order on the verifier's inputs; their outputs must
    equal the original's bit for bit (see :mod:`.compose`). Raises VerificationError."""
    import copy

    from ..verify import Verifier, VerifyOptions
    from .compose import bitwise_equal, first_difference, original_session, run_stages, session

    opts = copy.copy(options) if options is not None else VerifyOptions()
    if input_shapes and not opts.input_shapes:
        opts.input_shapes = dict(input_shapes)
    verifier = Verifier(ref, opts)
    runs = verifier.feeds()
    man = result.manifest
    if not runs:
        result.verification, result.reason = "not verified", verifier.check(ref).reason
        _record(folder, result)
        return
    sessions = [session(os.path.join(folder, st["file"])) for st in man["stages"]]
    stage_outputs = [st["outputs"] for st in man["stages"]]
    orig = original_session(ref, given + man["outputs"] if given else [])
    names = [o.name for o in orig.get_outputs()]
    wanted = [i.name for i in orig.get_inputs()]
    for binding, feed in runs:
        ref_vals = dict(zip(names, orig.run(None, {n: feed[n] for n in wanted if n in feed})))
        env = run_stages(sessions, {**feed, **{g: ref_vals[g] for g in given}})
        for name in man["outputs"]:
            if bitwise_equal(ref_vals.get(name), env.get(name)):
                continue
            first = first_difference(ref, stage_outputs, feed, env) if not given else None
            at = ", ".join(f"{k}={v}" for k, v in binding.items()) or "the static shapes"
            result.verification = "failed"
            result.reason = (f"the stages run in order do not reproduce output {name!r} at "
                             f"{at}: first differing tensor {first or repr(name)}")
            raise VerificationError(result.reason + " (nothing written)")
    where = (f"{len(runs)} binding(s) " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in b.items()) for b, _ in runs)
        if any(b for b, _ in runs) else "the static shapes")
    result.verification = "ok"
    result.reason = f"{len(man['outputs'])} output(s) bitwise equal at {where}"
    _record(folder, result)


def _record(folder: str, result: CutResult) -> None:
    """Put the verdict into the manifest (in memory and in the folder's pipeline.json)."""
    import json

    from .store import MANIFEST

    result.manifest["verification"] = {"status": result.verification, "reason": result.reason}
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(result.manifest, f, indent=2)
        f.write("\n")
