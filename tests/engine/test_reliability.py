"""The last reliability gaps: a job moved off a server that stopped answering never runs there as well
once it answers again, and a websocket that stays open but goes silent while a job runs: the job is
settled from the server's queue and history, and the socket, noticed (the server's queue changed, yet
no ``status`` came) while work is in flight, is reconnected."""

from __future__ import annotations

import asyncio

from engine.jobs.progress import JobState

from .jobkit import catalog, eventually, fakes, start_runtime  # noqa: F401


async def _queued_on(runtime, name: str, job) -> None:
    await eventually(lambda: job.backend is not None and job.backend.name == name and job.prompt_id)


async def test_a_job_moved_off_a_dead_server_is_withdrawn_there_when_it_answers_again(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()  # b1 takes nothing: the job waits in its queue
    job = await runtime.submit("slow", {"steps": 2})
    await _queued_on(runtime, "b1", job)
    moved = job.prompt_id
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die()  # refused: the job moves, and the withdrawal sent to b1 cannot arrive
    result = await asyncio.wait_for(job.result(), 20)
    assert result.backend == "b2" and moved in one.state.pending_ids()

    await one.state.revive()  # still paused: the moved prompt waits in b1's queue …
    await eventually(lambda: moved not in one.state.pending_ids(), timeout=10)  # … until withdrawn
    one.state.resume()
    await asyncio.sleep(0.3)
    assert one.state.history.get(moved) == {} and runtime.pool.get("b1").owed == set()


async def test_a_moved_job_that_already_started_there_is_interrupted(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()
    job = await runtime.submit("slow", {"steps": 200})
    await _queued_on(runtime, "b1", job)
    moved = job.prompt_id
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die()
    await eventually(lambda: job.backend is not None and job.backend.name == "b2")
    one.state.resume()  # when b1 answers again it has already started the moved prompt
    await one.state.revive()
    await eventually(lambda: one.state.history.get(moved), timeout=10)
    entry = one.state.history.get(moved)[moved]
    assert entry["status"]["status_str"] != "success"  # interrupted, never run to its end
    assert (await asyncio.wait_for(job.result(), 30)).backend == "b2"


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
