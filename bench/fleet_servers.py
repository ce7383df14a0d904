"""Fake ComfyUIs for ``bench_fleet.py``, several per process, each with its own speed and model set.

    python bench/fleet_servers.py '[{"scale": 1.0, "models": ["a.safetensors"]}, ...]'

Prints one JSON line ``{"urls": [...]}`` once listening and runs until stdin closes. Each fake answers
``GET /_bench/stats``: its busy intervals (``time.monotonic()``, the same clock as the engine's on
Linux), how many prompts it ran, and how many prompts it was sent whose checkpoint it does not have
(counted before validation: what routing must never do).
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.fake_comfy import FakeComfy, make_app  # noqa: E402
from tests.fake_comfy import executor  # noqa: E402
from tests.fake_comfy.templates import object_info_snapshot  # noqa: E402

from fake_servers import serve_apps  # noqa: E402  (bench/ is this script's folder)

CHECKPOINT = "CheckpointLoaderSimple"
STATS: dict[int, dict] = {}


def _instrument() -> None:
    execute = executor.PromptRun.execute

    async def timed(self):
        start = time.monotonic()
        try:
            return await execute(self)
        finally:
            stats = STATS[id(self.fake)]
            stats["busy"].append((start, time.monotonic()))
            stats["ran"] += 1

    executor.PromptRun.execute = timed


def fleet_app(fake: FakeComfy, models: list[str]) -> web.Application:
    stats = STATS.setdefault(id(fake), {"busy": [], "ran": 0, "incapable": 0})

    @web.middleware
    async def count_incapable(request, handler):
        if request.method == "POST" and request.path.endswith("/prompt"):
            body = await request.json()
            for node in (body.get("prompt") or {}).values():
                if isinstance(node, dict) and node.get("class_type") == CHECKPOINT \
                        and node.get("inputs", {}).get("ckpt_name") not in models:
                    stats["incapable"] += 1
        return await handler(request)

    app = make_app(fake)
    app.middlewares.append(count_incapable)

    async def report(_request):
        return web.json_response(stats)

    app.router.add_get("/_bench/stats", report)
    return app


async def serve(specs: list[dict], root: Path) -> None:
    _instrument()
    base = object_info_snapshot(shared=True)
    apps = []
    for i, spec in enumerate(specs):
        info = copy.deepcopy(base)
        info[CHECKPOINT]["input"]["required"]["ckpt_name"][0] = list(spec["models"])
        fake = FakeComfy(root / f"comfy{i}", object_info=info, time_scale=spec["scale"])
        apps.append(fleet_app(fake, spec["models"]))
    await serve_apps(apps)

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(serve(json.loads(sys.argv[1]), Path(tmp)))
