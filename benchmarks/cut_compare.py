"""The same cuts done by ``onnxopt cut``, ``onnx.utils.extract_model`` and ONNX-GraphSurgeon (when
installed; never a dependency), each pipeline run in onnxruntime against the original.

    python benchmarks/cut_compare.py                     # the cut table (a minute or two)
    python benchmarks/cut_compare.py --external-gb 3     # also: a 3 GB external-data model in 4
                                                         # stages, peak RSS and weight hashes

Every tool gets the same boundaries: the stage inputs and outputs onnxopt found (what a careful
user would have to list by hand), except in the "as typed" cases, where each gets only the tensors
a user would name at first. Each stage is loaded by onnxruntime (graph optimizations off) and the
stages run in order on the verifier's inputs; the verdict is "ok" (outputs bitwise equal to the
original's), "differs", "invalid" (a stage does not load or run), or "refused" (the tool raised).
The external-data run generates the model as ``roundtrip_bench.py --external-gb`` does
(``synth.build_external``), cuts it with ``--stages 4 --balance params --no-verify`` in a child
process whose peak RSS is measured (``_timed.py``), hashes every stage initializer's bytes
against the original's slice of the data file, and deletes the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
G, M = ROOT / "golden" / "models", ROOT / "tests" / "models"

# (label, model, boundaries as onnxopt takes them, boundaries "as typed" or None)
CASES = [
    ("gpt2 3 stages", G / "gpt2_op17.onnx",
     ["/blocks.0/Add_3_output_0", "/blocks.1/Add_3_output_0"], None),
    ("bert 2 stages (mask named)", G / "bert_op17.onnx",
     ["/layers.0/ln2/Add_1_output_0,/Mul_output_0"], ["/layers.0/ln2/Add_1_output_0"]),
    ("silero 4 stages (If captures)", M / "silero_vad_op15_ts.onnx",
     ["/model/encoder/3/activation/Relu_output_0", "/model/decoder/If_output_0",
      "/model/decoder/If_1_output_0,/model/decoder/If_1_output_1"], None),
    ("magika --stages 3", M / "magika_v3_3.onnx", 3, None),
    ("ppocr cls --stages 4", M / "ppocr_mobile_v2_cls.onnx", 4, None),
]


def _feeds(model: Path) -> list[dict]:
    from onnxopt.verify import Verifier

    return [feed for _, feed in Verifier(str(model)).feeds()]


def _compose(model: Path, stage_files: list[str], feeds: list[dict]) -> str:
    from onnxopt.cutting.compose import bitwise_equal, run_stages, session

    try:
        sessions = [session(f) for f in stage_files]
    except Exception as e:  # noqa: BLE001 - a peer's stage that does not load is the finding
        return f"invalid: {str(e).splitlines()[0][:150]}"
    orig = session(str(model))
    names = [o.name for o in orig.get_outputs()]
    for feed in feeds:
        want = orig.run(None, feed)
        try:
            env = run_stages(sessions, feed)
        except Exception as e:  # noqa: BLE001
            return f"invalid: {str(e).splitlines()[0][:150]}"
        for name, ref in zip(names, want):
            if name not in env:
                return f"invalid: no stage outputs {name!r}"
            if not bitwise_equal(ref, env[name]):
                return f"differs: output {name!r}"
    return "ok"


def _extract_model(model: Path, plan: list[tuple], out: Path) -> list[str]:
    files = []
    for k, (ins, outs) in enumerate(plan):
        path = str(out / f"extract_{k}.onnx")
        onnx.utils.extract_model(str(model), path, ins, outs)
        files.append(path)
    return files


def _graphsurgeon(model: Path, plan: list[tuple], out: Path) -> list[str]:
    import onnx_graphsurgeon as gs

    files = []
    for k, (ins, outs) in enumerate(plan):
        # GraphSurgeon refuses graph inputs/outputs without a dtype: users run onnx's shape
        # inference first, as here.
        graph = gs.import_onnx(onnx.shape_inference.infer_shapes(onnx.load(str(model))))
        tensors = graph.tensors()
        graph.inputs = [tensors[n] for n in ins]
        graph.outputs = [tensors[n] for n in outs]
        graph.cleanup()
        path = str(out / f"gs_{k}.onnx")
        onnx.save(gs.export_onnx(graph), path)
        files.append(path)
    return files


def _plan(manifest: dict, typed) -> list[tuple]:
    """(inputs, outputs) of each stage: onnxopt's, or the typed boundaries alone."""
    if typed is None:
        return [([i["name"] for i in s["inputs"]], s["outputs"]) for s in manifest["stages"]]
    model_inputs = manifest["inputs"]
    bounds = [b.split(",") for b in typed]
    ins = [model_inputs] + bounds
    outs = bounds + [manifest["outputs"]]
    return list(zip(ins, outs))


def _unused(files: list[str]) -> int:
    """Initializers the stages hold but never read."""
    n = 0
    for f in files:
        m = onnx.load(f, load_external_data=False)
        read = {i for node in m.graph.node for i in node.input}
        stack = [a.g for node in m.graph.node for a in node.attribute if a.HasField("g")]
        while stack:
            g = stack.pop()
            read |= {i for node in g.node for i in node.input}
            stack += [a.g for node in g.node for a in node.attribute if a.HasField("g")]
        n += sum(t.name not in read for t in m.graph.initializer)
    return n


def _tool_row(label: str, tool: str, fn, model: Path, plan, feeds, out: Path) -> dict:
    t0 = time.perf_counter()
    try:
        files = fn(model, plan, out)
    except ImportError:
        return {"case": label, "tool": tool, "verdict": "not installed"}
    except Exception as e:  # noqa: BLE001
        return {"case": label, "tool": tool,
                "verdict": f"refused: {type(e).__name__}: {str(e).splitlines()[0][:150]}"}
    secs = time.perf_counter() - t0
    return {"case": label, "tool": tool, "verdict": _compose(model, files, feeds),
            "seconds": round(secs, 2), "unused_initializers": _unused(files)}


def compare(work: Path) -> list[dict]:
    import onnxopt

    rows = []
    for label, model, spec, typed in CASES:
        out = work / label.split()[0]
        out.mkdir(parents=True, exist_ok=True)
        kwargs = {"stages": spec} if isinstance(spec, int) else {"at": spec}
        t0 = time.perf_counter()
        try:
            r = onnxopt.cut(str(model), output_dir=str(out / "onnxopt"), **kwargs)
            rows.append({"case": label, "tool": "onnxopt cut", "verdict": r.verification,
                         "seconds": round(time.perf_counter() - t0, 2),
                         "unused_initializers": 0})
        except onnxopt.OnnxoptError as e:
            rows.append({"case": label, "tool": "onnxopt cut", "verdict": f"refused: {e}"})
            continue
        if typed is not None:
            try:
                onnxopt.cut(str(model), at=typed, verify=False)
            except onnxopt.OnnxoptError as e:
                rows.append({"case": label + " as typed", "tool": "onnxopt cut",
                             "verdict": f"refused: {str(e)[:160]}"})
        feeds = _feeds(model)
        for name, plan in [(label, _plan(r.manifest, None))] + (
                [(label + " as typed", _plan(r.manifest, typed))] if typed else []):
            rows.append(_tool_row(name, "onnx.utils.extract_model", _extract_model, model, plan,
                                  feeds, out))
            rows.append(_tool_row(name, "onnx-graphsurgeon", _graphsurgeon, model, plan, feeds,
                                  out))
    return rows


def _timed(cmd: list[str], result: Path, timeout: float) -> dict:
    """Run ``cmd`` under _timed.py: wall, CPU, peak RSS of the child alone."""
    subprocess.run([sys.executable, "-S", str(HERE / "_timed.py"), str(result), str(timeout),
                    *cmd], check=False)
    return json.loads(result.read_text())


def _slices_equal(original: Path, stage_dir: Path) -> tuple[int, int]:
    """(stage initializers whose bytes hash like the original's slice, initializers checked)."""
    orig = onnx.load(str(original), load_external_data=False)
    where = {}
    for t in orig.graph.initializer:
        info = {e.key: e.value for e in t.external_data}
        if info:
            where[t.name] = (int(info.get("offset", 0)), int(info["length"]))
    data = original.parent / (original.name + ".data")
    good = total = 0
    for f in sorted(stage_dir.glob("stage_*.onnx")):
        m = onnx.load(str(f), load_external_data=False)
        for t in m.graph.initializer:
            info = {e.key: e.value for e in t.external_data}
            if t.name not in where or not info:
                continue
            total += 1
            ref = _sha(data, *where[t.name])
            got = _sha(f.parent / info["location"], int(info.get("offset", 0)),
                       int(info["length"]))
            good += ref == got
    return good, total


def _sha(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while length:
            chunk = f.read(min(length, 1 << 24))
            if not chunk:
                break
            h.update(chunk)
            length -= len(chunk)
    return h.hexdigest()


def external(gb: float, work: Path) -> dict:
    sys.path.insert(0, str(HERE))
    import synth

    src = work / "external.onnx"
    t0 = time.perf_counter()
    onnx.save(synth.build_external(gb, str(src)), str(src))
    gen = time.perf_counter() - t0
    size = (work / "external.onnx.data").stat().st_size
    out = work / "stages"
    cut = _timed([sys.executable, "-m", "onnxopt.cli.main", "cut", str(src), "--stages", "4",
                  "--balance", "params", "--no-verify", "-q", "-o", str(out)],
                 work / "cut.json", 1800)
    good, total = _slices_equal(src, out)
    manifest = out / "pipeline.json"
    man = json.loads(manifest.read_text()) if manifest.exists() else {}
    plan = _plan(man, None) if man else []
    code = ("import onnx.utils, sys, json; plan = json.loads(sys.argv[2]);\n"
            "[onnx.utils.extract_model(sys.argv[1], f'{sys.argv[3]}/x{k}.onnx', i, o) "
            "for k, (i, o) in enumerate(plan)]")
    (work / "peer").mkdir()
    peer = _timed([sys.executable, "-c", code, str(src), json.dumps(plan), str(work / "peer")],
                  work / "peer.json", 1800)
    return {"weights_gb": size / 1e9, "generate_s": round(gen, 1), "cut": cut,
            "stage_params_gb": [round(s["params_bytes"] / 1e9, 3) for s in man.get("stages", [])],
            "hash_ok": f"{good}/{total}", "extract_model": peer}


def _table(rows: list[dict]) -> str:
    lines = ["| case | tool | verdict | s | unused initializers |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['tool']} | {r['verdict']} | {r.get('seconds', '')} | "
                     f"{r.get('unused_initializers', '')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--external-gb", type=float, default=0.0,
                    help="also cut a generated external-data model of this size")
    ap.add_argument("--skip-table", action="store_true", help="only the external-data run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cut-compare-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        if not args.skip_table:
            print(_table(compare(work)))
        if args.external_gb:
            print(json.dumps(external(args.external_gb, work), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the generated GBs never outlive the run
    return 0


if __name__ == "__main__":
    sys.exit(main())
