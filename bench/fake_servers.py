"""Serve N fake ComfyUIs from one separate process, the way real servers run beside the bot.

    python bench/fake_servers.py N [TIME_SCALE]   # prints one JSON line {"urls": [...]} once listening

``TIME_SCALE`` (default 0) multiplies SlowProgress' seconds per step: 0 runs every node at once.

Each fake also answers ``GET /_bench/websockets`` with how many websockets it has accepted, so the
benchmark can check "one websocket per backend" from outside. Runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.fake_comfy import FakeComfy, make_app  # noqa: E402


def counting_app(fake: FakeComfy) -> web.Application:
    accepted = [0]
    register = fake.hub.register

    def counting(sid, ws):
        accepted[0] += 1
        register(sid, ws)

    fake.hub.register = counting
    app = make_app(fake)

    async def websockets(_request):
        return web.json_response({"accepted": accepted[0]})

    app.router.add_get("/_bench/websockets", websockets)
    return app


async def serve(count: int, root: Path, time_scale: float = 0.0) -> None:
    await serve_apps([counting_app(FakeComfy(root / f"comfy{i}", time_scale=time_scale)) for i in range(count)])


async def serve_apps(apps: list[web.Application]) -> None:
    """Each app on a free local port; their URLs printed as one JSON line; served until the parent
    closes our stdin."""
    runners, urls = [], []
    for app in apps:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[-1][:2]
        urls.append(f"http://{host}:{port}")
        runners.append(runner)
    print(json.dumps({"urls": urls}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent goes away
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(serve(int(sys.argv[1]), Path(tmp), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
