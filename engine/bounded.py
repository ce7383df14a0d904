"""Reading outside data within ``engine.limits.Limits``: files, JSON documents and HTTP bodies.

- ``read_file``   a regular file's bytes, refused past ``max_bytes`` before more is read (a FIFO,
  a device such as ``/dev/zero`` or a folder is refused without reading at all)
- ``parse_json``  JSON text → Python values, refused past ``max_depth`` levels of nesting (a
  document nested deeper than Python's recursion allows is refused the same way, never a
  ``RecursionError``); lone surrogates (``"\\ud800"``) become U+FFFD, so every string that comes
  out is valid Unicode that can be printed, stored and sent on
- ``too_large``   the one wording of "over a byte limit" (``LimitExceeded`` naming the limit)

Errors: ``LimitExceeded`` (names the limit), ``ValueError`` (not JSON), ``OSError`` (unreadable).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from .errors import LimitExceeded
from .limits import human_size

__all__ = ["read_file", "parse_json", "too_large", "too_deep", "check_depth", "valid_text", "NotRegularFile"]

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CHUNK = 1024 * 1024


class NotRegularFile(OSError):
    """The path is a folder, a device, a FIFO or a socket: nothing is read from it."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(f"{Path(path).name or path} is not a regular file")


def too_large(what: str, max_bytes: int, limit: str) -> LimitExceeded:
    return LimitExceeded(f"{what} is larger than {human_size(max_bytes)} (limit {limit})", limit)


def too_deep(what: str, max_depth: int, limit: str = "max_json_depth") -> LimitExceeded:
    return LimitExceeded(f"{what} is nested more than {max_depth} levels deep (limit {limit})", limit)


def read_file(path: str | os.PathLike[str], *, max_bytes: int, limit: str, what: str | None = None) -> bytes:
    """The bytes of the regular file ``path``; ``LimitExceeded`` once it proves larger than ``max_bytes``.

    Opened without blocking and checked on the open descriptor, so a FIFO or device swapped in
    after a check cannot make it hang or read forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(path)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise too_large(what or Path(path).name, max_bytes, limit)
    return data


def check_depth(value: Any, max_depth: int, what: str, limit: str = "max_json_depth") -> None:
    """``LimitExceeded`` when lists/dicts in ``value`` nest more than ``max_depth`` levels (iterative)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise too_deep(what, max_depth, limit)
        below: list[Any] = []
        for node in level:
            below.extend(v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list)))
        level = below


def parse_json(data: bytes | str, *, max_depth: int, what: str = "the JSON document") -> Any:
    """Parse ``data`` (see module docstring): ``ValueError`` if it is not JSON, ``LimitExceeded`` if too deep."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise too_deep(what, max_depth) from None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") > max_depth:  # fewer openers than levels allowed: cannot be deeper
        check_depth(value, max_depth, what)
    return _scrubbed(value) if _SURROGATE_ESCAPE.search(raw) else value


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (which cannot be encoded, printed or stored) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {_scrubbed(k): _scrubbed(v) for k, v in value.items()}
    return value
