"""Our check of generated slash-command payloads against Discord's limits (pure).

discord.py validates command names and counts but not descriptions, option counts, option names,
choices or sizes (docs/discord.md §1–2); Discord answers a bad ``tree.sync()`` with HTTP 400
for the whole batch. :func:`check_payload` takes the JSON list ``tree.sync()`` PUTs and returns
one finding per broken rule (empty when Discord would accept it), each naming the command path
and option, e.g. ``"/generate flux: option 'steps': min_value 2**60 is outside the INTEGER range"``.
The numbers come from ``engine.discord_limits`` (the same ones ``engine validate`` applies to manifests).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, TypeGuard

from engine import discord_limits as L

__all__ = [
    "MAX_COMMAND_CHARS",
    "check_payload",
    "command_chars",
]

MAX_COMMAND_CHARS = L.MAX_COMMAND_SIZE  # the engine's figure (Discord's docs: 8000; older ones: 4000)

SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, NUMBER, ATTACHMENT = 1, 2, 3, 4, 5, 10, 11
MESSAGE_COMMAND = 3  # a command's "type": 1 slash, 2 user context menu, 3 message context menu
_VALUE_TYPES = {STRING, INTEGER, BOOLEAN, 6, 7, 8, 9, NUMBER, ATTACHMENT}
_CHOICE_TYPES = {STRING, INTEGER, NUMBER}
_NAME = re.compile(r"^[-_'\w]{1,32}$")  # Discord: [-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}


def check_payload(commands: list[dict], *, size_budget: int = MAX_COMMAND_CHARS) -> list[str]:
    """Every way ``commands`` (the ``tree.sync()`` body) breaks Discord's limits; [] when none.

    ``size_budget`` caps each command's characters (see :func:`command_chars`); Discord's current
    docs allow 8000, older docs and libraries 4000.
    """
    findings = []
    menus = [c for c in commands if c.get("type") == MESSAGE_COMMAND]
    commands = [c for c in commands if c.get("type") != MESSAGE_COMMAND]
    if len(commands) > L.MAX_COMMANDS:
        findings.append(f"{len(commands)} top-level commands (at most {L.MAX_COMMANDS})")
    findings += _duplicates((c.get("name") for c in commands), "top level", "command")
    findings += _menu_findings(menus)
    for command in commands:
        where = f"/{command.get('name')}"
        findings += _check_command(command, where)
        chars = command_chars(command)
        if chars > size_budget:
            findings.append(f"{where}: {chars} characters in names, descriptions and choices (budget {size_budget})")
    return findings


def _menu_findings(menus: list[dict]) -> list[str]:
    """Message commands: at most 5, names of 1–32 characters (spaces and capitals allowed), unique."""
    findings = []
    if len(menus) > L.MAX_MESSAGE_COMMANDS:
        findings.append(f"{len(menus)} message commands (at most {L.MAX_MESSAGE_COMMANDS})")
    findings += _duplicates((m.get("name") for m in menus), "message commands", "command")
    for menu in menus:
        name = str(menu.get("name", ""))
        if not 1 <= len(name) <= L.MAX_MENU_NAME_LENGTH or name != name.strip():
            findings.append(f"message command {name!r}: the name must have 1–{L.MAX_MENU_NAME_LENGTH} characters")
        if menu.get("description") or menu.get("options"):
            findings.append(f"message command {name!r}: takes no description or options")
    return findings


def command_chars(command: dict) -> int:
    """Characters Discord counts toward a command's size: names, descriptions, choice names and values."""
    total = len(str(command.get("name", ""))) + len(str(command.get("description", "")))
    for choice in command.get("choices") or ():
        total += len(str(choice.get("name", ""))) + len(str(choice.get("value", "")))
    return total + sum(command_chars(option) for option in command.get("options") or ())


def _check_command(command: dict, where: str) -> list[str]:
    findings = _name_and_description(command, where, "")
    options = command.get("options") or []
    subcommands = [o for o in options if o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)]
    if subcommands and len(subcommands) != len(options):
        findings.append(f"{where}: mixes subcommands with plain options")
    if subcommands:
        if len(subcommands) > L.MAX_SUBCOMMANDS:
            findings.append(f"{where}: {len(subcommands)} subcommands (at most {L.MAX_SUBCOMMANDS})")
        findings += _duplicates((s.get("name") for s in subcommands), where, "subcommand")
        for sub in subcommands:
            findings += _check_command(sub, f"{where} {sub.get('name')}")
        return findings
    if len(options) > L.MAX_OPTIONS:
        findings.append(f"{where}: {len(options)} options (at most {L.MAX_OPTIONS})")
    findings += _duplicates((o.get("name") for o in options), where, "option")
    required = [bool(o.get("required")) for o in options]
    if required != sorted(required, reverse=True):
        findings.append(f"{where}: a required option comes after an optional one")
    for option in options:
        findings += _check_option(option, where)
    return findings


def _name_and_description(item: dict, where: str, what: str) -> list[str]:
    findings = []
    name, description = str(item.get("name", "")), str(item.get("description", ""))
    if not _NAME.match(name):
        findings.append(f"{where}:{what} name {name[:40]!r} must be 1–{L.MAX_NAME_LENGTH} letters, digits, - or _")
    elif name != name.lower():
        findings.append(f"{where}:{what} name {name!r} must be lowercase")
    if not 1 <= len(description) <= L.MAX_DESCRIPTION_LENGTH:
        findings.append(f"{where}:{what} description has {len(description)} characters (1–{L.MAX_DESCRIPTION_LENGTH})")
    return findings


def _check_option(option: dict, where: str) -> list[str]:
    what = f" option {option.get('name')!r}:"
    kind = option.get("type")
    findings = _name_and_description(option, where, what)
    if kind not in _VALUE_TYPES:
        return findings + [f"{where}:{what} unknown option type {kind!r}"]
    choices = option.get("choices")
    if choices is not None and option.get("autocomplete"):
        findings.append(f"{where}:{what} has both choices and autocomplete")
    if (choices or option.get("autocomplete")) and kind not in _CHOICE_TYPES:
        findings.append(f"{where}:{what} choices or autocomplete on a type that takes none")
    findings += [f"{where}:{what} {problem}" for problem in _choice_problems(choices or [], kind)]
    findings += [f"{where}:{what} {problem}" for problem in _bound_problems(option, kind)]
    return findings


def _choice_problems(choices: list[dict], kind: int) -> Iterable[str]:
    if len(choices) > L.MAX_CHOICES:
        yield f"{len(choices)} choices (at most {L.MAX_CHOICES})"
    for choice in choices:
        name, value = str(choice.get("name", "")), choice.get("value")
        if not 1 <= len(name) <= L.MAX_CHOICE_NAME_LENGTH:
            yield f"choice name has {len(name)} characters (1–{L.MAX_CHOICE_NAME_LENGTH})"
        if kind == STRING and (not isinstance(value, str) or len(value) > L.MAX_CHOICE_VALUE_LENGTH):
            yield f"choice {name[:40]!r}: string value must be text of at most {L.MAX_CHOICE_VALUE_LENGTH} characters"
        elif kind in (INTEGER, NUMBER) and not _in_number_range(value, integer=kind == INTEGER):
            yield f"choice {name[:40]!r}: value {value!r} is outside the {'INTEGER' if kind == INTEGER else 'NUMBER'} range"


def _bound_problems(option: dict, kind: int) -> Iterable[str]:
    if kind in (INTEGER, NUMBER):
        low, high = option.get("min_value"), option.get("max_value")
        for key, bound in (("min_value", low), ("max_value", high)):
            if bound is not None and not _in_number_range(bound, integer=kind == INTEGER):
                yield f"{key} {bound!r} is outside the {'INTEGER' if kind == INTEGER else 'NUMBER'} range"
        if _is_number(low) and _is_number(high) and low > high:
            yield f"min_value {low} is bigger than max_value {high}"
    elif kind == STRING:
        low, high = option.get("min_length"), option.get("max_length")
        if low is not None and not (isinstance(low, int) and 0 <= low <= L.MAX_STRING_OPTION_LENGTH):
            yield f"min_length {low!r} is outside 0–{L.MAX_STRING_OPTION_LENGTH}"
        if high is not None and not (isinstance(high, int) and 1 <= high <= L.MAX_STRING_OPTION_LENGTH):
            yield f"max_length {high!r} is outside 1–{L.MAX_STRING_OPTION_LENGTH}"
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield f"min_length {low} is bigger than max_length {high}"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_number_range(value: Any, *, integer: bool) -> bool:
    if not _is_number(value) or (integer and not isinstance(value, int)):
        return False
    return -L.MAX_INTEGER <= value <= L.MAX_INTEGER


def _duplicates(names: Iterable[Any], where: str, what: str) -> list[str]:
    seen, findings = set(), []
    for name in names:
        if name in seen:
            findings.append(f"{where}: duplicate {what} name {name!r}")
        seen.add(name)
    return findings
