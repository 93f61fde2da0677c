"""Peers as passes: onnxsim's simplifier as ``onnxsim``, every onnxoptimizer pass as
``onnxoptimizer:NAME``.

They let a pipeline mix other tools with onnxopt's passes (``-p fold,onnxsim,fuse``) and still get
onnxopt's verification, bisection and report around them. They are written against the public
plugin API only (:class:`~onnxopt.passes.Pass`, :func:`~onnxopt.passes.register`,
:func:`~onnxopt.ir.lower_model`, :func:`~onnxopt.ir.lift_model`), like any plugin.

These are the only passes that go through protobuf, because they wrap tools that only speak
protobuf: each lowers the IR to a ModelProto (weights held in external files are inlined, so the
tool sees them), calls the tool, lifts its result and puts it into the *same* Model object
(:func:`replace_model`), so the pass manager and everyone holding the model see the result.
``modified`` is honest: the result is lowered again and compared byte for byte with what the tool
was given; when they are equal (or differ only in the order of nodes) the original IR is kept
untouched and the pass reports no change. A tool cannot say which of its
rewrites did what, so bisection names the peer pass, not a rule inside it.

The tools are imported only when one of their passes runs (onnxsim imports torch when it is
installed: seconds); onnxoptimizer also when the passes are listed, since it names them.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from ..ir.errors import UsageError
from ..ir import Model, Tensor, lift_model, lower_model
from .base import ALL, Pass, PassContext, PassResult
from .registry import register, register_namespace


def replace_model(model: Model, new: Model) -> None:
    """Make ``model`` hold ``new``'s graph, functions, opset imports, IR version and the proto
    fields the IR keeps opaque, in place; its metadata (producer, doc string, metadata_props)
    stays. ``new`` must not be used afterwards."""
    model.graph = new.graph
    model.functions = new.functions
    model.opset_imports = dict(new.opset_imports)
    model.ir_version = new.ir_version
    model.opaque = new.opaque


def _inline_external(t: Tensor, name: str):
    """A tensor's proto with its data inline (tools get a ModelProto, not the model's folder)."""
    p = t.to_proto(name)
    ref = t.external
    if ref is None:
        return p
    import onnx

    q = onnx.TensorProto()
    q.CopyFrom(p)
    del q.external_data[:]
    q.data_location = onnx.TensorProto.DEFAULT
    with open(ref.path, "rb") as f:
        f.seek(ref.offset)
        q.raw_data = f.read(ref.length)
    return q


def _has_anonymous_values(model: Model) -> bool:
    for g in model.graphs():
        if any(v.name is None for v in g.inputs) or any(v.name is None for v in g.initializers):
            return True
        for n in g.nodes:
            if any(v.name is None for v in n.outputs):
                return True
    return False


def _same_but_for_order(a: bytes, b: bytes) -> bool:
    """True when two serialized models differ only in the order of nodes, initializers and
    value_info of the main graph and function bodies (onnxsim reorders Constant nodes on every
    run; taking that as a change would keep every fixed-point group spinning)."""
    import onnx

    def key(data: bytes):
        m = onnx.load_from_string(data)
        parts = []
        for g in [m.graph, *m.functions]:
            for field in ("node", "initializer", "value_info"):
                items = getattr(g, field, None)
                if items is None:  # FunctionProto has no initializers
                    continue
                parts.append(sorted(x.SerializeToString() for x in items))
                del items[:]
        return m.SerializeToString(), parts

    return key(a) == key(b)


class ProtoPass(Pass):
    """A pass that hands the lowered ModelProto to a tool: implement :meth:`transform`."""

    def transform(self, proto: Any) -> Any:  # pragma: no cover - protocol
        """Return the tool's result for ``proto`` (a ModelProto the pass may consume)."""
        raise NotImplementedError

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        import onnx

        # Lowering names anonymous values; that is a change to the IR even when the tool
        # changes nothing, and the manager's modified-check would rightly call it one.
        named = _has_anonymous_values(model)
        before = lower_model(model, _inline_external).SerializeToString()
        out = self.transform(onnx.load_from_string(before))
        if not isinstance(out, onnx.ModelProto):
            raise TypeError(f"{self.name} returned {type(out).__name__}, not a ModelProto")
        new = lift_model(out, model.base_dir)
        # The model's own metadata stays (tools add bookkeeping of their own, like onnxsim's
        # "onnxsim.*" metadata_props): only what replace_model moves is compared.
        for f in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
            setattr(new, f, getattr(model, f))
        new.metadata_props = dict(model.metadata_props)
        after = lower_model(new, _inline_external).SerializeToString()
        if after == before or _same_but_for_order(after, before):
            # The tool changed nothing (or only reordered): keep our IR as it was. It changed
            # only if lowering named anonymous values; every analysis still holds.
            return PassResult(modified=named, preserved=ALL)
        replace_model(model, new)
        return PassResult(modified=True)


@register
class Onnxsim(ProtoPass):
    """onnx-simplifier's ``simplify`` (constant folding, shape inference, its fusions)."""

    name = "onnxsim"
    summary = "onnx-simplifier (onnxsim) as a pass, through protobuf"
    options: ClassVar[dict[str, Any]] = {
        "check_n": 0,  # onnxsim's own numeric checks; onnxopt verifies the whole pipeline anyway
        "skip_fuse_bn": False,
        "skip_constant_folding": False,
        "skip_shape_inference": False,
        "include_subgraph": False,
    }

    def transform(self, proto: Any) -> Any:
        try:
            import onnxsim
        except ImportError as e:
            raise UsageError("pass 'onnxsim' needs the onnxsim package (pip install onnxsim)") \
                from e
        _release_at_exit()
        o = self.opts
        out, ok = onnxsim.simplify(proto, check_n=int(o["check_n"]),
                                   skip_fuse_bn=bool(o["skip_fuse_bn"]),
                                   skip_constant_folding=bool(o["skip_constant_folding"]),
                                   skip_shape_inference=bool(o["skip_shape_inference"]),
                                   include_subgraph=bool(o["include_subgraph"]))
        if not ok:
            raise RuntimeError("onnxsim's own check found the simplified model differs")
        return out


_release_registered = False


def _release_at_exit() -> None:
    """The command freezes the garbage collector after lifting (see ``onnxopt.ir.gcpause``), so
    onnxsim's native objects caught in frozen cycles would outlive its extension module and it
    prints leak warnings at exit. Unfreeze and collect before the interpreter tears down."""
    global _release_registered
    if _release_registered:
        return
    _release_registered = True
    import atexit
    import gc

    def release() -> None:
        gc.unfreeze()
        gc.collect()

    atexit.register(release)


class OnnxoptimizerPass(ProtoPass):
    """One onnxoptimizer pass (``peer_pass``); subclasses are made per name by the namespace."""

    peer_pass: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {"fixed_point": False}

    def transform(self, proto: Any) -> Any:
        import onnxoptimizer

        return onnxoptimizer.optimize(proto, [self.peer_pass],
                                      fixed_point=bool(self.opts["fixed_point"]))


def _onnxoptimizer_pass(peer_name: str) -> type:
    cls_name = "Onnxoptimizer_" + "".join(c if c.isalnum() else "_" for c in peer_name)
    return type(cls_name, (OnnxoptimizerPass,), {
        "__module__": __name__,
        "__doc__": f"onnxoptimizer's {peer_name!r} pass.",
        "name": f"onnxoptimizer:{peer_name}",
        "summary": f"onnxoptimizer's {peer_name} (through protobuf)",
        "peer_pass": peer_name,
    })


def _register_onnxoptimizer_passes(register_fn: Callable[[type], type] = register) -> None:
    try:
        import onnxoptimizer
    except ImportError as e:
        raise UsageError("onnxoptimizer:* passes need the onnxoptimizer package "
                         "(pip install onnxoptimizer)") from e
    for peer_name in onnxoptimizer.get_available_passes():
        register_fn(_onnxoptimizer_pass(peer_name))


register_namespace("onnxoptimizer", _register_onnxoptimizer_passes)

__all__ = ["ProtoPass", "Onnxsim", "OnnxoptimizerPass", "replace_model"]
