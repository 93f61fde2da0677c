"""What onnxopt and onnxoptimizer each add to a load and save of one model, step by step.

    python benchmarks/overhead.py MODEL [MODEL...] [--repeat 5]

Each round starts two fresh processes, one per tool, so that every import is a first import.
Both import onnx and numpy before the clock starts (the floor of issue 18 pays those too); then
each step is timed with perf_counter and the fastest of the rounds is kept per step. onnxopt's
steps are those of ``onnxopt MODEL --no-verify`` with the default preset: its own modules, onnx's
schema registry (built on the first lookup; the audit makes it), loading (audit and lift), the
pass modules, the passes, and saving. onnxoptimizer's: its import, ``onnx.load``, ``optimize``
with the fuse-and-elimination passes (its own schema registry included) and ``onnx.save``.

Issue 18 asks onnxopt ``--no-verify`` to take no longer than onnxoptimizer on small models; the
table shows how much of onnxopt's time runs before its first pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


class _Steps:
    """Seconds per named step, each timed from the end of the step before."""

    def __init__(self):
        self.seconds: dict = {}
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self.last
        self.last = now


def _onnxopt(src: str, out: str) -> dict:
    step = _Steps()
    from onnxopt import io
    from onnxopt.passes.manager import PassManager
    from onnxopt.passes.pipeline import parse_pipeline
    from onnxopt.passes.presets import PRESETS
    step("its own modules")
    import onnx.defs
    onnx.defs.has("Add")
    step("onnx's schema registry")
    model = io.load(src)
    step("load (audit, lift)")
    pm = PassManager(parse_pipeline(PRESETS["default"]))
    step("the pass modules")
    pm.run(model)
    step("the passes")
    io.save(model, out)
    step("save")
    return step.seconds


def _onnxoptimizer(src: str, out: str) -> dict:
    step = _Steps()
    import onnx
    import onnxoptimizer
    step("its own modules")
    model = onnx.load(src)
    step("onnx.load")
    model = onnxoptimizer.optimize(model, onnxoptimizer.get_fuse_and_elimination_passes())
    step("optimize")
    onnx.save(model, out)
    step("save")
    return step.seconds


def _child(tool: str, src: str, out: str) -> None:
    import numpy  # noqa: F401 - before the clock, like the floor
    import onnx  # noqa: F401

    steps = (_onnxopt if tool == "onnxopt" else _onnxoptimizer)(src, out)
    print(json.dumps(steps))


def _round(tool: str, src: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.onnx")
        got = subprocess.run([sys.executable, __file__, "--child", tool, src, out],
                             capture_output=True, text=True, check=True)
    return json.loads(got.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(*args.child)
    if not args.models:
        ap.error("name at least one model")
    for src in args.models:
        best: dict = {"onnxopt": {}, "onnxoptimizer": {}}
        for _ in range(args.repeat):
            for tool, kept in best.items():
                for name, s in _round(tool, src).items():
                    kept[name] = min(s, kept.get(name, s))
        print(f"\n{os.path.basename(src)} (ms, fastest of {args.repeat} rounds)")
        for tool, kept in best.items():
            print(f"  {tool}: {sum(kept.values()) * 1e3:.1f} in all")
            for name, s in kept.items():
                print(f"    {name:26s} {s * 1e3:7.1f}")


if __name__ == "__main__":
    main()
