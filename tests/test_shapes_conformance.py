"""Shape inference against onnx's node conformance cases, with onnxruntime as the truth.

For every case onnxruntime can run, every value of the model (outputs and, for the expanded
cases, every intermediate) is exposed as an output; the declared output shapes are removed before
inference. Each case is checked twice: with its static input shapes, and with every input dim
replaced by a symbol (``s<input>_<axis>``), evaluated at the actual sizes. Zero wrong dims; the
counts of known/partial/unknown values are printed (``pytest -s``) and in the failure message.
onnxruntime results are cached in memory only, for the duration of the session. Cases
onnxruntime cannot run are checked too, against the shapes of their stored reference outputs.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import onnx
import pytest
from onnxopt.io import load
from onnxopt.passes.shapes import infer_shapes
from onnxopt.passes.shapes.check import compare, input_binding, runtime_shapes


@functools.lru_cache(maxsize=1)
def _all_cases() -> tuple:
    """(name, model, feeds, actual shapes, ran by onnxruntime) for every case with data.

    When onnxruntime cannot run a case (an op or opset it does not implement), the shapes of the
    reference outputs stored with the case stand in for the graph outputs.
    """
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases("")
    out = []
    for c in cases:
        if not c.data_sets:
            continue
        inputs, expected = c.data_sets[0]
        feeds = {i.name: x for i, x in zip(c.model.graph.input, inputs)}
        try:
            actual = runtime_shapes(c.model, feeds, expose=True)
            ran = True
        except Exception:  # onnxruntime does not implement the op (or this variant of it)
            # float8/int4 references are not numpy arrays of the output's shape: left out.
            actual = {o.name: _shape(x) for o, x in zip(c.model.graph.output, expected)
                      if isinstance(x, (np.ndarray, list))}
            ran = False
        out.append((c.name, c.model, feeds, actual, ran))
    return tuple(out)


def _shape(x):
    if isinstance(x, list):
        return [_shape(e) for e in x]
    return tuple(np.shape(x))


def _cases(ran: bool = True) -> tuple:
    cases = _all_cases()
    keep = tuple(c[:4] for c in cases if c[4] == ran)
    return keep, len(cases) - len(keep)


def _prepare(model: onnx.ModelProto, symbolic: bool) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for o in m.graph.output:
        o.ClearField("type")  # the declared shapes would answer the question
    del m.graph.value_info[:]
    if symbolic:
        for k, i in enumerate(m.graph.input):
            if i.type.HasField("tensor_type"):
                for j, d in enumerate(i.type.tensor_type.shape.dim):
                    d.dim_param = f"s{k}_{j}"
    return m



@pytest.mark.parametrize("mode", ["static", "symbolic"])
def test_conformance_shapes_match_onnxruntime(mode: str) -> None:
    cases, skipped = _cases(ran=True)
    known = partial = unknown = 0
    wrong, failed, errors = [], [], []
    for name, model, feeds, actual in cases:
        try:
            ir = load(_prepare(model, mode == "symbolic"))
            info = infer_shapes(ir)
        except Exception as e:  # noqa: BLE001 - reported below
            failed.append(f"{name}: {type(e).__name__}: {e}")
            continue
        r = compare(ir, actual, input_binding(ir, feeds))
        known += r.known
        partial += r.partial
        unknown += r.unknown
        if r.wrong:
            wrong.append(f"{name}: {r.wrong[:3]}")
        if info.errors:
            errors.append(f"{name}: {info.errors[0]}")
    summary = (f"conformance ({mode} inputs): {len(cases)} cases run by onnxruntime "
               f"({skipped} it cannot run); values: {known} known, {partial} partly known, "
               f"{unknown} unknown; {len(wrong)} cases with a wrong dim")
    print("\n" + summary)
    assert not failed, summary + "\n" + "\n".join(failed[:20])
    assert not wrong, summary + "\n" + "\n".join(wrong[:20])
    assert not errors, summary + "\nvalid models reported as contradictory:\n" + "\n".join(
        errors[:20])
    assert len(cases) > 1000


@pytest.mark.parametrize("mode", ["static", "symbolic"])
def test_conformance_shapes_match_reference_outputs(mode: str) -> None:
    """Cases onnxruntime cannot run: graph outputs against the reference outputs' shapes."""
    cases, _ = _cases(ran=False)
    known = total = 0
    wrong = []
    for name, model, feeds, actual in cases:
        ir = load(_prepare(model, mode == "symbolic"))
        infer_shapes(ir)
        r = compare(ir, actual, input_binding(ir, feeds), values=list(ir.graph.outputs))
        known += r.known
        total += r.values
        if r.wrong:
            wrong.append(f"{name}: {r.wrong[:3]}")
    summary = (f"conformance reference outputs ({mode} inputs): {len(cases)} cases onnxruntime "
               f"cannot run; graph outputs: {known}/{total} fully known; {len(wrong)} wrong")
    print("\n" + summary)
    assert not wrong, summary + "\n" + "\n".join(wrong[:20])
