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
    runtime = await start_runtime(one, two, settings=DISPATCH)
    one.state.pause()
    two.state.pause()
    jobs = [await runtime.submit("slow", {"steps": 1}, owner=f"u{n % 3}") for n in range(8)]
    await eventually(lambda: len(one.state.posted) + len(two.state.posted) == 2)
    await one.state.die("refuse")
    two.state.resume()
    results = await asyncio.gather(*(job.result() for job in jobs))
    assert len(results) == 8 and {job.backend.name for job in jobs if job.backend} == {"b2"}


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
