"""The ``onnxopt`` command line. Entry point: :func:`onnxopt.cli.main.main`."""

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the command line (see ``onnxopt --help``)."""
    from .main import main as _main

    return _main(argv)
