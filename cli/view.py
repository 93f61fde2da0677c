"""``onnxopt view MODEL [--diff OTHER]``: the report page for one model, or two, opened in a
browser (or its path printed when there is no display); ``--netron`` hands the model to Netron.

    onnxopt view MODEL [--diff OTHER] [-o PAGE.html] [--no-open]
    onnxopt view --netron MODEL          (needs the netron package: pip install onnxopt[view])
"""

from __future__ import annotations

import os
import sys
import tempfile


def _parser():
    from .inputs import add_output_args
    from .main import _Parser

    p = _Parser(prog="onnxopt view",
                description="Write an offline HTML page drawing a model (or the diff of two) and "
                            "open it; without a display, print its path.")
    p.add_argument("model", help="model to draw (.onnx)")
    p.add_argument("--diff", metavar="OTHER", help="a second model: draw what changed")
    p.add_argument("-o", "--output", metavar="PAGE", help="where to write the page "
                   "(default: a file in the temporary folder)")
    p.add_argument("--no-open", action="store_true", help="print the path; open nothing")
    p.add_argument("--netron", action="store_true",
                   help="open the model in Netron instead (pip install onnxopt[view])")
    add_output_args(p)  # --debug
    return p


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _default_page(model: str) -> str:
    stem = os.path.splitext(os.path.basename(model))[0] or "model"
    return os.path.join(tempfile.gettempdir(), f"onnxopt-view-{stem}.html")


def _netron(model: str) -> int:
    from ..ir.errors import UsageError

    try:
        import netron  # type: ignore[import-not-found]
    except ImportError:
        raise UsageError("--netron needs the netron package: pip install 'onnxopt[view]' "
                         "(or drop --netron for onnxopt's own page)") from None
    netron.start(model)
    return 0


def run_view(argv: list[str]) -> int:
    """Entry of ``onnxopt view``; returns the exit code."""
    from ..ir.errors import UsageError
    from .inputs import check_model_path

    args = _parser().parse_args(argv)
    for m in (args.model, args.diff):
        if m is not None:
            check_model_path(m)
    if args.netron:
        if args.diff:
            raise UsageError("--netron shows one model; drop --diff")
        return _netron(args.model)
    from ..ir import gcpause
    from ..report import check_report_path, write_view

    gcpause.FREEZE_AFTER = True  # one process, one model (as the optimize command does)

    page = args.output or _default_page(args.model)
    check_report_path(page, args.model, args.diff)
    write_view(page, args.model, args.diff)
    if not args.no_open and _has_display():
        import webbrowser
        from pathlib import Path

        webbrowser.open(Path(os.path.abspath(page)).as_uri())
    print(page)
    return 0
