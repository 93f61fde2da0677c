"""Text from a model file, made safe to print on a terminal.

Names, dims, doc strings, metadata and file paths come from whoever wrote the model. Printed raw,
an ESC or a C1 control character can retitle or clear the user's terminal, a CR can overwrite the
line above it, a bidi override can make ``y = Add(a, b)`` read as something else, and a lone
surrogate makes the write itself fail. :func:`escape` writes each such character as a visible
escape (``\\x1b``, ``\\u202e``) and leaves everything else, non-ASCII letters included, as is.
Every place onnxopt prints text that may hold model strings goes through it (the printer's quoted
strings, ``show``, the summary, ``--print-ir-after``, ``check``, error lines), so the escape looks
the same wherever it shows up.
"""

from __future__ import annotations

import re

# C0 controls but newline, DEL and C1; the bidi embeddings, overrides, isolates and marks; line and
# paragraph separators; lone surrogates (unencodable) and the BOM.
_UNSAFE = ("\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
           "\u2066-\u2069\ud800-\udfff\ufeff")
_ONE_LINE = re.compile(f"[{_UNSAFE}\n]")
_MULTI_LINE = re.compile(f"[{_UNSAFE}]")


def _visible(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape(text: str, newlines: bool = False) -> str:
    """``text`` with control, bidi and separator characters written as ``\\xNN``/``\\uNNNN``.

    A newline is escaped too unless ``newlines`` (for multi-line output such as ``show``); a
    one-line message stays one line whatever the model's names hold.
    """
    if not isinstance(text, str):
        text = str(text)
    pattern = _MULTI_LINE if newlines else _ONE_LINE
    if pattern.search(text) is None:  # the common case: nothing to do, no copy
        return text
    return pattern.sub(_visible, text)


def is_safe(text: str) -> bool:
    """True when ``text`` prints as itself on one line (what :func:`escape` leaves alone)."""
    return _ONE_LINE.search(text) is None


__all__ = ["escape", "is_safe"]
