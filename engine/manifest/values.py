"""Reading one raw value as a number, a truth value or text (pure): the pieces the param kinds use.

Values may arrive typed (Discord options, JSON) or as text (CLI ``--set k=v``, modal fields).
Errors are ``ParamError`` naming the parameter and the rule, never echoing the raw input.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

from ..errors import ParamError

__all__ = ["as_int", "as_float", "as_bool", "as_text", "within", "number_text", "valid_unicode", "upload_name"]

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_IN_NAME = re.compile(r"[\x00-\x1f/\\]")  # control characters and folder separators
_UPLOAD_ANNOTATION = re.compile(r"\[(input|output|temp)\]\s*$")
Number = TypeVar("Number", int, float)


def as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):  # bool before int: True is an int in Python, never a number here
        raise ParamError(name, "must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,20}\s*", value):
        return int(value)
    raise ParamError(name, "must be a whole number")


def as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ParamError(name, "must be a number")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ParamError(name, "must be a number")
    return number


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParamError(name, "must be true or false")


def as_text(name: str, value: Any, min_length: int, max_length: int) -> str:
    if not isinstance(value, str):
        raise ParamError(name, "must be text")
    if len(value) > max_length:
        raise ParamError(name, f"must be at most {max_length} characters")
    if len(value) < min_length:
        raise ParamError(name, f"must be at least {min_length} characters")
    return value


def within(name: str, number: Number, low: float | None, high: float | None) -> Number:
    if low is not None and number < low:
        raise ParamError(name, f"must be ≥ {low}")
    if high is not None and number > high:
        raise ParamError(name, f"must be ≤ {high}")
    return number


def number_text(value: Any) -> str:
    """``30``, ``2.5``, ``1e+06``: floats without trailing zeros."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def valid_unicode(name: str, value: Any) -> Any:
    """``value`` unchanged, unless it is text with a lone surrogate — which no file, database,
    terminal or server can take — then ``ParamError`` naming the param (every kind, every path)."""
    if isinstance(value, str) and _SURROGATE.search(value):
        raise ParamError(name, "contains characters that are not valid text")
    return value


def upload_name(name: str, value: Any, what: str = "image") -> str:
    """A plain file name in the server's input folder, as an upload answers it: no folder, no ``..``,
    no control characters and no ``[output]``-style annotation (which would point LoadImage at
    another of the server's folders)."""
    if (not isinstance(value, str) or not value.strip() or len(value) > 255 or value.startswith(".")
            or _NOT_IN_NAME.search(value) or _UPLOAD_ANNOTATION.search(value)):
        raise ParamError(name, f"must be the plain name of an uploaded {what} (no folders or server paths)")
    return value
