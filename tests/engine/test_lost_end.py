"""A running job whose last messages were lost while its server's websocket stayed open and busy (a
server that hung for a moment while the job ended, found by the chaos run) is settled from the
server's queue and history within a few polls — not failed at its timeout."""

from __future__ import annotations

import asyncio
import contextlib

from engine.jobs.progress import JobState

from .jobkit import catalog, eventually, fakes, start_runtime  # noqa: F401


async def _chatter(fake) -> None:
    """Other traffic on the socket (``status`` broadcasts): it is open and not silent."""
    while True:
        fake.broadcast_status()
        await asyncio.sleep(0.02)


async def test_a_running_job_whose_end_messages_were_lost_settles_from_history(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 40})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    fake.state.hub.muted = True  # the job's end is never told …
    await eventually(lambda: fake.state.history.get(job.prompt_id))
    fake.state.hub.muted = False  # … while the socket goes on delivering other messages
    chatter = asyncio.create_task(_chatter(fake.state))
    try:
        result = await asyncio.wait_for(job.result(), 5)  # its timeout is 60 s
    finally:
        chatter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chatter
    assert len(result.outputs) == 1 and (await runtime.get(job.id)).state == "done"
    assert runtime.pool.get("b1").events.reconnects == 0  # settled by polling, not by a reconnect
