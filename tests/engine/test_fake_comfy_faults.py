"""The fake ComfyUI's routing, queue control, files and fault knobs."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.engine.test_fake_comfy import png, upload, workflow
from tests.fake_comfy import load_capture
from tests.fake_comfy.recorder import record_prompt


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


def slow(steps: int, seconds: float = 0.2) -> dict:
    graph = workflow("i_long_slowprogress")
    graph["2"]["inputs"].update(steps=steps, seconds_per_step=seconds)
    return graph


async def collect(ws, until, timeout: float = 10.0) -> list[dict]:
    seen = []
    async with asyncio.timeout(timeout):
        while not seen or not until(seen[-1]):
            frame = await ws.receive()
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(frame.type)
            seen.append(json.loads(frame.data))
    return seen


async def test_execution_messages_go_only_to_the_prompt_owner(fake_comfy, session):
    url = fake_comfy.url
    owner = await session.ws_connect(f"{url}/ws?clientId=A")
    observer = await session.ws_connect(f"{url}/ws?clientId=O")
    for ws in (owner, observer):
        assert (await ws.receive_json())["data"]["sid"] in ("A", "O")
    answer = await (await session.post(f"{url}/prompt", json={"prompt": slow(2), "client_id": "A"})).json()
    # not the same graph twice: the second would be answered from the output cache, with no progress
    anonymous = await (await session.post(f"{url}/prompt", json={"prompt": slow(3)})).json()
    owner_seen = await collect(owner, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    observer_seen = await collect(observer, lambda m: m["type"] == "status"
                                  and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
    assert {m["data"].get("prompt_id") for m in owner_seen if m["type"] == "execution_start"} == {answer["prompt_id"]}
    observer_kinds = {m["type"] for m in observer_seen}
    assert observer_kinds == {"status", "progress", "progress_state"}
    assert {m["data"]["prompt_id"] for m in observer_seen if m["type"] == "progress"} == {anonymous["prompt_id"]}


async def test_interrupt_targets_only_the_running_prompt(fake_comfy, session):
    url = fake_comfy.url
    ws = await session.ws_connect(f"{url}/ws?clientId=I")
    await ws.receive_json()
    answer = await (await session.post(f"{url}/prompt", json={"prompt": slow(400), "client_id": "I"})).json()
    await collect(ws, lambda m: m["type"] == "progress")
    await session.post(f"{url}/interrupt", json={"prompt_id": "someone-else"})
    await collect(ws, lambda m: m["type"] == "progress")
    await session.post(f"{url}/interrupt", json={"prompt_id": answer["prompt_id"]})
    seen = await collect(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    kinds = [m["type"] for m in seen if m["type"] not in ("progress", "progress_state")]
    assert kinds == ["execution_interrupted", "status", "executing"]
    recorded = load_capture("interrupt")["ws_messages"][-3]["data"]
    assert list(seen[-3]["data"]) == list(recorded)
    entry = (await (await session.get(f"{url}/history/{answer['prompt_id']}")).json())[answer["prompt_id"]]
    assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}


async def test_a_new_socket_of_the_running_client_is_told_the_current_node(fake_comfy, session):
    url = fake_comfy.url
    first = await session.ws_connect(f"{url}/ws?clientId=R")
    await first.receive_json()
    await session.post(f"{url}/prompt", json={"prompt": slow(400), "client_id": "R"})
    await collect(first, lambda m: m["type"] == "progress")
    second = await session.ws_connect(f"{url}/ws?clientId=R")
    assert (await second.receive_json())["data"] == {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "R"}
    assert await second.receive_json() == {"type": "executing", "data": {"node": "2"}}
    await session.post(f"{url}/interrupt")


async def test_feature_flags_are_honoured_only_as_first_json_message(fake_comfy, session):
    ws = await session.ws_connect(f"{fake_comfy.url}/ws")
    assert len((await ws.receive_json())["data"]["sid"]) == 32
    await ws.send_str("garbage")
    await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    assert (await ws.receive_json())["data"] == {"supports_preview_metadata": True, "max_upload_size": 104857600}
    late = await session.ws_connect(f"{fake_comfy.url}/ws?clientId=late")
    await late.receive_json()
    await late.send_json({"type": "hello"})
    await late.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    with pytest.raises(asyncio.TimeoutError):
        await late.receive_json(timeout=0.1)


async def test_uploads_dedupe_rename_and_overwrite(fake_comfy, session):
    url = fake_comfy.url
    names = [(await upload(session, url, data, "probe.png", **fields))[1]["name"] for data, fields in [
        (png((1, 1, 1)), {}), (png((1, 1, 1)), {}), (png((2, 2, 2)), {}), (png((3, 3, 3)), {"overwrite": "true"})]]
    assert names == ["probe.png", "probe.png", "probe (1).png", "probe.png"]
    status, answer = await upload(session, url, png(), "probe.png", subfolder="sub", type="temp")
    assert answer == {"name": "probe.png", "subfolder": "sub", "type": "temp"}
    assert (await session.post(f"{url}/upload/image", data=aiohttp.FormData({"x": "1"}))).status == 400
    listed = await (await session.get(f"{url}/object_info/LoadImage")).json()
    assert listed["LoadImage"]["input"]["required"]["image"][0] == ["example.png", "probe (1).png", "probe.png"]
    viewed = await session.get(f"{url}/view", params={"filename": "probe.png", "type": "input"})
    assert viewed.headers["Content-Disposition"] == 'filename="probe.png"' and await viewed.read() == png((3, 3, 3))
    for params, status in [({"filename": "none.png"}, 404), ({"filename": "../x.png"}, 400),
                           ({"filename": "probe.png", "type": "secret"}, 400)]:
        assert (await session.get(f"{url}/view", params=params)).status == status
    assert await (await session.get(f"{url}/api/object_info/NoSuchNode")).json() == {}


async def test_recorded_info_routes_and_origin_check(fake_comfy, session):
    url = fake_comfy.url
    stats = await (await session.get(f"{url}/system_stats")).json()
    assert stats["system"]["comfyui_version"] == "0.3.64"
    assert (await session.get(f"{url}/features", headers={"Origin": "http://evil.example"})).status == 403


async def test_http_failures_delays_and_forced_rejections(fake_comfy, session):
    url, state = fake_comfy.url, fake_comfy.state
    state.fail_http("/history", times=2)
    statuses = [(await session.get(f"{url}/api/history/x")).status for _ in range(3)]
    assert statuses == [500, 500, 200]
    state.delay("/queue", 5.0)
    with pytest.raises(asyncio.TimeoutError):
        await session.get(f"{url}/queue", timeout=aiohttp.ClientTimeout(total=0.05))
    state.delay("/queue", 0)
    assert (await session.get(f"{url}/queue")).status == 200
    state.reject_next()
    rejected = await session.post(f"{url}/prompt", json={"prompt": workflow("f_text_output")})
    assert rejected.status == 400 and "1" in (await rejected.json())["node_errors"]


async def test_injected_node_failure(fake_comfy, session):
    fake_comfy.state.fail_node(class_type="TextOutput", message="no text today")
    recording = await record_prompt(session, fake_comfy.url, workflow("f_text_output"), client_id="F")
    [error] = recording.of_type("execution_error")
    assert (error["node_type"], error["exception_message"]) == ("TextOutput", "no text today\n")
    again = await record_prompt(session, fake_comfy.url, workflow("f_text_output"), client_id="F")
    assert again.of_type("execution_success")


async def test_websockets_drop_after_n_messages_of_a_prompt(fake_comfy, session):
    url = fake_comfy.url
    ws = await session.ws_connect(f"{url}/ws?clientId=D")
    await ws.receive_json()
    fake_comfy.state.drop_websockets_after(4, "drop-me")
    await session.post(f"{url}/prompt", json={"prompt": slow(3), "client_id": "D", "prompt_id": "drop-me"})
    received = []
    while (frame := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
        received.append(json.loads(frame.data)["type"])
    assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert received == ["status", "status", "execution_start", "execution_cached"]


async def test_a_dead_server_refuses_then_revives(fake_comfy, session):
    url, state = fake_comfy.url, fake_comfy.state
    ws = await session.ws_connect(f"{url}/ws?clientId=Z")
    await ws.receive_json()
    await state.die()
    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(aiohttp.ClientError):
        await session.get(f"{url}/queue")
    await state.revive()
    assert (await session.get(f"{url}/queue")).status == 200


async def test_a_hung_server_never_answers_until_revived(fake_comfy, session):
    await fake_comfy.state.die("hang")
    with pytest.raises(asyncio.TimeoutError):
        await session.get(f"{fake_comfy.url}/prompt", timeout=aiohttp.ClientTimeout(total=0.1))
    await fake_comfy.state.revive()
    assert (await session.get(f"{fake_comfy.url}/prompt")).status == 200


async def test_a_hung_server_queues_a_prompt_whose_client_gave_up_once_it_answers_again(fake_comfy, session):
    state = fake_comfy.state
    state.pause()
    await state.die("hang")
    with pytest.raises(asyncio.TimeoutError):
        await session.post(f"{fake_comfy.url}/prompt", json={"prompt": workflow("f_text_output"), "prompt_id": "late"},
                           timeout=aiohttp.ClientTimeout(total=0.2))
    with pytest.raises(asyncio.TimeoutError):  # a read-only request whose client left is simply dropped
        await session.get(f"{fake_comfy.url}/queue", timeout=aiohttp.ClientTimeout(total=0.1))
    async with asyncio.timeout(5):
        while state.http.held["/queue"]:  # the server lets it go once it sees its client gone
            await asyncio.sleep(0.01)
    assert +state.http.held == {"/prompt": 1} and state.pending_ids() == []
    await state.revive()
    await asyncio.sleep(0.05)
    assert state.pending_ids() == ["late"] and state.http.held["/prompt"] == 0


async def test_several_fakes_are_independent(make_fake_comfy, session):
    first, second = await make_fake_comfy(), await make_fake_comfy()
    first.state.pause()
    await session.post(f"{first.url}/prompt", json={"prompt": workflow("f_text_output")})
    assert first.url != second.url
    assert [f.state.queue_remaining for f in (first, second)] == [1, 0]


async def test_a_crash_stops_the_running_prompt_even_one_taken_a_moment_ago(fake_comfy, session):
    state = fake_comfy.state
    await session.post(f"{fake_comfy.url}/prompt", json={"prompt": slow(5), "prompt_id": "cut"})
    async with asyncio.timeout(5):
        while state.running is None:  # taken from the queue; its run may not have begun
            await asyncio.sleep(0)
    state.crash()
    await asyncio.sleep(0.5)  # five steps of 0.2 s at 5 %: it would have ended by now
    assert ("execution_success", "cut") not in state.hub.log and state.history.get("cut") == {}
    await state.revive(restart=True)
    state.resume()
    await session.post(f"{fake_comfy.url}/prompt", json={"prompt": slow(1), "prompt_id": "after"})
    async with asyncio.timeout(5):
        while ("execution_success", "after") not in state.hub.log:  # the worker lives on
            await asyncio.sleep(0.01)
