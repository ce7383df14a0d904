"""The whole bot stack offline, for flow and end-to-end tests: a fake ComfyUI, a real ``Runtime`` on it,
a temp ``JobStore``, a ``Flow`` and the offline Discord (harness) with the generated commands,
the persistent buttons and the error funnel installed.

Manifests: copies of the bundled model-free ones plus ``seeded`` (slow canvas with a seed param,
for the "seed in the result" checks) and ``spicy`` (an NSFW canvas), loaded with the repo's
``workflows/`` folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import discord
from discord import app_commands
from discord.webhook.async_ import async_context

from bot.commands.jobs import JobsCommand
from bot.views.buttons import install_buttons
from bot.commands.info import InfoCommands
from bot.commands.slash import build_commands
from bot.config import Settings
from bot.errors import install_error_handlers
from bot.jobs.flow import Flow
from engine.manifest.catalog import Catalog, load_catalog
from engine.runtime import JobSettings, Runtime
from engine.jobs.store import JobRecord, JobStore

from .harness import FakeDiscord, Request, fake_discord, remember_guild

__all__ = ["REPO", "Stack", "flow_catalog", "running_stack", "png"]

REPO = Path(__file__).resolve().parents[2]
SERVER_TASKS = ("RequestHandler.",)  # aiohttp server side of the fake ComfyUI
MODEL_FREE = ("canvas", "invert", "resize", "fail", "slow-canvas")

SEEDED = """
name: seeded
title: Seeded canvas
description: Slow canvas with a seed (test)
workflow: slow-canvas.json
timeout: 60
params:
  steps: {type: int, default: 3, min: 1, max: 20, bind: '$[?(@._meta.title == "Slow Progress")].inputs.steps'}
  seconds_per_step: {type: float, default: 0.2, min: 0, max: 5, advanced: true,
                     bind: '$[?(@._meta.title == "Slow Progress")].inputs.seconds_per_step'}
  seed: {type: seed, bind: '$[?(@._meta.title == "Slow Progress")].inputs.nonce'}
outputs: ["3"]
actions: [invert, resize]
"""

SPICY = """
name: spicy
title: Spicy canvas
description: An NSFW-flagged canvas (test)
workflow: canvas.json
nsfw: true
timeout: 60
params:
  width: {type: int, default: 64, min: 16, max: 512, bind: '$[?(@._meta.title == "Canvas")].inputs.width'}
outputs: ["2"]
actions: [invert]
"""


def flow_catalog(folder: Path) -> Catalog:
    """The model-free manifests plus ``seeded`` and ``spicy``, written to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FREE:
        shutil.copy(REPO / "manifests" / f"{name}.yaml", folder / f"{name}.yaml")
    (folder / "seeded.yaml").write_text(SEEDED)
    (folder / "spicy.yaml").write_text(SPICY)
    catalog = load_catalog([folder], REPO / "workflows")
    assert not catalog.issues, catalog.issues
    return catalog


def png(width: int = 32, height: int = 32, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Stack:
    fake: FakeDiscord
    flow: Flow
    runtime: Runtime
    store: JobStore
    catalog: Catalog

    async def dispatch(self, payload: dict, *, timeout: float = 5.0) -> None:
        """Like ``FakeDiscord.dispatch``, but not waiting for the fake ComfyUI's own connection
        handlers (keep-alive connections opened during a job live on after it)."""
        before = asyncio.all_tasks()
        token = async_context.set(self.fake.webhook)
        try:
            remember_guild(self.fake.client._connection, payload)
            self.fake.client._connection.parse_interaction_create(payload)
        finally:
            async_context.reset(token)
        async with asyncio.timeout(timeout):
            while pending := _ours(before):
                await asyncio.wait(pending)
            await asyncio.sleep(0)

    async def slash(self, command: str, /, **options: Any) -> None:
        await self.dispatch(self.fake.slash_payload(command, options))

    async def jobs(self) -> list[JobRecord]:
        return await self.store.recent(limit=100)

    def webhook_edits(self) -> list[Request]:
        return [r for r in self.fake.requests if r.via == "webhook" and r.method == "PATCH"]

    def result_edits(self) -> list[Request]:
        """Webhook edits carrying files other than a live preview frame (results, by the flow's shape)."""
        return [r for r in self.webhook_edits() if any(name != "preview.jpg" for name, _ in r.files)]

    def bot_edits(self) -> list[Request]:
        return [r for r in self.fake.requests if r.via == "http" and r.method == "PATCH"]

    def ephemeral_texts(self) -> list[str]:
        """Texts of ephemeral initial responses (type 4, flag 64)."""
        return [c["data"]["content"] for c in self.fake.callbacks()
                if c["type"] == 4 and (c["data"].get("flags") or 0) & 64]


def _ours(before: set[asyncio.Task]) -> list[asyncio.Task]:
    """Tasks started since ``before`` that belong to the bot, not to the in-process servers."""
    return [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
            and not getattr(t.get_coro(), "__qualname__", "").startswith(SERVER_TASKS)
            and not t.get_name().startswith("discord-ui-view-timeout")
            and not getattr(t.get_coro(), "__qualname__", "").endswith("timeout_task_impl")]


def _settings(db_path: Path, **overrides: Any) -> Settings:
    return Settings(db_path=db_path, **overrides)


async def _inert(*_: Any) -> None:
    return None


@asynccontextmanager
async def running_stack(comfy_url: str, db_path: Path, catalog: Catalog, *, edit_interval: float = 0.01,
                        queue_depth: int | None = None, **settings: Any) -> AsyncIterator[Stack]:
    """Everything started; closed (runtime detached, store closed) on exit, like a process ending.
    ``queue_depth`` (the bot's setting) puts our own queue in front of the fake; None sends at once."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    store = await JobStore.open(str(db_path))
    runtime = Runtime(catalog, backends=[("local", comfy_url)], store=store, health_interval=0.5,
                      settings=JobSettings(queue_poll=0.05, cancel_wait=2.0, resume_wait=2.0, max_pending=queue_depth))
    await runtime.start()
    flow = Flow(runtime, _settings(db_path, **settings), catalog, edit_interval=edit_interval)
    client = discord.Client(intents=discord.Intents.default())
    tree = app_commands.CommandTree(client)
    install_error_handlers(tree)
    info = InfoCommands(catalog=catalog, runtime=runtime, store=store, access=flow.access, cancel=flow.cancel,
                        commands=lambda: tree.get_commands())
    hooks = flow.command_hooks(help=_inert, status=_inert, workflows=_inert, choices=info.choices,
                               cancel=info.cancel, user_jobs=info.user_jobs)
    jobs = JobsCommand(store=store, catalog=lambda: flow.catalog, access=flow.access, cancel=flow.cancel)
    hooks = dataclasses.replace(hooks, jobs=jobs.show)
    try:
        async with fake_discord(build_commands(catalog, hooks), client=client, tree=tree) as fake:
            install_buttons(client, flow.button_hooks())
            flow.media = fake.http  # embedded images come from the recorded CDN, as attachments do
            yield Stack(fake, flow, runtime, store, catalog)
    finally:
        await runtime.close()
        await store.close()
