"""Jobs against the fake ComfyUI: the happy paths, every fault, and the store rows they leave."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import ComfyTimeout, ComfyUnavailable, ExecutionFailed, JobCancelled, ParamError, WorkflowRejected
from engine.jobs.progress import JobState
from engine.runtime import ImageInput

from .jobkit import catalog, collect, eventually, fakes, pixel, png, start_runtime  # noqa: F401


async def test_job_runs_to_done_with_progress_outputs_and_store_row(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 4}, owner="42", extra={"channel_id": 7})
    events = await collect(job)
    result = await job.result()

    states = [e.state for e in events]
    assert states[0] is JobState.QUEUED and states[-1] is JobState.DONE
    assert JobState.RUNNING in states
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert any(e.step == 4 and e.steps == 4 for e in events)
    assert [f.mime for f in result.outputs] == ["image/png"] and pixel(result.outputs[0].data) == (0, 0, 255)
    assert result.backend == "b1" and result.values["steps"] == 4

    row = (await runtime.get(job.id))
    assert row.state == "done" and row.error is None
    assert (row.manifest, row.owner, row.extra, row.backend) == ("slow", "42", {"channel_id": 7}, "b1")
    assert row.prompt_id == job.prompt_id and row.client_id == runtime.client_id
    assert row.seed == job.values["seed"] and row.values["steps"] == 4
    assert row.queued_at <= row.started_at <= row.finished_at
    assert [o["filename"] for o in row.outputs] == [result.outputs[0].filename]
    [posted] = fake.state.posted
    assert posted["prompt_id"] == job.prompt_id and posted["prompt"]["2"]["inputs"]["nonce"] == row.seed


async def test_text_outputs_and_several_event_consumers(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("text", {"text": "hi there"})
    first, second = await asyncio.gather(collect(job), collect(job))
    assert first[-1].state is second[-1].state is JobState.DONE
    result = await job.result()
    assert result.texts == ["hi there"] and result.outputs == []


async def test_image_param_is_uploaded_and_bound(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("invert", {}, images={"image": ImageInput(png((10, 200, 30)), "in.png")})
    result = await job.result()
    assert pixel(result.outputs[0].data) == (245, 55, 225)
    server_name = fake.state.posted[0]["prompt"]["1"]["inputs"]["image"]
    assert server_name.endswith(".png") and job.values["image"] == server_name
    assert (await runtime.get(job.id)).values["image"] == server_name


async def test_bad_values_raise_param_error_before_anything_is_stored(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    with pytest.raises(ParamError) as caught:
        await runtime.submit("slow", {"steps": 5000})
    assert caught.value.param == "steps"
    assert (await runtime.store.recent()) == [] and fake.state.posted == []


async def test_queue_position_while_queued(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.pause()
    first = await runtime.submit("slow", {"steps": 2})
    second = await runtime.submit("slow", {"steps": 3})
    await eventually(lambda: second.progress.queue_position == 2 and first.progress.queue_position == 1)
    assert (await runtime.get(second.id)).state == "queued" and (await runtime.get(second.id)).prompt_id
    fake.state.resume()
    await asyncio.gather(first.result(), second.result())
    assert second.progress.state is JobState.DONE and second.progress.queue_position is None


async def test_websocket_drop_mid_job_still_completes(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.drop_websockets_after(6)
    job = await runtime.submit("slow", {"steps": 8})
    result = await job.result()
    assert len(result.outputs) == 1 and (await runtime.get(job.id)).state == "done"
    assert runtime.pool.get("b1").events.reconnects >= 1


async def test_http_500_on_prompt_is_retried_on_another_backend(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    one.state.fail_http("/prompt", method="POST", times=1)  # b1 is picked first: same load, name order
    job = await runtime.submit("text", {"nonce": 1})
    result = await job.result()
    assert result.texts == ["hello"] and result.backend == "b2"
    assert (len(one.state.posted), len(two.state.posted)) == (0, 1)
    assert (await runtime.get(job.id)).backend == "b2"


async def test_http_500_with_no_other_backend_fails_clearly(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.fail_http("/prompt", method="POST", times=5)
    job = await runtime.submit("text", {"nonce": 2})
    with pytest.raises(ComfyUnavailable) as caught:
        await job.result()
    assert "HTTP 500" in str(caught.value) and "127.0.0.1" not in str(caught.value)
    row = (await runtime.get(job.id))
    assert row.state == "failed" and row.error == str(caught.value) and row.prompt_id is None
    assert job.progress.state is JobState.FAILED and job.progress.error == row.error


async def test_slow_answers_within_the_request_timeout_are_waited_for(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.delay("/history", 0.3)
    fake.state.delay("/view", 0.3)
    job = await runtime.submit("text", {"nonce": 3})
    assert (await job.result()).texts == ["hello"]


async def test_slow_prompt_answer_beyond_the_request_timeout_fails_with_timeout(fakes, start_runtime):
    from engine.comfy.client import Timeouts
    [fake] = await fakes()
    runtime = await start_runtime(fake, timeouts=Timeouts(request=0.3, connect=0.3, transfer=1.0))
    fake.state.delay("/prompt", 0.6, method="POST")
    job = await runtime.submit("text", {"nonce": 4})
    with pytest.raises(ComfyTimeout):
        await job.result()
    assert (await runtime.get(job.id)).state == "failed"


async def test_400_node_errors_are_mapped_to_params(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("scale", {"width": 99999})
    with pytest.raises(WorkflowRejected) as caught:
        await job.result()
    assert caught.value.problems == ["width: value 99999 bigger than max 16384"]
    assert (await runtime.get(job.id)).error == "width: value 99999 bigger than max 16384"
    assert job.progress.state is JobState.FAILED and fake.state.posted == []


async def test_a_node_no_server_has_fails_before_queueing(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("alien", {})
    with pytest.raises(ComfyUnavailable, match="no server has node NoSuchNode"):
        await job.result()


async def test_execution_error_fails_naming_the_param(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("fail", {"message": "kaput"})
    events = await collect(job)
    with pytest.raises(ExecutionFailed) as caught:
        await job.result()
    assert str(caught.value) == "message: kaput"
    assert (caught.value.param, caught.value.node_id, caught.value.node_type) == ("message", "2", "FailOnPurpose")
    assert events[-1].state is JobState.FAILED and events[-1].error == "message: kaput"
    assert events[-1].failed_node == "2"
    assert (await runtime.get(job.id)).error == "message: kaput"


async def test_cancel_while_running_interrupts_on_the_server(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 500})
    await eventually(lambda: job.progress.state is JobState.RUNNING and (job.progress.step or 0) >= 1)
    await job.cancel()
    assert job.progress.state is JobState.CANCELLED
    with pytest.raises(JobCancelled):
        await job.result()
    entry = fake.state.history.get(job.prompt_id)[job.prompt_id]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert (await runtime.get(job.id)).state == "cancelled"


async def test_cancel_while_queued_deletes_from_the_queue(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.pause()
    job = await runtime.submit("slow", {"steps": 2})
    await eventually(lambda: job.progress.queue_position == 1)
    await job.cancel()
    assert job.progress.state is JobState.CANCELLED and fake.state.pending == []
    fake.state.resume()
    await asyncio.sleep(0.1)
    assert fake.state.history.get(job.prompt_id) == {}
    assert (await runtime.get(job.id)).state == "cancelled"


async def test_manifest_timeout_cancels_on_the_server(tmp_path, fakes, start_runtime):
    from .jobkit import write_catalog
    [fake] = await fakes()
    runtime = await start_runtime(fake, catalog=write_catalog(tmp_path / "short", timeout=1))
    job = await runtime.submit("slow", {"steps": 1000})
    with pytest.raises(ComfyTimeout, match="longer than 1 s") as caught:
        await job.result()
    assert caught.value.seconds == 1  # carried, not parsed from the text
    await eventually(lambda: fake.state.history.get(job.prompt_id) != {})
    entry = fake.state.history.get(job.prompt_id)[job.prompt_id]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    row = (await runtime.get(job.id))
    assert row.state == "failed" and row.error == "the job took longer than 1 s"


async def _only_b1_up(runtime, one, two):
    """Both backends started; b2 taken down so new jobs land on b1 (whose worker is paused)."""
    await two.state.die()
    await eventually(lambda: not runtime.pool.get("b2").up)
    one.state.pause()


async def test_backend_dying_with_queued_jobs_moves_them_to_another_backend(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    await _only_b1_up(runtime, one, two)
    plain = await runtime.submit("slow", {"steps": 2})
    image = await runtime.submit("invert", {}, images={"image": ImageInput(png((0, 0, 0)), "black.png")})
    await eventually(lambda: plain.progress.queue_position and image.progress.queue_position)
    first_ids = (plain.prompt_id, image.prompt_id)
    await two.state.revive()
    await eventually(lambda: runtime.pool.get("b2").up)
    await one.state.die()

    results = await asyncio.gather(plain.result(), image.result())
    assert [r.backend for r in results] == ["b2", "b2"]
    assert pixel(results[1].outputs[0].data) == (255, 255, 255)  # the upload was redone on b2
    assert {body["prompt_id"] for body in two.state.posted} == {plain.prompt_id, image.prompt_id}
    assert set(first_ids).isdisjoint({plain.prompt_id, image.prompt_id})
    for job in (plain, image):
        row = (await runtime.get(job.id))
        assert (row.state, row.backend, row.prompt_id) == ("done", "b2", job.prompt_id)
    assert plain.values["steps"] == 2 and two.state.posted[0]["prompt"]["2"]["inputs"]["steps"] == 2


async def test_backend_dying_with_a_running_job_fails_it_clearly(fakes, start_runtime):
    one, two = await fakes(2)
    runtime = await start_runtime(one, two)
    job = await runtime.submit("slow", {"steps": 1000})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    dead = (await runtime.get(job.id)).backend
    await (one if dead == "b1" else two).state.die()
    with pytest.raises(ComfyUnavailable, match="the server running this job went away"):
        await job.result()
    row = (await runtime.get(job.id))
    assert row.state == "failed" and row.error == "the server running this job went away"
    assert job.progress.state is JobState.FAILED


async def test_running_job_recovers_when_its_backend_comes_back_in_time(fakes, start_runtime):
    from dataclasses import replace
    from .jobkit import SETTINGS
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=replace(SETTINGS, down_grace=5.0))
    job = await runtime.submit("slow", {"steps": 30})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    await fake.state.die()
    await eventually(lambda: not runtime.pool.get("b1").up)
    await fake.state.revive()
    result = await job.result()
    assert len(result.outputs) == 1 and (await runtime.get(job.id)).state == "done"


async def test_running_job_on_a_hung_backend_is_settled_from_history_when_it_answers_again(fakes, start_runtime):
    """A hung server swallows the websocket messages (the socket stays open, so no reconcile):
    the job polls /queue and /history once the backend is back."""
    from dataclasses import replace
    from .jobkit import SETTINGS
    [fake] = await fakes()
    runtime = await start_runtime(fake, settings=replace(SETTINGS, down_grace=5.0))
    job = await runtime.submit("slow", {"steps": 20})
    await eventually(lambda: job.progress.state is JobState.RUNNING)
    await fake.state.die("hang")
    await eventually(lambda: not runtime.pool.get("b1").up)
    await eventually(lambda: fake.state.history.get(job.prompt_id) != {})
    await fake.state.revive()
    result = await job.result()
    assert len(result.outputs) == 1 and (await runtime.get(job.id)).state == "done"
    assert runtime.pool.get("b1").events.reconnects == 0


async def test_a_failed_download_is_retried_once(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.fail_http("/view", times=1)
    job = await runtime.submit("slow", {"steps": 1})
    assert len((await job.result()).outputs) == 1


async def test_outputs_that_cannot_be_downloaded_fail_the_job(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.fail_http("/view", times=10)
    job = await runtime.submit("slow", {"steps": 1})
    with pytest.raises(ComfyUnavailable, match="downloading an output"):
        await job.result()
    assert (await runtime.get(job.id)).state == "failed"


async def test_no_backend_up_fails_the_job_clearly(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    await fake.state.die()
    await eventually(lambda: not runtime.status()[0].up)
    job = await runtime.submit("text", {"nonce": 5})
    with pytest.raises(ComfyUnavailable, match="no server is up"):
        await job.result()
    assert (await runtime.get(job.id)).error == "no server is up"


async def test_cancel_during_upload_never_queues(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.delay("/upload/image", 0.3)
    job = await runtime.submit("invert", {}, images={"image": ImageInput(png(), "in.png")})
    await asyncio.sleep(0.05)
    await job.cancel()
    assert job.progress.state is JobState.CANCELLED and (await runtime.get(job.id)).state == "cancelled"
    await asyncio.sleep(0.4)
    assert fake.state.posted == [] and fake.state.pending == []


async def test_prompt_removed_from_the_queue_by_someone_else_fails_clearly(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.pause()
    job = await runtime.submit("slow", {"steps": 2})
    await eventually(lambda: job.progress.queue_position == 1)
    fake.state.clear_pending()
    with pytest.raises(ComfyUnavailable, match="dropped this job from its queue"):
        await job.result()


async def test_interrupt_by_someone_else_cancels_the_job(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 500})
    await eventually(lambda: (job.progress.step or 0) >= 1)
    fake.state.interrupt(None)
    with pytest.raises(JobCancelled, match="interrupted on the server"):
        await job.result()
    assert (await runtime.get(job.id)).state == "cancelled"
