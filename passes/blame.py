"""Where in a plugin's own code a failure comes from: the file and line a pass author can open.

An exception raised by a plugin usually surfaces inside onnxopt (``m["y"]`` fails in the match
object, a bad edit in the IR's mutation API), so the innermost frame names onnxopt's file. What
the author needs is the innermost frame in *their* code, and the rule that was running. The
rewrite driver marks an exception that escapes a rule with :func:`mark_rule`; the pass manager
reads it back with :func:`rule_of`.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from typing import Optional

from ..ir.errors import PassError

_RULE_ATTR = "_onnxopt_rule"  # set on an exception that escaped a rule's check or rewrite


class RuleProblem(PassError):
    """What a rule did that the rewrite driver refuses (a node outside the graph's opsets). The
    message starts with ``rule 'NAME':`` and ends with the line in the rule's code; the pass
    manager puts the pass and the plugin's origin around it."""


class UnboundName(KeyError):
    """``m["y"]`` for a name the pattern does not bind: says which names it does bind."""

    def __init__(self, name: str, bound) -> None:
        super().__init__(name)
        # Names starting with "_" are the pattern's own (an Op nobody named): not the author's.
        names = sorted(k for k in bound if isinstance(k, str) and not k.startswith("_"))
        self.message = (f"m[{name!r}]: the pattern binds no {name!r} "
                        f"(bound: {', '.join(names) or 'none'})")

    def __str__(self) -> str:
        return self.message


def mark_rule(exc: BaseException, rule: str) -> None:
    """Record that ``exc`` escaped the rule named ``rule`` (innermost rule wins: set once)."""
    if getattr(exc, _RULE_ATTR, None) is None:
        try:
            setattr(exc, _RULE_ATTR, rule)
        except AttributeError:  # an exception type with __slots__: the pass is still named
            pass


def rule_of(exc: BaseException) -> Optional[str]:
    """The rule :func:`mark_rule` recorded on ``exc``, or None."""
    return getattr(exc, _RULE_ATTR, None)


def code_root(cls: type, plugin_file: Optional[str] = None) -> Optional[str]:
    """The author's code a pass class comes from: its plugin file, or its top-level package's
    folder (an installed plugin spreads its passes and rules over modules), or its module."""
    if plugin_file:
        return os.path.realpath(plugin_file)
    top = sys.modules.get(cls.__module__.split(".", 1)[0])
    path = getattr(top, "__file__", None)
    if not path:
        return None
    path = os.path.realpath(path)
    return os.path.dirname(path) if os.path.basename(path) == "__init__.py" else path


def _inside(filename: str, root: str) -> bool:
    f = os.path.realpath(filename)
    return f == root or f.startswith(root.rstrip(os.sep) + os.sep)


def where(exc: BaseException, root: Optional[str]) -> str:
    """``file.py:LINE`` of the innermost traceback frame inside ``root`` (the author's code),
    else of the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    pick = frames[-1]
    if root:
        pick = next((f for f in reversed(frames) if _inside(f.filename, root)), pick)
    return f"{os.path.basename(pick.filename)}:{pick.lineno}"


def definition(cls: type, *methods: str) -> str:
    """``file.py:LINE`` of the first of ``methods`` that ``cls`` itself (or a base outside
    onnxopt) defines, else of the class: where the author wrote the code in question."""
    for name in methods:
        fn = getattr(cls, name, None)
        mod = getattr(fn, "__module__", "") or ""
        if fn is None or mod.startswith("onnxopt."):
            continue
        try:
            return f"{os.path.basename(inspect.getsourcefile(fn))}:{inspect.getsourcelines(fn)[1]}"
        except (OSError, TypeError):
            continue
    try:
        return f"{os.path.basename(inspect.getsourcefile(cls))}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return cls.__module__


__all__ = ["RuleProblem", "UnboundName", "mark_rule", "rule_of", "code_root", "where", "definition"]
