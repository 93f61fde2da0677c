"""The onnx package's node conformance cases, loaded once per test session, and an ORT runner."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def conformance_cases() -> list:
    """Every case of ``onnx.backend.test.case.node.collect_testcases('')``."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return list(collect_testcases(""))


def ort_run(model_bytes: bytes, feeds: dict) -> list:
    """Run serialized model bytes in onnxruntime with its optimizations off."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def case_feeds(case, data_set: int = 0) -> dict:
    """Input feeds of one conformance case data set, keyed by graph input name."""
    inputs, _ = case.data_sets[data_set]
    names = [i.name for i in case.model.graph.input]
    return dict(zip(names, inputs))


def same_outputs(a: list, b: list) -> bool:
    """Bitwise-equal outputs (NaN equal to NaN), shapes and dtypes included."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):  # sequence outputs
            if not isinstance(x, (list, tuple)) or not isinstance(y, (list, tuple)):
                return False
            if not same_outputs(list(x), list(y)):
                return False
            continue
        if x is None or y is None:
            if x is not y:
                return False
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind in "fc":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif x.dtype == object:
            if list(x.flat) != list(y.flat):
                return False
        elif not np.array_equal(x, y):
            return False
    return True
