"""The code keeps the shape the style guide asks for, checked on the source (ast, no imports):
functions under 80 lines, ``ir/`` importing nothing of the layers above it, and no
``except ImportError`` around the project's own subpackages (they are always there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("ir", "passes", "api", "cli")
MAX_LINES = 80


def sources(*tops: str):
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_no_function_is_longer_than_80_lines():
    long = [f"{where(p, n)} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p, tree in sources(*LAYERS) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert long == []


def _imports_above_ir(tree: ast.AST) -> list[ast.AST]:
    """Imports of an ``ir/`` module (at the package's top level) that leave the IR."""
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level >= 2 or (n.level == 0 and (n.module or "").startswith("onnxopt")
                                and not (n.module or "").startswith("onnxopt.ir")):
                bad.append(n)
        elif isinstance(n, ast.Import):
            if any(a.name.startswith("onnxopt") and not a.name.startswith("onnxopt.ir")
                   for a in n.names):
                bad.append(n)
    return bad


def test_the_ir_imports_nothing_above_it():
    bad = [where(p, n) for p, tree in sources("ir") for n in _imports_above_ir(tree)]
    assert bad == []


def _guarded_own_imports(tree: ast.AST) -> list[ast.AST]:
    bad = []
    for n in ast.walk(tree):
        if not isinstance(n, ast.Try):
            continue
        caught = set()
        for h in n.handlers:
            for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
                if isinstance(t, ast.Name):
                    caught.add(t.id)
        if caught & {"ImportError", "ModuleNotFoundError"}:
            bad += [i for i in n.body if isinstance(i, ast.ImportFrom)
                    and (i.level > 0 or (i.module or "").startswith("onnxopt"))]
    return bad


def test_no_import_fallbacks_for_the_projects_own_subpackages():
    bad = [where(p, n) for p, tree in sources(*LAYERS) for n in _guarded_own_imports(tree)]
    assert bad == []


@pytest.mark.parametrize("text, count", [
    ("from ..passes import x\n", 1), ("from .core import Node\n", 0),
    ("import onnxopt.passes\n", 1), ("from onnxopt.ir.core import Node\n", 0),
])
def test_the_layer_check_sees_upward_imports(text, count):
    assert len(_imports_above_ir(ast.parse(text))) == count


def test_the_fallback_check_sees_a_guarded_own_import():
    guarded = "try:\n    from ..shapes import x\nexcept ImportError:\n    x = None\n"
    foreign = "try:\n    import torch\nexcept ImportError:\n    torch = None\n"
    assert len(_guarded_own_imports(ast.parse(guarded))) == 1
    assert _guarded_own_imports(ast.parse(foreign)) == []
