"""Helpers for tests of passes, built-in or plugin: models from ONNX text, running passes with
every check on, numerical equivalence in onnxruntime, and golden text.

    from onnxopt.testing import assert_equivalent, model_from_text, run_passes, snapshot

    m = model_from_text('''<ir_version: 8, opset_import: ["" : 17]>
        g (float[N,4] x) => (float[N,4] y) { a = Relu (x)  y = Relu (a) }''')
    before = snapshot(m)
    run_passes(m, "my:squash-idempotent")     # the IR verifier runs after every pass
    assert_equivalent(before, m)              # onnxruntime, two bindings of N
    assert_golden(m, "tests/golden/squash.onnxtxt")

Models are accepted in any form the helpers can turn into a ModelProto: an IR
:class:`~onnxopt.ir.Model`, a ModelProto, serialized bytes, ONNX textual syntax, or a path to a
``.onnx`` file. Passes are given by name (registered or loaded with :func:`load_plugin`), as a
pass class, or as a pass instance. Golden files are rewritten when ``update=True`` or when the
environment variable ``ONNXOPT_UPDATE_GOLDEN`` is ``1`` (review the diff before committing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .ortsession import session

if TYPE_CHECKING:
    from .ir import Model
    from .passes import Pass, PassResult, PipelineReport

UPDATE_GOLDEN_ENV = "ONNXOPT_UPDATE_GOLDEN"


# -- models -------------------------------------------------------------------------------------


def model_from_text(text: str) -> "Model":
    """Parse ONNX textual syntax (what ``onnx.parser`` reads) into an IR model."""
    import onnx.parser

    from .io import load

    return load(onnx.parser.parse_model(text))


def model_file(text: str, path: Union[str, os.PathLike]) -> Path:
    """Write a model in ONNX textual syntax to ``path`` as a .onnx file (what a test of the
    command line or of file loading starts from) and return the path."""
    import onnx
    import onnx.parser

    onnx.save(onnx.parser.parse_model(text), str(path))
    return Path(path)


def to_proto(model: Any):
    """A ModelProto from an IR model, a ModelProto, serialized bytes, ONNX text or a file path."""
    import onnx

    from .ir import Model, lower_model

    if isinstance(model, Model):
        return lower_model(model)
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, Path) or (isinstance(model, str) and model.endswith(".onnx")
                                   and "\n" not in model):
        return onnx.load(os.fspath(model))
    if isinstance(model, str):
        import onnx.parser

        return onnx.parser.parse_model(model)
    return model


def snapshot(model: Any) -> bytes:
    """Serialized bytes of a model: a copy later mutation of the IR cannot touch."""
    return to_proto(model).SerializeToString()


m_bytes = snapshot  # the older name, kept for existing tests


def golden_text(model: Any) -> str:
    """The deterministic golden-mode text of a model (ONNX textual syntax, names kept)."""
    from .io import load
    from .ir import Model, print_model

    m = model if isinstance(model, Model) else load(to_proto(model))
    return print_model(m)


# -- running passes -------------------------------------------------------------------------------


def load_plugin(path: Union[str, os.PathLike]) -> list[str]:
    """Load a plugin file (as ``--plugin`` does); returns the names of the passes it registered."""
    from .passes import load_plugin_file

    return load_plugin_file(os.fspath(path))


def run_passes(model: "Model", pipeline: str, verify_each: bool = True,
               check_modified: bool = True) -> "PipelineReport":
    """Run pipeline text on an IR model in place, with the IR verifier after every pass and the
    check that a pass reporting no change changed nothing. Returns the manager's report."""
    from .passes import PassManager

    return PassManager(pipeline, verify_each=verify_each, check_modified=check_modified).run(model)


def run_pass(model: "Model", pass_: Union[str, type, "Pass"], **options: Any) -> "PassResult":
    """Run one pass (a name, a Pass subclass or instance; ``options`` go to its constructor) on
    an IR model in place, with the same checks as the manager. Unregistered classes work too.
    Raises AssertionError when the pass breaks an IR invariant or misreports ``modified``."""
    from .ir import check_model
    from .passes import Pass, PassContext, PassResult, create
    from .passes.manager import fingerprint

    if isinstance(pass_, str):
        p = create(pass_, options)
    elif isinstance(pass_, type) and issubclass(pass_, Pass):
        p = pass_(**options)
    elif isinstance(pass_, Pass):
        if options:
            raise TypeError("options are for a pass given by name or class, not an instance")
        p = pass_
    else:
        raise TypeError(f"not a pass: {pass_!r}")
    before = fingerprint(model)
    result = p.run(model, PassContext(model))
    name = getattr(p, "name", "") or type(p).__name__
    if not isinstance(result, PassResult):
        raise AssertionError(f"pass {name!r} returned {type(result).__name__}, not a PassResult")
    if not result.modified and fingerprint(model) != before:
        raise AssertionError(f"pass {name!r} reported no change but changed the IR")
    problems = check_model(model)
    if problems:
        raise AssertionError(f"pass {name!r} broke the IR: " + "; ".join(problems[:5]))
    return result


def structure(model: Any) -> tuple:
    """What a model computes, as comparable data: the nodes of every graph and function (with
    their attributes, subgraphs and value names), the graph inputs and outputs, and the
    initializers' names and bytes. Types and shapes are left out, so an analysis that only
    annotates values does not count as a change."""
    p = to_proto(model)
    g = p.graph
    return (tuple(n.SerializeToString() for n in g.node),
            tuple(i.name for i in g.input), tuple(o.name for o in g.output),
            tuple(sorted((t.name, t.SerializeToString()) for t in g.initializer)),
            tuple(f.SerializeToString() for f in p.functions))


def check_pipeline(model: Any, pipeline: str, expected: Optional[str] = None, *,
                   changed: Optional[bool] = None, feeds: Optional[dict] = None,
                   verify: bool = True) -> "Model":
    """The usual test in one call: build ``model`` (text, proto, ...), run ``pipeline`` with every
    check on, then assert the result's golden text equals ``expected`` (when given), that the
    computation changed (``changed=True``) or did not (``changed=False``: nodes, initializers and
    interface as :func:`structure` sees them; refined types do not count), and that the result
    computes what the input computes (unless ``verify=False``). Returns the result."""
    from .io import load

    original = snapshot(model)
    m = load(original)
    baseline = structure(load(original))  # through the IR too, so encodings compare equal
    run_passes(m, pipeline)
    if expected is not None:
        assert_text(m, expected)
    if changed is not None:
        did = baseline != structure(m)
        if changed and not did:
            raise AssertionError(f"expected {pipeline!r} to change the model; it did not\n"
                                 f"{golden_text(m)}")
        if not changed and did:
            raise AssertionError(f"expected {pipeline!r} to leave the model alone; it changed "
                                 f"it to\n{golden_text(m)}")
    if verify:
        assert_equivalent(original, m, feeds=feeds)
    return m


# -- numbers --------------------------------------------------------------------------------------


def run_model(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model in onnxruntime (CPU) with its graph optimizations disabled."""
    return session(snapshot(model)).run(None, feeds)


def assert_equivalent(original: Any, optimized: Any, feeds: Optional[dict] = None,
                      bindings: Optional[list[dict[str, int]]] = None, seed: int = 0,
                      atol: Optional[float] = None, rtol: Optional[float] = None) -> None:
    """Assert both models compute the same outputs in onnxruntime (optimizations off).

    Inputs are ``feeds`` when given, else generated by :mod:`onnxopt.verify` at two or more
    bindings of every symbolic dim (or at ``bindings``, e.g. ``[{"N": 2}, {"N": 5}]``), with
    per-dtype tolerances unless ``atol``/``rtol`` are given. Raises AssertionError with the
    verifier's one-line reason, also when onnxruntime cannot run the original.
    """
    from .verify import VerifyOptions, verify

    opts = VerifyOptions(seed=seed)
    if atol is not None:
        opts.atol_override = atol
    if rtol is not None:
        opts.rtol_override = rtol
    if bindings:
        opts.bindings = bindings
    if feeds is not None:
        opts.feeds = [feeds]
    rep = verify(to_proto(original), to_proto(optimized), opts)
    if rep.status != "ok":
        raise AssertionError(f"{rep.status}: {rep.reason}")


# -- text -----------------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def assert_text(model: Any, expected: str) -> None:
    """Assert the golden-mode text of ``model`` equals ``expected`` (trailing spaces and
    surrounding blank lines ignored)."""
    got = golden_text(model)
    if _normalize(got) != _normalize(expected):
        raise AssertionError(f"text differs.\n--- expected\n{expected}\n--- got\n{got}")


def update_golden_requested() -> bool:
    """True when ``ONNXOPT_UPDATE_GOLDEN`` is set to 1 (or true/yes)."""
    return os.environ.get(UPDATE_GOLDEN_ENV, "").strip().lower() in ("1", "true", "yes")


def assert_golden(model: Any, path: Union[str, os.PathLike], update: Optional[bool] = None) -> None:
    """Assert the golden-mode text of ``model`` equals the file at ``path``.

    With ``update`` (default: :func:`update_golden_requested`), write the file instead; a
    missing file is an error that says how to create it."""
    p = Path(path)
    got = _normalize(golden_text(model))
    if update is None:
        update = update_golden_requested()
    if update:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(got)
        return
    if not p.exists():
        raise AssertionError(f"{p}: no golden file; run with {UPDATE_GOLDEN_ENV}=1 to write it "
                             f"and review it\n--- got\n{got}")
    expected = _normalize(p.read_text())
    if got != expected:
        raise AssertionError(f"{p}: text differs (rerun with {UPDATE_GOLDEN_ENV}=1 to update, "
                             f"then review the diff)\n--- expected\n{expected}--- got\n{got}")


__all__ = [
    "model_from_text", "model_file", "to_proto", "snapshot", "m_bytes", "golden_text", "structure",
    "load_plugin", "run_passes", "run_pass", "check_pipeline", "run_model", "assert_equivalent",
    "assert_text", "assert_golden", "update_golden_requested", "UPDATE_GOLDEN_ENV",
]
