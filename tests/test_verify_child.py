"""The original's run in a forked child (onnxopt.verify.child): the same verdict as in-process,
and a child that fails, dies or stalls costs time, never the answer or a hang."""

from __future__ import annotations

import os
import sys
import time

import onnx.parser
import onnxopt
import pytest
from onnxopt import forked, optimize, optimizer
from onnxopt.errors import UsageError
from onnxopt.verify import Verifier, VerifyOptions
from onnxopt.verify import child
import onnxopt.verify as verify_module

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")

MODEL = onnx.parser.parse_model('''<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 4] y) {
    one = Constant <value = float {1.0}> ()
    a = Mul(x, one)
    y = Relu(a)
}''')


def _report(result):
    v = result.verification
    return v.status, [dict(b) for b in v.bindings], [(d.name, d.ok, d.max_abs) for d in v.diffs]


@pytest.fixture
def in_child(monkeypatch):
    monkeypatch.setattr(optimizer, "ORIGINAL_IN_CHILD", True)
    monkeypatch.setattr(child, "can_fork", lambda: True)
    runs = []
    real = child.ChildRun

    def counted(verifier):
        runs.append(real(verifier))
        return runs[-1]

    monkeypatch.setattr(child, "ChildRun", counted)
    return runs


def test_a_child_prepares_what_the_process_would(monkeypatch):
    monkeypatch.setattr(verify_module, "_CACHE", {})  # neither side may reuse the other's run
    there = Verifier(MODEL)
    run = child.ChildRun(there)
    assert run.collect()
    verify_module._CACHE.clear()
    here = Verifier(MODEL)

    def runs(v):
        return [(r.binding, {k: a.tolist() for k, a in r.feed.items()},
                 [a.tolist() for a in r.outputs]) for r in v.prepare().runs]

    assert there.prepare() is not here.prepare()
    assert runs(there) == runs(here) and len(runs(here)) >= 2


def test_optimize_verifies_alike_with_and_without_the_child(in_child):
    with_child = optimize(MODEL, "default")
    assert len(in_child) == 1
    optimizer.ORIGINAL_IN_CHILD = False
    without = optimize(MODEL, "default")
    assert len(in_child) == 1
    assert with_child.verified and _report(with_child) == _report(without)


def test_a_child_that_fails_is_redone_in_process(in_child, monkeypatch):
    monkeypatch.setattr(forked, "_serve", lambda work, fd: os._exit(1))
    result = optimize(MODEL, "default")
    assert len(in_child) == 1 and result.verified


def test_a_child_that_stalls_is_killed_and_redone(in_child, monkeypatch):
    monkeypatch.setattr(forked, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(forked, "_serve", lambda work, fd: (time.sleep(60), os._exit(0)))
    t0 = time.perf_counter()
    result = optimize(MODEL, "default")
    assert result.verified and time.perf_counter() - t0 < 30


def test_a_bad_input_shape_is_still_a_usage_error(in_child):
    with pytest.raises(UsageError, match="no input 'nope'"):
        optimize(MODEL, "default", verify_options=VerifyOptions(input_shapes={"nope": [1, 4]}))
    assert len(in_child) == 1


def test_an_interrupt_is_not_held_up_by_redoing_the_original(in_child, monkeypatch):
    """A child that died is redone in-process, except when the user pressed Ctrl-C."""
    monkeypatch.setattr(forked, "_serve", lambda work, fd: os._exit(1))
    prepared = []
    monkeypatch.setattr(Verifier, "prepare", lambda self: prepared.append(self))
    with pytest.raises(KeyboardInterrupt):
        with optimizer._OriginalRun(MODEL.SerializeToString(), VerifyOptions(),
                                    onnxopt.load(MODEL)):
            raise KeyboardInterrupt
    assert len(in_child) == 1 and prepared == []


@pytest.mark.parametrize("free, in_a_child", [(10**12, True), (0, False)])
def test_large_weights_overlap_in_a_child_only_with_room_for_their_copy(in_child, monkeypatch,
                                                                       free, in_a_child):
    """Weights over OVERLAP_WEIGHT_BYTES are loaded again by the child's onnxruntime: it runs
    beside the passes only when the machine has CHILD_ROOM_FACTOR times them free, else first,
    alone, in-process. The verdict is the same either way."""
    monkeypatch.setattr(optimizer, "OVERLAP_WEIGHT_BYTES", -1)  # every model's weights are "large"
    monkeypatch.setattr(optimizer, "_available_memory", lambda: free)
    result = optimize(MODEL, "default")
    assert result.verified and len(in_child) == int(in_a_child)
