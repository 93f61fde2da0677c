"""Shared pytest configuration. Keep this file small: only what many test files need."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden/*/*.expected.onnxtxt from the current output "
                          "(review the diff before committing)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when pytest runs with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lenient_shapes: shape functions that raise are not "
                            "errors in this test (it feeds hostile input on purpose)")


@pytest.fixture(autouse=True)
def strict_shapes(request: pytest.FixtureRequest):
    """Shape inference is strict in every test: a shape function that raises fails the test
    instead of leaving outputs unknown, so no test passes because a shape rule crashed."""
    from onnxopt.passes.shapes.infer import strict_shapes as strict

    with strict(request.node.get_closest_marker("lenient_shapes") is None):
        yield


WRONG_PLUGIN = """
from onnxopt.passes import GraphPass, PassResult, register

@register
class MakeItWrong(GraphPass):
    name = "t:wrong"
    summary = "turns Relu into Sigmoid (wrong on purpose)"

    def run_on_graph(self, graph, ctx):
        result = PassResult()
        for n in graph.nodes:
            if n.op_type == "Relu":
                n.op_type = "Sigmoid"
                result.modified = True
        return result
"""


@pytest.fixture(scope="session")
def wrong_plugin(tmp_path_factory: pytest.TempPathFactory):
    """A plugin file whose pass ``t:wrong`` turns every Relu into a Sigmoid: a miscompile that
    verification must catch. One file for the session: loading a file again is no collision,
    another file registering the same name would be."""
    path = tmp_path_factory.mktemp("plugins") / "wrong.py"
    path.write_text(WRONG_PLUGIN)
    return path
