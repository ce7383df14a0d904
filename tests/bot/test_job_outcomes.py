"""Every job ends in exactly one delivered outcome, whatever fails around it (issue 7 class 1), and
a hostile value or server answer ends in one clear message (class 3/4, the bot's side).

Faults are injected where they happen: the inputs folder (a file where the folder should be),
Discord (answers of the fake REST API), the fake ComfyUI (hostile answers), our own code (a bug in
progress drawing or result fitting), a restart with a manifest removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import aiohttp
import discord
import pytest

from bot.jobs.inputs import InputFolder
from engine.jobs.progress import JobState
from tests.bounded_process import png_bomb
from tests.fake_comfy import deep_json

from .payloads import USER_ID, older_than
from .stack import flow_catalog, running_stack

BOT_EDIT = ("PATCH", "/channels/{channel_id}/messages/{message_id}")
SLOW_SCALE = 0.1


def outcome_edit(request) -> bool:
    """A bot-token edit carrying the job's end (a result with files, or a red/grey card)."""
    embeds = (request.payload or {}).get("embeds") or [{}]
    return bool(request.files) or str(embeds[0].get("title", "")).startswith(("❌", "⏹️", "✅"))


def failing(times: int, error, *, only=outcome_edit):
    """A responder: the first ``times`` matching requests fail with ``error()``, the rest go through."""
    left = [times]

    def respond(request):
        if only(request) and left[0] > 0:
            left[0] -= 1
            raise error()
        return NotImplemented
    return respond


def server_error():
    return discord.DiscordServerError(SimpleNamespace(status=503, reason="Service Unavailable"), "try later")


def too_large():
    return discord.HTTPException(SimpleNamespace(status=413, reason="Payload Too Large"),
                                 {"code": 40005, "message": "Request entity too large"})


def outcomes(stack, job) -> list:
    path = f"/channels/{job.extra['channel_id']}/messages/{job.extra['message_id']}"
    return [r for r in stack.bot_edits() if r.path == path and outcome_edit(r)]


async def run_old(stack, command: str = "canvas", **options) -> object:
    """A job whose interaction token has expired: every edit goes through the bot token."""
    await stack.dispatch(stack.fake.slash_payload(command, options or {"width": 32}, created=older_than(16)))
    (job,) = await stack.jobs()
    return job


# -- keeping inputs, slots ------------------------------------------------------------------


async def test_an_unwritable_inputs_folder_costs_the_reruns_not_the_result(fake_comfy, db_path, catalog, tmp_path,
                                                                          caplog):
    from .payloads import Upload
    from .stack import png

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the inputs folder should be")
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        stack.flow.inputs = InputFolder(blocker / "inputs")
        await stack.slash("invert", image=Upload("in.png", png()))
        (job,) = await stack.jobs()
        final = stack.webhook_edits()[-1]
        assert job.state == JobState.DONE and final.files  # the result is posted…
        assert final.payload["content"].startswith("⚠️ The input file could not be kept")  # …and says what is lost
        assert f"job {job.job_id}: its inputs could not be kept" in caplog.text
        assert stack.flow.guards.cap.running(USER_ID) == 0


async def test_the_slot_is_held_while_the_job_runs_not_while_its_follower_lives(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog, max_concurrent_per_user=1) as stack:
        follower = asyncio.create_task(stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 20})))
        while not [r for r in await stack.jobs() if r.state == JobState.RUNNING]:
            await asyncio.sleep(0.01)
        follower.cancel()  # the coroutine following the job dies; the job runs on
        await asyncio.gather(follower, return_exceptions=True)
        (record,) = await stack.jobs()
        job = stack.runtime.job(record.job_id)
        assert job is not None and not job.finished
        assert stack.flow.guards.cap.running(USER_ID) == 1
        await stack.slash("canvas", width=32, height=32)
        assert stack.ephemeral_texts()[-1] == "You already have 1 job running: wait for one to finish."
        await job.result()
        await asyncio.sleep(0)
        assert stack.flow.guards.cap.running(USER_ID) == 0


# -- Discord failing around the outcome ------------------------------------------------------


@pytest.mark.parametrize("error", [server_error, aiohttp.ClientConnectionError, asyncio.TimeoutError],
                         ids=["503", "connection", "timeout"])
async def test_a_transient_failure_delivering_the_result_is_retried_once_delivered(fake_comfy, db_path, catalog,
                                                                                  error):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        stack.flow.delivery_delays = (0.01, 0.01)
        stack.fake.http.responders[BOT_EDIT] = failing(2, error)
        job = await run_old(stack)
        edits = outcomes(stack, job)
        assert len(edits) == 3 and all(e.files for e in edits)  # two failed tries, then the result
        assert job.state == JobState.DONE and "undelivered" not in job.extra


async def test_a_result_discord_refuses_becomes_a_short_failure_text(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        stack.fake.http.responders[BOT_EDIT] = failing(1, too_large)
        job = await run_old(stack)
        refused, told = outcomes(stack, job)
        assert refused.files and not told.files
        assert told.payload["embeds"][0]["description"] == "The result could not be uploaded to Discord."


async def test_an_outcome_discord_never_takes_is_recorded_and_logged(fake_comfy, db_path, catalog, caplog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        stack.flow.delivery_delays = (0.01,)
        stack.fake.http.responders[BOT_EDIT] = failing(100, server_error)
        stack.fake.http.responders[("POST", "/channels/{channel_id}/messages")] = failing(100, server_error,
                                                                                          only=lambda r: True)
        job = await run_old(stack)
        assert job.state == JobState.DONE and job.extra.get("undelivered") is True
        assert f"job {job.job_id}: its outcome could not be delivered to Discord" in caplog.text
        assert stack.flow.guards.cap.running(USER_ID) == 0


# -- our own bugs ----------------------------------------------------------------------------


async def test_a_bug_while_fitting_the_result_still_ends_the_message(fake_comfy, db_path, catalog, monkeypatch,
                                                                    caplog):
    import bot.jobs.flow as flow

    async def broken(*args, **kwargs):
        raise KeyError("a bug of ours")

    monkeypatch.setattr(flow, "result_fields", broken)
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("canvas", width=32, height=32)
        (job,) = await stack.jobs()
        final = stack.webhook_edits()[-1].payload["embeds"][0]
        assert final["title"] == "❌ Canvas: failed" and final["description"] == "Something went wrong."
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [f"job {job.job_id}: unexpected error"] and errors[0].exc_info


async def test_a_bug_while_drawing_progress_costs_the_progress_not_the_result(fake_comfy, db_path, catalog,
                                                                             monkeypatch, caplog):
    import bot.jobs.flow as flow

    async def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(flow, "show_progress", broken)
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("canvas", width=32, height=32)
        (job,) = await stack.jobs()
        assert stack.webhook_edits()[-1].files and job.state == JobState.DONE
        assert f"job {job.job_id}: its progress could not be shown" in caplog.text


# -- after a restart -------------------------------------------------------------------------


async def test_a_job_whose_manifest_was_removed_gets_its_failure_in_its_message(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog) as first:
        task = asyncio.create_task(first.dispatch(first.fake.slash_payload("seeded", {"steps": 20})))
        while not [r for r in await first.jobs() if r.state == JobState.RUNNING]:
            await asyncio.sleep(0.01)
        task.cancel()  # the process stops while the job runs
        (record,) = await first.jobs()

    without = flow_catalog(db_path.parent / "fewer")
    without = type(without)({name: wf for name, wf in without.workflows.items() if name != "seeded"})
    async with running_stack(fake_comfy.url, db_path, without) as second:
        lost = []
        assert await second.runtime.resume(on_lost=lost.append) == []
        assert [r.job_id for r in lost] == [record.job_id] and "no longer exists" in lost[0].error
        await second.flow.deliver_lost(second.fake.client, lost[0])
        (edit,) = second.bot_edits()
        assert edit.path == f"/channels/{record.extra['channel_id']}/messages/{record.extra['message_id']}"
        embed = edit.payload["embeds"][0]
        assert embed["title"] == "❌ seeded: failed" and "seeded no longer exists" in embed["description"]
        assert edit.payload["components"] == []  # no progress bar, no Cancel button left
        assert (await second.store.get(record.job_id)).state == JobState.FAILED


async def test_a_resumed_job_takes_its_owners_slot_until_it_ends(fake_comfy, db_path, catalog):
    fake_comfy.state.time_scale = SLOW_SCALE
    async with running_stack(fake_comfy.url, db_path, catalog) as first:
        task = asyncio.create_task(first.dispatch(first.fake.slash_payload("seeded", {"steps": 20})))
        while not [r for r in await first.jobs() if r.state == JobState.RUNNING]:
            await asyncio.sleep(0.01)
        task.cancel()

    async with running_stack(fake_comfy.url, db_path, catalog, max_concurrent_per_user=1) as second:
        (job,) = await second.runtime.resume()
        following = asyncio.create_task(second.flow.follow_resumed(second.fake.client, job))
        await asyncio.sleep(0.05)
        assert second.flow.guards.cap.running(USER_ID) == 1
        await second.slash("canvas", width=32, height=32)
        assert second.ephemeral_texts()[-1].startswith("You already have 1 job running")
        await following
        assert second.flow.guards.cap.running(USER_ID) == 0 and job.state is JobState.DONE


# -- hostile values and answers, as users see them -------------------------------------------


async def test_text_with_a_lone_surrogate_names_the_param_without_an_error_log(fake_comfy, db_path, catalog,
                                                                               caplog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("test fail", message="bad \ud800 text")
        assert stack.ephemeral_texts() == ["message: contains characters that are not valid text"]
        assert await stack.jobs() == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_server_answer_past_a_limit_is_named_in_the_jobs_message(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        fake_comfy.state.answer("/history", deep_json(10_000), times=50)
        await stack.slash("canvas", width=32, height=32)
        final = stack.webhook_edits()[-1].payload["embeds"][0]
        assert final["title"] == "❌ Canvas: failed"
        assert "nested more than 64 levels deep (limit max_json_depth)" in final["description"]


async def test_pixel_bombs_from_the_server_are_delivered_undecoded(fake_comfy, db_path, catalog):
    bomb = png_bomb(12_000, 12_000)

    def history(request) -> bytes:
        prompt_id = request.path.rsplit("/", 1)[-1]
        images = [{"filename": f"bomb{n}.png", "subfolder": "", "type": "output"} for n in range(3)]
        entry = {"outputs": {"2": {"images": images}}, "status": {"status_str": "success", "completed": True}}
        return json.dumps({prompt_id: entry}).encode()

    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        fake_comfy.state.answer("/history", history, times=5)
        fake_comfy.state.answer("/view", bomb, times=3, content_type="image/png")
        await stack.slash("canvas", width=32, height=32)
        final = stack.webhook_edits()[-1]
        assert [name for name, _ in final.files] == ["bomb0.png", "bomb1.png", "bomb2.png"]  # no grid.jpg
        assert all(data == bomb for _, data in final.files)


async def test_a_command_that_no_longer_exists_is_one_line_not_a_traceback(fake_comfy, db_path, catalog, caplog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("gone-workflow", prompt="x")
        assert stack.ephemeral_texts() == ["This command has changed or is gone; Discord will show the current "
                                           "ones shortly."]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
