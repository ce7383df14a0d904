"""Raw Discord gateway payloads for offline tests (pure dict builders, Discord API shapes v10).

INTERACTION_CREATE for slash commands (options incl. attachments in ``resolved``), autocomplete,
components (button/select) and modal submits (Label-wrapped text inputs, selects, file uploads),
plus the message objects Discord returns. Attachments get CDN urls; pass a ``cdn`` dict to collect
``url → bytes`` so the harness can serve downloads. Nothing here touches discord.py internals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import discord

__all__ = [
    "APP_ID", "BOT_ID", "GUILD_ID", "CHANNEL_ID", "USER_ID", "TEN_MIB",
    "Upload", "Opt", "snowflake", "older_than", "message_data", "interaction",
    "command_data", "menu_data", "component_data", "component_message", "modal_data",
]

APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GUILD_ID = 900000000000000003
CHANNEL_ID = 900000000000000004
USER_ID = 900000000000000005
TEN_MIB = 10 * 1024 * 1024
_counter = itertools.count(1)
_ALL = str(discord.Permissions.all().value)


@dataclass(frozen=True)
class Upload:
    """An attachment the fake user uploads; its bytes are served when the bot downloads it."""

    filename: str
    data: bytes
    content_type: str | None = "image/png"


@dataclass(frozen=True)
class Opt:
    """An option value with an explicit Discord option type (otherwise inferred from the Python type)."""

    type: int
    value: Any


def snowflake(at: datetime | None = None) -> int:
    """A fresh, unique id dated ``at`` (default now): interactions are dated by their id."""
    return discord.utils.time_snowflake(at or discord.utils.utcnow()) + next(_counter)


def older_than(minutes: float) -> datetime:
    """A creation time ``minutes`` ago, e.g. ``created=older_than(16)`` for an expired token."""
    return datetime.now(timezone.utc) - timedelta(minutes=minutes)


def message_data(payload: dict | None, *, message_id: int, channel_id: int = CHANNEL_ID,
                 files: Iterable[tuple[str, bytes]] = (), author_id: int = BOT_ID) -> dict:
    """A message as Discord returns it, built from the payload the bot sent (and its files)."""
    payload = payload or {}
    base = f"attachments/{channel_id}/{message_id}"
    attachments = [{"id": str(snowflake()), "filename": name, "size": len(data), "content_type": None,
                    "url": f"https://cdn.discordapp.com/{base}/{name}",
                    "proxy_url": f"https://media.discordapp.net/{base}/{name}"} for name, data in files]
    return {"id": str(message_id), "channel_id": str(channel_id), "type": 0, "content": payload.get("content") or "",
            "author": {"id": str(author_id), "username": "discomfy", "discriminator": "0", "avatar": None, "bot": True},
            "embeds": payload.get("embeds") or [], "components": payload.get("components") or [],
            "attachments": attachments, "flags": payload.get("flags") or 0,
            "timestamp": discord.utils.utcnow().isoformat(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "pinned": False,
            "application_id": str(APP_ID)}


def _user(user_id: int) -> dict:
    return {"id": str(user_id), "username": f"user{user_id % 1000}", "discriminator": "0", "avatar": None,
            "global_name": None}


def _guild_part(user_id: int, nsfw: bool, roles: Iterable[int], channel_id: int = CHANNEL_ID) -> dict:
    channel = {"id": str(channel_id), "type": 0, "name": "general", "guild_id": str(GUILD_ID), "position": 0,
               "nsfw": nsfw, "parent_id": None, "permission_overwrites": [], "topic": None,
               "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}
    member = {"user": _user(user_id), "roles": [str(r) for r in roles], "joined_at": "2024-01-01T00:00:00+00:00",
              "permissions": _ALL, "deaf": False, "mute": False, "flags": 0, "nick": None, "avatar": None,
              "pending": False}
    return {"guild_id": str(GUILD_ID), "guild_locale": "en-US", "channel": channel, "member": member}


def interaction(kind: int, data: dict, *, user_id: int = USER_ID, nsfw: bool = False, guild: bool = True,
                created: datetime | None = None, size_limit: int = TEN_MIB, roles: Iterable[int] = (),
                message: dict | None = None, channel_id: int = CHANNEL_ID) -> dict:
    """An INTERACTION_CREATE payload (kind 2 command, 3 component, 4 autocomplete, 5 modal submit).

    ``created`` dates the interaction (its token lasts 15 minutes); ``guild=False`` makes it a DM.
    """
    payload = {"id": str(snowflake(created)), "application_id": str(APP_ID), "type": kind,
               "token": f"token-{next(_counter)}", "version": 1, "data": data, "locale": "en-US",
               "attachment_size_limit": size_limit, "app_permissions": _ALL, "entitlements": [],
               "authorizing_integration_owners": {"0": str(GUILD_ID)} if guild else {}, "context": 0 if guild else 1}
    if guild:
        payload.update(_guild_part(user_id, nsfw, roles, channel_id))
    else:
        payload["user"] = _user(user_id)
        payload["channel"] = {"id": str(user_id), "type": 1, "recipients": [_user(user_id)]}
    if message is not None:
        payload["message"] = message
    return payload


def _option_type(value: Any) -> int:
    if isinstance(value, Opt):
        return value.type
    if isinstance(value, Upload):
        return 11
    return {bool: 5, int: 4, float: 10}.get(type(value), 3)


def _attachment(upload: Upload, cdn: dict[str, bytes] | None) -> tuple[str, dict]:
    att_id = str(snowflake())
    url = f"https://cdn.discordapp.com/attachments/{CHANNEL_ID}/{att_id}/{upload.filename}"
    if cdn is not None:
        cdn[url] = upload.data
    return att_id, {"id": att_id, "filename": upload.filename, "size": len(upload.data), "url": url,
                    "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
                    "content_type": upload.content_type}


def _options(options: dict[str, Any], focused: str | None, cdn: dict | None) -> tuple[list[dict], dict]:
    resolved: dict[str, dict] = {}
    result = []
    for name, value in options.items():
        raw = value.value if isinstance(value, Opt) else value
        if isinstance(raw, Upload):
            raw, resolved_attachment = _attachment(raw, cdn)
            resolved[raw] = resolved_attachment
        option = {"type": _option_type(value), "name": name, "value": raw}
        if name == focused:
            option["focused"] = True
        result.append(option)
    return result, resolved


def command_data(command: str, options: dict[str, Any], focused: str | None = None,
                 cdn: dict[str, bytes] | None = None) -> dict:
    """``data`` of a slash command or autocomplete; ``command`` is a path such as ``"generate flux"``."""
    top, *subs = command.split()
    built, attachments = _options(options, focused, cdn)
    for depth, sub in reversed(list(enumerate(subs))):
        built = [{"type": 1 if depth == len(subs) - 1 else 2, "name": sub, "options": built}]
    data = {"id": str(snowflake()), "name": top, "type": 1, "options": built}
    if attachments:
        data["resolved"] = {"attachments": attachments}
    return data


def menu_data(name: str, message: dict) -> dict:
    """``data`` of a message context-menu command (type 3) used on ``message`` (a message payload)."""
    return {"id": str(snowflake()), "name": name, "type": 3, "target_id": message["id"],
            "resolved": {"messages": {message["id"]: message}}}


def component_data(custom_id: str, component_type: int = 2, values: list[str] | None = None) -> dict:
    """``data`` of a button click (type 2) or a select choice (type 3 with ``values``)."""
    data = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = values
    return data


def component_message(custom_id: str, component_type: int = 2, values: list[str] | None = None) -> dict:
    """A bot message carrying the clicked component (discord.py rebuilds DynamicItems from it)."""
    component = {"type": component_type, "custom_id": custom_id}
    if component_type == 2:
        component |= {"style": 1, "label": "Button"}
    elif component_type == 3:
        component |= {"options": [{"label": v, "value": v} for v in values or ["x"]], "min_values": 1,
                      "max_values": max(1, len(values or []))}
    return message_data({"components": [{"type": 1, "components": [component]}]}, message_id=snowflake())


def modal_data(custom_id: str, fields: dict[str, str | list[str]] | None = None,
               uploads: dict[str, list[Upload]] | None = None, cdn: dict[str, bytes] | None = None) -> dict:
    """``data`` of a modal submit: text inputs (str), selects (list of values), file uploads."""
    components, attachments = [], {}
    for field_id, value in (fields or {}).items():
        inner = {"type": 4, "custom_id": field_id, "value": value} if isinstance(value, str) \
            else {"type": 3, "custom_id": field_id, "values": list(value)}
        components.append({"type": 18, "id": len(components) + 1, "component": inner})
    for field_id, files in (uploads or {}).items():
        ids = []
        for upload in files:
            att_id, attachments[att_id] = _attachment(upload, cdn)
            ids.append(att_id)
        components.append({"type": 18, "id": len(components) + 1,
                           "component": {"type": 19, "custom_id": field_id, "values": ids}})
    data = {"custom_id": custom_id, "components": components}
    if attachments:
        data["resolved"] = {"attachments": attachments}
    return data
