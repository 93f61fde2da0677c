"""What verification costs: CPU seconds and peak RSS of the default pipeline with and without it.

    python benchmarks/verify_cost.py MODEL.onnx [MODEL.onnx ...]
    python benchmarks/verify_cost.py --make-dense OUT.onnx   # 96 MB of weights, 18 nodes

Each model runs in two fresh processes, ``optimize(model)`` with ``verify=False`` and with
``verify=True`` (default preset); each prints its own CPU seconds (user + system, from
``resource.getrusage``, steadier than wall time on a shared machine), wall seconds and peak RSS.
Verification's cost is the difference, and the verifier's own time (``VerifyReport.seconds``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = """
import json, resource, sys, time
from onnxopt import optimize
t = time.perf_counter()
r = optimize(sys.argv[1], verify=sys.argv[2] == '1', bisect=False)
ru = resource.getrusage(resource.RUSAGE_SELF)
v = r.verification
print(json.dumps({"cpu": ru.ru_utime + ru.ru_stime, "wall": time.perf_counter() - t,
                  "rss_mb": ru.ru_maxrss / 1024, "status": v.status if v else "off",
                  "verify_s": v.seconds if v else 0.0}))
"""


def measure(path: str, verify: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, path, "1" if verify else "0"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def make_dense(path: str, n: int = 2048, layers: int = 6) -> None:
    """A model whose size is weights: ``layers`` x (MatMul by an n x n weight, Relu, Identity)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((n, n)) * 0.02).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"]),
                  helper.make_node("Identity", [f"r{i}"], [f"h{i}"])]
        x = f"h{i}"
    g = helper.make_graph(nodes, "dense",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", n])],
                          inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def main(paths: list[str]) -> None:
    print("| model | MB | CPU s off / on | peak RSS MB off / on | verifier s | status |")
    print("|---|---:|---:|---:|---:|---|")
    for p in paths:
        off, on = measure(p, False), measure(p, True)
        print(f"| {os.path.basename(p)} | {os.path.getsize(p) / 2**20:.1f} "
              f"| {off['cpu']:.2f} / {on['cpu']:.2f} | {off['rss_mb']:.0f} / {on['rss_mb']:.0f} "
              f"| {on['verify_s']:.2f} | {on['status']} |", flush=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--make-dense", metavar="OUT", help="write the 96 MB dense model to OUT")
    args = ap.parse_args()
    if args.make_dense:
        make_dense(args.make_dense)
    elif args.models:
        main(args.models)
    else:
        ap.error("name a model, or --make-dense OUT")
