"""Pipeline text: parse and print, so that a pipeline round-trips through its text.

    fold,fuse                         passes in order
    fold{max_elements=1000000}        options
    fixpoint(fold,simplify,dce){max=8}  a group repeated until nothing changes (capped)
    default                           a preset, expanded to its pipeline

Names may contain letters, digits and ``_ . : -`` (``fuse.conv_bn``, ``myorg:drop-relu``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

from ..ir.errors import UsageError

_TOKEN = re.compile(r"\s*(?:([A-Za-z0-9_.:\-+]+)|(\"[^\"]*\")|([%;<>!]=?|==|[(){},=]))")
# An unquoted option value may hold comparisons (``constraint=height%32==0;seq<=7``): tokens
# joined by these operators are one value.
_JOINERS = frozenset({"%", ";", "<", ">", "<=", ">=", "==", "!="})
GROUPS = ("fixpoint",)


@dataclass
class PassSpec:
    """One pass in a pipeline, with its options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name + _fmt_options(self.options)


@dataclass
class Group:
    """A group of items; ``fixpoint`` repeats them until no pass changes the model."""

    kind: str
    items: list["Item"]
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}({','.join(str(i) for i in self.items)})" + _fmt_options(self.options)


Item = Union[PassSpec, Group]


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and not re.fullmatch(r"[A-Za-z0-9_.:\-+]+", v):
        return f'"{v}"'
    return str(v)


def _fmt_options(opts: dict[str, Any]) -> str:
    if not opts:
        return ""
    return "{" + ",".join(f"{k}={_fmt_value(v)}" for k, v in opts.items()) + "}"


def _value(text: str) -> Any:
    if text.startswith('"'):
        return text[1:-1]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                raise UsageError(f"pipeline {text!r}: unexpected {text[pos:].strip()[:10]!r}")
            self.toks.append(next(g for g in m.groups() if g))
            pos = m.end()
        self.i = 0

    def peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else ""

    def take(self, want: str = "") -> str:
        tok = self.peek()
        if not tok or (want and tok != want):
            raise UsageError(f"pipeline {self.text!r}: expected {want or 'a pass name'!r}"
                             f"{' at ' + repr(tok) if tok else ' at the end'}")
        self.i += 1
        return tok

    def items(self) -> list[Item]:
        out = [self.item()]
        while self.peek() == ",":
            self.take(",")
            out.append(self.item())
        return out

    def item(self) -> Item:
        name = self.take()
        if name in "(){},=":
            raise UsageError(f"pipeline {self.text!r}: expected a pass name at {name!r}")
        if self.peek() == "(":
            if name not in GROUPS:
                raise UsageError(f"pipeline {self.text!r}: unknown group {name!r} "
                                 f"(groups: {', '.join(GROUPS)})")
            self.take("(")
            items = self.items()
            self.take(")")
            return Group(name, items, self.options())
        return PassSpec(name, self.options())

    def value(self) -> str:
        """One option value: a token, or tokens joined by operators (``seq<=7;h%2==0``)."""
        parts = [self.take()]
        while self.peek() in _JOINERS or (parts[-1] in _JOINERS and self.peek() not in
                                          ("", ",", "{", "}", "(", ")", "=")):
            parts.append(self.take())
        return "".join(parts)

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.peek() != "{":
            return opts
        self.take("{")
        while True:
            key = self.take()
            self.take("=")
            opts[key] = _value(self.value())
            if self.peek() == ",":
                self.take(",")
                continue
            self.take("}")
            return opts


def parse_pipeline(text: str, expand_presets: bool = True) -> list[Item]:
    """Parse pipeline text into items; preset names are expanded unless told otherwise."""
    if not text or not text.strip():
        raise UsageError("empty pipeline")
    p = _Parser(text)
    items = p.items()
    if p.peek():
        raise UsageError(f"pipeline {text!r}: unexpected {p.peek()!r}")
    return expand(items) if expand_presets else items


def expand(items: list[Item], _depth: int = 0) -> list[Item]:
    """Replace preset names by their pipelines."""
    from .presets import PRESETS

    if _depth > 8:
        raise UsageError("presets refer to each other in a loop")
    out: list[Item] = []
    for it in items:
        if isinstance(it, PassSpec) and it.name in PRESETS:
            if it.options:
                raise UsageError(f"preset {it.name!r} takes no options")
            out.extend(expand(parse_pipeline(PRESETS[it.name], False), _depth + 1))
        elif isinstance(it, Group):
            out.append(Group(it.kind, expand(it.items, _depth + 1), it.options))
        else:
            out.append(it)
    return out


def format_pipeline(items: list[Item]) -> str:
    """The text of a pipeline (``parse_pipeline(format_pipeline(x)) == x``)."""
    return ",".join(str(i) for i in items)


__all__ = ["PassSpec", "Group", "parse_pipeline", "format_pipeline", "expand"]
