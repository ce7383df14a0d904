"""The one table from a param's kind to its Discord widgets: slash option type and bounds, modal field.

This is the only place in the bot that looks at a param's kind (``WIDGETS[param.type]``);
everything else asks the param itself (``rule``, ``show``, ``read``, ``is_upload``…). A modal field
is a ``TextInput`` (text and numbers; the placeholder is the param's ``rule``), a ``Select``
(bools, and choice lists short enough for one), or a ``FileUpload`` (images, audio); as a slash
option a file is an attachment. Discord lets either take any file: the engine checks what it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.enums import AppCommandOptionType

from engine import BoolParam, ChoiceParam, Param, SeedParam, TextParam, discord_limits as limits

__all__ = ["NONE_VALUE", "Widget", "WIDGETS", "widget_for", "choice_options", "placeholder_for", "prefill_text",
           "server_list", "LiveChoices"]

NONE_VALUE = "__none__"  # the "None" option of an optional Select
PLACEHOLDER_LIMIT = 100  # TextInput / Select placeholder
TEXT_INPUT_LIMIT, OPTION_LIMIT = limits.MAX_TEXT_INPUT_LENGTH, limits.MAX_CHOICE_NAME_LENGTH
SELECT_OPTIONS = limits.MAX_SELECT_OPTIONS

LiveChoices = Callable[[str], Sequence[str]]  # a ``choices_from`` source → the server's list
Bounds = tuple[int | float | None, int | float | None]
Field = Callable[[str, Any, Any, Sequence[str] | None], discord.ui.Item]  # (name, param, value, server list)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def server_list(param: Param, live: LiveChoices | None) -> Sequence[str] | None:
    """The live list of a ``choices_from`` param (None for other params or without ``live``)."""
    return live(param.live_source) if live and param.live_source else None


def placeholder_for(param: Param, live_list: Sequence[str] | None = None) -> str:
    """The hint inside an empty field: the param's rule, clipped to Discord's 100 characters."""
    return _clip(param.rule(live_list), PLACEHOLDER_LIMIT)


def prefill_text(value: Any) -> str | None:
    """A value as the text a ``TextInput`` starts with."""
    return None if value is None else str(value)[:TEXT_INPUT_LIMIT]


def choice_options(param: Param, current: Any, live_list: Sequence[str] | None = None) -> list[discord.SelectOption]:
    """Select options for a choice list: "None" first when optional, then up to 24/25 choices (the
    current value always among them). Empty when nothing can be offered (also for non-choices)."""
    pairs = [(c.name, str(c.value)) for c in param.static_choices]
    if not pairs and param.live_source:
        pairs = [(str(v), str(v)) for v in param.offered(live_list or [])]
    pairs = [(n, v) for n, v in pairs if len(v) <= OPTION_LIMIT]
    room = SELECT_OPTIONS - (0 if param.required else 1)
    chosen = [p for p in pairs if current is not None and p[1] == str(current)]
    pairs = (chosen + [p for p in pairs if p not in chosen])[:room]
    options = [discord.SelectOption(label=_clip(n, OPTION_LIMIT), value=v, default=v == str(current)) for n, v in pairs]
    if not param.required and pairs:
        options.insert(0, discord.SelectOption(label="None", value=NONE_VALUE, default=current is None))
    return options


# -- modal fields, one builder per kind ------------------------------------------------------

def _text_input(name: str, param: Param, value: Any, live_list: Sequence[str] | None, *, multiline: bool = False,
                min_length: int | None = None, max_length: int | None = None) -> discord.ui.TextInput:
    return discord.ui.TextInput(
        custom_id=name, style=discord.TextStyle.paragraph if multiline else discord.TextStyle.short,
        default=prefill_text(value), required=param.required, max_length=max_length, min_length=min_length,
        placeholder=placeholder_for(param, live_list) or None)


def _text_field(name: str, param: TextParam, value: Any, live_list: Sequence[str] | None) -> discord.ui.Item:
    return _text_input(name, param, value, live_list, multiline=param.multiline,
                       min_length=min(param.min_length, TEXT_INPUT_LIMIT) or None,
                       max_length=min(param.max_length, TEXT_INPUT_LIMIT))


def _number_field(name: str, param: Param, value: Any, live_list: Sequence[str] | None) -> discord.ui.Item:
    return _text_input(name, param, value, live_list)


def _select(name: str, param: Param, options: list[discord.SelectOption], live_list: Sequence[str] | None
            ) -> discord.ui.Select:
    return discord.ui.Select(custom_id=name, options=options, required=param.required,
                             min_values=1 if param.required else 0, placeholder=placeholder_for(param, live_list))


def _bool_field(name: str, param: BoolParam, value: Any, live_list: Sequence[str] | None) -> discord.ui.Item:
    options = [discord.SelectOption(label=label, value=label, default=value is flag)
               for label, flag in (("true", True), ("false", False))]
    return _select(name, param, options, live_list)


def _choice_field(name: str, param: ChoiceParam, value: Any, live_list: Sequence[str] | None) -> discord.ui.Item:
    """A Select while the list fits one (24 next to "None"), else a text field naming the choices."""
    count = len(param.static_choices) or len(param.offered(live_list or []))
    if 0 < count <= SELECT_OPTIONS - (0 if param.required else 1):
        return _select(name, param, choice_options(param, value, live_list), live_list)
    return _text_input(name, param, value, live_list)


def _upload_field(name: str, param: Param, value: Any, live_list: Sequence[str] | None) -> discord.ui.Item:
    needed = param.required and value is None  # a kept file stays unless a new one is uploaded
    return discord.ui.FileUpload(custom_id=name, required=needed, min_values=1 if needed else 0, max_values=1)


# -- slash option bounds ------------------------------------------------------------------------

def _discord_number(bound: int | float | None) -> int | float | None:
    """A bound Discord can carry (finite, within ±(2**53 - 1)); others are left to the engine's check."""
    if bound is None or not math.isfinite(bound) or abs(bound) > limits.MAX_INTEGER:
        return None
    return bound


def _no_bounds(param: Param) -> Bounds:
    return None, None


def _number_bounds(param: Any) -> Bounds:
    return _discord_number(param.min), _discord_number(param.max)


def _seed_bounds(param: SeedParam) -> Bounds:
    return -1, _discord_number(param.highest)


def _length_bounds(param: TextParam) -> Bounds:
    return param.min_length or None, param.max_length


@dataclass(frozen=True)
class Widget:
    """How one kind of param appears in Discord."""

    option_type: AppCommandOptionType  # as a slash option
    option_bounds: Callable[[Any], Bounds]  # min/max value (numbers) or length (text) of that option
    field: Field  # in a modal


WIDGETS: dict[str, Widget] = {
    "text": Widget(AppCommandOptionType.string, _length_bounds, _text_field),
    "int": Widget(AppCommandOptionType.integer, _number_bounds, _number_field),
    "float": Widget(AppCommandOptionType.number, _number_bounds, _number_field),
    "bool": Widget(AppCommandOptionType.boolean, _no_bounds, _bool_field),
    "choice": Widget(AppCommandOptionType.string, _no_bounds, _choice_field),
    "seed": Widget(AppCommandOptionType.integer, _seed_bounds, _number_field),
    "image": Widget(AppCommandOptionType.attachment, _no_bounds, _upload_field),
    "audio": Widget(AppCommandOptionType.attachment, _no_bounds, _upload_field),
}


def widget_for(param: Param) -> Widget:
    return WIDGETS[param.type]
