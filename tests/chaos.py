"""The seeded chaos run: many jobs from many users through the whole bot (offline Discord, real
runtime, store and flow) on fake ComfyUI servers, while — at random, from one seed — websockets drop,
backends die (refusing or hanging) and come back, HTTP calls fail with 500 or time out, the database
is locked for a while, users cancel, and the bot restarts (a graceful stop, as on SIGTERM, then a
new process that resumes the unfinished jobs). The bot runs with its real defaults: our own queue
in front of the servers (``queue_depth`` 1, issue 11 §1); ``queue_depth=None`` sends every job at once.

A dead server comes back as it died: one that refused connections crashed and restarts empty, one
that hung comes back with its queue (and carries out the requests it held, as a frozen server does).

At the end every job must have exactly one delivered outcome (its message's last state carries the
result or failure buttons, ``dc:del:<job>``) and no prompt may have run to success twice on the
servers (each job's seed is unique and travels in the graph as ``nonce``). ``run_chaos`` returns
the counts; ``python bench/chaos.py --seed N`` replays a run.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, AsyncIterator

from aiohttp.test_utils import TestServer
from discord.webhook.async_ import async_context

from bot.app import DisComfyBot
from bot.config import Settings
from engine.comfy.client import Timeouts
from engine.jobs.parts import JobSettings
from tests.bot.harness import FakeDiscord, Request, fake_discord
from tests.bot.stack import SEEDED
from tests.fake_comfy import FakeComfy, make_app

__all__ = ["ChaosCounts", "run_chaos"]

REPO = Path(__file__).resolve().parents[1]
FIRST_USER = 800_000_000_000_000_000
QUEUE_DEPTH = Settings.model_fields["queue_depth"].default  # the bot's default: our own queue is on
TIMINGS = JobSettings(queue_poll=0.1, down_grace=3.0, resume_wait=5.0, cancel_wait=3.0)
RUNTIME = {"health_interval": 0.25, "timeouts": Timeouts(request=1.0, connect=0.5, transfer=3.0)}
TERMINAL = re.compile(r"dc:del:([-_a-z0-9]{1,40})")
CANCEL = re.compile(r"dc:cancel:([-_a-z0-9]{1,40})")


@dataclass
class ChaosCounts:
    seed: int
    queue_depth: int | None = QUEUE_DEPTH  # None: no queue of ours, every job sent at once
    interactions: int = 0
    delivered: int = 0
    failed: Counter = field(default_factory=Counter)  # reason → jobs
    cancelled: int = 0
    refused: Counter = field(default_factory=Counter)  # no job made: the reply's text → interactions
    lost: int = 0
    duplicated: int = 0
    faults: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)  # what was lost or duplicated, to look into

    def lines(self) -> list[str]:
        failed = sum(self.failed.values())
        queue = "every job sent at once" if self.queue_depth is None else f"our queue, queue_depth {self.queue_depth}"
        return [f"seed {self.seed}: {self.interactions} interactions in {self.seconds:.0f} s ({queue})",
                f"delivered {self.delivered} (done), failed {failed}, cancelled {self.cancelled}, "
                f"refused before a job existed {sum(self.refused.values())}",
                *(f"  failed: {count} × {reason}" for reason, count in self.failed.most_common()),
                *(f"  refused: {count} × {reason}" for reason, count in self.refused.most_common()),
                f"lost = {self.lost}, duplicated = {self.duplicated}",
                *(f"  {detail}" for detail in self.details),
                "faults: " + ", ".join(f"{name} {count}" for name, count in sorted(self.faults.items()))]


@dataclass
class _World:
    rng: random.Random  # jobs, users, cancels
    faults_rng: random.Random  # the fault schedule: its own stream, so job timing does not shift it
    folder: Path
    fakes: list[FakeComfy]
    servers: list[TestServer]
    settings: Settings
    requests: list[Request] = field(default_factory=list)  # every harness's, across restarts
    tokens: dict[str, int] = field(default_factory=dict)  # interaction token → seed
    tasks: set[asyncio.Task] = field(default_factory=set)  # interaction tasks of the current process
    counts: ChaosCounts | None = None
    open: asyncio.Event = field(default_factory=asyncio.Event)  # submissions allowed


def _settings(folder: Path, servers: list[TestServer], queue_depth: int | None) -> Settings:
    manifests = folder / "manifests"
    manifests.mkdir()
    (folder / "data").mkdir()
    (manifests / "seeded.yaml").write_text(SEEDED)
    return Settings(discord_token="chaos.token.x", manifests_dir=manifests, workflows_dir=REPO / "workflows",
                    backends=[{"name": f"gpu{i}", "url": str(s.make_url("")).rstrip("/")}
                              for i, s in enumerate(servers, 1)],
                    db_path=folder / "data" / "jobs.sqlite3", rate_per_user="100000/1", rate_global="100000/1",
                    max_concurrent_per_user=1000, reload_on_change=False, progress_interval=2.0,
                    queue_depth=queue_depth)


@asynccontextmanager
async def _bot(world: _World) -> AsyncIterator[FakeDiscord]:
    settings = world.settings  # fast timings, the bot's own queue and preview settings
    timings = replace(TIMINGS, max_pending=settings.queue_depth, want_previews=settings.previews)
    bot = DisComfyBot(settings, runtime_options={**RUNTIME, "settings": timings}, flow_options={"edit_interval": 0.5})
    async with fake_discord(client=bot, tree=bot.tree) as fake:
        fake.requests = world.requests  # one record across processes
        fake.webhook.requests = fake.http.requests = world.requests
        await bot.setup_hook()
        yield fake


def _start(world: _World, fake: FakeDiscord, payload: dict) -> None:
    before = asyncio.all_tasks()
    token = async_context.set(fake.webhook)
    try:
        fake.client._connection.parse_interaction_create(payload)
    finally:
        async_context.reset(token)
    for task in asyncio.all_tasks() - before:
        world.tasks.add(task)
        task.add_done_callback(world.tasks.discard)


async def _submit(world: _World, fake_ref: list[FakeDiscord], jobs: int, users: int, pace: float) -> None:
    """One job per seed from a random user; about 3 % are long ones their owner cancels."""
    for seed in range(1, jobs + 1):
        await world.open.wait()
        fake = fake_ref[0]
        cancel = world.rng.random() < 0.03
        steps = 20 if cancel else world.rng.randint(1, 4)
        payload = fake.slash_payload("seeded", {"steps": steps, "seed": seed},
                                     user_id=FIRST_USER + world.rng.randrange(users))
        world.tokens[payload["token"]] = seed
        _start(world, fake, payload)
        if cancel:
            asyncio.get_running_loop().call_later(world.rng.uniform(0.05, 0.2), _cancel_later, world, fake_ref,
                                                  payload, 20)
        await asyncio.sleep(world.rng.expovariate(1 / pace))


def _cancel_later(world: _World, fake_ref: list[FakeDiscord], payload: dict, tries: int) -> None:
    """The owner presses Cancel under the job's progress message (once it shows one)."""
    job_id = next((m.group(1) for r in world.requests if payload["token"] in r.path
                   for m in CANCEL.finditer(str(r.payload))), None)
    if job_id is None or not world.open.is_set():
        if tries > 0:
            asyncio.get_running_loop().call_later(0.05, _cancel_later, world, fake_ref, payload, tries - 1)
        return
    fake = fake_ref[0]
    click = fake.component_payload(f"dc:cancel:{job_id}", user_id=int(payload["member"]["user"]["id"]))
    world.counts.faults["user cancel"] += 1
    _start(world, fake, click)


# -- faults -----------------------------------------------------------------------------------

Dead = dict[int, tuple[str, asyncio.TimerHandle | None]]  # server → how it died, its revival (None: under way)


async def _fault(world: _World, dead: Dead) -> None:
    rng, counts = world.faults_rng, world.counts
    index = rng.randrange(len(world.fakes))
    fake = world.fakes[index]
    kind = rng.choice(["ws drop", "ws drop", "die", "http 500", "http 500", "timeout", "db lock"])
    counts.faults[kind] += 1
    if kind == "ws drop":
        await fake.drop_websockets()
    elif kind == "die" and index not in dead:  # the process crashes (and restarts empty) or freezes
        mode = rng.choice(["refuse", "hang"])
        if mode == "refuse":
            fake.crash()  # what it was running ends unfinished; its queue is lost when it restarts
        else:
            fake.pause()  # a frozen server takes nothing new from its queue
        await fake.die(mode)
        dead[index] = mode, asyncio.get_running_loop().call_later(rng.uniform(0.5, 4.0), _revive, world, index, dead)
    elif kind == "http 500":
        fake.fail_http(rng.choice(["/prompt", "/history", "/view", "/queue", "/upload"]), times=rng.randint(1, 3))
    elif kind == "timeout":
        fake.delay(rng.choice(["/history", "/queue", "/view"]), 1.5)
        asyncio.get_running_loop().call_later(rng.uniform(0.5, 2.0), fake.http.delays.clear)
    elif kind == "db lock":
        _lock_database(world.settings.db_path, rng.uniform(0.3, 1.5))


def _revive(world: _World, index: int, dead: Dead) -> asyncio.Task:
    mode, _ = dead[index]
    dead[index] = mode, None

    async def revive() -> None:
        fake = world.fakes[index]
        await fake.revive(restart=mode == "refuse")  # a crashed server restarts empty, a hung one has its queue
        fake.resume()
        del dead[index]
    task = asyncio.create_task(revive())
    world.tasks.add(task)  # kept referenced; never cancelled by a restart (it is the server's)
    return task


def _lock_database(path: Path, seconds: float) -> None:
    """Another process holds the write lock for ``seconds`` (a backup, a sqlite3 shell …)."""
    def hold() -> None:
        db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        finally:
            db.close()
    threading.Thread(target=hold, name="chaos db lock", daemon=True).start()


async def _faults(world: _World, stop: asyncio.Event) -> None:
    dead: Dead = {}
    while not stop.is_set():
        await asyncio.sleep(world.faults_rng.uniform(0.2, 0.8))
        await _fault(world, dead)
    revivals = [task for task in world.tasks if task.get_coro().__qualname__.endswith("revive")]
    for index, (_, timer) in list(dead.items()):  # the dead come back now, as they died (a crash: empty)
        if timer is not None:
            timer.cancel()
            revivals.append(_revive(world, index, dead))
    await asyncio.gather(*revivals)
    for fake in world.fakes:
        fake.http.delays.clear()
        fake.http.failures.clear()
        fake.resume()


# -- the run ----------------------------------------------------------------------------------

async def _restart(world: _World, fake_ref: list[FakeDiscord], stack: Any) -> None:
    """Stop taking interactions, let the ones being answered reach their job, stop the process, start anew."""
    world.open.clear()
    await asyncio.sleep(0.5)
    for task in [t for t in world.tasks if not t.get_coro().__qualname__.endswith("revive")]:
        task.cancel()
    await stack.aclose()
    world.counts.faults["bot restart"] += 1
    fake_ref[0] = await stack.enter(world)
    world.open.set()


class _Process:
    """The current bot process as an async context, restartable."""

    def __init__(self) -> None:
        self._context: Any = None

    async def enter(self, world: _World) -> FakeDiscord:
        self._context = _bot(world)
        return await self._context.__aenter__()

    async def aclose(self) -> None:
        await self._context.__aexit__(None, None, None)


async def _drain(world: _World, fake: FakeDiscord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unfinished = await fake.client.store.unfinished()
        if not unfinished and not [t for t in world.tasks if not t.done()]:
            return
        await asyncio.sleep(0.25)


async def _count(world: _World, fake: FakeDiscord) -> None:
    """Per job, the messages its outcome reached: edits of its one message count once, every message
    posted anew once more. One → delivered (by its state); none → lost; more → duplicated."""
    counts = world.counts
    records = {r.job_id: r for r in await fake.client.store.recent(limit=1_000_000)}
    edited, posted = Counter(), Counter()
    for request in world.requests:
        for job_id in {m.group(1) for m in TERMINAL.finditer(str(request.payload))}:
            (posted if request.method == "POST" and "/callback" not in request.path else edited)[job_id] += 1
    for job_id, record in records.items():
        messages = posted[job_id] + (1 if edited[job_id] else 0)
        if messages == 0 or not record.finished:
            counts.lost += 1
            counts.details.append(f"lost: job {job_id} ({record.state}, {messages} outcome messages)")
        elif messages > 1:
            counts.duplicated += 1
            counts.details.append(f"duplicated: job {job_id} got {messages} outcome messages")
        elif record.state == "done":
            counts.delivered += 1
        elif record.state == "cancelled":
            counts.cancelled += 1
        else:
            counts.failed[record.error or "failed"] += 1
    seeds_with_job = {int(r.values["seed"]) for r in records.values() if r.values.get("seed") is not None}
    for token, seed in world.tokens.items():
        if seed not in seeds_with_job:
            reply = _last_reply(world.requests, token)
            if reply is None:
                counts.lost += 1
                counts.details.append(f"lost: interaction of seed {seed} got no answer")
            else:
                counts.refused[reply] += 1
    twice = _duplicated_runs(world.fakes)
    counts.duplicated += len(twice)
    counts.details += [f"duplicated: the job with seed {seed} ran to success {len(runs)} times ({', '.join(runs)})"
                       for seed, runs in twice.items()]


def _last_reply(requests: list[Request], token: str) -> str | None:
    """The text the interaction was last answered with (an edit, a followup or an initial reply)."""
    for request in reversed(requests):
        body = request.payload if isinstance(request.payload, dict) else {}
        text = body.get("content") or (body.get("data") or {}).get("content")
        if token in request.path and text:
            return str(text)[:80]
    return None


def _duplicated_runs(fakes: list[FakeComfy]) -> dict[int, list[str]]:
    """Seeds (one per job) that ran to success more than once across the servers (a server's log of
    what it sent survives its restarts; its history does not), with where: ``gpuN prompt-id``."""
    runs: dict[int, list[str]] = {}
    for number, fake in enumerate(fakes, 1):
        nonces = {body["prompt_id"]: node["inputs"]["nonce"] for body in fake.posted
                  for node in body["prompt"].values() if node.get("class_type") == "SlowProgress"}
        for event, prompt_id in fake.hub.log:
            if event == "execution_success" and prompt_id in nonces:
                runs.setdefault(nonces[prompt_id], []).append(f"gpu{number} {prompt_id}")
    return {seed: where for seed, where in runs.items() if len(where) > 1}


async def run_chaos(seed: int, *, jobs: int = 1000, users: int = 50, backends: int = 3, restarts: int = 2,
                    pace: float = 0.04, drain_timeout: float = 120.0,
                    queue_depth: int | None = QUEUE_DEPTH) -> ChaosCounts:
    """One seeded run (see the module docstring); the same seed replays the same schedule of faults.
    ``queue_depth`` as the bot's setting (None: no queue of ours, every job sent at once)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="discomfy-chaos-") as tmp:
        folder = Path(tmp)
        fakes = [FakeComfy(folder / f"comfy{i}", time_scale=0.1) for i in range(backends)]
        servers = [TestServer(make_app(fake)) for fake in fakes]
        for fake, server in zip(fakes, servers):
            await server.start_server()
            fake.attach(server)
        world = _World(random.Random(seed), random.Random(f"faults-{seed}"), folder, fakes, servers,
                       _settings(folder, servers, queue_depth))
        world.counts = ChaosCounts(seed, queue_depth, interactions=jobs)
        process = _Process()
        fake_ref = [await process.enter(world)]
        try:
            await _play(world, fake_ref, process, jobs, users, restarts, pace, drain_timeout)
            await _count(world, fake_ref[0])
        finally:
            await process.aclose()
            for server in servers:
                await server.close()
            shutil.rmtree(folder, ignore_errors=True)
    world.counts.seconds = time.monotonic() - started
    return world.counts


async def _play(world: _World, fake_ref: list[FakeDiscord], process: _Process, jobs: int, users: int,
                restarts: int, pace: float, drain_timeout: float) -> None:
    stop = asyncio.Event()
    world.open.set()
    chaos = asyncio.create_task(_faults(world, stop))
    submitting = asyncio.create_task(_submit(world, fake_ref, jobs, users, pace))
    window = jobs * pace
    for number in range(1, restarts + 1):
        await asyncio.sleep(window / (restarts + 1))
        await _restart(world, fake_ref, process)
    await submitting
    stop.set()
    await chaos
    await _drain(world, fake_ref[0], drain_timeout)
