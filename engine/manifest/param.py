"""What every param answers, whatever its kind: ``ParamBase`` (the kinds are in ``engine.manifest.kinds``).

A param knows how to read a raw value (typed from Discord or JSON, or text from a modal or
``--set``: ``read`` / ``coerce``), what "not given" means for it and what then applies
(``is_given``, ``resolve``: its default, "is required", or the workflow's own value), how to draw
a random value (``draw``, seeds), how to describe itself in one line for people (``rule``), how
to show a value (``show``), which ComfyUI input types it can be bound to (``fits``) and which of
its numbers a bound input's range must allow (``bounds``). A param whose value is a file the user
uploads (``takes`` names the kind of file: ``image``, ``audio``) also checks that file's bytes
(``check_upload``) and names the node input that must load it (``loader_problem``). Its JSON
Schema is pydantic's.

Consumers ask the param; they do not branch on its kind. (The bot keeps one table from kind to
Discord widget, ``bot/widgets.py``.) Unknown keys are errors.
"""

from __future__ import annotations

import random
from functools import cached_property
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ParamError
from ..limits import Limits
from .values import valid_unicode

__all__ = ["MAX_SEED", "Choice", "ParamBase", "humanize"]

MAX_SEED = 2**53 - 1  # Discord's INTEGER range and JSON's safe integers; seeds are drawn in [0, MAX_SEED] at most
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


class ParamBase(_Strict):
    """Fields and behaviour shared by every kind; each kind overrides what is its own."""

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

    type: str  # each kind narrows it to its Literal (the union's discriminator)
    default: Any = None  # each kind narrows it
    input_types: ClassVar[frozenset[str]] = frozenset()  # ComfyUI input types this kind can be bound to
    takes: ClassVar[str | None] = None  # the kind of file (image, audio) the value is, which the runtime
    #                                     uploads to the server; None: not a file
    byte_limit: ClassVar[str | None] = None  # uploads: the ``Limits`` field capping the file's size
    is_text: ClassVar[bool] = False  # free text: may be the job's caption, shown as a paragraph
    is_random: ClassVar[bool] = False  # unset means "draw a random value" (``SeedParam.draw``)

    @field_validator("bind")
    @classmethod
    def _bind_not_empty(cls, bind: Bind) -> Bind:
        if isinstance(bind, list) and not bind:
            raise ValueError("bind needs at least one path")
        return bind

    @model_validator(mode="after")
    def _bypass_needs_optional(self) -> ParamBase:
        if self.required and self.optional:
            raise ValueError("a param cannot be both required and optional")
        if self.when_unset == "bypass" and (self.required or self.default is not None):
            raise ValueError("when_unset: bypass needs an optional param without a default")
        return self

    @cached_property
    def ready_default(self) -> Any:
        """The default, coerced once, for a job that leaves the param unset (the hot path); None when
        it must be checked per job (against a server's live list) or is not a plain value."""
        if not isinstance(self.default, (str, int, float)) or self.live_source or not self.is_given(self.default):
            return None  # a blank default is no value: ``read`` decides (required: an error; else unset)
        try:
            return self.coerce("default", valid_unicode("default", self.default))
        except ParamError:
            return None  # reported by the manifest checks; every job reports it again (``read``)

    @property
    def is_upload(self) -> bool:
        """Whether the value is a file the user uploads (``takes`` says which kind)."""
        return self.takes is not None

    @property
    def binds(self) -> tuple[str, ...]:
        return (self.bind,) if isinstance(self.bind, str) else tuple(self.bind)

    # -- texts for people ---------------------------------------------------------------
    def label_for(self, name: str) -> str:
        """The param's name for people (modal field label, result field): its label, else its name."""
        return self.label or humanize(name)

    def description_for(self, name: str) -> str:
        """What the param is for (slash option description, CLI help): description, else label, else name."""
        return self.description or self.label_for(name)

    def rule(self, server_list: Sequence[Any] | None = None) -> str:
        """What a value must look like, in one line: ``int 1–150, default 30``, ``one of euler, heun``…"""
        rule = self._value_rule(server_list)
        if self.required:
            return rule + ", required"
        if self.default is not None and self.default != "":
            return f"{rule}, default {self.show(self.default)}"
        return rule + (", unset: node bypassed" if self.when_unset == "bypass" else "")

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """A value as people see it in results and summaries ("—" when there is none)."""
        return "—" if value is None or value == "" else str(value)

    def show_unset(self) -> str:
        """What an unset value amounts to: the default, or "—" (the workflow's own value)."""
        return f"{self.show(self.default)} (default)" if self.default is not None else "—"

    # -- values ---------------------------------------------------------------------------
    def is_given(self, value: Any) -> bool:
        """Whether ``value`` is a value at all (None and blank text are not)."""
        return value is not None and not (isinstance(value, str) and not value.strip())

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> Any:
        """``value`` (typed, or text from a modal or ``--set``) as this kind's value, or ``ParamError``.

        ``server_list`` is the live list of a ``choices_from`` param (None: not known)."""
        raise NotImplementedError

    def read(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> Any:
        """One submitted value: coerced, or None when not given (``ParamError`` when required)."""
        if not self.is_given(value):
            if self.required:
                raise ParamError(name, "is required")
            return None
        return self.coerce(name, valid_unicode(name, value), server_list)

    def resolve(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> Any:
        """The value a job uses: ``value``, else the default; None leaves the workflow's own value
        (or bypasses the node, or draws a random seed)."""
        if value is not None and self.is_given(value):
            return self.coerce(name, valid_unicode(name, value), server_list)
        if self.default is None:  # the common case, without a call (a job's hot path)
            if self.required:
                raise ParamError(name, "is required")
            return None
        ready = self.ready_default
        return self.read(name, self.default, server_list) if ready is None else ready

    def draw(self, rng: random.Random | None = None, limit: int | None = None) -> Any:
        """A random value (kinds with ``is_random``); ``limit`` is the largest the bound inputs accept."""
        return None

    def same_kind(self, other: ParamBase) -> bool:
        """Whether a value of ``other`` means the same here (values carry over between workflows)."""
        return type(self) is type(other)

    # -- the server's side --------------------------------------------------------------
    @property
    def live_source(self) -> str | None:
        """``Class.input`` whose list on the server holds the allowed values (``choices_from``)."""
        return None

    @property
    def static_choices(self) -> tuple[Choice, ...]:
        return ()

    def offered(self, server_list: Sequence[Any]) -> list[Any]:
        """The values of the server's list (``live_source``) this param offers."""
        return list(server_list)

    @property
    def text_limit(self) -> int | None:
        """The longest text this param takes (text params only)."""
        return None

    def fits(self, input_type: str, options: Mapping[str, Any] | None = None) -> bool:
        """Whether this param can be bound to a ComfyUI input of ``input_type`` (``INT``, ``COMBO``…)
        with the spec's ``options`` (``image_upload``…; None: not known)."""
        return input_type == "*" or input_type in self.input_types

    def bounds(self) -> dict[str, int | float]:
        """The numbers a bound input's range must allow, by manifest key (``min``, ``max``, ``default``)."""
        return {}

    def listed_values(self) -> list[tuple[tuple[str | int, ...], str, Any]]:
        """(key path, what, value) of each value that must be in a bound combo input's list."""
        return [(("default",), "default", self.default)] if self.default is not None else []

    # -- uploads (kinds with ``takes``) ----------------------------------------------------
    def loader_problem(self, class_type: str, input_name: str) -> str | None:
        """Why a bound node input cannot load this param's file (known without a server), or None."""
        return None

    def mime_problem(self, mime: str) -> str | None:
        """Why a file Discord labels ``mime`` cannot be this param's (before downloading it; its bytes
        are checked later all the same), or None when it may be."""
        return "takes no file"

    def max_upload_bytes(self, limits: Limits) -> int:
        """The largest file this param takes, in bytes (checked before a file is downloaded or read)."""
        if self.byte_limit is None:
            raise NotImplementedError(f"{self.type} params take no file")
        return int(getattr(limits, self.byte_limit))

    def check_upload(self, name: str, data: bytes, filename: str, limits: Limits) -> str:
        """Check an uploaded file's bytes within ``limits`` (``ParamError`` naming ``name``) and return
        the file name to upload them under. Blocking (it decodes): call it in a thread."""
        raise ParamError(name, "takes no file")
