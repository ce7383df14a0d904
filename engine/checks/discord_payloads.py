"""Checks that the Discord payloads generated from manifests will fit Discord's limits (pure).

Per param: derived option description and modal label lengths, static choice counts and value
lengths, modal text input lengths. Per manifest: options per (sub)command, the settings modal
title. Per command: subcommands per command, top-level commands, the whole command's size. Per app:
the message context menus (at most 5, each on a workflow that takes an image).
The rules are documented in ``engine.checks.discord_limits``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from . import discord_limits as L
from ..errors import Issue
from ..manifest.model import Manifest, Param
from ..manifest.source import YamlSource

__all__ = ["param_limit_issues", "manifest_limit_issues", "command_limit_issues", "menu_issues"]


def _length_issue(src: YamlSource, loc: tuple, name: str, what: str, text: str, low: int, high: int) -> list[Issue]:
    if low <= len(text.strip()) and len(text) <= high:
        return []
    return [src.issue(loc, name, f"{what} {text!r} has {len(text)} characters; Discord allows {low}–{high}", "discord_limit")]


def _choice_issues(src: YamlSource, name: str, param: Param) -> list[Issue]:
    choices = param.static_choices
    issues = []
    if len(choices) > L.MAX_CHOICES:
        issues.append(src.issue(("params", name, "choices"), name, f"{len(choices)} choices; Discord allows at most "
                                f"{L.MAX_CHOICES} (use choices_from for longer lists)", "discord_limit"))
    for i, choice in enumerate(choices):
        value = str(choice.value)
        if len(value) > L.MAX_CHOICE_VALUE_LENGTH:
            issues.append(src.issue(("params", name, "choices", i), name, f"choice value has {len(value)} "
                                    f"characters; Discord allows at most {L.MAX_CHOICE_VALUE_LENGTH}", "discord_limit"))
    return issues


def param_limit_issues(src: YamlSource, name: str, param: Param) -> list[Issue]:
    """Limits on one param's derived option or modal field."""
    issues = []
    if L.is_option(param):
        key = "description" if param.description else "label" if param.label else None
        loc = ("params", name) + ((key,) if key else ())
        issues += _length_issue(src, loc, name, "option description", param.description_for(name), 1,
                                L.MAX_DESCRIPTION_LENGTH)
    else:
        if param.required:
            issues.append(src.issue(("params", name, "required"), name, "a required param must be a slash option: "
                                    "it cannot be advanced (the settings modal is optional)", "discord_limit"))
        loc = ("params", name, "label") if param.label else ("params", name)
        issues += _length_issue(src, loc, name, "modal label", param.label_for(name), 1, L.MAX_LABEL_LENGTH)
        limit = param.text_limit
        if limit is not None and limit > L.MAX_TEXT_INPUT_LENGTH:
            issues.append(src.issue(("params", name, "max_length"), name, f"max_length {limit} is too long "
                                    f"for a modal field (advanced text): Discord allows at most "
                                    f"{L.MAX_TEXT_INPUT_LENGTH}", "discord_limit"))
    return issues + _choice_issues(src, name, param)


def manifest_limit_issues(src: YamlSource, manifest: Manifest) -> list[Issue]:
    """Options per (sub)command and the settings modal title."""
    issues = []
    options = [n for n, p in manifest.params.items() if L.is_option(p)]
    if len(options) > L.MAX_OPTIONS:
        issues.append(src.issue(("params",), "", f"{len(options)} slash options (basic params and images); Discord "
                                f"allows at most {L.MAX_OPTIONS}: make some params advanced", "discord_limit"))
    if manifest.advanced_params:
        loc = ("title",) if "title" in src.data else ("name",)
        issues += _length_issue(src, loc, "", "settings modal title", L.modal_title(manifest.title), 1,
                                L.MAX_MODAL_TITLE_LENGTH)
    return issues


def _option_size(name: str, param: Param) -> int:
    size = len(name) + len(param.description_for(name))
    for choice in param.static_choices:
        size += len(choice.name) + len(str(choice.value))
    return size


def _command_size(command: str, members: list[Manifest]) -> int:
    if len(members) == 1:
        size = len(command) + len(members[0].description)
    else:  # a group: its description, the setup subcommand, and each manifest as a subcommand
        size = len(command) + len(L.group_description([m.title or m.name for m in members]))
        size += len(L.SETUP_SUBCOMMAND) + len(L.SETUP_DESCRIPTION)
        size += sum(len(m.name) + len(m.description) for m in members)
    for manifest in members:
        size += sum(_option_size(n, p) for n, p in manifest.params.items() if L.is_option(p))
    return size


def _group_issues(command: str, members: list[tuple[YamlSource, Manifest]]) -> list[Issue]:
    if command in L.RESERVED_COMMANDS:
        return [_command_issue(src, f"command {command!r} is one of the bot's built-in commands "
                               f"({', '.join(L.RESERVED_COMMANDS)})") for src, _ in members]
    if len(members) == 1:
        return []
    issues = [_command_issue(src, f"manifest {m.name!r} in command {command!r}: {L.SETUP_SUBCOMMAND!r} is the "
                             "guided setup subcommand of every group", ("name",))
              for src, m in members if m.name == L.SETUP_SUBCOMMAND]
    room = L.MAX_SUBCOMMANDS - 1  # the setup subcommand takes one slot
    issues += [_command_issue(src, f"command {command!r} has {len(members)} manifests; Discord allows "
                              f"{L.MAX_SUBCOMMANDS} subcommands, {room} next to {L.SETUP_SUBCOMMAND!r}")
               for src, _ in members[room:]]
    return issues


def command_limit_issues(manifests: Iterable[tuple[YamlSource, Manifest]]) -> list[Issue]:
    """Reserved names, subcommands per command, number of commands and each command's total size;
    the message context menus (``menu_issues``)."""
    pairs = list(manifests)
    groups: dict[str, list[tuple[YamlSource, Manifest]]] = {}
    for src, manifest in sorted(pairs, key=lambda sm: sm[1].name):
        groups.setdefault(manifest.command or manifest.name, []).append((src, manifest))
    room = L.MAX_COMMANDS - len(L.RESERVED_COMMANDS)
    issues = []
    for index, (command, members) in enumerate(sorted(groups.items())):
        first_src = members[0][0]
        issues += _group_issues(command, members)
        if index == room:
            issues.append(_command_issue(first_src, f"command {command!r} is number {index + 1}; Discord allows "
                                         f"{L.MAX_COMMANDS} commands, {room} next to the bot's built-in ones"))
        size = _command_size(command, [m for _, m in members])
        if size > L.MAX_COMMAND_SIZE:
            issues.append(_command_issue(first_src, f"command {command!r} totals {size} characters of names, "
                                         f"descriptions and choices; Discord allows {L.MAX_COMMAND_SIZE}"))
    return issues + menu_issues(pairs)


def menu_issues(manifests: Iterable[tuple[YamlSource, Manifest]]) -> list[Issue]:
    """Manifests with ``context_menu``: each takes an image, has a usable and unique name (its title),
    and at most ``MAX_MESSAGE_COMMANDS`` of them exist (in name order, the later ones are refused)."""
    menus = [(src, m) for src, m in sorted(manifests, key=lambda sm: sm[1].name) if m.context_menu]
    issues, seen = [], set()
    for index, (src, manifest) in enumerate(menus):
        name = L.menu_name(manifest.title or manifest.name)
        if manifest.param_taking("image") is None:
            issues.append(_menu_issue(src, "context_menu: the workflow takes no image for the message's image"))
        if not 1 <= len(name) <= L.MAX_MENU_NAME_LENGTH:
            issues.append(_menu_issue(src, f"context menu name {name!r} (the title) has {len(name)} characters; "
                                           f"Discord allows 1–{L.MAX_MENU_NAME_LENGTH}"))
        if name.casefold() in seen:
            issues.append(_menu_issue(src, f"context menu name {name!r} (the title) is taken by another manifest"))
        seen.add(name.casefold())
        if index >= L.MAX_MESSAGE_COMMANDS:
            issues.append(_menu_issue(src, f"context menu {name!r} is number {index + 1}; Discord allows "
                                           f"{L.MAX_MESSAGE_COMMANDS} message commands per app"))
    return issues


def _menu_issue(src: YamlSource, message: str) -> Issue:
    loc = ("context_menu",) if isinstance(src.data, Mapping) and "context_menu" in src.data else ("name",)
    return src.issue(loc, "", message, "discord_limit")


def _command_issue(src: YamlSource, message: str, loc: tuple = ("command",)) -> Issue:
    if not (isinstance(src.data, Mapping) and loc[0] in src.data):
        loc = ("name",)
    return src.issue(loc, "", message, "discord_limit")
