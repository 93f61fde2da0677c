"""fold against the onnx node conformance suite.

Every case of ``onnx.backend.test.case.node.collect_testcases('')`` has its inputs turned into
initializers; ``fold`` then runs, and each graph output must be a constant equal to the case's
expected output (per-dtype tolerances), or the node must be left alone for a stated reason.
A constant that differs from the expected output is a wrong fold: there must be none.

    python tests/test_fold_conformance.py      # the counts, and every case left alone, by reason
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _conformance import conformance_cases  # noqa: E402

# Cases whose expected outputs come from a random generator (nothing to compare against).
_RANDOM = ("random", "bernoulli", "multinomial", "training_dropout")

_SEQ = "sequence/optional input or output"
_RTOL = {1: 1e-4, 10: 2e-3, 11: 1e-7, 16: 1e-2, 14: 1e-4, 15: 1e-7}
_ATOL = {1: 1e-5, 10: 1e-3, 11: 1e-9, 16: 1e-2, 14: 1e-5, 15: 1e-9}


def _close(got: np.ndarray, want: np.ndarray, dtype: int, case) -> bool:
    if got.shape != want.shape:
        return False
    if want.dtype == object or got.dtype == object:
        norm = lambda a: [x.decode() if isinstance(x, bytes) else str(x) for x in a.flat]  # noqa
        return norm(got) == norm(want)
    if want.dtype.kind in "biu" and got.dtype.kind in "biu":
        return got.dtype == want.dtype and np.array_equal(got, want)
    g, w = got.astype(np.float64), want.astype(np.float64)
    rtol = max(_RTOL.get(dtype, 0.13), getattr(case, "rtol", 0) or 0)
    atol = max(_ATOL.get(dtype, 0.13), getattr(case, "atol", 0) or 0)
    # Sums of many terms (DFT, MatMul) carry an error proportional to the output's magnitude.
    scale = float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0))
    return bool(np.allclose(g, w, rtol=rtol, atol=atol + rtol * 0.1 * scale, equal_nan=True))


def _as_constants(case):
    """The case's model with its first data set's inputs as initializers (None if impossible)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    if any(not isinstance(x, np.ndarray) for x in inputs) or \
            any(not isinstance(x, np.ndarray) for x in outputs):
        return None, _SEQ
    names = [i.name for i in m.graph.input]
    for vi in m.graph.input:
        if not vi.type.HasField("tensor_type"):
            return None, _SEQ
    inits = []
    for name, arr, vi in zip(names, inputs, m.graph.input):
        dt = vi.type.tensor_type.elem_type
        try:
            t = numpy_helper.from_array(arr, name)
            if t.data_type != dt:
                t = onnx.helper.make_tensor(name, dt, arr.shape, arr.flatten().tolist())
        except Exception as e:  # an input numpy_helper cannot encode
            return None, f"input not encodable ({type(e).__name__})"
        inits.append(t)
    del m.graph.input[:]
    m.graph.initializer.extend(inits)
    if m.ir_version < 4:
        m.ir_version = 4
    return m, None


def run_case(case):
    """('equal' | 'left' | 'wrong', detail)."""
    from onnxopt import load
    from onnxopt.passes import PassContext, PassManager

    proto, why = _as_constants(case)
    if proto is None:
        return "left", why
    model = load(proto)
    ctx = PassContext(model)
    rep = PassManager("fold", verify_each=True).run(model, ctx)
    stats = rep.records[0].stats
    _, outputs = case.data_sets[0]
    left = []
    for v, want, vi in zip(model.graph.outputs, outputs, case.model.graph.output):
        if v.const_value is None or v.producer is not None:
            left.append(v)
            continue
        got = v.const_value.numpy()
        if not _close(np.asarray(got), np.asarray(want), vi.type.tensor_type.elem_type, case):
            return "wrong", f"output {vi.name}: got {np.asarray(got)!r:.200}, " \
                            f"want {np.asarray(want)!r:.200}"
    if left:
        reasons = sorted(k[5:] for k in stats if k.startswith("left."))
        if not reasons:
            reasons = ["control flow" if any(n.subgraphs() for n in model.graph.nodes)
                       else "not folded"]
        return "left", ", ".join(reasons)
    return "equal", ""


def run_all(verbose: bool = False):
    counts: Counter = Counter()
    reasons: Counter = Counter()
    wrong: list[str] = []
    left: list[tuple[str, str]] = []
    for case in conformance_cases():
        if any(r in case.name for r in _RANDOM):
            counts["skipped (random)"] += 1
            continue
        kind, detail = run_case(case)
        counts[kind] += 1
        if kind == "wrong":
            wrong.append(f"{case.name}: {detail}")
        elif kind == "left":
            reasons[detail] += 1
            left.append((case.name, detail))
    return counts, reasons, wrong, left


@pytest.mark.filterwarnings("ignore")
def test_fold_conformance(capsys):
    t = time.perf_counter()
    counts, reasons, wrong, _ = run_all()
    with capsys.disabled():
        print(f"\nfold conformance ({time.perf_counter() - t:.0f} s): "
              f"{counts['equal']} folded and equal, {counts['left']} left alone, "
              f"{counts['wrong']} wrong, {counts['skipped (random)']} random cases skipped")
        for r, n in reasons.most_common(8):
            print(f"  left alone: {n:4d}  {r}")
    assert not wrong, "wrong folds:\n" + "\n".join(wrong[:20])
    # Nearly every deterministic tensor case folds (sequences and optionals are out of scope);
    # a drop here means an evaluator or the size policy regressed.
    tensor_cases = counts["equal"] + counts["left"] - reasons[_SEQ]
    assert counts["equal"] >= 0.93 * tensor_cases


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    t = time.perf_counter()
    counts, reasons, wrong, left = run_all()
    for name, why in left:
        print(f"left  {name}: {why}")
    for w in wrong:
        print(f"WRONG {w}")
    print(dict(counts), f"{time.perf_counter() - t:.1f} s")
    for r, n in reasons.most_common():
        print(f"{n:5d}  {r}")
