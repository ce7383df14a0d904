"""The manifest model (format v1): one declaration of every user-facing parameter.

Everything else — JSON Schema, Discord options and modals, CLI help, value validation — is derived
from these pydantic models. Params are a discriminated union on ``type``. Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "NAME_PATTERN",
    "MAX_SEED",
    "Choice",
    "TextParam",
    "IntParam",
    "FloatParam",
    "BoolParam",
    "ChoiceParam",
    "SeedParam",
    "ImageParam",
    "Param",
    "Manifest",
    "humanize",
]

NAME_PATTERN = r"^[-_a-z0-9]{1,32}$"
MAX_SEED = 2**53 - 1  # Discord's INTEGER range; ComfyUI seeds go to 2**64 - 1, so every value fits.

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Bind = Union[str, list[str]]


def humanize(name: str) -> str:
    """``lora_strength`` → ``Lora strength``."""
    text = name.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:] if text else name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(_Strict):
    """A static choice: a label shown to users and the value set in the workflow."""

    name: str = Field(min_length=1, max_length=100)
    value: str | int | float = Field(union_mode="left_to_right")


class _ParamBase(_Strict):
    description: str = Field(default="", max_length=100, description="Shown in Discord and CLI help")
    label: str = Field(default="", max_length=45, description="Modal field label; default: the name")
    required: bool = False
    optional: bool = Field(default=False, description="Explicitly optional (the opposite of required)")
    advanced: bool = Field(default=False, description="Lives in the Settings modal, not a slash option")
    bind: Bind = Field(description="JSONPath (or a list, fanned out) of the node input(s) this sets")
    when_unset: Literal["default", "bypass"] = Field(
        default="default",
        description="bypass: without a value, splice the bound node out of the graph",
    )

    @field_validator("bind")
    @classmethod
    def _bind_not_empty(cls, bind: Bind) -> Bind:
        if isinstance(bind, list) and not bind:
            raise ValueError("bind needs at least one path")
        return bind

    @property
    def binds(self) -> tuple[str, ...]:
        return (self.bind,) if isinstance(self.bind, str) else tuple(self.bind)

    def label_for(self, name: str) -> str:
        """The param's name for people (modal field label, result field): its label, else its name."""
        return self.label or humanize(name)

    def description_for(self, name: str) -> str:
        """What the param is for (slash option description, CLI help): description, else label, else name."""
        return self.description or self.label_for(name)

    @model_validator(mode="after")
    def _bypass_needs_optional(self):
        if self.required and self.optional:
            raise ValueError("a param cannot be both required and optional")
        if self.when_unset == "bypass" and (self.required or self.default is not None):
            raise ValueError("when_unset: bypass needs an optional param without a default")
        return self


class TextParam(_ParamBase):
    type: Literal["text"]
    default: str | None = None
    min_length: int = Field(default=0, ge=0, le=6000)
    max_length: int = Field(default=2000, ge=1, le=6000)
    multiline: bool = False

    @model_validator(mode="after")
    def _check(self):
        if self.min_length > self.max_length:
            raise ValueError("min_length is bigger than max_length")
        if self.default is not None and not self.min_length <= len(self.default) <= self.max_length:
            raise ValueError(f"default has {len(self.default)} characters, outside {self.min_length}–{self.max_length}")
        return self


class _RangeMixin:
    def _check_range(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is bigger than max {self.max}")
        if self.default is not None:
            if self.min is not None and self.default < self.min:
                raise ValueError(f"default {self.default} is smaller than min {self.min}")
            if self.max is not None and self.default > self.max:
                raise ValueError(f"default {self.default} is bigger than max {self.max}")
        return self


class IntParam(_RangeMixin, _ParamBase):
    type: Literal["int"]
    default: int | None = None
    min: int | None = Field(default=None, ge=-MAX_SEED, le=MAX_SEED)
    max: int | None = Field(default=None, ge=-MAX_SEED, le=MAX_SEED)

    _check = model_validator(mode="after")(_RangeMixin._check_range)


class FloatParam(_RangeMixin, _ParamBase):
    type: Literal["float"]
    default: float | None = None
    min: float | None = None
    max: float | None = None

    _check = model_validator(mode="after")(_RangeMixin._check_range)


class BoolParam(_ParamBase):
    type: Literal["bool"]
    default: bool | None = None


class ChoiceParam(_ParamBase):
    """A fixed list (``choices``) or a live list from the server (``choices_from``: ``Class.input``)."""

    type: Literal["choice"]
    default: str | int | float | None = Field(default=None, union_mode="left_to_right")
    choices: list[Choice] | None = None
    choices_from: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_+\-. ]+\.[A-Za-z0-9_]+$")
    filter: str | None = Field(default=None, description="Regex applied to the live list")

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
    def _one_source(self):
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


class SeedParam(_ParamBase):
    """Absent or -1 means a random seed; the value used is always reported back."""

    type: Literal["seed"]
    default: int | None = Field(default=None, ge=-1, le=MAX_SEED)
    max: int = Field(default=MAX_SEED, ge=0, le=MAX_SEED, description="Largest seed the bound input takes")

    @model_validator(mode="after")
    def _default_within_max(self):
        if self.default is not None and self.default > self.max:
            raise ValueError(f"default {self.default} is bigger than max {self.max}")
        return self


class ImageParam(_ParamBase):
    """An image the user supplies; the runtime uploads it and binds the server-side file name."""

    type: Literal["image"]
    default: None = None


Param = Annotated[
    Union[TextParam, IntParam, FloatParam, BoolParam, ChoiceParam, SeedParam, ImageParam],
    Field(discriminator="type"),
]


class Manifest(_Strict):
    """One workflow: its API-format graph file and the parameters users may set."""

    format: Literal[1] = 1
    name: Name
    workflow: str = Field(default="", description="Workflow file; default <name>.json in the workflows dir")
    title: str = Field(default="", max_length=100)
    description: str = Field(min_length=1, max_length=100)
    command: Name | None = Field(default=None, description="Slash command this belongs to; default: name")
    kind: Literal["image", "video", "audio", "text"] = "image"
    timeout: int = Field(default=600, ge=1, le=86400)
    nsfw: bool = False
    roles: list[str] = Field(default_factory=list, description="Role ids or names allowed; empty: everyone")
    channels: list[str] = Field(default_factory=list, description="Channel ids allowed; empty: everywhere")
    params: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Param] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list, description="Output node ids; default: every output node")
    actions: list[Name] = Field(default_factory=list, description="Manifests offered as result buttons")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name"):
            name = data["name"]
            data = dict(data)
            data.setdefault("workflow", f"{name}.json")
            data.setdefault("title", str(name).replace("-", " ").replace("_", " ").title())
            data.setdefault("command", name)
        return data

    @property
    def image_params(self) -> list[str]:
        return [n for n, p in self.params.items() if p.type == "image"]

    @property
    def basic_params(self) -> list[str]:
        return [n for n, p in self.params.items() if not p.advanced]

    @property
    def advanced_params(self) -> list[str]:
        return [n for n, p in self.params.items() if p.advanced]
