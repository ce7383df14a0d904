"""Manifest params as Discord slash-command options: one ``app_commands.Transformer`` per param.

The param declaration in the manifest is the only source: option type and limits (from the
param's widget, ``bot.widgets``), static choices and autocomplete are derived from it here
(docs/discord.md §1, approach B); the values are checked once, by the engine, when the job is
prepared. Which params become options is decided by :func:`option_params`: the basic
(non-``advanced``) params plus every upload param (an attachment option: image, audio). Everything
else lives in the Settings modal.

The rule and the derived texts come from the engine (``engine.discord_limits.is_option``,
``Param.description_for``), so what ``engine validate`` checks is what is sent.

Autocomplete answers are ranked by :func:`rank_choices`: case-insensitive substring match, prefix
matches first, at most 25 suggestions, each name and value ≤ 100 characters (Discord's limits).
"""

from __future__ import annotations

import inspect
import keyword
import re
from typing import Any, Awaitable, Callable, Iterable, Sequence

import discord
from discord import app_commands
from discord.enums import AppCommandOptionType

from engine import Manifest, Param, ParamError, discord_limits as limits

from ..widgets import LiveChoices, server_list, widget_for

__all__ = [
    "MAX_STATIC_CHOICES",
    "MAX_SUGGESTIONS",
    "OptionError",
    "ParamOption",
    "AutocompleteParamOption",
    "PickOption",
    "make_param_option",
    "option_params",
    "python_names",
    "rank_choices",
]

MAX_STATIC_CHOICES = limits.MAX_CHOICES  # more static choices than this are offered through autocomplete
MAX_SUGGESTIONS = 25  # Discord: an autocomplete answer holds at most 25 choices
MAX_CHOICE_CHARS = limits.MAX_CHOICE_VALUE_LENGTH  # choice names and string values

Candidates = Sequence[tuple[str, str]] | Awaitable[Sequence[tuple[str, str]]]


class OptionError(app_commands.TransformerError):
    """A value the user gave for an option is not acceptable; ``param_error`` says why.

    ``str(error)`` is the engine's wording, e.g. ``"steps: must be ≤ 150"``, safe to show to users.
    """

    def __init__(self, value: Any, option: app_commands.Transformer, param_error: ParamError):
        super().__init__(value, option.type, option)
        self.param_error = param_error
        self.args = (str(param_error),)


def option_params(manifest: Manifest) -> list[str]:
    """Names of the params offered as slash options, in manifest order (the rest go to the modal)."""
    return [name for name, p in manifest.params.items() if limits.is_option(p)]


def python_names(names: Iterable[str]) -> dict[str, str]:
    """Map each option name to a distinct Python identifier usable as a keyword parameter.

    ``negative-prompt`` → ``negative_prompt``, ``class`` → ``class_``, ``2x`` → ``p_2x``;
    ``interaction`` is taken by the callback's first parameter.
    """
    taken = {"interaction"}
    result = {}
    for name in names:
        ident = re.sub(r"\W", "_", name)
        if not ident.isidentifier():
            ident = f"p_{ident}"
        while keyword.iskeyword(ident) or ident in taken:
            ident += "_"
        taken.add(ident)
        result[name] = ident
    return result


def rank_choices(candidates: Iterable[tuple[str, Any]], typed: str) -> list[app_commands.Choice[int | float | str]]:
    """Filter ``(name, value)`` pairs by what the user typed; prefix matches first; ≤ 25.

    Pairs whose value is a string longer than 100 characters cannot be sent to Discord and are skipped.
    """
    needle = typed.strip().casefold()
    prefix, inner = [], []
    for name, value in candidates:
        if isinstance(value, str) and len(value) > MAX_CHOICE_CHARS:
            continue
        folded = str(name).casefold()
        if folded.startswith(needle):
            prefix.append((name, value))
        elif needle in folded:
            inner.append((name, value))
        if len(prefix) >= MAX_SUGGESTIONS:
            break
    ranked = (prefix + inner)[:MAX_SUGGESTIONS]
    return [app_commands.Choice(name=_shorten(str(name)), value=value) for name, value in ranked]


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_CHOICE_CHARS else text[: MAX_CHOICE_CHARS - 1] + "…"


class ParamOption(app_commands.Transformer):
    """A manifest param as a Discord option: type and bounds from its widget (``bot.widgets``).

    Values pass through as Discord typed them: the engine checks a job's values once, when the
    flow prepares the job. Only attachments are looked at here (their content type)."""

    def __init__(self, name: str, param: Param, live: LiveChoices,
                 listed: Callable[[discord.Interaction], bool] = lambda _: True):
        self.name = name
        self.param = param
        self._live = live
        self._listed = listed  # the access policy: may this workflow's lists be offered to this user here?

    @property
    def type(self) -> AppCommandOptionType:
        return widget_for(self.param).option_type

    @property
    def min_value(self) -> int | float | None:
        return widget_for(self.param).option_bounds(self.param)[0]

    @property
    def max_value(self) -> int | float | None:
        return widget_for(self.param).option_bounds(self.param)[1]

    @property
    def choices(self) -> list[app_commands.Choice] | None:
        static = self.param.static_choices
        if not static or len(static) > MAX_STATIC_CHOICES:
            return None
        return [app_commands.Choice(name=c.name, value=str(c.value)) for c in static]

    @property
    def _error_display_name(self) -> str:
        return self.name

    def server_list(self) -> Sequence[str] | None:
        """The live list for a ``choices_from`` param (unfiltered), or None when unknown or empty."""
        return server_list(self.param, self._live) or None

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        if isinstance(value, discord.Attachment):
            return _checked_attachment(self, value)
        return value


class AutocompleteParamOption(ParamOption):
    """A choice param offered through autocomplete: a live list, or more than 25 static choices."""

    async def autocomplete(self, interaction: discord.Interaction, value: int | float | str, /
                           ) -> list[app_commands.Choice[int | float | str]]:
        if not self._listed(interaction):
            return []  # a restricted workflow's lists are not shown to who may not run it here
        static = self.param.static_choices
        if static:
            return rank_choices(((c.name, str(c.value)) for c in static), str(value))
        available = self.param.offered(self.server_list() or [])
        return rank_choices(((v, v) for v in available), str(value))


def make_param_option(name: str, param: Param, live: LiveChoices,
                      listed: Callable[[discord.Interaction], bool] = lambda _: True) -> ParamOption:
    """The transformer for one param: autocomplete for live lists and for > 25 static choices
    (offered only where ``listed(interaction)``)."""
    if param.live_source or len(param.static_choices) > MAX_STATIC_CHOICES:
        return AutocompleteParamOption(name, param, live, listed)
    return ParamOption(name, param, live, listed)


def _checked_attachment(option: ParamOption, attachment: discord.Attachment) -> discord.Attachment:
    problem = option.param.mime_problem((attachment.content_type or "").split(";")[0].strip())
    if problem:
        raise OptionError(attachment.filename, option, ParamError(option.name, problem))
    return attachment


class PickOption(app_commands.Transformer):
    """A string option that suggests ``(name, value)`` pairs from ``candidates(interaction)``.

    With ``strict``, ``transform`` refuses a value that is not one of the candidates' values.
    """

    def __init__(self, name: str, candidates: Callable[[discord.Interaction], Candidates],
                 *, strict: bool, problem: str = "is not one of the offered values"):
        self.name = name
        self._candidates = candidates
        self._strict = strict
        self._problem = problem

    @property
    def type(self) -> AppCommandOptionType:
        return AppCommandOptionType.string

    @property
    def max_value(self) -> int:
        return MAX_CHOICE_CHARS

    @property
    def _error_display_name(self) -> str:
        return self.name

    async def _offered(self, interaction: discord.Interaction) -> Sequence[tuple[str, str]]:
        candidates = self._candidates(interaction)
        return await candidates if inspect.isawaitable(candidates) else candidates

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> str:
        if self._strict and value not in {v for _, v in await self._offered(interaction)}:
            raise OptionError(value, self, ParamError(self.name, self._problem))
        return value

    async def autocomplete(self, interaction: discord.Interaction, value: int | float | str, /
                           ) -> list[app_commands.Choice[int | float | str]]:
        return rank_choices(await self._offered(interaction), str(value))
