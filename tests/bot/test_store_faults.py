"""The job database against the bot (issue 7 classes 1, 2, 4 for the store; issue 9 §6 at start).

On the offline stack (real discord.py objects, the fake ComfyUI, a real SQLite file): a database
locked by another process delays only the jobs that need it, never another user's answer; a result
that cannot be saved is still delivered, with a notice; a tampered row gets a clear answer; a
damaged, locked or too-new database stops ``discomfy run`` with one line.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import pytest

from bot.app import run_bot
from bot.errors import STORE_DOWN
from bot.jobs.flow import NOT_SAVED
from bot.views.buttons import WorkflowGone
from discord.webhook.async_ import async_context
from engine import StoreError
from engine.jobs.progress import JobState

from tests.lockkit import locked

from .stack import running_stack
from .test_check import GOOD_TOKEN, REPO, discord_rest, folders  # noqa: F401  (fixtures)

ANSWER_LIMIT = 3.0  # Discord drops an interaction not answered within 3 s


def fire(stack, payload: dict) -> None:
    """Deliver an interaction as the gateway does, without waiting for what it starts."""
    token = async_context.set(stack.fake.webhook)
    try:
        stack.fake.client._connection.parse_interaction_create(payload)
    finally:
        async_context.reset(token)


async def answered_within(stack, payload: dict) -> float:
    """Seconds until ``payload`` got its first answer (an interaction callback)."""
    before, started = len(stack.fake.callbacks()), time.monotonic()
    fire(stack, payload)
    async with asyncio.timeout(30):
        while len(stack.fake.callbacks()) == before:
            await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_a_database_locked_for_10_s_delays_no_other_answer(fake_comfy, db_path, catalog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("seeded", steps=2)  # a finished job whose buttons are clicked meanwhile
        (done,) = await stack.jobs()
        async with locked(db_path, 10) as holder:
            started, waits = time.monotonic(), []
            for n in range(4):  # spread over the 10 s the other process holds the lock
                waits.append(await answered_within(stack, stack.fake.slash_payload("seeded", {"steps": 2},
                                                                                   user_id=100 + n)))
                await asyncio.sleep(1.0)
            waits.append(await answered_within(stack, stack.fake.component_payload(f"dc:rerun:{done.job_id}",
                                                                                     user_id=200)))
            assert holder.returncode is None, "the lock must still be held while users are answered"
            assert [r.state for r in await stack.jobs()] == [JobState.DONE]  # nothing new could be recorded yet
            await asyncio.wait_for(holder.wait(), 20)  # the full 10 s
            assert time.monotonic() - started >= 9.5
        assert max(waits) < ANSWER_LIMIT, waits
        async with asyncio.timeout(40):  # the jobs were only delayed: every one ends, recorded and posted
            while len([r for r in await stack.jobs() if r.state == JobState.DONE]) < 6:
                await asyncio.sleep(0.1)
        finals = stack.result_edits()
        assert len(finals) == 6 and not any(e.payload.get("content") == NOT_SAVED for e in finals)


async def test_a_result_that_cannot_be_saved_is_delivered_with_a_notice(fake_comfy, db_path, catalog, monkeypatch,
                                                                        caplog):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        original = stack.store.set

        async def failing_set(job_id, **changes):
            raise StoreError("the job database failed (database or disk is full)")

        monkeypatch.setattr(stack.store, "set", failing_set)
        with caplog.at_level(logging.ERROR):
            await stack.slash("seeded", steps=2)
        final = stack.webhook_edits()[-1]
        assert final.files and final.payload["content"] == NOT_SAVED  # the result, and the notice
        (job,) = await stack.jobs()
        assert f"job {job.job_id}: cannot save" in caplog.text and "disk is full" in caplog.text
        monkeypatch.setattr(stack.store, "set", original)


async def test_an_end_state_is_saved_even_when_its_outputs_cannot_be(fake_comfy, db_path, catalog, monkeypatch):
    """The fallback keeps a job from being re-run at every restart."""
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        original = stack.store.set

        async def no_outputs(job_id, **changes):
            if "outputs" in changes:
                raise StoreError("the job database failed (row too big)")
            await original(job_id, **changes)

        monkeypatch.setattr(stack.store, "set", no_outputs)
        await stack.slash("seeded", steps=2)
        (job,) = await stack.jobs()
        assert job.state == JobState.DONE and job.outputs == []
        assert await stack.store.unfinished() == []
        assert stack.webhook_edits()[-1].payload["content"] == NOT_SAVED


@pytest.mark.parametrize("damage", [
    "values_json = '{not json'",
    "values_json = '{\"steps\": \"many\", \"seed\": [1]}'",
    "extra_json = '{\"inputs\": 7, \"channel_id\": \"x\"}'",
    "manifest = 'no-such-workflow'",
    "owner = NULL, values_json = '[]', outputs_json = '\"x\"'",
])
async def test_a_click_on_a_tampered_row_gets_a_clear_answer(fake_comfy, db_path, catalog, damage):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("seeded", steps=2)
        (job,) = await stack.jobs()
        db = sqlite3.connect(db_path)
        db.execute(f"UPDATE jobs SET {damage} WHERE job_id = ?", (job.job_id,))
        db.commit()
        db.close()
        for custom_id in (f"dc:rerun:{job.job_id}", f"dc:seed:{job.job_id}", f"dc:tweak:{job.job_id}:1",
                          f"dc:act:{job.job_id}:1:invert", f"dc:del:{job.job_id}", f"dc:cancel:{job.job_id}"):
            await stack.dispatch(stack.fake.component_payload(custom_id))
        assert stack.fake.errors == []
        answers = stack.fake.callbacks()[1:]
        assert len(answers) == 6 and all(a["type"] in (4, 5, 6, 9) for a in answers)
        texts = [a["data"].get("content") for a in answers if a["type"] == 4]
        assert "Something went wrong." not in texts
        if "no-such-workflow" in damage:  # the row names a workflow the catalog lacks: removed, says the button
            assert str(WorkflowGone("no-such-workflow")) in texts


async def test_a_button_click_while_the_database_cannot_answer_is_told_so(fake_comfy, db_path, catalog,
                                                                          monkeypatch):
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("seeded", steps=2)
        (job,) = await stack.jobs()

        async def busy(*args, **kwargs):
            raise StoreError("the job database is locked by another program")

        monkeypatch.setattr(stack.store, "get", busy)
        waited = await answered_within(stack, stack.fake.component_payload(f"dc:rerun:{job.job_id}"))
        assert waited < ANSWER_LIMIT
        assert stack.fake.callbacks()[-1]["data"]["content"] == STORE_DOWN


# -- discomfy run with a database it cannot use ------------------------------------------------

def _env(monkeypatch, tmp_path, folders, comfy_url: str) -> None:  # noqa: F811
    for name, value in {"DISCORD_TOKEN": GOOD_TOKEN, "COMFYUI_URLS": comfy_url,
                        "DISCOMFY_MANIFESTS_DIR": str(folders), "DISCOMFY_DB_PATH": str(tmp_path / "jobs.db"),
                        "DISCOMFY_WORKFLOWS_DIR": str(REPO / "workflows")}.items():
        monkeypatch.setenv(name, value)


async def _run(discord_rest) -> int:  # noqa: F811
    return await asyncio.wait_for(asyncio.to_thread(run_bot, discord_api=discord_rest.api), 60)


@pytest.mark.parametrize("content", [b"not a database " * 300, b"SQLite format 3\x00" + b"\xee" * 5000])
async def test_discomfy_run_on_a_damaged_database_is_one_line(tmp_path, folders, fake_comfy, discord_rest,  # noqa: F811
                                                             monkeypatch, capfd, content):
    _env(monkeypatch, tmp_path, folders, fake_comfy.url)
    (tmp_path / "jobs.db").write_bytes(content)
    assert await _run(discord_rest) == 1
    err = capfd.readouterr().err
    assert "jobs.db" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "cannot start" in line or "job database" in line]) == 1


async def test_discomfy_run_on_a_locked_database_is_one_line(tmp_path, folders, fake_comfy, discord_rest,  # noqa: F811
                                                            monkeypatch, capfd):
    _env(monkeypatch, tmp_path, folders, fake_comfy.url)
    db = sqlite3.connect(tmp_path / "jobs.db")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    async with locked(tmp_path / "jobs.db", 60):
        assert await _run(discord_rest) == 1
    err = capfd.readouterr().err
    assert "locked" in err and "Traceback" not in err


async def test_discomfy_run_on_a_newer_database_is_one_line(tmp_path, folders, fake_comfy, discord_rest,  # noqa: F811
                                                           monkeypatch, capfd):
    _env(monkeypatch, tmp_path, folders, fake_comfy.url)
    db = sqlite3.connect(tmp_path / "jobs.db")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    assert await _run(discord_rest) == 1
    err = capfd.readouterr().err
    assert "schema version 99" in err and "Traceback" not in err
