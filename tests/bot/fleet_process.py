"""One bot process of the fleet test (``test_fleet.py``): the real ``DisComfyBot`` on the offline
Discord, sharing a PostgreSQL job store and a fake ComfyUI with the other processes.

    python -m tests.bot.fleet_process --db-url URL --comfy-url URL --folder DIR --shard N \\
        [--jobs STEPS,STEPS,…] --log FILE

Every request it makes to Discord is appended to ``--log`` as one JSON line the moment it is made
(the test kills this process with SIGKILL and still reads them): ``{"pid", "via", "method",
"path", "payload"}``. ``--jobs`` starts one slow-canvas job per item (that many steps of 1 s at
the fake's time scale), each from its own user, without waiting for them. It prints ``READY``
once set up and runs until SIGTERM (a graceful stop) or SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

from discord.webhook.async_ import async_context

from bot.app import DisComfyBot
from bot.config import Settings
from engine.comfy.client import Timeouts
from engine.jobs.parts import JobSettings

from .harness import FakeDiscord, Request, fake_discord
from .payloads import USER_ID

REPO = Path(__file__).resolve().parents[2]
TOKEN = "MTIz.fleet-token.xyz"
SHARD_COUNT = 2
LEASE_SECONDS = 2.0  # short, so that the test waits seconds for a takeover, not half a minute
RUNTIME = {"health_interval": 0.2, "timeouts": Timeouts(request=2.0, connect=0.5, transfer=3.0),
           "settings": JobSettings(queue_poll=0.05, down_grace=1.0, resume_wait=5.0, cancel_wait=3.0, max_pending=1)}
FLOW = {"edit_interval": 0.05}


class LoggedRequests(list):
    """``fake.requests`` that also writes each request to a file at once (one ``write`` per line)."""

    def __init__(self, path: Path):
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, request: Request) -> None:
        super().append(request)
        line = {"pid": os.getpid(), "via": request.via, "method": request.method, "path": request.path,
                "payload": json.dumps(request.payload, default=str)}
        os.write(self._fd, (json.dumps(line) + "\n").encode())


def settings_for(args: argparse.Namespace) -> Settings:
    manifests = Path(args.folder) / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for name in ("slow-canvas", "invert", "resize"):  # and its actions
        shutil.copy(REPO / "manifests" / f"{name}.yaml", manifests)
    return Settings(discord_token=TOKEN, backends=[{"name": "gpu1", "url": args.comfy_url}],
                    manifests_dir=manifests, workflows_dir=REPO / "workflows",
                    db_path=Path(args.folder) / "jobs.sqlite3", db_url=args.db_url, shard_count=SHARD_COUNT,
                    shard_ids=[args.shard], job_lease_seconds=LEASE_SECONDS, max_concurrent_per_user=8,
                    reload_on_change=False)


def start_job(fake: FakeDiscord, steps: int, user: int) -> None:
    """Feed a slow-canvas command without waiting for it (its task runs the whole job)."""
    payload = fake.slash_payload("test", {"steps": steps, "seconds_per_step": 1.0}, user_id=user)
    token = async_context.set(fake.webhook)
    try:
        fake.client._connection.parse_interaction_create(payload)
    finally:
        async_context.reset(token)


def log_requests(fake: FakeDiscord, path: Path) -> None:
    logged = LoggedRequests(path)
    fake.requests = fake.webhook.requests = fake.http.requests = logged


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    bot = DisComfyBot(settings_for(args), runtime_options=RUNTIME, flow_options=FLOW)
    async with fake_discord(client=bot, tree=bot.tree) as fake:
        log_requests(fake, Path(args.log))
        await bot.setup_hook()
        for n, steps in enumerate(args.jobs):
            start_job(fake, steps, USER_ID + 1 + n)
            await asyncio.sleep(0.2)  # in this order into the store and our queue
        print("READY", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--comfy-url", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--jobs", type=lambda text: [int(item) for item in text.split(",") if item], default=[])
    parser.add_argument("--log", required=True)
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
