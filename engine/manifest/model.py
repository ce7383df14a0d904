"""The manifest model (format v1): one declaration of every user-facing parameter.

Everything else — JSON Schema, Discord options and modals, CLI help, value validation — is derived
from these pydantic models. Params are a discriminated union on ``type``, one class per kind with
its behaviour (``engine.manifest.kinds``). Unknown keys are errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .kinds import AudioParam, BoolParam, ChoiceParam, FloatParam, ImageParam, IntParam, Param, SeedParam, TextParam
from .param import MAX_SEED, Choice, _Strict, humanize

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
    "AudioParam",
    "Param",
    "Manifest",
    "humanize",
]

NAME_PATTERN = r"^[-_a-z0-9]{1,32}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


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
    actions: list[Name] = Field(default_factory=list, description="Manifests offered as result buttons; each "
                                "result is fed into the target's first param that takes its kind (image, audio)")
    previews: bool = Field(default=True, description="Show live preview frames in the progress message")
    context_menu: bool = Field(default=False, description="Offer this workflow (named by its title) in the Apps "
                               "menu of any message with an image; the image feeds its first image param")
    caption: Name | None = Field(default=None, description="The text param that captions the job (progress, "
                                 "/cancel, results); default: the first required text param")

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

    @model_validator(mode="after")
    def _caption_is_text(self) -> Manifest:
        if self.caption is not None and not (self.caption in self.params and self.params[self.caption].is_text):
            raise ValueError(f"caption {self.caption!r} names no text param")
        return self

    @property
    def caption_param(self) -> str | None:
        """The text param that captions a job: ``caption``, else the first required text param."""
        if self.caption is not None:
            return self.caption
        return next((n for n, p in self.params.items() if p.is_text and p.required), None)

    def caption_of(self, values: Mapping[str, Any]) -> str | None:
        """The caption's value in ``values`` (None when unset or blank)."""
        text = values.get(self.caption_param) if self.caption_param else None
        return text if isinstance(text, str) and text.strip() else None

    def seed_of(self, values: Mapping[str, Any]) -> int | None:
        """The value of the first random (seed) param in ``values``, if any."""
        for name, param in self.params.items():
            if param.is_random and isinstance(values.get(name), int):
                return int(values[name])
        return None

    @property
    def upload_params(self) -> list[str]:
        """Params whose value is a file the user uploads (images, audio)."""
        return [n for n, p in self.params.items() if p.is_upload]

    def param_taking(self, kind: str) -> str | None:
        """The param a file of ``kind`` (``image``, ``audio``…) is fed into — an action's result, a
        context menu's image: the first param that takes that kind; None when none does."""
        return next((n for n, p in self.params.items() if p.takes == kind), None)

    @property
    def basic_params(self) -> list[str]:
        return [n for n, p in self.params.items() if not p.advanced]

    @property
    def advanced_params(self) -> list[str]:
        return [n for n, p in self.params.items() if p.advanced]
