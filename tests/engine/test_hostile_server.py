"""A hostile or broken ComfyUI against the runtime (issue 7 §3, §4): answers too big, too deep or
malformed, websocket frames too big or too deep, too many or too large outputs. Each ends in one
clear error naming the limit (the job's outcome, or the backend's health problem at start-up);
nothing hangs, nothing crashes the runtime, and the next job on the same server still runs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.errors import ExecutionFailed, ServerLimitExceeded
from engine.jobs.progress import JobState
from engine.limits import DEFAULT_LIMITS
from tests.fake_comfy import HugeFrame, Streamed, deep_json

from .jobkit import catalog, collect, eventually, fakes, start_runtime  # noqa: F401

KIB, MIB = 1024, 1024 * 1024
SMALL = dataclasses.replace(DEFAULT_LIMITS, max_server_json_bytes=256 * KIB, max_websocket_frame_bytes=256 * KIB,
                            max_output_bytes=1 * MIB, max_output_files=3)


def history_with(files: int = 1, *, text: str | None = None, filename: str = "x.png"):
    """A /history answer for whichever prompt is asked about, listing ``files`` outputs of node 3."""
    def body(request) -> bytes:
        prompt_id = request.path.rsplit("/", 1)[-1]
        ui = {"images": [{"filename": filename, "subfolder": "", "type": "output"} for _ in range(files)]}
        if text is not None:
            ui = {"text": [text]}
        entry = {"outputs": {"3": ui, "1": ui}, "status": {"status_str": "success", "completed": True, "messages": []}}
        return json.dumps({prompt_id: entry}).encode()
    return body


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
async def test_an_answer_over_the_byte_limit_fails_the_job_naming_it(fakes, start_runtime, chunked):
    [fake] = await fakes()
    runtime = await start_runtime(fake, limits=SMALL)
    fake.state.answer("/history", Streamed(8 * MIB), chunked=chunked, times=50)
    job = await runtime.submit("scale", {})
    with pytest.raises(ServerLimitExceeded, match=r"GET /history/\S+ is larger than 256 KiB "
                                                  r"\(limit max_server_json_bytes\)") as caught:
        await job.result()
    assert caught.value.limit == "max_server_json_bytes"
    assert (await collect(job))[-1].state is JobState.FAILED
    fake.state.http.answers.clear()
    assert (await (await runtime.submit("scale", {})).result()).outputs  # the server is used again


async def test_deep_json_at_start_up_leaves_the_backend_down_with_the_reason(fakes, start_runtime):
    [fake] = await fakes()
    fake.state.answer("/object_info", deep_json(200_000), times=10_000)
    runtime = await start_runtime(fake, wait_up=False)  # no RecursionError out of Runtime.start
    backend = runtime.pool.get("b1")
    assert not backend.up
    assert "GET /object_info is nested more than 64 levels deep (limit max_json_depth)" in backend.problem
    fake.state.http.answers.clear()
    await eventually(lambda: backend.up)
    assert backend.problem is None


async def test_deep_json_history_fails_the_job_naming_the_limit(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.answer("/history", deep_json(5000), times=50)
    with pytest.raises(ServerLimitExceeded, match="max_json_depth"):
        await (await runtime.submit("scale", {})).result()


async def test_a_websocket_frame_over_the_limit_fails_the_running_job(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, limits=SMALL)
    job = await runtime.submit("slow", {"steps": 40})
    await eventually(lambda: job.state is JobState.RUNNING)
    fake.state.send_raw(HugeFrame(64 * MIB))
    with pytest.raises(ExecutionFailed, match=r"websocket message larger than 256 KiB "
                                              r"\(limit max_websocket_frame_bytes\)"):
        await job.result()
    backend = runtime.pool.get("b1")
    await eventually(lambda: backend.events.connected)
    assert (await (await runtime.submit("scale", {})).result()).outputs  # reconnected, next job fine


@pytest.mark.parametrize("frame", [
    "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion
    '{"type": "status", "data": {"status": [1, 2]}}',  # status of the wrong shape
    '{"type": "executing", "data": {"node": {"x": 1}, "prompt_id": ["p"]}}',
    "not json at all \ud800",
    '{"type": "progress", "data": {"value": "NaN", "max": 0, "prompt_id": null}}',
], ids=["deep", "status-shape", "executing-shape", "garbage", "progress-nan"])
async def test_odd_websocket_text_is_dropped_and_the_job_goes_on(fakes, start_runtime, frame):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    job = await runtime.submit("slow", {"steps": 8})
    await eventually(lambda: job.state is JobState.RUNNING)
    fake.state.send_raw(frame.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    fake.state.send_raw(b"\x00\x00\x00\x04\xff\xff\xff\xff" + b"{")  # a binary frame lying about its length
    assert (await job.result()).outputs
    assert runtime.pool.get("b1").events.connected


async def test_more_output_files_than_the_limit_fail_the_job(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, limits=SMALL)
    fake.state.answer("/history", history_with(files=4), times=50)
    with pytest.raises(ServerLimitExceeded, match=r"more than 3 output files \(limit max_output_files\)"):
        await (await runtime.submit("scale", {})).result()


async def test_outputs_over_the_byte_budget_fail_the_job(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, limits=SMALL)
    fake.state.answer("/history", history_with(files=2), times=50)
    fake.state.answer("/view", Streamed(700 * KIB), times=10, content_type="image/png")
    with pytest.raises(ServerLimitExceeded, match=r"the job's outputs are larger than 1 MiB \(limit max_output_bytes\)"):
        await (await runtime.submit("scale", {})).result()
    fake.state.answer("/view", Streamed(5 * MIB), times=10, content_type="image/png", chunked=True)
    with pytest.raises(ServerLimitExceeded, match="max_output_bytes"):
        await (await runtime.submit("scale", {})).result()


async def test_server_text_and_file_names_come_out_as_valid_unicode(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    fake.state.answer("/history", history_with(text="caf\udce9 \ud83d"), times=5)
    job = await runtime.submit("text", {})
    result = await job.result()
    assert result.texts == ["caf\ufffd \ufffd"] and job.state is JobState.DONE
    result.texts[0].encode("utf-8")  # storable, printable, sendable


async def test_a_rejection_with_a_broken_body_is_still_a_rejection(fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    for body in ({"node_errors": {"1": {"errors": 5}}}, {"node_errors": {"1": {"errors": [1, "x"]}}}, {"error": []}):
        fake.state.reject_next(body)
        job = await runtime.submit("scale", {})
        with pytest.raises(Exception) as caught:
            await job.result()
        assert type(caught.value).__name__ == "WorkflowRejected"
    fake.state.answer("/prompt", b"{not json", status=400, method="POST")
    with pytest.raises(Exception, match="rejected the workflow"):
        await (await runtime.submit("scale", {})).result()
