"""EventStream against the fake ComfyUI: routing, binary frames, reconnect and reconcile."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.comfy.client import ComfyClient
from engine.comfy.events import LOST_MESSAGE, EventStream
from engine.comfy.wire import Preview, ProgressText, parse_binary_frame
from tests.fake_comfy import DATA_DIR, preview_frame, preview_meta_frame, text_frame


def workflow(name: str) -> dict:
    return json.loads((DATA_DIR / "workflows" / f"{name}.json").read_text())


def slow(steps: int, *, preview: bool = False, text: bool = False) -> dict:
    graph = workflow("b_empty_slowprogress_save")
    graph["2"]["inputs"].update(steps=steps, seconds_per_step=0.2, preview=preview, progress_text=text)
    return graph


@pytest.fixture
async def client(fake_comfy):
    async with ComfyClient(fake_comfy.url, client_id="stream-test", name="fake") as client:
        yield client


@pytest.fixture
async def stream(client):
    stream = EventStream(client, backoff_base=0.01, backoff_cap=0.05, lost_after=0.3, recheck_interval=0.02)
    await stream.start()
    await stream.wait_connected(5)
    yield stream
    await stream.close()


async def until_done(queue: asyncio.Queue, prompt_id: str, timeout: float = 10.0) -> list:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            message = await queue.get()
            seen.append(message)
            if isinstance(message, dict) and message["type"] == "executing" \
                    and message["data"]["node"] is None and message["data"]["prompt_id"] == prompt_id:
                return seen


def kinds(messages: list) -> list[str]:
    return [m["type"] if isinstance(m, dict) else type(m).__name__ for m in messages]


async def test_two_prompts_get_only_their_own_messages(stream, client, fake_comfy):
    first, second = stream.subscribe("p1"), stream.subscribe("p2")
    await client.queue_prompt(slow(3, preview=True, text=True), prompt_id="p1")
    await client.queue_prompt(workflow("f_text_output"), prompt_id="p2")
    seen_first, seen_second = await until_done(first, "p1"), await until_done(second, "p2")
    for prompt_id, seen in (("p1", seen_first), ("p2", seen_second)):
        ids = {m["data"]["prompt_id"] for m in seen if isinstance(m, dict) and m["type"] != "status"}
        assert ids == {prompt_id}
    previews = [m for m in seen_first if isinstance(m, Preview)]
    texts = [m for m in seen_first if isinstance(m, ProgressText)]
    assert len(previews) == 3 and {p.prompt_id for p in previews} == {"p1"} and previews[0].mime == "image/jpeg"
    assert [t.text for t in texts] == ["step 1/3", "step 2/3", "step 3/3"] and texts[0].prompt_id == "p1"
    assert "execution_success" in kinds(seen_second) and "executed" in kinds(seen_second)
    assert stream.finished("p1") and stream.reconnects == 0


async def test_other_clients_prompts_are_not_delivered(stream, fake_comfy):
    mine = stream.subscribe("theirs")
    async with ComfyClient(fake_comfy.url, client_id="someone-else") as other:
        await other.queue_prompt(workflow("f_text_output"), prompt_id="theirs")
        async with asyncio.timeout(5):
            while await other.history("theirs") is None:
                await asyncio.sleep(0.01)
    assert mine.empty()  # neither their messages nor status broadcasts (those go to statuses())


async def test_legacy_previews_are_attributed_to_the_running_prompt(client):
    async with EventStream(client, preview_metadata=False) as stream:
        await stream.wait_connected(5)
        queue = stream.subscribe("legacy")
        await client.queue_prompt(slow(2, preview=True), prompt_id="legacy")
        previews = [m for m in await until_done(queue, "legacy") if isinstance(m, Preview)]
    assert [p.prompt_id for p in previews] == ["legacy", "legacy"] and previews[0].node_id is None


async def test_status_broadcasts_reach_listeners(stream, client):
    statuses = stream.statuses()
    queue = stream.subscribe("s")
    await client.queue_prompt(workflow("f_text_output"), prompt_id="s")
    await until_done(queue, "s")
    values = [statuses.get_nowait() for _ in range(statuses.qsize())]
    assert values[0] == 1 and values[-1] == 0 and stream.queue_remaining == 0


async def test_a_drop_mid_job_still_ends_the_job_live(stream, client, fake_comfy):
    queue = stream.subscribe("drop")
    fake_comfy.state.drop_websockets_after(6, "drop")
    await client.queue_prompt(slow(40), prompt_id="drop")
    seen = await until_done(queue, "drop")
    assert stream.reconnects == 1
    assert kinds(seen).count("execution_success") == 1
    assert "reconciled" not in seen[-1]["data"]


async def test_a_completion_missed_while_disconnected_is_replayed_from_history(stream, client, fake_comfy):
    queue = stream.subscribe("missed")
    await client.queue_prompt(slow(10), prompt_id="missed")
    async with asyncio.timeout(5):
        while ("progress", "missed") not in fake_comfy.state.hub.log:
            await asyncio.sleep(0.001)
    await fake_comfy.state.die()
    async with asyncio.timeout(5):
        while "missed" not in fake_comfy.state.history.entries:
            await asyncio.sleep(0.01)
    await fake_comfy.state.revive()
    seen = await until_done(queue, "missed")
    assert kinds(seen)[-2:] == ["execution_success", "executing"]
    assert seen[-1]["data"]["reconciled"] is True and seen[-2]["data"]["reconciled"] is True
    assert stream.reconnects == 1 and stream.connected


async def test_a_prompt_the_server_forgot_is_reported_lost(stream, client, fake_comfy):
    queue = stream.subscribe("forgotten")
    await client.queue_prompt(slow(500), prompt_id="forgotten")
    async with asyncio.timeout(5):
        while fake_comfy.state.running is None:
            await asyncio.sleep(0.01)
    await fake_comfy.state.die()
    await fake_comfy.state.revive(restart=True)
    seen = await until_done(queue, "forgotten")
    error = next(m["data"] for m in seen if isinstance(m, dict) and m["type"] == "execution_error")
    assert error["exception_message"] == LOST_MESSAGE and error["reconciled"] is True


async def test_an_interrupted_prompt_missed_while_disconnected_replays_the_interruption(stream, client, fake_comfy):
    queue = stream.subscribe("cut")
    await client.queue_prompt(slow(500), prompt_id="cut")
    async with asyncio.timeout(5):
        while fake_comfy.state.running is None:
            await asyncio.sleep(0.01)
    await fake_comfy.state.drop_websockets()
    fake_comfy.state.interrupt("cut")
    seen = await until_done(queue, "cut")
    assert "execution_interrupted" in kinds(seen)


async def test_reconnect_waits_with_backoff_while_the_server_is_down(client, fake_comfy):
    stream = EventStream(client, backoff_base=0.01, backoff_cap=0.02)
    await fake_comfy.state.die()
    await stream.start()
    await asyncio.sleep(0.1)
    assert not stream.connected
    await fake_comfy.state.revive()
    await stream.wait_connected(5)
    assert stream.connected and stream.reconnects == 0
    await stream.close()


@given(st.integers(min_value=1, max_value=60), st.floats(min_value=0.001, max_value=5),
       st.floats(min_value=0.01, max_value=60))
def test_backoff_is_capped_exponential_with_jitter(attempt, base, cap):
    stream = EventStream(ComfyClient("http://unused", client_id="x"), backoff_base=base, backoff_cap=cap)
    delay = stream.backoff(attempt)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling * 0.5 <= delay <= ceiling


@given(st.binary(max_size=64), st.sampled_from(["JPEG", "PNG"]))
def test_preview_frames_decode(image, fmt):
    parsed = parse_binary_frame(preview_frame(image, fmt))
    assert parsed == Preview(image=image, mime={"JPEG": "image/jpeg", "PNG": "image/png"}[fmt])


@given(st.binary(max_size=64), st.text(min_size=1, max_size=8), st.text(max_size=8))
def test_metadata_previews_and_text_frames_decode(image, node_id, text):
    meta = {"node_id": node_id, "prompt_id": "p", "image_type": "image/png"}
    assert parse_binary_frame(preview_meta_frame(image, meta)) == Preview(image, "image/png", node_id, "p")
    assert parse_binary_frame(text_frame(node_id, text)) == ProgressText(node_id, text)


@given(st.binary(max_size=40))
def test_junk_frames_never_raise(frame):
    assert parse_binary_frame(frame) is None or isinstance(parse_binary_frame(frame), Preview | ProgressText)
