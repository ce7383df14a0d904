"""Flow details on the full offline stack (fake ComfyUI + real Runtime + harness): cancel, failures,
upload checks, the per-user cap, setup, resuming after a restart, an action whose backend is gone;
plus the pure pieces (fitting a batch into one message, text outputs, stored inputs)."""

from __future__ import annotations

import asyncio
import io

import discord
import pytest
from PIL import Image

from bot.delivery.message import GRID_NAME, fit_outputs, result_fields
from bot.jobs.inputs import StoredInput
from engine.jobs.parts import JobResult
from engine.comfy.outputs import OutputFile
from engine.jobs.progress import JobState

from .payloads import USER_ID, Upload
from .stack import png, running_stack

SLOW_SCALE = 0.1  # seeded: 20 steps × 0.2 s × 0.1 = 0.4 s on the fake


async def _until(predicate, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.01)


async def _running(stack) -> bool:
    return any(r.state == JobState.RUNNING for r in (await stack.jobs()))


async def _start_slow(stack, **context) -> asyncio.Task:
    """A 20-step seeded job dispatched in the background; returns once it runs."""
    task = asyncio.create_task(stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 20}, **context)))
    await _until(lambda: _running(stack))
    return task


async def test_owner_cancels_a_running_job_and_its_message_turns_grey(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        background = await _start_slow(stack)
        (job,) = (await stack.jobs())
        await stack.dispatch(stack.fake.slash_payload("cancel", {"job": job.job_id}, user_id=USER_ID + 1))
        assert stack.ephemeral_texts() == ["You have no job with that id."]  # others' jobs are not revealed

        await stack.dispatch(stack.fake.component_payload(f"dc:cancel:{job.job_id}"))
        await background

        assert (await stack.store.get(job.job_id)).state == JobState.CANCELLED
        followups = [r.payload for r in stack.fake.requests if r.method == "POST" and "/webhooks/" in r.path]
        assert {"content": "Cancelled.", "flags": 64}.items() <= followups[-1].items()
        final = stack.webhook_edits()[-1].payload["embeds"][0]
        assert final["title"] == "⏹️ Seeded canvas: cancelled" and final["description"] == "Cancelled."
        assert stack.flow.guards.cap.running(USER_ID) == 0


async def test_a_failing_workflow_ends_in_a_red_card_with_the_mapped_message(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("test fail", message="kaboom here")
        final = stack.webhook_edits()[-1].payload
        embed = final["embeds"][0]
        assert embed["title"] == "❌ Fail on purpose: failed" and embed["color"] == discord.Colour.red().value
        assert embed["description"].startswith("The workflow failed: ") and "kaboom here" in embed["description"]
        assert "Traceback" not in embed["description"] and "http" not in embed["description"]
        assert (await stack.jobs())[0].state == JobState.FAILED


async def test_an_upload_that_is_not_an_image_replaces_the_thinking_message_and_starts_nothing(
        fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("invert", image=Upload("cat.png", b"not an image at all"))
        assert stack.fake.callbacks() == [{"type": 5}]
        final = stack.webhook_edits()[-1].payload
        assert final["content"] == "image: could not be read as a PNG, JPEG or WebP image"
        assert final["embeds"] == [] and (await stack.jobs()) == []


async def test_a_too_large_upload_is_refused_before_any_download(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog, max_upload_bytes=2048) as stack:
        await stack.slash("invert", image=Upload("big.png", bytes(4096)))
        assert stack.ephemeral_texts() == ["image: the file is larger than 2 KiB"]
        assert not [r for r in stack.fake.requests if r.path.startswith("https://")]  # no CDN download
        assert (await stack.jobs()) == []


async def test_the_per_user_cap_refuses_a_second_job_while_one_runs(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog, max_concurrent_per_user=1) as stack:
        background = await _start_slow(stack)
        await stack.slash("canvas", width=32, height=32)
        assert stack.ephemeral_texts() == ["You already have 1 job running: wait for one to finish."]
        await background
        assert stack.flow.guards.cap.running(USER_ID) == 0
        await stack.slash("canvas", width=32, height=32)
        assert len((await stack.jobs())) == 2


async def test_setup_opens_an_ephemeral_guided_view(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("test setup")
        (answer,) = stack.fake.callbacks()
        assert answer["type"] == 4 and answer["data"]["flags"] & 64
        assert answer["data"]["embeds"][0]["title"].endswith(("Fail on purpose", "Slow canvas"))
        assert answer["data"]["components"]


async def test_a_job_resumed_after_a_restart_finishes_its_message_with_the_bot_token(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog) as first:
        background = await _start_slow(first)
        background.cancel()  # the process stops: runtime.close() detaches the job
        (record,) = (await first.jobs())

    async with running_stack(fake_comfy.url, db_path, catalog) as second:
        (job,) = await second.runtime.resume()
        await second.flow.follow_resumed(second.fake.client, job)

        assert (await second.store.get(record.job_id)).state == JobState.DONE
        edits = second.bot_edits()
        assert edits and all(e.path == f"/channels/{record.extra['channel_id']}/messages/"
                                       f"{record.extra['message_id']}" for e in edits)
        assert edits[-1].files and second.webhook_edits() == []


async def test_an_action_whose_backend_is_gone_says_so(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("canvas", width=32, height=32)
        (source,) = (await stack.jobs())
        (await stack.store.update(source.job_id, backend="retired"))
        await stack.dispatch(stack.fake.component_payload(f"dc:act:{source.job_id}:1:invert"))
        final = stack.webhook_edits()[-1].payload
        assert final["content"] == "image: the server that made output #1 is not available right now"
        assert len((await stack.jobs())) == 1


async def test_job_info_offers_the_kept_upload_and_only_known_params(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("invert", image=Upload("in.png", png()))
        (record,) = (await stack.jobs())
        (await stack.store.update(record.job_id, values={**record.values, "gone": 1}))
        info = await stack.flow.job_info(record.job_id)
        assert info.owner_id == str(USER_ID) and set(info.values) == {"image"}
        assert info.values["image"] == StoredInput(record.extra["inputs"]["image"]["sha256"], "in.png")
        assert await stack.flow.job_info("0" * 32) is None


def _still(colour: tuple[int, int, int], name: str) -> OutputFile:
    return OutputFile(png(40, 30, colour), "image/png", "image", name, "9")


async def test_a_batch_gets_a_grid_first_then_the_originals_that_fit():
    outputs = [_still((255, 0, 0), "a.png"), _still((0, 255, 0), "b.png"), _still((0, 0, 255), "c.png")]
    files, notices = await fit_outputs(outputs, limit=10 * 1024 * 1024)
    assert [f.filename for f in files] == [GRID_NAME, "a.png", "b.png", "c.png"] and notices == []
    with Image.open(io.BytesIO(files[0].data)) as grid:
        assert grid.size == (80, 60)  # 2 columns × 2 rows of 40×30 cells

    files, notices = await fit_outputs(outputs, limit=10 * 1024 * 1024, max_files=2)
    assert [f.filename for f in files] == [GRID_NAME, "a.png"]
    assert notices == ["2 more file(s) did not fit in one message (the grid shows them)."]


async def test_an_output_that_cannot_fit_is_named_in_the_notes():
    outputs = [OutputFile(b"\x00" * 5000, "application/octet-stream", "audio", "noise.bin", "9")]
    files, notices = await fit_outputs(outputs, limit=1000)
    assert files == [] and len(notices) == 1 and notices[0].startswith("#1: This file is too large")


async def test_text_outputs_go_into_the_embed(catalog):
    workflow = catalog["canvas"]
    result = JobResult([], ["A caption the workflow wrote."], {"width": 64}, "local", {})
    fields = await result_fields("ab" * 16, workflow, result, limit=10 * 1024 * 1024, actions=[])
    embed = fields["embeds"][0]
    assert embed.description.startswith("A caption the workflow wrote.") and fields["attachments"] == []


def _deleted(request):
    from types import SimpleNamespace
    raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "Unknown Message")


def _edit_limit(request):
    from types import SimpleNamespace
    raise discord.HTTPException(SimpleNamespace(status=400, reason="Bad Request"),
                                {"code": 30046, "message": "Maximum number of edits to messages older than 1 hour reached"})


@pytest.mark.parametrize("gone", [_deleted, _edit_limit], ids=["deleted", "edit-limit-30046"])
async def test_a_deleted_job_message_gets_the_result_posted_anew(fake_comfy, db_path, catalog, gone):
    from .payloads import older_than

    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        stack.fake.http.responders[("PATCH", "/channels/{channel_id}/messages/{message_id}")] = gone
        await stack.dispatch(stack.fake.slash_payload("canvas", {"width": 32}, created=older_than(16)))

        (job,) = (await stack.jobs())
        (posted,) = [r for r in stack.fake.requests if r.via == "http" and r.method == "POST"]
        assert posted.path == f"/channels/{job.extra['channel_id']}/messages" and posted.files
        assert posted.payload["embeds"][0]["title"] == "✅ Canvas"
        first_message = stack.bot_edits()[0].path.rsplit("/", 1)[1]
        assert str(job.extra["message_id"]).isdigit() and str(job.extra["message_id"]) != first_message
