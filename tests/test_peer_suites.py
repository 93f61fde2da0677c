"""The peers' test-suite graphs (benchmarks/peer_suites.py) for the rewrites issue 16 added:
onnxopt's default preset is right on each and ends at or below onnxoptimizer wherever
onnxoptimizer's own result is right (onnxslim is optional, so only onnxoptimizer cases run)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import peer_suites  # noqa: E402

CATEGORIES = {"squeezes", "unsqueezes", "concats", "idempotent", "rewrite_where", "slices",
              "nop_with_unit", "nop_split", "transpose_fanout", "subgraphs"}
CASES = [c for c in peer_suites.CASES if c.category in CATEGORIES] + \
    [c for c in peer_suites.CASES if c.category == "reduce_unsqueeze" and "ReduceSum" in c.name]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnxopt_is_right_and_not_above_a_right_peer(case):
    out = peer_suites.run_case(case)
    assert not out.error, out.error
    assert out.ours_ok, out.notes
    if out.peer_ok:
        assert out.ours[1] <= out.peer[1], (out.ours, out.peer, case.text)


def test_every_case_is_a_valid_model():
    import onnx
    import onnx.parser

    for c in peer_suites.CASES:
        onnx.checker.check_model(onnx.parser.parse_model(c.text), full_check=True)
