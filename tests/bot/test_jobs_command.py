"""/jobs on the offline stack: a user's recent jobs paginated with jump links, admins see everyone's queued
and running jobs and cancel any (a queued one leaves the queue, the running one goes on), users cancel
only their own (refusals through the access policy)."""

from __future__ import annotations

import asyncio
import time

import pytest
from discord.webhook.async_ import async_context

from bot.access import NOT_YOURS
from bot.commands.jobs import NOT_YOURS_VIEW
from engine import JobRecord

from .payloads import CHANNEL_ID, GUILD_ID, USER_ID
from .stack import flow_catalog, running_stack

ADMIN, ALICE, BOB = USER_ID + 1, USER_ID + 2, USER_ID + 3


@pytest.fixture
async def stack(fake_comfy, tmp_path):
    fake_comfy.state.time_scale = 1.0  # seeded's steps take their real 0.2 s
    async with running_stack(fake_comfy.url, tmp_path / "db" / "jobs.sqlite3", flow_catalog(tmp_path / "m"),
                             admin_user_ids=[ADMIN]) as stack:
        yield stack


def begin(stack, payload: dict) -> None:
    """Dispatch without waiting for the job it starts."""
    token = async_context.set(stack.fake.webhook)
    try:
        stack.fake.client._connection.parse_interaction_create(payload)
    finally:
        async_context.reset(token)


async def until(check, timeout: float = 15.0):
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
    return found


async def jobs_answer(stack, user_id: int) -> tuple[dict, dict]:
    """/jobs as ``user_id``: the answer's data and the message it became (to click on)."""
    payload = stack.fake.slash_payload("jobs", {}, user_id=user_id)
    await stack.dispatch(payload)
    answer = stack.fake.callbacks()[-1]
    assert answer["type"] == 4 and answer["data"]["flags"] & 64
    return answer["data"], stack.fake.webhook._messages.by_key[f"{payload['token']}/@original"]


def components(message: dict) -> list[dict]:
    return [c for row in message["components"] for c in row["components"]]


async def click(stack, message: dict, user_id: int, *, label: str | None = None, values: list[str] | None = None):
    component = next(c for c in components(message) if (values is not None and c["type"] == 3)
                     or (label is not None and c.get("label") == label))
    await stack.dispatch(stack.fake.component_payload(component["custom_id"], component_type=component["type"],
                                                      values=values, message=message, user_id=user_id))


async def test_a_users_recent_jobs_page_with_jump_links_and_others_stay_hidden(stack):
    now = time.time()
    for number in range(12):
        await stack.store.create(JobRecord(f"mine{number:02}", "canvas", state="done", owner=str(USER_ID),
                                           created_at=now - 60 * number,
                                           extra={"channel_id": CHANNEL_ID, "message_id": 1000 + number,
                                                  "guild_id": GUILD_ID}))
    await stack.store.create(JobRecord("theirs", "canvas", state="queued", owner=str(BOB)))

    data, message = await jobs_answer(stack, USER_ID)
    embed = data["embeds"][0]
    lines = embed["description"].split("\n")
    assert embed["footer"]["text"] == "page 1/2 · 12 job(s)" and len(lines) == 10
    assert f"[message](https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/1000)" in lines[0]
    assert "Canvas" in lines[0] and "done" in lines[0] and "theirs" not in embed["description"]
    buttons = {c["label"]: c for c in components(message) if c["type"] == 2}
    assert buttons["◀"].get("disabled") and not buttons["▶"].get("disabled")
    assert not [c for c in components(message) if c["type"] == 3]  # nothing of theirs to cancel

    await click(stack, message, USER_ID, label="▶")
    turned = stack.fake.callbacks()[-1]
    assert turned["type"] == 7 and turned["data"]["embeds"][0]["footer"]["text"] == "page 2/2 · 12 job(s)"
    assert len(turned["data"]["embeds"][0]["description"].split("\n")) == 2

    message = {**message, "components": turned["data"]["components"]}  # the page the user now sees
    await click(stack, message, BOB, label="◀")  # someone else's list
    assert stack.ephemeral_texts()[-1] == NOT_YOURS_VIEW


async def _running_and_queued(stack, fake_comfy) -> tuple[JobRecord, JobRecord]:
    begin(stack, stack.fake.slash_payload("seeded", {"steps": 20}, user_id=ALICE))
    running = await until(lambda: _state(stack, ALICE, "running"))
    begin(stack, stack.fake.slash_payload("seeded", {"steps": 2}, user_id=BOB))
    queued = await until(lambda: _state(stack, BOB, "queued"))

    async def on_the_server() -> bool:
        return bool(fake_comfy.state.pending)

    await until(on_the_server)  # in ComfyUI's queue behind Alice's job
    return running, queued


async def _state(stack, owner: int, state: str) -> JobRecord | None:
    return next((r for r in await stack.store.recent(owner=str(owner), limit=10) if r.state == state), None)


async def test_an_admin_sees_everyones_queued_and_running_jobs_and_cancels_a_queued_one_only(stack, fake_comfy):
    running, queued = await _running_and_queued(stack, fake_comfy)
    data, message = await jobs_answer(stack, ADMIN)
    text = data["embeds"][0]["description"]
    assert f"<@{ALICE}>" in text and f"<@{BOB}>" in text and running.job_id[:8] in text and queued.job_id[:8] in text
    (select,) = [c for c in components(message) if c["type"] == 3]
    assert {o["value"] for o in select["options"]} == {running.job_id, queued.job_id}

    await click(stack, message, ADMIN, values=[queued.job_id])
    assert (await stack.runtime.get(queued.job_id)).state == "cancelled"
    assert not fake_comfy.state.pending  # gone from ComfyUI's queue
    assert (await stack.runtime.get(running.job_id)).state == "running"  # not interrupted
    done = await until(lambda: _state(stack, ALICE, "done"), timeout=20)
    assert done.job_id == running.job_id


async def test_users_cancel_their_own_queued_jobs_and_never_someone_elses(stack, fake_comfy):
    running, queued = await _running_and_queued(stack, fake_comfy)
    data, message = await jobs_answer(stack, BOB)
    assert running.job_id[:8] not in data["embeds"][0]["description"]
    (select,) = [c for c in components(message) if c["type"] == 3]
    assert [o["value"] for o in select["options"]] == [queued.job_id]

    await click(stack, message, BOB, values=[running.job_id])  # a forged choice: Alice's job
    assert stack.ephemeral_texts()[-1] == NOT_YOURS
    assert (await stack.runtime.get(running.job_id)).state == "running"

    await click(stack, message, BOB, values=[queued.job_id])
    assert (await stack.runtime.get(queued.job_id)).state == "cancelled"
    await until(lambda: _state(stack, ALICE, "done"), timeout=20)
