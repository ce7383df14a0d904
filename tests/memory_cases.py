"""Memory cases of issue 7, each run in a process of its own (``tests/bounded_process.py``):
``python -m tests.memory_cases CASE ARGS…`` prints one line, ``outcome: …``, and exits 0.

- ``frame SIZE``                 a websocket message of SIZE bytes while a job runs
- ``answer ROUTE SIZE declared|chunked``  an HTTP answer of SIZE bytes: ``/object_info`` at
                                 start-up, ``/history`` when a job ends
- ``grid COUNT SIDE``            the result of a job with COUNT decompression-bomb PNGs of SIDE²

The fake ComfyUI streams the hostile bytes (it never holds them), so the process's peak memory is
what the engine and the bot keep of them.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from aiohttp.test_utils import TestServer

from engine import Catalog, ComfyError, EngineError, JobState, JobStore, Runtime, load_workflow
from tests.bounded_process import ROOT, png_bomb
from tests.fake_comfy import FakeComfy, HugeFrame, Streamed, make_app

MANIFESTS = ROOT / "manifests"


async def _serving(folder: Path) -> tuple[FakeComfy, TestServer]:
    fake = FakeComfy(folder / "comfy", time_scale=0.05)
    server = TestServer(make_app(fake))
    await server.start_server()
    fake.attach(server)
    return fake, server


async def _runtime(server: TestServer, folder: Path, *names: str) -> Runtime:
    catalog = Catalog({name: load_workflow(MANIFESTS / f"{name}.yaml") for name in names})
    return Runtime(catalog, [("gpu1", str(server.make_url("")))], await JobStore.open(str(folder / "jobs.db")),
                   health_interval=0.2)


async def frame(folder: Path, size: str) -> str:
    fake, server = await _serving(folder)
    runtime = await _runtime(server, folder, "slow-canvas")
    await runtime.start()
    job = await runtime.submit("slow-canvas", {"steps": 50, "seconds_per_step": 0.2})
    while job.state is not JobState.RUNNING:
        await asyncio.sleep(0.02)
    fake.send_raw(HugeFrame(int(size)))
    try:
        await job.result()
        return "the job finished"
    except EngineError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await runtime.close()
        await runtime.store.close()
        await server.close()


async def answer(folder: Path, route: str, size: str, how: str) -> str:
    fake, server = await _serving(folder)
    fake.answer(route, Streamed(int(size)), chunked=how == "chunked", times=1000)
    runtime = await _runtime(server, folder, "canvas")
    try:
        await runtime.start()  # a backend whose answers break a limit stays down; start-up goes on
        if route == "/object_info":
            return f"up={runtime.status()[0].up}; {runtime.pool.get('gpu1').problem}"
        job = await runtime.submit("canvas", {})
        try:
            await job.result()
            return "the job finished"
        except ComfyError as exc:
            return f"{type(exc).__name__}: {exc}"
    finally:
        await runtime.close()
        await runtime.store.close()
        await server.close()


async def grid(folder: Path, count: str, side: str) -> str:
    from bot.delivery.message import fit_outputs
    from engine import OutputFile

    bomb = png_bomb(int(side), int(side))
    outputs = [OutputFile(bomb, "image/png", "image", f"{n}.png", "9") for n in range(int(count))]
    files, notices = await fit_outputs(outputs, limit=8 * 1024 * 1024)
    small = [OutputFile(bomb, "image/png", "image", "big.png", "9")]
    _, refused = await fit_outputs(small, limit=len(bomb) // 2)  # must be re-encoded: refused undecoded
    return f"{len(bomb)} bytes each; files={[f.filename for f in files]}; notices={notices + refused}"


CASES = {"frame": frame, "answer": answer, "grid": grid}


def main(argv: list[str]) -> int:
    case, *args = argv
    with tempfile.TemporaryDirectory() as folder:
        print("outcome:", asyncio.run(CASES[case](Path(folder), *args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
