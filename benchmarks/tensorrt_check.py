"""Does TensorRT's parser agree with `onnxopt check --target tensorrt`, and does the preset help?

    python benchmarks/tensorrt_check.py [--models M.onnx ...] [--json out.json] [--md out.md]
    python benchmarks/tensorrt_check.py --verify-on ort:CUDAExecutionProvider [--models ...]

With the ``tensorrt`` package on a machine with an NVIDIA GPU, for every model in tests/models and
golden/models, before and after ``onnxopt --preset tensorrt``: parse it with TensorRT's ONNX
parser (every parser error: node, op, reason), build an engine with an optimization profile made
from the model's dims (min/opt/max over the input shapes onnxopt's verifier finds the model runs
at), compare ``onnxopt check --target tensorrt``'s prediction with the parser's verdict for every
node it flagged (a blocking finding should be a parser error on that node, a warning should not),
and time the two engines (median of at least 20 runs, warm-up excluded; device buffers through
torch when it is installed). Without tensorrt or a GPU it prints one line saying so and exits 0.

``--verify-on ort:<ExecutionProvider>`` instead runs the preset's output through onnxruntime's
GPU providers (onnxopt.runtimes: each model compared with its original on that provider, and
timed there), for machines that have onnxruntime-gpu but not tensorrt.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHAPES = {"ppocr_mobile_v2_cls": {"x": [1, 3, 48, 192]}}


def why_no_tensorrt() -> str | None:
    """None when tensorrt and a CUDA device are usable here, else the one-line reason."""
    try:
        import tensorrt as trt
    except ImportError:
        return "the tensorrt package is not installed (pip install tensorrt)"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            return "TensorRT found no usable NVIDIA GPU"
    except Exception as e:  # noqa: BLE001 - no driver or no device: the reason is the result
        return f"TensorRT cannot start: {str(e).strip().splitlines()[0]}"
    return None


def preset_output(src: str, out: str) -> str | None:
    """``onnxopt SRC --preset tensorrt -o OUT``; None, or its one-line error."""
    cmd = [sys.executable, "-m", "onnxopt.cli.main", src, "--preset", "tensorrt", "-o", out,
           "-q"]
    for name, dims in SHAPES.get(_stem(src), {}).items():
        cmd += ["--input-shape", f"{name}:{','.join(map(str, dims))}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if not os.path.exists(out):
        return (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return None


def predicted(path: str) -> list[dict]:
    """The nodes `onnxopt check --target tensorrt --json` flags: node, op, severity, reason."""
    cmd = [sys.executable, "-m", "onnxopt.cli.main", "check", "--target", "tensorrt", path,
           "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    try:
        findings = json.loads(p.stdout)["findings"]
    except (ValueError, KeyError):
        return []
    return [{"node": f["node"], "op": f["op"], "severity": f["severity"], "kind": f["kind"],
             "reason": f["reason"]} for f in findings if f.get("node")]


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def profile_shapes(path: str) -> tuple[dict, dict]:
    """(name -> (min, opt, max) shapes, name -> first feed) from the shapes the verifier finds
    the model runs at (its bindings of the symbolic dims)."""
    from onnxopt.verify import Verifier, VerifyOptions

    feeds = Verifier(path, VerifyOptions(input_shapes=SHAPES.get(_stem(path), {}))).feeds()
    if not feeds:
        return {}, {}
    prof = {}
    for name in feeds[0][1]:
        shapes = [tuple(f[name].shape) for _, f in feeds]
        lo = tuple(min(s[i] for s in shapes) for i in range(len(shapes[0])))
        hi = tuple(max(s[i] for s in shapes) for i in range(len(shapes[0])))
        prof[name] = (lo, shapes[0], hi)
    return prof, feeds[0][1]


def parse_and_build(path: str, prof: dict) -> dict:
    """TensorRT's verdict: parser errors (node name, op, reason), build success, the engine."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(path)
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        errors.append({"node": _call(e, "node_name"), "op": _call(e, "node_operator"),
                       "index": _call(e, "node"), "reason": str(e.desc()).strip()})
    res: dict = {"parsed": bool(ok), "parse_errors": errors, "built": False}
    if not ok:
        return res
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name in prof:
            profile.set_shape(name, *prof[name])
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    res["build_s"] = round(time.perf_counter() - t0, 2)
    res["built"] = plan is not None
    if plan is not None:
        res["engine"] = trt.Runtime(logger).deserialize_cuda_engine(plan)
    return res


def _call(obj, method: str):
    f = getattr(obj, method, None)  # node_name()/node_operator() arrived in TensorRT 8.6/10
    try:
        return f() if f else None
    except Exception:  # noqa: BLE001
        return None


def agreement(flags: list[dict], verdict: dict) -> list[dict]:
    """For each flagged node: did the parser reject that very node, and was that predicted?"""
    by_node = {e["node"]: e for e in verdict["parse_errors"] if e.get("node")}
    rows = []
    for f in flags:
        err = by_node.get(f["node"])
        rejected = err is not None
        rows.append({**f, "parser_rejects": rejected,
                     "parser_reason": err["reason"] if err else None,
                     "agrees": rejected == (f["severity"] == "block")})
    return rows


def engine_latency(engine, feed: dict, runs: int = 20, warmup: int = 3) -> dict:
    """Median and spread of one engine's latency (device buffers through torch)."""
    try:
        import torch
    except ImportError:
        return {"error": "torch not installed: no device buffers to time the engine with"}
    ctx = engine.create_execution_context()
    bufs = {}
    for name, arr in feed.items():
        bufs[name] = torch.from_numpy(arr).cuda()
        ctx.set_input_shape(name, tuple(arr.shape))
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if name not in bufs:
            shape = tuple(ctx.get_tensor_shape(name))
            dtype = _torch_dtype(torch, engine.get_tensor_dtype(name))
            bufs[name] = torch.empty(tuple(max(d, 0) for d in shape), dtype=dtype, device="cuda")
        ctx.set_tensor_address(name, bufs[name].data_ptr())
    stream = torch.cuda.current_stream()
    times = []
    for k in range(warmup + runs):
        torch.cuda.synchronize()
        t = time.perf_counter()
        ctx.execute_async_v3(stream.cuda_stream)
        torch.cuda.synchronize()
        if k >= warmup:
            times.append((time.perf_counter() - t) * 1e3)
    q = statistics.quantiles(times, n=10)
    return {"runs": runs, "median_ms": round(statistics.median(times), 4),
            "p10_ms": round(q[0], 4), "p90_ms": round(q[-1], 4)}


def _torch_dtype(torch, trt_dtype):
    import tensorrt as trt

    return {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
            trt.int64: torch.int64, trt.bool: torch.bool, trt.int8: torch.int8,
            trt.bfloat16: torch.bfloat16}.get(trt_dtype, torch.float32)


def check_model(src: str, workdir: str) -> dict:
    """One model before and after the preset: parse, build, agreement, latency."""
    out = os.path.join(workdir, _stem(src) + ".trt.onnx")
    row: dict = {"model": os.path.relpath(src, ROOT)}
    why = preset_output(src, out)
    for label, path in (("before", src), ("after", None if why else out)):
        if path is None:
            row[label] = {"error": f"onnxopt --preset tensorrt failed: {why}"}
            continue
        prof, feed = profile_shapes(path)
        try:
            verdict = parse_and_build(path, prof)
        except Exception as e:  # noqa: BLE001 - TensorRT's own failure is the finding
            row[label] = {"error": str(e).strip().splitlines()[0] if str(e).strip() else
                          type(e).__name__}
            continue
        engine = verdict.pop("engine", None)
        verdict["predictions"] = agreement(predicted(path), verdict)
        verdict["profile"] = {k: [list(s) for s in v] for k, v in prof.items()}
        if engine is not None and feed:
            verdict["latency"] = engine_latency(engine, feed)
        row[label] = verdict
    print(json.dumps(row)[:300], file=sys.stderr, flush=True)
    return row


def check_on_ort(models: list[str], specs: str, workdir: str) -> list[dict]:
    """--verify-on: the preset's output against its original on onnxruntime's GPU providers."""
    from onnxopt.runtimes import bench_pair, parse_runtimes, verify_on
    from onnxopt.verify import Verifier, VerifyOptions

    runtimes = parse_runtimes(specs)
    rows = []
    for src in models:
        out = os.path.join(workdir, _stem(src) + ".trt.onnx")
        why = preset_output(src, out)
        row: dict = {"model": os.path.relpath(src, ROOT)}
        if why:
            row["error"] = f"onnxopt --preset tensorrt failed: {why}"
        else:
            vopts = VerifyOptions(input_shapes=SHAPES.get(_stem(src), {}))
            row["runtimes"] = [r.as_dict() for r in verify_on(src, out, runtimes, vopts)]
            feeds = Verifier(src, vopts).feeds()
            if feeds:
                row["bench"] = [b for rt in runtimes
                                for b in bench_pair(rt, src, out, feeds[0][1], 1.0)]
        print(json.dumps(row)[:300], file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| model | parse before | parse after | build before | build after | predictions "
            "agreeing | engine ms before | engine ms after |")
    out = [head, "|" + "---|" * 8]
    for r in rows:
        b, a = r.get("before", {}), r.get("after", {})
        preds = b.get("predictions", []) + a.get("predictions", [])
        agree = f"{sum(p['agrees'] for p in preds)}/{len(preds)}"
        cells = [_parse_cell(b), _parse_cell(a), str(b.get("built", "-")), str(a.get("built", "-")),
                 agree, _ms(b), _ms(a)]
        out.append(f"| `{os.path.basename(r['model'])}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def ort_markdown(rows: list[dict]) -> str:
    """--verify-on: per model and provider, the verdict and the 1-thread medians."""
    out = ["| model | runtime | verdict | original ms | preset ms |", "|---|---|---|---|---|"]
    for r in rows:
        bench = {b["runtime"]: b for b in r.get("bench", []) if b["threads"] == 1}
        for v in r.get("runtimes", []) or [{"runtime": "-", "status": r.get("error", "-")}]:
            b = bench.get(v["runtime"])
            ms = ((f"{b['original']['median_ms']:.3f}", f"{b['optimized']['median_ms']:.3f}")
                  if b else ("-", "-"))
            out.append(f"| `{os.path.basename(r['model'])}` | {v['runtime']} | {v['status']} | "
                       f"{ms[0]} | {ms[1]} |")
    return "\n".join(out) + "\n"


def _parse_cell(v: dict) -> str:
    if "error" in v:
        return "error: " + v["error"][:60]
    errs = v.get("parse_errors", [])
    return "ok" if v.get("parsed") else f"{len(errs)} error(s): " + "; ".join(
        f"{e.get('op')} {e.get('reason', '')[:50]}" for e in errs[:2])


def _ms(v: dict) -> str:
    lat = v.get("latency", {})
    return f"{lat['median_ms']:.3f}" if "median_ms" in lat else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=sorted(
        glob.glob(os.path.join(ROOT, "tests/models/*.onnx"))
        + glob.glob(os.path.join(ROOT, "golden/models/*.onnx"))))
    p.add_argument("--verify-on", metavar="ort:<ExecutionProvider>[,...]",
                   help="check on onnxruntime's GPU providers instead of TensorRT itself")
    p.add_argument("--json")
    p.add_argument("--md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trt-check-") as work:
        if args.verify_on:
            from onnxopt.errors import UsageError

            try:
                rows = check_on_ort(args.models, args.verify_on, work)
            except UsageError as e:  # the provider is not on this machine
                print(f"tensorrt_check: skipped: {e}")
                return 0
            text = ort_markdown(rows)
        else:
            why = why_no_tensorrt()
            if why:
                print(f"tensorrt_check: skipped: {why}")
                return 0
            rows = [check_model(m, work) for m in args.models]
            text = markdown(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "rows": rows}, f, indent=1, default=str)
    if text and args.md:
        with open(args.md, "w") as f:
            f.write(text)
    print(text or json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
