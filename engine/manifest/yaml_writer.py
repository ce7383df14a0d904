"""Writing YAML by hand: scalars that read back as the same value, and safe comment text.

``engine init`` writes its drafts line by line (to keep comments next to the params), so every
value goes through ``yaml_scalar`` and every comment through ``yaml_comment``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["yaml_scalar", "yaml_comment"]

_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as they are, everything else escaped."""
    out = []
    for char in text:
        code = ord(char)
        if char in "\\\"":
            out.append("\\" + char)
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        else:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char) or
                       (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
    return '"' + "".join(out) + '"'


def yaml_scalar(value: Any) -> str:
    """One YAML scalar: plain for simple names, single-quoted for printable text, else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text not in _YAML_WORDS:
        return text
    if text and all(c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def yaml_comment(text: str) -> str:
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else " " for c in text)
