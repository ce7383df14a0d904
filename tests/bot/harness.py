"""The offline Discord: real discord.py objects fed raw gateway payloads, with both HTTP paths recorded.

Use it through :func:`fake_discord` (or the ``discord_fake`` fixture in ``conftest.py``)::

    async with fake_discord(build_commands(catalog, hooks)) as fake:
        await fake.slash("generate flux", prompt="a cat", steps=20, image=Upload("in.png", PNG))
        assert fake.callbacks()[0]["type"] == 5            # deferred first
        choices = await fake.autocomplete("generate flux", {"lora": ""}, focused="lora")

Nothing talks to the network. Interaction responses, followups and ``@original`` edits go through
the webhook adapter (:class:`RecordingWebhook`); bot-token REST calls (``channel.send``, message
edits, ``tree.sync``) through :class:`RecordingHTTP`; attachment downloads are served from
``fake.http.cdn``. Every request lands in ``fake.requests`` in order.

This is the ONE module that touches discord.py internals (pinned: discord.py 2.7.1). If an upgrade
breaks the bot tests, look here first. Private touchpoints:

- ``discord.webhook.async_.async_context`` (ContextVar) and the keyword signature of
  ``AsyncWebhookAdapter.request(route, session, *, payload, multipart, files, params, ...)``;
- ``client._connection`` (``ConnectionState``): ``.user`` (normally set by READY),
  ``.application_id``, ``.parse_interaction_create(payload)`` (what the websocket calls),
  ``._get_guild``/``._add_guild`` and ``Guild._add_role`` (the guild cache GUILD_CREATE fills);
- ``client.http.request(route, *, files, form, json, ...)`` and ``client.http.get_from_cdn(url)``
  (``RecordingHTTP.stream`` also serves them as ``Flow.media``, the embedded-image source),
  replaced on the instance;
- ``discord.ClientUser(state=..., data=...)``;
- ``CommandTree.on_error`` wrapped on the instance to record errors;
- how discord.py names/creates its tasks: the view/modal timeout coroutine (``__timeout_task_impl``)
  and ``discord-ui-view-timeout-*`` tasks are not waited for by :meth:`FakeDiscord.dispatch`;
- the raw payload shapes of INTERACTION_CREATE, messages and the interaction callback response.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, AsyncIterator, Callable, Iterable

import discord
from discord import app_commands
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from bot.jobs.media import MediaUnavailable

from .payloads import (APP_ID, BOT_ID, Upload, command_data, component_data, component_message, interaction, message_data,
                       modal_data, snowflake)

__all__ = ["Request", "RecordingWebhook", "RecordingHTTP", "FakeDiscord", "fake_discord", "remember_guild"]


@dataclass(frozen=True)
class Request:
    """One recorded call. ``via`` is "webhook" (interaction token) or "http" (bot token)."""

    via: str
    method: str
    path: str
    payload: Any
    files: tuple[tuple[str, bytes], ...] = ()


def _file_pairs(files: Iterable[discord.File] | None) -> tuple[tuple[str, bytes], ...]:
    pairs = []
    for file in files or ():
        file.fp.seek(0)
        pairs.append((file.filename or "", file.fp.read()))
    return tuple(pairs)


def _json_of(payload: Any, multipart: list[dict] | None) -> Any:
    if multipart:
        return json.loads(next(p["value"] for p in multipart if p["name"] == "payload_json"))
    return payload


class _Messages:
    """Messages the fake Discord knows, so GETs return the latest edit."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict] = {}

    def store(self, key: str, payload: Any, files: tuple, message_id: int | None = None) -> dict:
        old = self.by_key.get(key)
        merged = {**(old or {}), **(payload or {})}
        mid = message_id or (int(old["id"]) if old else snowflake())
        data = message_data(merged, message_id=mid, files=files or ())
        self.by_key[key] = data
        return data


class RecordingWebhook(AsyncWebhookAdapter):
    """Records interaction responses, followups and ``@original`` edits; answers like Discord."""

    def __init__(self, requests: list[Request], messages: _Messages):
        super().__init__()
        self.requests = requests
        self._messages = messages

    async def request(self, route: Route, session: Any, *, payload: Any = None, multipart: list | None = None,
                      files: list | None = None, params: Any = None, **_: Any) -> Any:
        path = route.url.removeprefix(Route.BASE)
        body, pairs = _json_of(payload, multipart), _file_pairs(files)
        self.requests.append(Request("webhook", route.method, path, body, pairs))
        if path.endswith("/callback"):
            return self._callback_answer(route, body, pairs)
        if route.method == "DELETE":
            return None
        token = route.webhook_token
        key = f"{token}/{path.rsplit('/messages/', 1)[1]}" if "/messages/" in path else f"{token}/{snowflake()}"
        if route.method == "GET":
            return self._messages.by_key.get(key) or message_data({}, message_id=snowflake())
        return self._messages.store(key, body, pairs)

    def _callback_answer(self, route: Route, body: dict, pairs: tuple) -> dict:
        kind = body.get("type")
        flags = (body.get("data") or {}).get("flags") or 0
        answer = {"interaction": {"id": str(route.webhook_id), "type": 2, "response_message_loading": kind == 5,
                                  "response_message_ephemeral": bool(flags & 64)},
                  "resource": {"type": kind}}
        if kind in (4, 7):
            answer["resource"]["message"] = self._messages.store(f"{route.webhook_token}/@original",
                                                                 body.get("data"), pairs)
        return answer


class RecordingHTTP:
    """Replaces ``client.http.request`` and ``client.http.get_from_cdn`` on one client."""

    def __init__(self, requests: list[Request], messages: _Messages):
        self.requests = requests
        self.cdn: dict[str, bytes] = {}
        self.responders: dict[tuple[str, str], Callable[[Request], Any]] = {}
        self._messages = messages

    async def request(self, route: Route, *, files: list | None = None, form: list | None = None,
                      json: Any = None, **_: Any) -> Any:
        path = route.url.removeprefix(Route.BASE)
        recorded = Request("http", route.method, path, _json_of(json, form), _file_pairs(files))
        self.requests.append(recorded)
        responder = self.responders.get((route.method, route.path))
        answer = responder(recorded) if responder is not None else NotImplemented
        if answer is not NotImplemented:  # a responder returns NotImplemented to let a request through
            return answer
        if route.path.startswith("/applications/") and route.path.endswith("/commands") and route.method == "PUT":
            return [{"description": "", **c, "id": str(snowflake()), "application_id": str(APP_ID), "version": "1"}
                    for c in recorded.payload]  # Discord answers context menus with an empty description
        if "/messages" in route.path and route.method in ("POST", "PATCH", "GET"):
            message_id = path.rsplit("/", 1)[1] if route.method != "POST" else None
            key = f"channel/{message_id or snowflake()}"
            if route.method == "GET":
                return self._messages.by_key.get(key) or message_data({}, message_id=int(message_id))
            return self._messages.store(key, recorded.payload, recorded.files,
                                        int(message_id) if message_id else None)
        return None

    async def stream(self, url: str) -> AsyncGenerator[bytes, None]:
        """``MediaSource`` for embedded images (``Flow.media``): the same files, in 64 KiB chunks."""
        self.requests.append(Request("http", "GET", url, None))
        if url not in self.cdn:
            raise MediaUnavailable("status 404")
        data = self.cdn[url]
        for start in range(0, len(data), 64 * 1024):
            yield data[start:start + 64 * 1024]

    async def close(self) -> None:
        return None

    async def get_from_cdn(self, url: str) -> bytes:
        self.requests.append(Request("http", "GET", url, None))
        try:
            return self.cdn[url]
        except KeyError:
            raise discord.DiscordException(f"no such attachment {url}") from None


@dataclass
class FakeDiscord:
    """A client + tree wired to recorders; payload factories and a dispatcher."""

    client: discord.Client
    tree: app_commands.CommandTree
    webhook: RecordingWebhook
    http: RecordingHTTP
    requests: list[Request]
    errors: list[Exception] = field(default_factory=list)

    # ---- payloads (see payloads.py; attachments are served from ``http.cdn``) ------------------
    def slash_payload(self, command: str, options: dict[str, Any] | None = None, **context: Any) -> dict:
        return interaction(2, command_data(command, options or {}, cdn=self.http.cdn), **context)

    def autocomplete_payload(self, command: str, options: dict[str, Any], focused: str, **context: Any) -> dict:
        return interaction(4, command_data(command, options, focused, cdn=self.http.cdn), **context)

    def component_payload(self, custom_id: str, *, component_type: int = 2, values: list[str] | None = None,
                          message: dict | None = None, **context: Any) -> dict:
        """A button click or select choice on ``message`` (default: a bot message holding that component)."""
        message = message or component_message(custom_id, component_type, values)
        return interaction(3, component_data(custom_id, component_type, values), message=message, **context)

    def modal_payload(self, custom_id: str, fields: dict[str, str | list[str]] | None = None,
                      uploads: dict[str, list[Upload]] | None = None, **context: Any) -> dict:
        return interaction(5, modal_data(custom_id, fields, uploads, cdn=self.http.cdn), **context)

    # ---- driving -------------------------------------------------------------------------------
    async def dispatch(self, payload: dict, *, timeout: float = 5.0) -> None:
        """Feed ``payload`` as the gateway would and wait for every task it spawned (not timeouts)."""
        before = asyncio.all_tasks()
        token = async_context.set(self.webhook)
        try:
            remember_guild(self.client._connection, payload)
            self.client._connection.parse_interaction_create(payload)
        finally:
            async_context.reset(token)
        await _settle(before, timeout)

    async def slash(self, command: str, /, **options: Any) -> dict:
        payload = self.slash_payload(command, options)
        await self.dispatch(payload)
        return payload

    async def autocomplete(self, command: str, options: dict[str, Any], focused: str, **context: Any) -> list[dict]:
        """The suggestions the bot answered with (``[{"name", "value"}]``)."""
        await self.dispatch(self.autocomplete_payload(command, options, focused, **context))
        answer = self.callbacks()[-1]
        assert answer["type"] == 8, f"expected an autocomplete answer, got {answer}"
        return answer["data"]["choices"]

    # ---- reading what happened ---------------------------------------------------------------
    def callbacks(self) -> list[dict]:
        """Bodies of interaction callbacks (initial responses), in order."""
        return [r.payload for r in self.requests if r.via == "webhook" and r.path.endswith("/callback")]

    def sent(self, via: str | None = None) -> list[Request]:
        return [r for r in self.requests if via is None or r.via == via]


def _is_timeout_task(task: asyncio.Task) -> bool:
    coro_name = getattr(task.get_coro(), "__qualname__", "")
    return task.get_name().startswith("discord-ui-view-timeout") or coro_name.endswith("timeout_task_impl")


def _pending(before: set[asyncio.Task]) -> list[asyncio.Task]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() - before if t is not current and not t.done() and not _is_timeout_task(t)]


async def _settle(before: set[asyncio.Task], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pending = _pending(before)
        if not pending:
            await asyncio.sleep(0)  # callbacks scheduled with call_soon may still spawn tasks
            if not _pending(before):
                return
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"tasks still running: {', '.join(t.get_name() for t in pending)}")
        await asyncio.wait(pending, timeout=remaining)


def remember_guild(state: Any, payload: dict) -> None:
    """Cache the payload's guild with the roles its member holds (named ``role <id>``), as a real bot
    has its guilds and their roles cached from GUILD_CREATE: ``Member.roles`` then resolves them."""
    guild_id, member = payload.get("guild_id"), payload.get("member")
    if not guild_id or not member:
        return
    guild = state._get_guild(int(guild_id))
    if guild is None:
        guild = discord.Guild(data={"id": guild_id, "name": "Test guild"}, state=state)
        state._add_guild(guild)
    for role_id in member.get("roles", []):
        if guild.get_role(int(role_id)) is None:
            guild._add_role(discord.Role(guild=guild, state=state, data={
                "id": role_id, "name": f"role {role_id}", "position": 1, "permissions": "0"}))


def _install(client: discord.Client, tree: app_commands.CommandTree) -> FakeDiscord:
    requests: list[Request] = []
    messages = _Messages()
    webhook, http = RecordingWebhook(requests, messages), RecordingHTTP(requests, messages)
    client.http.request = http.request
    client.http.get_from_cdn = http.get_from_cdn
    state = client._connection
    state.application_id = APP_ID
    state.user = discord.ClientUser(state=state, data={"id": str(BOT_ID), "username": "discomfy",
                                                       "discriminator": "0", "avatar": None, "bot": True})
    fake = FakeDiscord(client, tree, webhook, http, requests)
    original_on_error = tree.on_error

    async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        fake.errors.append(error)
        await original_on_error(interaction, error)

    tree.on_error = on_error
    return fake


@asynccontextmanager
async def fake_discord(commands: Iterable[app_commands.Command | app_commands.Group] = (), *,
                       client: discord.Client | None = None,
                       tree: app_commands.CommandTree | None = None) -> AsyncIterator[FakeDiscord]:
    """A never-logged-in client (yours or a plain ``discord.Client``) with ``commands`` on its tree."""
    client = client or discord.Client(intents=discord.Intents.default())
    tree = tree or getattr(client, "tree", None) or app_commands.CommandTree(client)
    for command in commands:
        tree.add_command(command)
    async with client:
        yield _install(client, tree)
