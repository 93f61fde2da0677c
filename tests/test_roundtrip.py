"""Lift then lower keeps models intact: same outputs in onnxruntime, protos equal up to the
canonical form (value_info of unnamed/dangling values dropped, attribute type filled in)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxopt
from onnxopt import ir
from _conformance import case_feeds, conformance_cases, ort_run, same_outputs

SHARED = Path(__file__).resolve().parent / "models"  # committed copies (models/README.md)
LIGHT = sorted(glob.glob(os.path.join(os.path.dirname(onnx.__file__),
                                      "backend/test/data/light/*.onnx")))


def roundtrip(proto: onnx.ModelProto, base_dir=None) -> onnx.ModelProto:
    model = onnxopt.load(proto, base_dir=base_dir)
    assert ir.check_model(model) == []
    return ir.lower_model(model)


def _clear_defaults(msg) -> None:
    """Scalar fields explicitly set to their default are the same as unset (proto2 presence)."""
    for fd, val in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            if fd.is_repeated:
                for sub in val:
                    _clear_defaults(sub)
            else:
                _clear_defaults(val)
        elif not fd.is_repeated and val == fd.default_value:
            msg.ClearField(fd.name)
    if msg.DESCRIPTOR.name == "Dimension" and msg.HasField("dim_value") and msg.dim_value < 0:
        msg.ClearField("dim_value")  # a negative dim is invalid; the IR reads it as unknown
    if msg.DESCRIPTOR.name == "ValueInfoProto" and msg.HasField("type") and \
            not msg.type.ListFields():
        msg.ClearField("type")  # an empty type says nothing


def canonical(m: onnx.ModelProto) -> onnx.ModelProto:
    """The canonical form lift+lower preserves: scalar fields set to their default are unset,
    negative dim values are unknown dims, empty types are absent, value_info is sorted."""
    c = onnx.ModelProto()
    c.CopyFrom(m)
    _clear_defaults(c)

    def fix(g):
        vis = sorted(g.value_info, key=lambda v: v.name)
        del g.value_info[:]
        g.value_info.extend(vis)
        for n in g.node:
            for a in n.attribute:
                if a.HasField("g"):
                    fix(a.g)
                for sub in a.graphs:
                    fix(sub)

    fix(c.graph)
    return c


def test_conformance_cases_round_trip():
    ran = same = 0
    skipped = []
    for case in conformance_cases():
        data = case.model.SerializeToString()
        try:
            feeds = case_feeds(case)
            before = ort_run(data, feeds)
        except Exception:
            skipped.append(case.name)
            continue
        ran += 1
        after = ort_run(roundtrip(case.model).SerializeToString(), feeds)
        assert same_outputs(before, after), case.name
        same += 1
    print(f"\nconformance round trip: {same}/{ran} identical outputs; "
          f"{len(skipped)} cases onnxruntime cannot run before the round trip")
    assert ran > 1000


def test_conformance_protos_equal_up_to_canonical_form():
    for case in conformance_cases():
        got = roundtrip(case.model)
        assert canonical(got) == canonical(case.model), case.name


@pytest.mark.parametrize("path", LIGHT, ids=[os.path.basename(p) for p in LIGHT])
def test_light_models(path):
    proto = onnx.load(path)
    got = roundtrip(proto, os.path.dirname(path))
    onnx.checker.check_model(got)
    assert canonical(got) == canonical(proto)
    rng = np.random.default_rng(0)
    feeds = {}
    inits = {t.name for t in proto.graph.initializer}
    for i in proto.graph.input:
        if i.name in inits:  # IR 3: initializers are also graph inputs
            continue
        dims = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.standard_normal(dims).astype(np.float32)
    assert same_outputs(ort_run(proto.SerializeToString(), feeds),
                        ort_run(got.SerializeToString(), feeds))


SHARED_FEEDS = {
    "silero_vad_op15_ts.onnx": lambda r: {
        "input": r.uniform(-1, 1, (1, 576)).astype(np.float32),
        "state": (r.standard_normal((2, 1, 128)) * 0.1).astype(np.float32),
        "sr": np.array(16000, dtype=np.int64)},
    "magika_v3_3.onnx": lambda r: {"bytes": r.integers(0, 257, (2, 2048)).astype(np.int32)},
    "ppocrv4_det.onnx": lambda r: {"x": r.standard_normal((1, 3, 64, 96)).astype(np.float32)},
    "ppocr_mobile_v2_cls.onnx": lambda r: {
        "x": r.standard_normal((1, 3, 48, 192)).astype(np.float32)},
}


@pytest.mark.parametrize("name", sorted(SHARED_FEEDS))
def test_shared_models(name):
    path = SHARED / name
    proto = onnx.load(str(path))
    got = roundtrip(proto, str(SHARED))
    onnx.checker.check_model(got, full_check=True)
    assert canonical(got) == canonical(proto)
    feeds = SHARED_FEEDS[name](np.random.default_rng(0))
    assert same_outputs(ort_run(proto.SerializeToString(), feeds),
                        ort_run(got.SerializeToString(), feeds))


CONTROL_FLOW = """
<ir_version: 8, opset_import: ["" : 17]>
cf (float[N] x, bool c, int64 trip) => (float[N] y, float[N] z, float[N] w) {
    k = Constant <value: tensor = float[1] {2.0}> ()
    y = If (c) <
        then_branch = t () => (float[N] ty) { ty = Mul (x, k) },
        else_branch = e () => (float[N] ey) { ey = Add (x, k) }>
    cond0 = Constant <value: tensor = bool {1}> ()
    z = Loop (trip, cond0, x) <body = body (int64 i, bool cin, float[N] acc) => (bool cout, float[N] acc2) {
        cout = Identity (cin)
        acc2 = Add (acc, k)
    }>
    w = Scan (x) <num_scan_inputs: int = 1, body = sb (float s) => (float s2) { s2 = Mul (s, s) }>
}
"""


def test_control_flow_captures_are_outer_values():
    proto = onnx.parser.parse_model(CONTROL_FLOW)
    m = onnxopt.load(proto)
    x = m.graph.inputs[0]
    k = next(n for n in m.graph.nodes if n.op_type == "Constant").outputs[0]
    inner_users = {n.op_type for n, _ in k.uses()}
    assert inner_users == {"Mul", "Add"}  # the If's then branch and the Loop body read k
    assert {n.graph.name for n, _ in k.uses()} == {"t", "e", "body"}
    assert any(n.graph is not m.graph for n, _ in x.uses())
    got = ir.lower_model(m)
    feeds = {"x": np.arange(4, dtype=np.float32), "c": np.array(True),
             "trip": np.array(3, dtype=np.int64)}
    assert same_outputs(ort_run(proto.SerializeToString(), feeds),
                        ort_run(got.SerializeToString(), feeds))


FUNCTIONS = """
<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
g (float[N] x) => (float[N] y) {
    y = local.twice <alpha: float = 3.0> (x)
}
<domain: "local", opset_import: ["" : 17]>
twice <alpha> (a) => (b) {
    s = Constant <value_float: float = @alpha> ()
    t = Mul (a, s)
    b = Add (t, t)
}
"""


def test_model_local_functions_round_trip():
    proto = onnx.parser.parse_model(FUNCTIONS)
    m = onnxopt.load(proto)
    assert list(m.functions) == [("local", "twice", "")]
    got = ir.lower_model(m)
    onnx.checker.check_model(got)
    assert canonical(got) == canonical(proto)
    feeds = {"x": np.arange(3, dtype=np.float32)}
    assert same_outputs(ort_run(proto.SerializeToString(), feeds),
                        ort_run(got.SerializeToString(), feeds))


def _external_model(folder: Path) -> Path:
    from onnx import helper, numpy_helper

    w = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 100
    proto = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "ext",
        [helper.make_tensor_value_info("x", 1, ["N", 64])],
        [helper.make_tensor_value_info("y", 1, ["N", 32])],
        [numpy_helper.from_array(w, "w")]), opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "ext.onnx"
    onnx.save(proto, str(path), save_as_external_data=True, location="ext.bin",
              size_threshold=0)
    return path


def test_external_data_is_mapped_not_read_and_saved_again(tmp_path):
    src = _external_model(tmp_path)
    m = onnxopt.load(str(src))
    w = m.graph.initializers[0].const_value
    assert w.is_external and w._array is None  # nothing decoded at lift
    assert isinstance(w.numpy(), np.memmap)
    out = tmp_path / "out" / "ext.opt.onnx"
    out.parent.mkdir()
    onnxopt.save(m, str(out))
    assert (out.parent / "ext.opt.onnx.data").exists()
    feeds = {"x": np.ones((2, 64), dtype=np.float32)}
    import onnxruntime as ort

    a = ort.InferenceSession(str(src)).run(None, feeds)
    b = ort.InferenceSession(str(out)).run(None, feeds)
    assert same_outputs(a, b)


def test_unchanged_tensors_reuse_their_protos():
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) <float[2] w = {1.0, 2.0}> { y = Add (x, w) }""")
    m = onnxopt.load(proto)
    t = m.graph.initializers[0].const_value
    assert t.to_proto() is proto.graph.initializer[0]


def test_save_is_atomic_and_keeps_previous_output_on_failure(tmp_path, monkeypatch):
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) { y = Identity (x) }""")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    m = onnxopt.load(proto)

    def boom(*a, **k):
        raise OSError("disk full")

    import onnxopt.io as io_mod

    monkeypatch.setattr(io_mod.os, "replace", boom)
    with pytest.raises(OSError):
        onnxopt.save(m, str(out))
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left behind


def test_save_splices_big_weights_byte_for_byte(tmp_path, monkeypatch):
    """Big main-graph initializers (a changed one, an unchanged one, one in an If branch) are
    written one at a time, and the file is the whole serialization's bytes."""
    import onnxopt.splice as splice

    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[4] x, bool c) => (float[4] y) <float[4] w = {1, 2, 3, 4}, float[4] u = {5, 6, 7, 8}> {
        a = Add(x, w)
        b = Mul(a, u)
        y = If(c) <then_branch = t () => (float[4] o) <float[4] k = {9, 9, 9, 9}> {o = Add(b, k)},
                   else_branch = e () => (float[4] o2) {o2 = Identity(b)}>
    }"""
    model = onnxopt.load(onnx.parser.parse_model(text).SerializeToString())
    w = model.graph.initializers[0]
    w.const_value = ir.Tensor.from_numpy(np.arange(4, dtype=np.float32) * 2)  # a changed tensor
    spliced = []
    real = splice._serialized
    monkeypatch.setattr(splice, "SPLICE_MIN_BYTES", 1)
    monkeypatch.setattr(splice, "_serialized", lambda item: spliced.append(item[0]) or real(item))
    onnxopt.save(model, tmp_path / "m.onnx")
    assert spliced == ["w", "u"]  # the branch's initializer stays in the small part
    data = (tmp_path / "m.onnx").read_bytes()
    assert data == ir.lower_model(model).SerializeToString()
    y = ort_run(data, {"x": np.ones(4, np.float32), "c": np.array(True)})
    np.testing.assert_allclose(y[0], (1 + np.arange(4) * 2) * np.array([5, 6, 7, 8]) + 9)


def test_the_verified_bytes_are_the_saved_file(tmp_path):
    """A model verified with every weight inline keeps the bytes its check ran, and saving with
    them writes the file a fresh serialization would."""
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 4] x) => (float[N, 4] y) <float[4] w = {1, 2, 3, 4}> {
        one = Constant <value = float {1.0}> ()
        a = Mul(x, one)
        y = Add(a, w)
    }"""
    result = onnxopt.optimize(onnx.parser.parse_model(text), "default")
    assert result.verified and result.serialized is not None
    onnxopt.save(result.model, tmp_path / "given.onnx", serialized=result.serialized)
    onnxopt.save(result.model, tmp_path / "fresh.onnx")
    assert (tmp_path / "given.onnx").read_bytes() == (tmp_path / "fresh.onnx").read_bytes() \
        == result.serialized
    assert onnxopt.optimize(onnx.parser.parse_model(text), "default", verify=False) \
        .serialized is None
