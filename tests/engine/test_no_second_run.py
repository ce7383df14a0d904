"""A job never runs twice on a server because a process stopped at the wrong moment (issue 9 §6, found
by the chaos run): the bot restarts while ``POST /prompt`` waits on a server that hangs; the server
takes the prompt once it answers again, and the new process must follow that prompt, not send the
job a second time."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import WorkflowRejected
from engine.jobs.progress import JobState
from engine.jobs.store import JobStore

from .jobkit import catalog, eventually, fakes, start_runtime  # noqa: F401


def _runs(fake, nonce: int) -> int:
    """How many prompts with this nonce the server ran to success."""
    prompts = {body["prompt_id"] for body in fake.posted
               if any(node["inputs"].get("nonce") == nonce for node in body["prompt"].values())}
    return sum(1 for event, prompt_id in fake.hub.log if event == "execution_success" and prompt_id in prompts)


async def test_a_restart_while_post_prompt_hangs_follows_the_prompt_the_server_took_later(tmp_path, fakes,
                                                                                           start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "restart.db"
    first = await start_runtime(fake, store_path=store_path)
    await fake.state.die("hang")  # it still counts as up: the job is sent there, and its POST waits
    job = await first.submit("text", {"text": "once", "nonce": 77})
    await eventually(lambda: fake.state.http.held["/prompt"] == 1)
    await first.close()  # the process stops (SIGTERM) while the answer to POST /prompt is outstanding
    async with await JobStore.open(str(store_path)) as store:
        record = await store.get(job.id)
    assert record is not None and record.state == "queued" and record.backend == "b1" and record.prompt_id

    await fake.state.revive()  # it answers again and handles the POST it held: the prompt runs there
    await eventually(lambda: fake.state.history.get(record.prompt_id) != {})
    second = await start_runtime(fake, store_path=store_path)
    [resumed] = await second.resume()
    result = await asyncio.wait_for(resumed.result(), 10)
    assert result.texts == ["once"] and resumed.prompt_id == record.prompt_id
    assert len(fake.state.posted) == 1 and _runs(fake.state, 77) == 1
    assert (await second.get(job.id)).state == JobState.DONE.value


async def test_a_moved_job_whose_new_post_does_not_arrive_is_recorded_where_it_was(tmp_path, fakes, start_runtime):
    """Between two tries of a move (a refused or failed POST) a restart must find the prompt the job
    left behind (owed a withdrawal there), never one that is nowhere: the new record is undone."""
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()  # the job waits in b1's queue
    job = await runtime.submit("text", {"text": "moved", "nonce": 78})
    await eventually(lambda: job.prompt_id is not None and job.backend.name == "b1")
    moved = job.prompt_id
    two.state.reject_next()  # b2 answers the move's POST with a 400: nothing of it arrives there
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die()  # b1 is gone with the prompt: the job is moved
    with pytest.raises(WorkflowRejected):
        await asyncio.wait_for(job.result(), 10)
    record = await runtime.get(job.id)
    assert (record.backend, record.prompt_id, record.state) == ("b1", moved, "failed")
    assert two.state.posted == [] and runtime.pool.get("b1").owed == {moved}


async def test_a_job_queued_on_a_server_that_answers_errors_stays_there_and_runs_once(fakes, start_runtime):
    """A server that answers 500 (or hangs) is alive: it may still run what waits in its queue. Marked
    down, it gets the withdrawal, but when that fails too the job is not sent elsewhere (it ran on
    both); it keeps following the prompt there. (A server that refuses connections crashed: see
    test_reliability, the job moves.)"""
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()  # the job waits in b1's queue
    job = await runtime.submit("text", {"text": "stays", "nonce": 79})
    await eventually(lambda: job.prompt_id is not None and job.backend.name == "b1")
    queued = job.prompt_id
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    one.state.fail_http("/queue", times=1000)  # health checks and the withdrawal answer 500
    await eventually(lambda: not runtime.pool.get("b1").up)
    await asyncio.sleep(0.5)  # the job had every chance to move
    assert job.backend.name == "b1" and job.prompt_id == queued and two.state.posted == []
    one.state.http.failures.clear()
    one.state.resume()
    result = await asyncio.wait_for(job.result(), 10)
    assert result.backend == "b1" and result.texts == ["stays"]
    assert two.state.posted == [] and _runs(one.state, 79) == 1
