"""The last reliability gaps: a job queued on a server that stopped answering moves only once that
server said it will not run it (it may have started it unseen), so it never runs twice; and a
websocket that stays open but goes silent while a job runs: the job is settled from the server's
queue and history, and the socket, noticed (the server's queue changed, yet no ``status`` came)
while work is in flight, is reconnected."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from engine.jobs.progress import JobState

from .jobkit import SETTINGS, catalog, eventually, fakes, start_runtime  # noqa: F401

PATIENT = replace(SETTINGS, down_grace=10.0)  # a server may come back within 10 s


async def _queued_on(runtime, name: str, job) -> None:
    await eventually(lambda: job.backend is not None and job.backend.name == name and job.prompt_id)


async def test_a_job_queued_on_a_server_that_stops_answering_moves_once_that_server_gave_it_up(fakes,
                                                                                                 start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two, settings=PATIENT)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()  # b1 takes nothing: the job waits in its queue
    job = await runtime.submit("slow", {"steps": 2})
    await _queued_on(runtime, "b1", job)
    first = job.prompt_id
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die()  # refused: b1 may still hold the prompt, so the job stays
    await eventually(lambda: not runtime.pool.get("b1").up)
    await asyncio.sleep(0.5)
    assert job.prompt_id == first and two.state.posted == []

    await one.state.revive()  # still paused: the prompt waits in b1's queue until withdrawn …
    result = await asyncio.wait_for(job.result(), 20)  # … and only then the job goes to b2
    assert result.backend == "b2" and first not in one.state.pending_ids()
    one.state.resume()
    await asyncio.sleep(0.3)
    assert one.state.history.get(first) == {} and runtime.pool.get("b1").owed == set()


async def test_a_job_that_started_on_a_frozen_server_unseen_is_followed_there_not_run_twice(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two, settings=PATIENT)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()
    job = await runtime.submit("slow", {"steps": 2})
    await _queued_on(runtime, "b1", job)
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die("hang")  # frozen: no answer, no message …
    await eventually(lambda: not runtime.pool.get("b1").up)
    one.state.resume()  # … while it starts the prompt and runs it to its end
    await eventually(lambda: one.state.history.get(job.prompt_id), timeout=10)
    assert job.progress.state is JobState.QUEUED  # its start was never seen
    await asyncio.sleep(1.5)  # longer than a request may take: b1's silence lasts past every question
    await one.state.revive()
    result = await asyncio.wait_for(job.result(), 20)
    assert result.backend == "b1" and two.state.posted == []  # never sent a second time


async def test_an_open_but_silent_websocket_is_noticed_and_reconnected(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 10})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    fake.state.hub.muted = True  # the socket stays open, HTTP answers, no message arrives any more
    await eventually(lambda: fake.state.history.get(job.prompt_id))  # it ended on the server, unseen
    result = await asyncio.wait_for(job.result(), 10)  # bounded: a few polls, not the timeout
    assert len(result.outputs) == 1 and (await runtime.get(job.id)).state == "done"

    second = await runtime.submit("slow", {"steps": 10})  # work in flight on a socket still silent …
    await eventually(lambda: runtime.pool.get("b1").events.reconnects >= 1, timeout=10)  # … is noticed
    fake.state.hub.muted = False
    assert len((await asyncio.wait_for(second.result(), 10)).outputs) == 1
