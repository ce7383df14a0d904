"""ComfyClient against the fake ComfyUI: verbs, and every failure mapped to a ComfyError."""

from __future__ import annotations

import asyncio
import io
import json
import socket

import pytest
from PIL import Image

from engine.comfy.client import ComfyClient, Timeouts, rejection_problems
from engine.errors import ComfyError, ComfyTimeout, ComfyUnavailable, WorkflowRejected
from tests.fake_comfy import DATA_DIR, load_capture


def workflow(name: str) -> dict:
    return json.loads((DATA_DIR / "workflows" / f"{name}.json").read_text())


def png_bytes(color=(0, 0, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
async def client(fake_comfy):
    async with ComfyClient(fake_comfy.url, client_id="client-test", name="fake1",
                           timeouts=Timeouts(request=2.0, connect=1.0, transfer=2.0)) as client:
        yield client


async def wait_history(client: ComfyClient, prompt_id: str) -> dict:
    async with asyncio.timeout(10):
        while (entry := await client.history(prompt_id)) is None:
            await asyncio.sleep(0.01)
    return entry


async def test_upload_queue_history_view_round_trip(client, fake_comfy):
    name = await client.upload_image(png_bytes(), "blue.png")
    assert await client.upload_image(png_bytes(), "blue.png") == name == "blue.png"
    assert await client.upload_image(png_bytes(), "blue.png", subfolder="jobs") == "jobs/blue.png"
    graph = workflow("a_load_invert_scale_save")
    graph["1"]["inputs"]["image"] = "jobs/blue.png"
    queued = await client.queue_prompt(graph, prompt_id="p-a", extra_data={"job": "1"})
    assert (queued.prompt_id, queued.number, queued.node_errors) == ("p-a", 0, {})
    entry = await wait_history(client, "p-a")
    assert entry["prompt"][3] == {"job": "1", "client_id": "client-test"}
    ref = entry["outputs"]["4"]["images"][0]
    data, mime = await client.view(ref["filename"], ref["subfolder"], ref["type"])
    assert mime == "image/png"
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)) == (255, 255, 0)


async def test_history_of_an_unknown_prompt_is_none(client):
    assert await client.history("never-queued") is None


async def test_queue_snapshot_is_sorted_by_number(client, fake_comfy):
    fake_comfy.state.pause()
    text = workflow("f_text_output")
    for prompt_id, front in [("p1", False), ("p2", False), ("p3", True), ("p4", False)]:
        await client.queue_prompt(text, prompt_id=prompt_id, front=front)
    snapshot = await client.queue()
    assert snapshot.running == () and snapshot.pending == ("p3", "p1", "p2", "p4")
    assert snapshot.position("p2") == 3
    await client.delete_queued(["p1", "p4"])
    assert (await client.queue()).pending == ("p3", "p2")


async def test_interrupt_stops_the_running_prompt(client, fake_comfy):
    graph = workflow("i_long_slowprogress")
    graph["2"]["inputs"]["steps"] = 1000
    await client.queue_prompt(graph, prompt_id="long")
    async with asyncio.timeout(5):
        while (await client.queue()).running != ("long",):
            await asyncio.sleep(0.01)
    await client.interrupt("long")
    entry = await wait_history(client, "long")
    assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_interrupted"


async def test_object_info_and_system_stats(client):
    assert "SlowProgress" in await client.object_info()
    assert list(await client.object_info("LoadImage")) == ["LoadImage"]
    assert await client.object_info("NoSuchNode") == {}
    assert (await client.system_stats())["system"]["comfyui_version"] == "0.3.64"


async def test_400_is_workflow_rejected_with_raw_node_errors(client):
    with pytest.raises(WorkflowRejected) as caught:
        await client.queue_prompt(workflow("d_invalid_values"), prompt_id="bad")
    recorded = load_capture("invalid_d")["d_invalid_values"]["json"]
    assert caught.value.node_errors == recorded["node_errors"]
    assert caught.value.error_type == "prompt_outputs_failed_validation"
    assert caught.value.problems == [
        "node 1 (LoadImage): Custom validation failed for node: image - Invalid image file: does_not_exist.png",
        "node 2 (ImageScale): Value not in list: upscale_method: 'super-resolution' not in "
        "['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']",
        "node 2 (ImageScale): Value 99999 bigger than max of 16384: width",
    ]


async def test_400_without_node_errors_uses_the_top_level_error(client):
    with pytest.raises(WorkflowRejected) as caught:
        await client.queue_prompt(workflow("d2_unknown_class_type"), prompt_id="bad")
    assert caught.value.problems == ["Cannot execute because node NoSuchNode does not exist. (Node ID '#2')"]
    assert caught.value.error_type == "invalid_prompt" and caught.value.node_errors == {}


async def test_200_with_node_errors_is_accepted(client):
    graph = {"1": {"class_type": "TextOutput", "inputs": {"text": "ok"}},
             "2": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    queued = await client.queue_prompt(graph, prompt_id="half")
    assert list(queued.node_errors) == ["2"]


def test_rejection_problems_survive_junk():
    assert rejection_problems({}) == ["the workflow was rejected"]
    assert rejection_problems({"node_errors": {"5": {"errors": [{}]}}}) == ["node 5 (?): invalid"]


async def test_server_errors_are_unavailable_and_never_show_the_url(client, fake_comfy):
    fake_comfy.state.fail_http("/prompt", times=1)
    with pytest.raises(ComfyUnavailable) as caught:
        await client.queue_prompt(workflow("f_text_output"), prompt_id="x")
    assert "fake1" in str(caught.value) and fake_comfy.url not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
    fake_comfy.state.fail_http("/view", times=1, status=503)
    with pytest.raises(ComfyUnavailable):
        await client.view("x.png")


async def test_other_http_errors_are_comfy_errors(client):
    with pytest.raises(ComfyError) as caught:
        await client.view("missing.png")
    assert not isinstance(caught.value, ComfyUnavailable | ComfyTimeout)


async def test_slow_answers_time_out(fake_comfy):
    fake_comfy.state.delay("/queue", 5.0)
    async with ComfyClient(fake_comfy.url, client_id="c", name="slow", timeouts=Timeouts(request=0.05)) as client:
        with pytest.raises(ComfyTimeout) as caught:
            await client.queue()
    assert "slow" in str(caught.value) and fake_comfy.url not in str(caught.value)
    assert caught.value.seconds == 0.05


async def test_a_dead_backend_is_unavailable(client, fake_comfy):
    assert (await client.queue()).pending == ()
    await fake_comfy.state.die()
    with pytest.raises(ComfyUnavailable):
        await client.queue()
    with pytest.raises(ComfyUnavailable):
        await client.history("x")
    await fake_comfy.state.revive()
    assert (await client.queue()).running == ()


async def test_nothing_listening_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with ComfyClient(f"http://127.0.0.1:{port}", client_id="c", name="gone") as client:
        with pytest.raises(ComfyUnavailable) as caught:
            await client.system_stats()
    assert str(port) not in str(caught.value)


async def test_a_shared_session_is_not_closed_by_the_client(fake_comfy):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with ComfyClient(fake_comfy.url, client_id="c", session=session) as client:
            await client.queue()
        assert not session.closed
