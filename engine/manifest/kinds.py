"""Param kinds: one class per ``type`` of the manifest, each answering everything about itself.

The questions every param answers are those of ``ParamBase`` (``engine.manifest.param``); each
kind here adds its own fields and checks, and overrides the answers that are its own (coercion,
rule, display, the ComfyUI input types it fits, its random draw). The kinds whose value is an
uploaded file (``image``, ``audio``) live in ``engine.manifest.upload_kinds``. ``Param`` is their
union, discriminated by ``type``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ..errors import ParamError
from .param import MAX_SEED, Choice, ParamBase
from .upload_kinds import AudioParam, ImageParam
from .values import as_bool, as_float, as_int, as_text, number_text, within

__all__ = ["TextParam", "IntParam", "FloatParam", "BoolParam", "ChoiceParam", "SeedParam", "ImageParam", "AudioParam",
           "Param", "PARAM_TYPES", "parse_param"]


class TextParam(ParamBase):
    type: Literal["text"]
    default: str | None = None
    min_length: int = Field(default=0, ge=0, le=6000)
    max_length: int = Field(default=2000, ge=1, le=6000)
    multiline: bool = False

    input_types = frozenset({"STRING"})
    is_text = True

    @model_validator(mode="after")
    def _check(self) -> TextParam:
        if self.min_length > self.max_length:
            raise ValueError("min_length is bigger than max_length")
        if self.default is not None and not self.min_length <= len(self.default) <= self.max_length:
            raise ValueError(f"default has {len(self.default)} characters, "
                             f"outside {self.min_length}–{self.max_length}")
        return self

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        return f"text, ≤ {self.max_length} characters"

    def is_given(self, value: Any) -> bool:
        """An emptied optional text is a value (an empty negative prompt); a required one needs text."""
        return value is not None and not (self.required and isinstance(value, str) and not value.strip())

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> str:
        return as_text(name, value, self.min_length, self.max_length)

    @property
    def text_limit(self) -> int:
        return self.max_length


class _Ranged(ParamBase):
    min: Any = None
    max: Any = None

    @model_validator(mode="after")
    def _check_range(self) -> _Ranged:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is bigger than max {self.max}")
        if self.default is not None:
            if self.min is not None and self.default < self.min:
                raise ValueError(f"default {self.default} is smaller than min {self.min}")
            if self.max is not None and self.default > self.max:
                raise ValueError(f"default {self.default} is bigger than max {self.max}")
        return self

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.type} {number_text(self.min)}–{number_text(self.max)}"
        if self.min is not None:
            return f"{self.type} ≥ {number_text(self.min)}"
        if self.max is not None:
            return f"{self.type} ≤ {number_text(self.max)}"
        return self.type

    def bounds(self) -> dict[str, int | float]:
        return {key: value for key in ("min", "max", "default") if (value := getattr(self, key)) is not None}


class IntParam(_Ranged):
    type: Literal["int"]
    default: int | None = None
    min: int | None = Field(default=None, ge=-MAX_SEED, le=MAX_SEED)
    max: int | None = Field(default=None, ge=-MAX_SEED, le=MAX_SEED)

    input_types = frozenset({"INT", "FLOAT"})

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> int:
        return within(name, as_int(name, value), self.min, self.max)


class FloatParam(_Ranged):
    type: Literal["float"]
    default: float | None = None
    min: float | None = None
    max: float | None = None

    input_types = frozenset({"FLOAT"})

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> float:
        return within(name, as_float(name, value), self.min, self.max)

    def show(self, value: Any) -> str:
        return number_text(value) if isinstance(value, float) else super().show(value)


class BoolParam(ParamBase):
    type: Literal["bool"]
    default: bool | None = None

    input_types = frozenset({"BOOLEAN"})

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        return "true or false"

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> bool:
        return as_bool(name, value)

    def show(self, value: Any) -> str:
        return ("yes" if value else "no") if isinstance(value, bool) else super().show(value)


def _one_of(names: list[str], shown: int = 12) -> str:
    return "one of " + ", ".join(names[:shown]) + (", …" if len(names) > shown else "")


def _plain_choices_schema(schema: dict[str, Any]) -> None:
    """Static ``choices`` may be written as plain values (``[euler, 2]``); the model pairs them up."""
    for option in schema["properties"]["choices"].get("anyOf", []):
        if option.get("type") == "array":
            option["items"] = {"anyOf": [option["items"], {"type": ["string", "integer", "number"]}]}


class ChoiceParam(ParamBase):
    """A fixed list (``choices``) or a live list from the server (``choices_from``: ``Class.input``)."""

    type: Literal["choice"]
    default: str | int | float | None = Field(default=None, union_mode="left_to_right")
    choices: list[Choice] | None = None
    choices_from: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+\-. ]+\.[A-Za-z0-9_]+$")
    filter: str | None = Field(default=None, description="Regex applied to the live list")

    model_config = ConfigDict(json_schema_extra=_plain_choices_schema)
    input_types = frozenset({"COMBO"})

    @field_validator("choices", mode="before")
    @classmethod
    def _plain_choices(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": str(v), "value": v} if not isinstance(v, dict) else v for v in value]
        return value

    @field_validator("filter")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"filter is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ChoiceParam:
        if (self.choices is None) == (self.choices_from is None):
            raise ValueError("a choice param needs exactly one of choices or choices_from")
        if self.filter is not None and self.choices_from is None:
            raise ValueError("filter only applies to choices_from")
        if self.choices is not None:
            if len(self.choices) < 1:
                raise ValueError("choices is empty")
            values = [c.value for c in self.choices]
            if len(set(map(str, values))) != len(values):
                raise ValueError("choices has duplicate values")
            if self.default is not None and self.default not in values:
                raise ValueError(f"default {self.default!r} is not one of the choices")
        return self

    @property
    def source_class(self) -> str:
        return self.choices_from.rsplit(".", 1)[0] if self.choices_from else ""

    @property
    def source_input(self) -> str:
        return self.choices_from.rsplit(".", 1)[1] if self.choices_from else ""

    @property
    def live_source(self) -> str | None:
        return self.choices_from

    @property
    def static_choices(self) -> tuple[Choice, ...]:
        return tuple(self.choices or ())

    def offered(self, server_list: Sequence[Any]) -> list[Any]:
        """The server's list narrowed by ``filter``."""
        if self.filter is None:
            return list(server_list)
        pattern = re.compile(self.filter)
        return [v for v in server_list if pattern.search(str(v))]

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        if self.choices is not None:
            return _one_of([c.name if c.name == str(c.value) else f"{c.value} ({c.name})" for c in self.choices])
        if server_list:
            return _one_of([str(v) for v in self.offered(server_list)])
        return f"from the server's {self.choices_from}" + (f" matching /{self.filter}/" if self.filter else "")

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> Any:
        if self.choices is not None:
            for choice in self.choices:
                if value == choice.value or str(value) == str(choice.value):
                    return choice.value
            for choice in self.choices:  # by label too ("red" for Red), as people type in a terminal
                if isinstance(value, str) and value.strip().casefold() == choice.name.casefold():
                    return choice.value
            raise ParamError(name, "is not one of the offered choices")
        if not isinstance(value, str):
            raise ParamError(name, "must be text")
        if server_list is not None and value not in self.offered(server_list):
            raise ParamError(name, "is not available on the server")
        return value

    def fits(self, input_type: str, options: Mapping[str, Any] | None = None) -> bool:
        if super().fits(input_type):
            return True
        if self.choices is None:
            return input_type == "STRING"
        check = {"INT": lambda v: isinstance(v, int), "FLOAT": lambda v: isinstance(v, (int, float)),
                 "STRING": lambda v: isinstance(v, str)}.get(input_type)
        return check is not None and all(check(c.value) for c in self.choices)

    def listed_values(self) -> list[tuple[tuple[str | int, ...], str, Any]]:
        if self.choices is None:
            return []  # a live list is checked against its source (``choices_from``) instead
        listed = [(("choices", i), "choice", c.value) for i, c in enumerate(self.choices)]
        return listed + super().listed_values()


class SeedParam(ParamBase):
    """Absent or -1 means a random seed, drawn within what every bound input accepts on the server
    that runs the job; the value sent is the value reported and stored."""

    type: Literal["seed"]
    default: int | None = Field(default=None, ge=-1, le=MAX_SEED)
    max: int | None = Field(default=None, ge=0, le=MAX_SEED,
                            description="Largest seed; default: what the bound inputs accept on the server")

    input_types = frozenset({"INT"})
    is_random = True

    @model_validator(mode="after")
    def _default_within_max(self) -> SeedParam:
        if self.default is not None and self.max is not None and self.default > self.max:
            raise ValueError(f"default {self.default} is bigger than max {self.max}")
        return self

    @property
    def highest(self) -> int:
        return MAX_SEED if self.max is None else self.max

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        return f"seed 0–{self.highest}, blank or -1: random"

    def show_unset(self) -> str:
        return "random" if self.default in (None, -1) else super().show_unset()

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> int | None:
        """A seed, or None for -1: "random", like no value."""
        seed = within(name, as_int(name, value), -1, self.highest)
        return None if seed == -1 else seed

    def draw(self, rng: random.Random | None = None, limit: int | None = None) -> int:
        """A random seed in ``[0, min(max, limit)]`` (``limit``: the smallest max of the bound inputs)."""
        high = self.highest if limit is None else min(self.highest, limit)
        return (rng or random).randint(0, max(high, 0))

    def bounds(self) -> dict[str, int | float]:
        found: dict[str, int | float] = {} if self.max is None else {"max": self.max}
        if self.default not in (None, -1):
            found["default"] = self.default
        return found


Param = Annotated[
    Union[TextParam, IntParam, FloatParam, BoolParam, ChoiceParam, SeedParam, ImageParam, AudioParam],
    Field(discriminator="type"),
]


_PARAM: TypeAdapter[Param] = TypeAdapter(Param)
PARAM_TYPES = tuple(get_args(kind.model_fields["type"].annotation)[0] for kind in get_args(get_args(Param)[0]))


def parse_param(raw: Any) -> Param | None:
    """One param as written (a mapping), or None when it is not a valid param on its own."""
    try:
        return _PARAM.validate_python(raw)
    except ValidationError:
        return None
