"""Run one peer tool on one model, in a fresh process: python benchmarks/_worker.py TOOL IN OUT [--external].

run.py times this whole process (interpreter start and imports included) and reads its peak RSS, so
each tool imports only what it needs, here and not at the top. With --external the result is saved
with its weights in OUT.data beside OUT, as users of models with external data must.
"""

from __future__ import annotations

import os
import sys


def _save(model, out: str, external: bool) -> None:
    import onnx

    if external or model.ByteSize() > 2_000_000_000:
        onnx.save(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.basename(out) + ".data", size_threshold=1024)
    else:
        onnx.save(model, out)


def _load(path: str):
    import onnx

    return onnx.load(path)


def floor(src: str, out: str, external: bool) -> None:
    # Issue 18's floor: the imports every tool here needs (onnxruntime verifies), then load+save.
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    _save(_load(src), out, external)


def onnxsim(src: str, out: str, external: bool) -> None:
    import onnxsim as sim

    model, ok = sim.simplify(_load(src))
    if not ok:
        print("onnxsim: its own check failed (saving the result anyway)", file=sys.stderr)
    _save(model, out, external)


def onnxslim(src: str, out: str, external: bool) -> None:
    import onnxslim as slim

    _save(slim.slim(_load(src)), out, external)


def onnxoptimizer(src: str, out: str, external: bool) -> None:
    import onnxoptimizer as opt

    _save(opt.optimize(_load(src), opt.get_fuse_and_elimination_passes()), out, external)


def onnxscript(src: str, out: str, external: bool) -> None:
    import onnxscript.optimizer as opt  # measured only: never a dependency of onnxopt

    _save(opt.optimize(_load(src)), out, external)


def ort_basic(src: str, out: str, external: bool) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = out
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if external:
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                    os.path.basename(out) + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


TOOLS = {
    "floor": floor,
    "onnxsim": onnxsim,
    "onnxslim": onnxslim,
    "onnxoptimizer": onnxoptimizer,
    "onnxscript": onnxscript,
    "ort-basic": ort_basic,
}


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--external"]
    if len(args) != 3 or args[0] not in TOOLS:
        print(f"usage: _worker.py {{{','.join(TOOLS)}}} IN OUT [--external]", file=sys.stderr)
        return 2
    tool, src, out = args
    TOOLS[tool](src, out, "--external" in sys.argv[1:])
    if not os.path.exists(out):
        print(f"{tool} wrote no output file", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
