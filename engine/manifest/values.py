"""Checking and coercing one user value against its ``Param`` (pure).

Values may arrive typed (Discord options, JSON) or as text (CLI ``--set k=v``, modal fields);
both go through ``coerce_value``. Errors are ``ParamError`` naming the parameter and the rule,
never echoing the raw input.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from ..errors import ParamError
from .model import ChoiceParam, Param

__all__ = ["coerce_value", "is_unset", "live_choices"]

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


def is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):  # bool before int: True is an int in Python, never a number here
        raise ParamError(name, "must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,20}\s*", value):
        return int(value)
    raise ParamError(name, "must be a whole number")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ParamError(name, "must be a number")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ParamError(name, "must be a number")
    return number


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParamError(name, "must be true or false")


def _in_range(name: str, number, low, high):
    if low is not None and number < low:
        raise ParamError(name, f"must be ≥ {low}")
    if high is not None and number > high:
        raise ParamError(name, f"must be ≤ {high}")
    return number


def _text(name: str, param, value: Any) -> str:
    if not isinstance(value, str):
        raise ParamError(name, "must be text")
    if len(value) > param.max_length:
        raise ParamError(name, f"must be at most {param.max_length} characters")
    if len(value) < param.min_length:
        raise ParamError(name, f"must be at least {param.min_length} characters")
    return value


def live_choices(param: ChoiceParam, server_list: Sequence[Any]) -> list[Any]:
    """The server's list for a ``choices_from`` param, narrowed by its ``filter``."""
    if param.filter is None:
        return list(server_list)
    pattern = re.compile(param.filter)
    return [v for v in server_list if pattern.search(str(v))]


def _choice(name: str, param: ChoiceParam, value: Any, server_list: Sequence[Any] | None) -> Any:
    if param.choices is not None:
        for choice in param.choices:
            if value == choice.value or str(value) == str(choice.value):
                return choice.value
        for choice in param.choices:  # by label too ("red" for Red), as people type in a terminal
            if isinstance(value, str) and value.strip().casefold() == choice.name.casefold():
                return choice.value
        raise ParamError(name, "is not one of the offered choices")
    if not isinstance(value, str):
        raise ParamError(name, "must be text")
    if server_list is not None and value not in live_choices(param, server_list):
        raise ParamError(name, "is not available on the server")
    return value


def coerce_value(name: str, param: Param, value: Any, server_list: Sequence[Any] | None = None) -> Any:
    """Return ``value`` converted to the param's type, or raise ``ParamError``."""
    match param.type:
        case "text":
            return _text(name, param, value)
        case "int":
            return _in_range(name, _as_int(name, value), param.min, param.max)
        case "float":
            return _in_range(name, _as_float(name, value), param.min, param.max)
        case "bool":
            return _as_bool(name, value)
        case "seed":
            return _in_range(name, _as_int(name, value), -1, param.max)
        case "choice":
            return _choice(name, param, value, server_list)
        case "image":
            if not isinstance(value, str) or not value or "\n" in value or ".." in value:
                raise ParamError(name, "must be an uploaded image")
            return value
    raise ParamError(name, "has an unknown type")  # unreachable: the model's union is closed
