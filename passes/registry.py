"""The pass registry: CLI names to pass classes, each with the origin it came from.

Built-in passes live in modules named after their CLI name (``fold`` in ``passes/fold/``, ``dce`` in
``passes/dce.py``) and register with :func:`register` when imported; :data:`BUILTIN_MODULES` lists
them so they can be imported on demand. Plugins come from the entry-point group
``onnxopt.passes`` (entry name = CLI name, value = the pass class) and from ``--plugin file.py``.
A name registered twice is an error naming both origins. An entry point is imported only when a
pipeline names its pass (or every pass is listed), so one broken package disables only its own
passes.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from ..ir.errors import UsageError
from . import blame
from .base import Pass

ENTRY_POINT_GROUP = "onnxopt.passes"

# CLI name -> module under onnxopt.passes. Imported lazily: `--help` must not pay for them.
BUILTIN_MODULES: dict[str, str] = {
    "shapes": "shapes",
    "dce": "dce",
    "identity": "identity",
    "cse": "cse",
    "fuse": "fuse",
    "opset": "opset",
    "fold": "fold",
    "dynamize": "dynamize",
    "trt": "tensorrt.trt",
    "simplify": "simplify",
    "controlflow": "controlflow",
    # Peers (other tools) as passes: `onnxsim`, and every onnxoptimizer pass as
    # `onnxoptimizer:NAME` (a namespace filled on first use, see register_namespace).
    "onnxsim": "peers",
    "onnxoptimizer:*": "peers",
}


@dataclass
class Entry:
    """A registered pass: its class and where it came from."""

    name: str
    cls: type
    origin: str

    @property
    def builtin(self) -> bool:
        """True for passes shipped with onnxopt (built-ins and peers), False for plugins."""
        return self.origin.startswith("built-in ")

    @property
    def plugin_file(self) -> Optional[str]:
        """The file given to ``--plugin`` for a pass it registered, else None."""
        return self.origin[len("plugin file "):] if self.origin.startswith("plugin file ") \
            else None

    @property
    def summary(self) -> str:
        """The pass's one-line summary."""
        return getattr(self.cls, "summary", "") or (self.cls.__doc__ or "").strip().split("\n")[0]


_entries: dict[str, Entry] = {}
_origin_stack: list[str] = []
_loaded_builtins = False
_plugin_files: dict[str, list[str]] = {}
_eps: Optional[list] = None  # the group's entry points (read once)
_ep_done: dict[str, str] = {}  # entry points imported: name -> "" or why it failed
# Namespaces whose pass names are known only at run time ("onnxoptimizer" -> a function that
# registers every `onnxoptimizer:NAME`), with the origin their passes get.
_namespaces: dict[str, tuple[Callable[[], None], str]] = {}
_loaded_namespaces: set[str] = set()


@contextmanager
def _origin(origin: str) -> Iterator[None]:
    _origin_stack.append(origin)
    try:
        yield
    finally:
        _origin_stack.pop()


def _add(name: str, cls: type, origin: str) -> None:
    old = _entries.get(name)
    if old is not None:
        if old.cls is cls:
            return
        raise UsageError(f"two passes are named {name!r}: one from {old.origin}, one from {origin}")
    _entries[name] = Entry(name, cls, origin)


def _module_origin(module: str) -> str:
    """The origin of a pass registered outside a loader (its module imported directly, as
    ``from onnxopt.passes.opset import ...`` does): our own modules are built-ins whichever
    import reached them first, so that plugin-only checks never apply to them."""
    return f"built-in {module}" if module.startswith("onnxopt.passes.") else f"module {module}"


def register(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Class decorator: make a pass nameable on the command line (``name`` defaults to cls.name)."""

    def deco(c: type) -> type:
        if not (isinstance(c, type) and issubclass(c, Pass)):
            raise UsageError(f"{c!r} is not a Pass subclass")
        pname = name or c.name
        if not pname:
            raise UsageError(f"pass class {c.__name__} has no name")
        origin = _origin_stack[-1] if _origin_stack else _module_origin(c.__module__)
        _add(pname, c, origin)
        return c

    return deco(cls) if cls is not None else deco


def register_namespace(prefix: str, loader: Callable[[], None]) -> None:
    """Register ``loader``, which registers the passes named ``PREFIX:NAME``; it runs on the first
    lookup of such a name and when every pass is listed, so a namespace that wraps another tool
    imports that tool only when one of its passes is used or listed."""
    origin = _origin_stack[-1] if _origin_stack else _module_origin(loader.__module__)
    _namespaces[prefix] = (loader, origin)


def _load_namespace(prefix: str) -> None:
    if prefix in _loaded_namespaces or prefix not in _namespaces:
        return
    loader, origin = _namespaces[prefix]
    with _origin(origin):
        loader()
    _loaded_namespaces.add(prefix)


def _load_builtins() -> None:
    global _loaded_builtins
    if _loaded_builtins:
        return
    _loaded_builtins = True
    for mod in BUILTIN_MODULES.values():
        with _origin(f"built-in onnxopt.passes.{mod}"):
            importlib.import_module(f"onnxopt.passes.{mod}")


def _load_builtin_for(name: str) -> None:
    """Import only the built-in module that can define ``name`` (``fuse.conv_bn`` -> fuse,
    ``onnxoptimizer:X`` -> peers): a ``-p dce`` run must not pay for importing fold, fuse, opset
    and the rest. A name no built-in module claims loads them all (it may still be a plugin's)."""
    key = name.split(":", 1)[0] + ":*" if ":" in name else name.split(".", 1)[0]
    mod = BUILTIN_MODULES.get(key)
    if mod is None:
        _load_builtins()
        return
    with _origin(f"built-in onnxopt.passes.{mod}"):
        importlib.import_module(f"onnxopt.passes.{mod}")


def _entry_points() -> list:
    """The installed entry points of the group (metadata only: nothing is imported)."""
    global _eps
    if _eps is None:
        from importlib.metadata import entry_points

        _eps = list(entry_points(group=ENTRY_POINT_GROUP))
    return _eps


def _ep_origin(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"entry point {ep.value!r} of {dist.name if dist else 'an installed package'}"


def _load_entry_point(ep) -> None:
    """Import one entry point and register its pass; a failure (an import error, a value that
    is not a pass, a name that differs from the class's) is a UsageError naming the entry point
    and its package, raised again (not retried) on every later request."""
    if ep.name in _ep_done:
        if _ep_done[ep.name]:
            raise UsageError(_ep_done[ep.name])
        return
    origin = _ep_origin(ep)
    _ep_done[ep.name] = ""
    try:
        with _origin(origin):
            obj = ep.load()
    except Exception as e:  # a broken plugin must not take the tool down
        _ep_done[ep.name] = (f"plugin {ep.name!r} ({origin}) failed to load: "
                             f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]} "
                             f"({blame.where(e, _package_root(ep))})")
    else:
        if not (isinstance(obj, type) and issubclass(obj, Pass)):
            _ep_done[ep.name] = f"plugin {ep.name!r} ({origin}) is {obj!r}, not a Pass subclass"
        elif obj.name and obj.name != ep.name:
            _ep_done[ep.name] = (f"plugin {ep.name!r} ({origin}): the class is named "
                                 f"{obj.name!r}; the entry point's name must be the class's "
                                 f"`name` (the CLI name)")
    if not _ep_done[ep.name]:
        try:
            _add(ep.name, obj, origin)
        except UsageError as e:  # a name taken by another pass: listed as broken too
            _ep_done[ep.name] = str(e)
    if _ep_done[ep.name]:
        raise UsageError(_ep_done[ep.name])


def _package_root(ep) -> Optional[str]:
    """The folder (or file) of the top-level package an entry point's module belongs to."""
    top = ep.value.split(":", 1)[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.realpath(spec.origin)
    return os.path.dirname(path) if os.path.basename(path) == "__init__.py" else path


def _load_named_entry_points(name: str) -> None:
    """Import only the entry points that can define ``name`` (``ns:pass`` or ``ns:pass.rule``):
    one broken package then cannot disable the others."""
    base = name.split(".", 1)[0]
    for ep in _entry_points():
        if ep.name in (name, base):
            _load_entry_point(ep)


def broken_plugins() -> dict[str, str]:
    """Entry points that failed to load so far: name -> the one-line reason."""
    return {k: v for k, v in _ep_done.items() if v}


def _unknown(name: str) -> UsageError:
    """The error for a pass nobody defines, with what the user most likely forgot."""
    ns = name.split(":", 1)[0] if ":" in name else None
    if ns is None:
        return UsageError(f"unknown pass {name!r} (see --list-passes)")
    known = sorted({n for n in _entries if n.startswith(ns + ":")}
                   | {ep.name for ep in _entry_points() if ep.name.startswith(ns + ":")})
    if known:
        return UsageError(f"unknown pass {name!r} (namespace {ns!r} has: {', '.join(known)})")
    return UsageError(f"unknown pass {name!r}: no loaded plugin has the namespace {ns!r}; a "
                      f"pass in a plugin file needs --plugin FILE (plugins=[FILE] in "
                      f"optimize()), an installed one its package (see --list-passes)")


def load_plugin_file(path: str) -> list[str]:
    """Import a plugin file; the passes it registers are returned by name.

    Built-ins and installed entry points are loaded first, so a file that reuses one of their
    names is an error naming both instead of silently shadowing the other pass."""
    if not os.path.isfile(path):
        raise UsageError(f"plugin {path}: no such file")
    real = os.path.realpath(path)
    if real in _plugin_files:  # loading the same file twice is not a name collision
        return _plugin_files[real]
    _load_builtins()
    before = set(_entries)
    mod_name = "onnxopt_plugin_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with _origin(f"plugin file {path}"):
            spec.loader.exec_module(module)
    except UsageError:
        raise
    except Exception as e:
        first = (str(e).splitlines() or [""])[0]
        raise UsageError(f"plugin {path} failed to load: {type(e).__name__}: {first} "
                         f"({blame.where(e, real)})") from e
    _plugin_files[real] = sorted(set(_entries) - before)
    for name in _plugin_files[real]:  # an installed pass of the same name is a collision
        _load_named_entry_points(name)
    return _plugin_files[real]


def get(name: str) -> Entry:
    """The entry for a CLI name (its built-in module, or entry points, loaded on first call)."""
    _load_builtin_for(name)
    if name not in _entries and ":" in name:
        _load_namespace(name.split(":", 1)[0])
    if name not in _entries:
        _load_named_entry_points(name)
    if name not in _entries and "." in name:
        base = name.split(".", 1)[0]
        if base in _entries:
            return _entries[base]
    if name not in _entries:
        raise _unknown(name)
    return _entries[name]


def all_entries() -> list[Entry]:
    """Every registered pass, built-ins and plugins, sorted by name. Every installed entry
    point is imported; one that fails is left out and recorded (:func:`broken_plugins`)."""
    _load_builtins()
    for prefix in list(_namespaces):
        try:
            _load_namespace(prefix)
        except UsageError:  # the wrapped tool is not installed: its passes are not listed
            pass
    for ep in _entry_points():
        try:
            _load_entry_point(ep)
        except UsageError:
            pass
    return sorted(_entries.values(), key=lambda e: e.name)


def create(name: str, options: Optional[dict] = None) -> Pass:
    """Instantiate a pass by CLI name; ``fuse.RULE`` style names pass the suffix as ``only``."""
    entry = get(name)
    opts = dict(options or {})
    if entry.name != name:  # "fuse.conv_bn" -> fuse{only=conv_bn}
        opts.setdefault("only", name.split(".", 1)[1])
    return entry.cls(**opts)


__all__ = ["register", "register_namespace", "get", "create", "all_entries", "load_plugin_file",
           "broken_plugins", "Entry", "BUILTIN_MODULES", "ENTRY_POINT_GROUP"]
