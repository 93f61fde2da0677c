"""Lift + lower against the floor (onnx.load + onnx.save): time and peak memory per model.

    python benchmarks/roundtrip_bench.py [--synth 50000] [--external-gb 3]

Each measurement runs in its own subprocess (imports excluded from the timed part, peak RSS of
the whole child reported). Targets (issue 2): time within 2x of the floor; on the external-data
model, peak memory under 25% of the weight size.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "models")

CHILD = r"""
import json, os, resource, sys, time
tool, src, dst = sys.argv[1:4]
if tool == "floor":
    import onnx
    t = time.perf_counter()
    m = onnx.load(src, load_external_data=False)
    ext = any(t.data_location == 1 for t in m.graph.initializer)
    if ext:
        onnx.load_external_data_for_model(m, os.path.dirname(src))
        onnx.save(m, dst, save_as_external_data=True, location=os.path.basename(dst) + ".data")
    else:
        onnx.save(m, dst)
else:
    import onnxopt
    from onnxopt.ir import gcpause
    gcpause.FREEZE_AFTER = True  # as the CLI does: one process, one model
    t = time.perf_counter()
    m = onnxopt.load(src)
    onnxopt.save(m, dst)
sec = time.perf_counter() - t
print(json.dumps({"seconds": sec,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(tool: str, src: str, tmp: str) -> dict:
    dst = os.path.join(tmp, f"{tool}-{os.path.basename(src)}")
    p = subprocess.run([sys.executable, "-c", CHILD, tool, src, dst], capture_output=True,
                       text=True, timeout=3600)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    for f in glob.glob(dst + "*"):
        os.unlink(f)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", type=int, default=50000, help="synthetic node count (0: skip)")
    ap.add_argument("--external-gb", type=float, default=0.0, help="external-data model size")
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import synth

    with tempfile.TemporaryDirectory(dir=os.path.join(HERE)) as tmp:
        models = sorted(glob.glob(os.path.join(SHARED, "*.onnx")))
        if args.synth:
            path = os.path.join(tmp, f"synth{args.synth}.onnx")
            import onnx

            onnx.save(synth.build(args.synth), path)
            models.append(path)
        weights = None
        if args.external_gb:
            path = os.path.join(tmp, "external.onnx")
            import onnx

            onnx.save(synth.build_external(args.external_gb, path), path)
            weights = os.path.getsize(path + ".data") if os.path.exists(path + ".data") else None
            models.append(path)
        print("| model | floor s | onnxopt s | ratio | floor peak MB | onnxopt peak MB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for m in models:
            f = measure("floor", m, tmp)
            o = measure("onnxopt", m, tmp)
            if "error" in f or "error" in o:
                print(f"| {os.path.basename(m)} | {f.get('error', '')} | {o.get('error', '')} "
                      "| | | |")
                continue
            print(f"| {os.path.basename(m)} | {f['seconds']:.3f} | {o['seconds']:.3f} | "
                  f"{o['seconds'] / max(f['seconds'], 1e-9):.2f}x | {f['peak_mb']:.0f} | "
                  f"{o['peak_mb']:.0f} |")
        if weights:
            print(f"\nexternal weights: {weights / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
