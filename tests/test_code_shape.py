"""The code keeps the shape the style guide asks for, checked on the source (ast, no imports):
functions under 80 lines, rewrite rules over 40 lines saying why at their top, ``ir/`` importing
nothing of the layers above it, and no ``except ImportError`` around the project's own
subpackages (they are always there)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("ir", "passes", "api", "cli")
MAX_LINES = 80
MAX_RULE_LINES = 40
LONG_MARK = "# long:"  # at a rule's top (before its first statement past the docstring): why


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


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [b.id if isinstance(b, ast.Name) else b.attr for b in cls.bases
            if isinstance(b, (ast.Name, ast.Attribute))]


def rule_classes(trees) -> list[tuple[Path, ast.ClassDef]]:
    """Classes deriving from the rewrite API's ``Rule``, through any chain of project bases
    (by name: ``_Neutral``, ``ConversionRule``...)."""
    classes = [(p, n) for p, tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    rules, grew = {"Rule"}, True
    while grew:
        grew = False
        for _, n in classes:
            if n.name not in rules and any(b in rules for b in _base_names(n)):
                rules.add(n.name)
                grew = True
    return [(p, n) for p, n in classes if n.name != "Rule" and n.name in rules]


def says_why_long(cls: ast.ClassDef, lines: list[str]) -> bool:
    """A ``# long:`` comment between the class line and its first statement past the docstring."""
    body = cls.body[1:] if ast.get_docstring(cls) is not None else cls.body
    end = body[0].lineno if body else cls.end_lineno
    return any(line.strip().startswith(LONG_MARK) for line in lines[cls.lineno:end - 1])


def test_a_rule_over_40_lines_says_why_at_its_top():
    trees = list(sources("passes"))
    text = {p: p.read_text(encoding="utf-8").splitlines() for p, _ in trees}
    bad = [f"{where(p, n)} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
           for p, n in rule_classes(trees)
           if n.end_lineno - n.lineno + 1 > MAX_RULE_LINES and not says_why_long(n, text[p])]
    assert bad == []


def test_the_rule_check_finds_rules_and_their_reason():
    src = ("class A(Rule):\n    # long: why\n    x = 1\n"
           "class B(A):\n    \"\"\"doc\"\"\"\n\n    x = 1\n"
           "class C:\n    x = 1\n")
    found = rule_classes([(Path("m.py"), ast.parse(src))])
    assert [n.name for _, n in found] == ["A", "B"]
    assert [says_why_long(n, src.splitlines()) for _, n in found] == [True, False]


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
