"""Runtime facade: the bundled manifest end to end, restart/resume from the store, choices, status."""

from __future__ import annotations

import dataclasses

import pytest

from engine.errors import ComfyUnavailable, EngineError, ParamError
from engine.jobs.progress import JobState
from engine.runtime import ImageInput
from engine.jobs.store import JobRecord, JobStore
from engine.limits import DEFAULT_LIMITS

from .jobkit import SETTINGS, catalog, collect, eventually, fakes, pixel, png, start_runtime  # noqa: F401

CAPS = dataclasses.replace(DEFAULT_LIMITS, max_image_pixels=1000)


async def test_bundled_canvas_manifest_end_to_end(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("canvas", {"color": "Red", "width": 40, "height": 24})
    assert runtime.job(job.id) is job
    events = await collect(job)
    result = await job.result()
    assert events[-1].state is JobState.DONE
    await eventually(lambda: runtime.job(job.id) is None)  # forgotten once its task has ended
    [image] = result.outputs
    assert (image.kind, image.node_id) == ("image", "2") and pixel(image.data) == (255, 0, 0)
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(image.data)).size == (40, 24)
    assert (await runtime.get(job.id)).values == {"color": 16711680, "width": 40, "height": 24, "batch": 1}


async def test_unknown_workflow_and_stray_images_are_refused(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    with pytest.raises(EngineError, match="no workflow named 'nope'"):
        await runtime.submit("nope", {})
    with pytest.raises(ParamError) as caught:
        await runtime.submit("canvas", {}, images={"color": ImageInput(png(), "x.png")})
    assert caught.value.param == "color"


async def test_images_are_checked_by_decoding_before_anything_is_sent(fakes, start_runtime):
    (server,) = await fakes(1)
    runtime = await start_runtime(server, limits=CAPS)
    for data, problem in [(b'{"not": "an image"}', "could not be read"), (png(size=(40, 40)), "over 1,000 pixels")]:
        with pytest.raises(ParamError) as err:
            await runtime.submit("invert", {}, images={"image": ImageInput(data, "in.png")})
        assert err.value.param == "image" and problem in err.value.problem
    assert server.state.posted == [] and (await runtime.store.recent()) == []


async def test_status_and_choices_never_show_urls(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    statuses = runtime.status()
    assert [(s.name, s.up) for s in statuses] == [("b1", True), ("b2", True)]
    assert all("127.0.0.1" not in repr(s) for s in statuses)
    assert "lanczos" in runtime.choices("ImageScale.upscale_method")
    assert runtime.choices("NoSuch.input") == []


async def test_resume_collects_a_job_that_finished_while_we_were_away(tmp_path, fakes, start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "restart.db"
    first = await start_runtime(fake, store_path=store_path)
    job = await first.submit("slow", {"steps": 20}, owner="9", extra={"message_id": 5})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    await first.close()  # the process stops: the job stays unfinished in the store
    async with await JobStore.open(str(store_path)) as store:
        assert (await store.get(job.id)).state == "running"
    await eventually(lambda: fake.state.history.get(job.prompt_id) != {})

    second = await start_runtime(fake, store_path=store_path)
    [resumed] = await second.resume()
    assert resumed.id == job.id and resumed.prompt_id == job.prompt_id
    result = await resumed.result()
    assert len(result.outputs) == 1 and pixel(result.outputs[0].data) == (0, 0, 255)
    row = (await second.get(job.id))
    assert (row.state, row.owner, row.extra) == ("done", "9", {"message_id": 5})
    assert [o["filename"] for o in row.outputs] == [result.outputs[0].filename]
    assert len(fake.state.posted) == 1  # collected, not run again


async def test_resume_follows_a_job_still_running(tmp_path, fakes, start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "running.db"
    first = await start_runtime(fake, store_path=store_path)
    job = await first.submit("slow", {"steps": 60})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    await first.close()
    second = await start_runtime(fake, store_path=store_path)
    [resumed] = await second.resume()
    events = await collect(resumed)
    assert events[-1].state is JobState.DONE and (await second.get(job.id)).state == "done"
    assert len(fake.state.posted) == 1


async def _orphan(store_path, **fields) -> JobRecord:
    record = JobRecord(fields.pop("job_id", "orphan"), fields.pop("manifest", "text"), **fields)
    async with await JobStore.open(str(store_path)) as store:
        await store.create(record)
    return record


async def test_resume_fails_jobs_the_server_does_not_know(tmp_path, fakes, start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "lost.db"
    await _orphan(store_path, values={"text": "x", "nonce": 0}, backend="b1", prompt_id="never-queued-here",
            state="running")
    await _orphan(store_path, job_id="gone-wf", manifest="deleted-manifest")
    await _orphan(store_path, job_id="gone-backend", backend="b9", prompt_id="p", values={"text": "x", "nonce": 0})
    runtime = await start_runtime(fake, store_path=store_path)
    jobs = {job.id: job for job in await runtime.resume()}
    for job_id in ("orphan", "gone-backend"):
        with pytest.raises(ComfyUnavailable, match="lost during restart"):
            await jobs[job_id].result()
        assert (await runtime.get(job_id)).state == "failed"
    assert "gone-wf" not in jobs and (await runtime.get("gone-wf")).error.startswith("lost during restart")
    assert (await runtime.get("orphan")).error == "lost during restart"


async def test_resume_resubmits_never_queued_jobs_unless_their_image_is_gone(tmp_path, fakes, start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "unqueued.db"
    await _orphan(store_path, job_id="plain", values={"text": "again", "nonce": 3})
    await _orphan(store_path, job_id="needs-image", manifest="invert", values={"image": "in.png"})
    runtime = await start_runtime(fake, store_path=store_path)
    jobs = {job.id: job for job in await runtime.resume()}
    assert (await jobs["plain"].result()).texts == ["again"]
    with pytest.raises(ComfyUnavailable, match="input image is gone"):
        await jobs["needs-image"].result()
    assert (await runtime.get("plain")).state == "done" and (await runtime.get("plain")).prompt_id
    assert (await runtime.get("needs-image")).state == "failed"


async def test_close_leaves_queued_jobs_resumable(tmp_path, fakes, start_runtime):
    [fake] = await fakes()
    store_path = tmp_path / "queued.db"
    first = await start_runtime(fake, store_path=store_path)
    fake.state.pause()
    job = await first.submit("text", {"nonce": 11})
    await eventually(lambda: job.progress.queue_position == 1)
    await first.close()
    fake.state.resume()
    second = await start_runtime(fake, store_path=store_path)
    [resumed] = await second.resume()
    assert (await resumed.result()).texts == ["hello"]
    assert (await second.get(job.id)).state == "done"
