"""Our own queue in front of the backends (issue 11 §1), against fake ComfyUIs: jobs wait in the
engine until a backend is ready, fairly across owners; cancel while waiting never reaches ComfyUI;
a backend going down loses nothing waiting; other clients' prompts count as pending; the line
survives a restart; a job goes only where its models are."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace

import aiohttp

from engine.errors import JobCancelled
from engine.jobs.follow import GONE
from engine.jobs.progress import JobState

from .jobkit import SETTINGS, SMALL_INFO, catalog, collect, eventually, fakes, start_runtime  # noqa: F401

import pytest

DISPATCH = replace(SETTINGS, max_pending=0, resume_wait=30.0)  # 0: a backend takes a job only when idle


def started_order(jobs) -> list:
    return sorted(jobs, key=lambda job: job.timings["started"])


async def test_a_newcomer_is_not_stuck_behind_one_users_backlog(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=DISPATCH)
    heavy = [await runtime.submit("slow", {"steps": 2}, owner="heavy") for _ in range(6)]
    await eventually(lambda: heavy[0].state is JobState.RUNNING)
    light = await runtime.submit("slow", {"steps": 2}, owner="light")
    await asyncio.gather(*(job.result() for job in heavy + [light]))
    order = [job.owner for job in started_order(heavy + [light])]
    assert order.index("light") <= 2, order  # after at most the running job and the one granted with it
    assert len(fake.state.posted) == 7


async def test_waiting_jobs_are_told_their_place(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=DISPATCH)
    fake.state.pause()
    jobs = [await runtime.submit("slow", {"steps": 1}, owner=f"u{n}") for n in range(4)]
    await eventually(lambda: [job.progress.line_position for job in jobs[1:]] == [1, 2, 3], timeout=5)
    await eventually(lambda: len(fake.state.posted) == 1)
    await asyncio.sleep(0.3)
    assert len(fake.state.posted) == 1  # the others wait with us, not in ComfyUI's queue
    fake.state.resume()
    await asyncio.gather(*(job.result() for job in jobs))


async def test_cancel_while_waiting_never_touches_comfyui(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=DISPATCH)
    fake.state.pause()
    first = await runtime.submit("slow", {"steps": 1}, owner="a")
    waiting = await runtime.submit("slow", {"steps": 1}, owner="b")
    await eventually(lambda: len(fake.state.posted) == 1)
    await waiting.cancel()
    with pytest.raises(JobCancelled):
        await waiting.result()
    assert waiting.state is JobState.CANCELLED and (await runtime.get(waiting.id)).state == "cancelled"
    assert len(fake.state.posted) == 1 and (await runtime.get(waiting.id)).prompt_id is None
    fake.state.resume()
    await first.result()


async def test_other_clients_prompts_count_as_pending(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=replace(DISPATCH, max_pending=1))
    fake.state.pause()
    graph = json.loads(json.dumps(runtime.catalog["slow"].graph, default=dict))
    async with aiohttp.ClientSession() as session:
        for n in range(2):  # someone else's prompts, straight to ComfyUI
            graph["2"]["inputs"]["nonce"] = 1000 + n
            await session.post(f"{fake.url}/prompt", json={"prompt": graph, "client_id": "someone-else"})
    await eventually(lambda: runtime.pool.get("b1").occupancy >= 2)
    ours = await runtime.submit("slow", {"steps": 1}, owner="a")
    await asyncio.sleep(0.5)
    assert len(fake.state.posted) == 2 and ours.prompt_id is None  # the server is busy enough: we wait
    fake.state.resume()
    await ours.result()
    assert len(fake.state.posted) == 3


async def test_a_backend_going_down_loses_nothing_waiting(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two, settings=replace(DISPATCH, down_grace=10.0))
    one.state.pause()
    two.state.pause()
    jobs = [await runtime.submit("slow", {"steps": 1}, owner=f"u{n % 3}") for n in range(8)]
    await eventually(lambda: len(one.state.posted) + len(two.state.posted) == 2)
    [on_one] = [job for job in jobs if job.prompt_id and job.backend.name == "b1"]
    first = on_one.prompt_id
    await one.state.die("refuse")  # b1 crashes …
    await eventually(lambda: not runtime.pool.get("b1").up)  # (seen: a restart not seen drops the prompt)
    two.state.resume()
    await eventually(lambda: len(two.state.posted) >= 3, timeout=10)  # … the jobs that waited with us go on
    assert on_one.prompt_id == first  # b1 has not said it dropped its prompt: it stays there
    await one.state.revive(restart=True)  # … and restarts without its queue
    one.state.resume()
    results = await asyncio.gather(*(job.result() for job in jobs))
    assert len(results) == 8 and on_one.prompt_id != first  # sent again once b1 answered without it
    assert _successes(one, two) == 8  # every job ran to its end once


async def test_a_prompt_on_a_server_that_never_answers_again_is_not_sent_elsewhere(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two, settings=DISPATCH)
    one.state.pause()
    two.state.pause()
    jobs = [await runtime.submit("slow", {"steps": 1}, owner=f"u{n % 3}") for n in range(6)]
    await eventually(lambda: len(one.state.posted) + len(two.state.posted) == 2)
    [on_one] = [job for job in jobs if job.prompt_id and job.backend.name == "b1"]
    await one.state.die("hang")  # frozen: it may be running the prompt without telling anyone
    two.state.resume()
    outcomes = await asyncio.gather(*(job.result() for job in jobs), return_exceptions=True)
    failed = [job for job, outcome in zip(jobs, outcomes) if isinstance(outcome, Exception)]
    assert failed == [on_one] and str(outcomes[jobs.index(on_one)]) == GONE
    assert [body["prompt_id"] for body in two.state.posted if body["prompt_id"] == on_one.prompt_id] == []
    assert on_one.prompt_id in runtime.pool.get("b1").owed  # withdrawn there once it answers again
    assert _successes(one, two) == 5


def _successes(*fakes) -> int:
    """Prompts that ran to success on these servers (a job run twice counts twice)."""
    return sum(event == "execution_success" for fake in fakes for event, _ in fake.state.hub.log)


async def test_a_job_goes_only_where_its_models_are(fakes, start_runtime, make_fake_comfy):
    info = copy.deepcopy(SMALL_INFO)
    methods = info["ImageScale"]["input"]["required"]["upscale_method"]
    methods[0] = [m for m in methods[0] if m != "bilinear"]
    lacking = await make_fake_comfy(time_scale=0.05, object_info=info)
    [able] = await fakes()
    runtime = await start_runtime(lacking, able, settings=DISPATCH)
    jobs = [await runtime.submit("scale", {"width": 8 + n}, owner="a") for n in range(4)]
    await asyncio.gather(*(job.result() for job in jobs))
    assert lacking.state.posted == [] and len(able.state.posted) == 4


async def test_the_line_survives_a_restart(fakes, start_runtime, tmp_path):
    [fake] = await fakes()
    path = tmp_path / "jobs.db"
    first = await start_runtime(fake, settings=DISPATCH, store_path=path)
    fake.state.pause()
    jobs = [await first.submit("slow", {"steps": 1}, owner=f"u{n}") for n in range(3)]
    await eventually(lambda: len(fake.state.posted) == 1)
    await first.close()  # two jobs were still waiting with us
    fake.state.resume()
    second = await start_runtime(fake, settings=DISPATCH, store_path=path)
    resumed = await second.resume()
    assert sorted(job.id for job in resumed) == sorted(job.id for job in jobs)
    await asyncio.gather(*(job.result() for job in resumed))
    assert len(fake.state.posted) == 3  # the queued one followed, the two waiting ones sent once each
    assert {(await second.get(job.id)).state for job in jobs} == {"done"}


async def test_a_higher_priority_owner_goes_first(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=DISPATCH, priority_of=lambda owner: 5 if owner == "vip" else 0)
    fake.state.pause()
    first = await runtime.submit("slow", {"steps": 1}, owner="a")
    await eventually(lambda: len(fake.state.posted) == 1)
    others = [await runtime.submit("slow", {"steps": 1}, owner=f"u{n}") for n in range(3)]
    vip = await runtime.submit("slow", {"steps": 1}, owner="vip")
    fake.state.resume()
    await asyncio.gather(*(job.result() for job in [first, *others, vip]))
    assert started_order([*others, vip])[0] is vip
