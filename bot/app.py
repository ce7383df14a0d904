"""The bot process: the Discord client that wires the catalog, the job store, the runtime and the flow.

``setup_hook`` (once, after login, before the gateway connects):

1. load the catalog from ``manifests_dir``/``workflows_dir``; a broken manifest is logged with its
   ``file:line`` and skipped, the bot starts with the rest;
2. open the ``JobStore`` (``db_path``; already opened by ``login``, before Discord is contacted) and start the ``Runtime`` on the configured backends, with a
   websocket client id kept next to the database so that resumed jobs still get their progress;
3. build the commands (``Flow`` for jobs, ``InfoCommands`` for the static ones), register the
   persistent buttons and the error funnel;
4. sync the commands only when their payload changed since the last sync (a hash kept next to the
   database; to ``guild_ids`` when set, else globally) — Discord limits command writes per day;
5. take over the jobs that need a process — all those a previous process left when the store is
   SQLite; with PostgreSQL those of processes that stopped renewing their leases, now and every
   third of ``job_lease_seconds`` (``engine.jobs.lease``) — and finish their messages once.

``on_interaction`` answers modal submits from before a restart (``resume_modal``); ``close``
detaches jobs (they stay resumable) and closes the runtime and the store. ``run_bot`` is the
``discomfy run`` entry point: settings, logging that never shows the token or a backend URL
(``Redactor``), then the client — sharded when the settings ask for it (``shard_ids``: some shards).
"""

from __future__ import annotations

import asyncio
import dataclasses
import contextlib
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
from discord import app_commands

from engine import (Catalog, Job, JobRecord, JobSettings, JobStore, Leases, Runtime, StoreError, load_catalog,
                    set_user_salt)

from .check import DISCORD_API, network_reason, start_gate
from .views.buttons import install_buttons, resume_modal
from .commands.slash import build_commands
from .config import ConfigError, Settings, load_settings
from .logs import Redactor, configure_logging, install_redaction
from .metrics import Metrics, activate
from .reload import Reloader
from .retention import Retention, RetentionPolicy
from .commands.admin import admin_group
from .commands.jobs import JobsCommand
from .originals import LinkSigner, OriginalsServer, key_for
from .errors import install_error_handlers, reply_error
from .jobs.redeliver import deliver_stored
from .access import Who
from .jobs.flow import Flow
from .jobs.priority import QueuePriority
from .commands.info import InfoCommands
from .commands.payload_limits import check_payload

__all__ = ["DisComfyBot", "ShardedDisComfyBot", "create_bot", "load_logged_catalog", "sync_marker",
           "sync_if_changed", "client_id_for", "Redactor", "install_redaction", "configure_logging", "run_bot"]

log = logging.getLogger(__name__)


# -- catalog and command sync ----------------------------------------------------------------

def load_logged_catalog(settings: Settings) -> Catalog:
    """The catalog; every manifest problem is logged (``file:line:col: …``) and that manifest skipped."""
    if not settings.manifests_dir.is_dir():
        log.error("manifest folder %s does not exist; no workflow commands", settings.manifests_dir)
    catalog = load_catalog([settings.manifests_dir], settings.workflows_dir, settings.limits())
    loaded = {str(workflow.source.file) for workflow in catalog}
    for issue in catalog.issues:
        outcome = "problem" if str(issue.file) in loaded else "skipped"
        log.warning("manifest %s: %s", outcome, issue)
    log.info("loaded %d workflows", len(catalog))
    return catalog


def sync_marker(db_path: Path) -> Path:
    """The file holding the hash of the last synced command payload (next to the job database)."""
    return db_path.with_name(db_path.name + ".commands-sha256")


def client_id_for(db_path: Path, shard_ids: Iterable[int] = ()) -> str:
    """The websocket client id this bot uses with every backend, the same after a restart (kept next to
    the database): ComfyUI sends a prompt's progress to the client id that queued it. Processes
    running different shards keep one each (a server talks to one socket per client id)."""
    shards = "".join(f"-{shard}" for shard in shard_ids)
    path = db_path.with_name(f"{db_path.name}.client-id{shards}")
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except OSError:
        kept = ""
    if kept:
        return kept
    client_id = f"discomfy-{uuid.uuid4().hex[:12]}"
    path.write_text(client_id, encoding="utf-8")
    return client_id


def _digest(payload: list[dict], guild_ids: Iterable[int], application_id: int | None) -> str:
    scope = {"application": application_id, "guilds": sorted(guild_ids), "commands": payload}
    return hashlib.sha256(json.dumps(scope, sort_keys=True, default=str).encode()).hexdigest()


async def sync_if_changed(tree: app_commands.CommandTree, marker: Path, guild_ids: Iterable[int]) -> bool:
    """Sync ``tree`` (to each guild, or globally) unless the same payload was synced before; True if it synced.

    The hash covers the payload, the guilds and the application, and is written only after Discord
    accepted every sync, so a failed sync is retried at the next start."""
    guild_ids = list(guild_ids)
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    for finding in check_payload(payload):
        log.warning("command payload breaks a Discord limit: %s", finding)
    digest = _digest(payload, guild_ids, tree.client.application_id)
    try:
        if marker.read_text(encoding="utf-8").strip() == digest:
            log.info("commands unchanged since the last sync; not syncing")
            return False
    except OSError:
        pass
    try:
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            await tree.sync(guild=guild)
        if not guild_ids:
            await tree.sync()
    except discord.HTTPException as exc:
        log.error("command sync failed (HTTP %s, code %s); the old commands stay", exc.status, exc.code)
        return False
    marker.write_text(digest, encoding="utf-8")
    log.info("synced %d commands %s", len(payload), f"to {len(guild_ids)} guild(s)" if guild_ids else "globally")
    return True


# -- the client ------------------------------------------------------------------------------

class _DisComfy(discord.Client):
    """The app's behaviour, for ``discord.Client`` or (mixed in first) ``discord.AutoShardedClient``.

    ``runtime_options`` / ``flow_options`` go to ``Runtime`` / ``Flow`` (timings, for tests)."""

    def __init__(self, settings: Settings, *, runtime_options: Mapping[str, Any] | None = None,
                 flow_options: Mapping[str, Any] | None = None, **client_options: Any):
        intents = discord.Intents.default()  # slash commands and components need no message_content
        super().__init__(intents=intents, **client_options)
        self.settings = settings
        self.tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self)
        self.catalog: Catalog | None = None
        self.store: JobStore | None = None
        self.runtime: Runtime | None = None
        self.flow: Flow | None = None
        self._runtime_options = dict(runtime_options or {})
        self._flow_options = dict(flow_options or {})
        self._followers: set[asyncio.Task[None]] = set()
        self.metrics: Metrics | None = None
        self.reloader: Reloader | None = None
        self._watcher: asyncio.Task | None = None
        self._stop_watching = asyncio.Event()
        self._background: list[asyncio.Task] = []
        self.originals: OriginalsServer | None = None
        self.queue_priority = QueuePriority(settings.role_priority)

    async def setup_hook(self) -> None:
        settings = self.settings
        self.catalog = load_logged_catalog(settings)
        store = await self.open_store()
        backends = [(backend.name, backend.url) for backend in settings.backends]
        caps = JobSettings(want_previews=settings.previews, max_pending=settings.queue_depth)
        leases = Leases(store, seconds=settings.job_lease_seconds, shared=store.db.dialect == "postgresql")
        options = {"client_id": client_id_for(settings.db_path, settings.shard_ids), "settings": caps,
                   "limits": settings.limits(), "priority_of": self.queue_priority, "leases": leases,
                   **self._runtime_options}
        self.runtime = Runtime(self.catalog, backends, store, **options)
        set_user_salt(self.runtime.client_id)  # log lines hash user ids with a key of this install
        await self.runtime.start()
        await self._start_metrics()
        signer = await self._start_originals(self.runtime)
        self.flow = Flow(self.runtime, settings, self.catalog, original_link=signer.link if signer else None,
                         **self._flow_options)
        self.reloader = Reloader(settings.manifests_dir, settings.workflows_dir,
                                 current=lambda: self._parts().catalog, object_infos=self._object_infos,
                                 apply=self._apply_catalog, notify=self._tell_admins, limits=settings.limits())
        self._install_commands()
        install_buttons(self, self.flow.button_hooks())
        install_error_handlers(self.tree)
        await sync_if_changed(self.tree, sync_marker(settings.db_path), settings.guild_ids)
        self.runtime.on_take_over(self._taken_over)
        self._taken_over(*await self.runtime.take_over())
        retention = Retention(store, self.flow.inputs.path, RetentionPolicy.from_settings(settings))
        self._background.append(asyncio.create_task(retention.run(), name="retention"))
        if settings.reload_on_change:
            self._watcher = asyncio.create_task(self.reloader.watch(stop=self._stop_watching), name="manifest watch")

    def _parts(self) -> _Parts:
        """What ``setup_hook`` made (asking before it ran is a bug)."""
        catalog, store, runtime, flow, reloader = self.catalog, self.store, self.runtime, self.flow, self.reloader
        if catalog is None or store is None or runtime is None or flow is None or reloader is None:
            raise RuntimeError("the bot is not set up yet")
        return _Parts(catalog, store, runtime, flow, reloader)

    def _install_commands(self) -> None:
        """The commands for the current catalog, replacing any built before (hot reload)."""
        parts = self._parts()
        info = InfoCommands(catalog=parts.catalog, runtime=parts.runtime, store=parts.store, access=parts.flow.access,
                            cancel=parts.flow.cancel, commands=lambda: self.tree.get_commands())
        hooks = parts.flow.command_hooks(help=info.help, status=info.status, workflows=info.workflows,
                                         choices=info.choices, cancel=info.cancel, user_jobs=info.user_jobs)
        self.tree.clear_commands(guild=None)
        for guild_id in self.settings.guild_ids:
            self.tree.clear_commands(guild=discord.Object(guild_id))
        jobs = JobsCommand(store=parts.store, catalog=lambda: self._parts().catalog, access=parts.flow.access,
                           cancel=parts.flow.cancel)
        for command in build_commands(parts.catalog, dataclasses.replace(hooks, jobs=jobs.show)):
            self.tree.add_command(command)
        self.tree.add_command(admin_group(parts.flow.access, parts.reloader.reload))

    async def _apply_catalog(self, catalog: Catalog) -> bool:
        """Serve ``catalog`` from now on (jobs in flight keep theirs); True when the commands were synced."""
        parts = self._parts()
        self.catalog = parts.runtime.catalog = parts.flow.catalog = catalog
        self._install_commands()
        return await sync_if_changed(self.tree, sync_marker(self.settings.db_path), self.settings.guild_ids)

    def _object_infos(self) -> list[Mapping[str, Any]]:
        runtime = self.runtime
        return runtime.object_infos() if runtime is not None else []

    async def _tell_admins(self, lines: list[str]) -> None:
        if self.settings.admin_channel_id is not None:
            text = "Manifest reload:\n" + "\n".join(lines)
            await self.get_partial_messageable(self.settings.admin_channel_id).send(text[:2000])

    async def _start_metrics(self) -> None:
        if self.settings.metrics_port is None:
            return
        self.metrics = Metrics(lambda: self.runtime)
        port = await self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        activate(self.metrics)
        log.info("metrics on port %d (/metrics, /healthz)", port)

    async def _start_originals(self, runtime: Runtime) -> LinkSigner | None:
        """The signed-link endpoint for full-quality originals, when ``originals_url`` is set."""
        settings = self.settings
        if settings.originals_url is None:
            return None
        signer = LinkSigner(key_for(settings.db_path), settings.originals_url, settings.originals_ttl_hours * 3600)
        self.originals = OriginalsServer(signer, runtime)
        port = await self.originals.start(settings.originals_host, settings.originals_port)
        log.info("originals endpoint on port %d", port)
        return signer

    async def login(self, token: str) -> None:
        """Open the job store before talking to Discord: a locked or damaged database stops the start
        (``StoreError``, one line from ``run_bot``) before anything else happens."""
        await self.open_store()
        await super().login(token)

    async def open_store(self) -> JobStore:
        if self.store is None:
            self.store = await JobStore.open(self.settings.database_url)
        return self.store

    def _taken_over(self, jobs: list[Job], ended: list[JobRecord]) -> None:
        """Jobs this process took over: follow the unfinished ones, post the outcome of the ended ones."""
        flow = self._parts().flow
        for job in jobs:
            log.info("resuming job %s (%s)", job.id, job.workflow.name)
            self._track_follower(flow.follow_resumed(self, job), f"resumed job {job.id}")
        for record in ended:
            self._track_follower(deliver_stored(flow, self, record), f"outcome of job {record.job_id}")

    def _track_follower(self, coroutine: Any, name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._followers.add(task)
        task.add_done_callback(self._follower_done)

    def _follower_done(self, task: asyncio.Task[None]) -> None:
        self._followers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("following a resumed job failed (%s)", type(task.exception()).__name__)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Note the user's queue priority; modal submits no open modal took (the bot restarted meanwhile)
        are rebuilt from their id."""
        who = Who.of(interaction)
        self.queue_priority.note(who.user_id, who.role_ids)
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        try:
            await resume_modal(interaction)
        except Exception as exc:  # the funnel logs unexpected ones and tells the user briefly
            await reply_error(interaction, exc)

    async def close(self) -> None:
        """Stop following jobs without ending them, close the runtime and the store, then Discord."""
        if self._watcher is not None:
            self._stop_watching.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._watcher, 5.0)
        for task in [*self._followers, *self._background]:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*self._followers, return_exceptions=True)
        if self.originals is not None:
            await self.originals.close()
            self.originals = None
        if self.metrics is not None:
            activate(None)
            await self.metrics.close()
            self.metrics = None
        if self.flow is not None:
            await self.flow.media.close()
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        await super().close()


@dataclass(frozen=True)
class _Parts:
    catalog: Catalog
    store: JobStore
    runtime: Runtime
    flow: Flow
    reloader: Reloader


class DisComfyBot(_DisComfy, discord.Client):
    """The bot on one gateway connection."""


class ShardedDisComfyBot(_DisComfy, discord.AutoShardedClient):
    """The bot with every shard in this process."""


def create_bot(settings: Settings, **options: Any) -> DisComfyBot | ShardedDisComfyBot:
    """A sharded client when ``settings.sharded`` or ``shard_count`` > 1 (``shard_ids`` of them), a plain one
    otherwise."""
    if settings.sharded or (settings.shard_count or 1) > 1:
        return ShardedDisComfyBot(settings, shard_count=settings.shard_count, shard_ids=settings.shard_ids or None,
                                  **options)
    return DisComfyBot(settings, **options)


def run_bot(config_path: str | Path | None = None, *, discord_api: str = DISCORD_API) -> int:
    """``discomfy run``: check (``bot.check.start_gate``), then start the bot. 2 when the settings are
    unusable, 1 for a fatal finding (token refused, Discord unreachable, storage not writable) — one
    line each, never a traceback for an expected failure."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print("discomfy: cannot start, the settings have problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    undo_logging = configure_logging(settings)
    try:
        return _checked_run(settings, discord_api)
    finally:
        undo_logging()


def _checked_run(settings: Settings, discord_api: str) -> int:
    refused = start_gate(settings, api=discord_api, log=log)
    if refused is not None:
        return refused
    bot = create_bot(settings)
    if settings.discord_token is None:  # load_settings requires one; this keeps the type honest
        log.error("no Discord token; set DISCORD_TOKEN")
        return 2
    try:
        bot.run(settings.discord_token.get_secret_value(), log_handler=None)
    except discord.LoginFailure:
        log.error("Discord refused the token; check DISCORD_TOKEN")
        return 1
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:  # the network went away since the check
        log.error("cannot reach Discord (%s)", network_reason(exc))
        return 1
    except StoreError as exc:  # locked by another program, damaged, or newer than this program
        log.error("cannot open the job database: %s", exc)
        return 1
    return 0
