"""Run a pipeline of stages in onnxruntime, and verify it by composition.

The stages run one after another, each fed from the pipeline's inputs and the outputs of earlier
stages (by name: a cut keeps names). Verification runs the original and the stages on the
verifier's inputs (:class:`onnxopt.verify.Verifier`: two or more bindings of each symbolic dim)
in one runtime with its graph optimizations off, so the same kernels run on the same data: the
outputs must be bitwise equal. When they are not, the original is run again with every boundary
tensor exposed and the first stage output (in pipeline order) that differs is named.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..ortsession import session


def bitwise_equal(a: Any, b: Any) -> bool:
    """Same type, shape and bytes (NaNs compare by their bits); sequences element by element."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(bitwise_equal(x, y) for x, y in zip(a, b)))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def run_stages(sessions: list, feeds: dict, keep_all: bool = False) -> dict:
    """Run the stages in order; returns every tensor computed (name -> array) and the feeds."""
    env = dict(feeds)
    for sess in sessions:
        names = [i.name for i in sess.get_inputs()]
        missing = [n for n in names if n not in env]
        if missing:
            from ..errors import UsageError

            raise UsageError(f"the pipeline needs input(s) {', '.join(missing)}, which the "
                             "feeds do not give")
        outs = sess.run(None, {n: env[n] for n in names})
        env.update(zip((o.name for o in sess.get_outputs()), outs))
    return env


def original_session(ref: Any, expose: list[str] = ()):
    """A session on the original model (a path or bytes), with ``expose`` added as outputs."""
    if not expose:
        return session(ref)
    import onnx

    from ..io import read_model_proto

    proto = read_model_proto(ref) if isinstance(ref, str) else onnx.ModelProto.FromString(ref)
    have = {o.name for o in proto.graph.output}
    for name in expose:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    data_dir = os.path.dirname(os.path.abspath(ref)) if isinstance(ref, str) else None
    return session(proto.SerializeToString(), data_dir=data_dir)


def first_difference(original_ref: Any, stage_outputs: list[list[str]], feed: dict,
                     env: dict) -> str | None:
    """The first stage output, in pipeline order, whose value differs from the original's."""
    order = [name for outs in stage_outputs for name in outs]
    sess = original_session(original_ref, order)
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})))
    for k, outs in enumerate(stage_outputs):
        for name in outs:
            if name in ref and not bitwise_equal(ref[name], env.get(name)):
                return f"{name!r} (an output of stage {k})"
    return None
