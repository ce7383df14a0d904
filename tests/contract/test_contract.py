"""Contract scenarios run against the fake ComfyUI always, and against a real server when
``COMFYUI_URL`` is set (the operator installs the test nodes there). Only nodes a real server
has are used; nonces defeat the real server's output cache.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import re
import uuid

import aiohttp
import pytest
from PIL import Image

from engine.comfy.client import ComfyClient, Timeouts
from engine.errors import WorkflowRejected
from engine.comfy.events import EventStream
from engine.comfy.wire import Preview, ProgressText
from tests.fake_comfy import DATA_DIR

SKIP_REAL = "COMFYUI_URL not set: real-server contract run skipped"


def workflow(name: str) -> dict:
    graph = json.loads((DATA_DIR / "workflows" / f"{name}.json").read_text())
    for node in graph.values():
        if "nonce" in node["inputs"]:
            node["inputs"]["nonce"] = random.randrange(1, 2**40)
    return graph


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.comfyui)])
async def comfy_url(request, make_fake_comfy) -> str:
    if request.param == "real":
        url = os.environ.get("COMFYUI_URL")
        if not url:
            pytest.skip(SKIP_REAL)
        return url.rstrip("/")
    return (await make_fake_comfy(time_scale=1.0)).url  # real step timings, like the server it stands for


@pytest.fixture
async def client(comfy_url):
    async with ComfyClient(comfy_url, client_id=f"contract-{uuid.uuid4().hex[:8]}", name="contract",
                           timeouts=Timeouts(request=10.0, transfer=30.0)) as client:
        yield client


@pytest.fixture
async def stream(client):
    async with EventStream(client) as stream:
        await stream.wait_connected(10)
        yield stream


async def run(stream: EventStream, client: ComfyClient, graph: dict, *, on_message=None) -> tuple[str, list]:
    prompt_id = str(uuid.uuid4())
    queue = stream.subscribe(prompt_id)
    await client.queue_prompt(graph, prompt_id=prompt_id)
    seen = []
    async with asyncio.timeout(60):
        while True:
            message = await queue.get()
            seen.append(message)
            if on_message:
                await on_message(prompt_id, message)
            if isinstance(message, dict) and message["type"] == "executing" \
                    and message["data"]["node"] is None and message["data"].get("prompt_id") == prompt_id:
                return prompt_id, seen


def types(messages: list) -> list[str]:
    return [m["type"] for m in messages if isinstance(m, dict)]


async def test_upload_and_run_load_invert_scale_save(stream, client):
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (0, 100, 200)).save(buffer, "PNG")
    name = await client.upload_image(buffer.getvalue(), f"contract_{uuid.uuid4().hex[:8]}.png")
    graph = workflow("a_load_invert_scale_save")
    graph["1"]["inputs"]["image"] = name
    prompt_id, seen = await run(stream, client, graph)
    assert "execution_success" in types(seen)
    ref = (await client.history(prompt_id))["outputs"]["4"]["images"][0]
    data, mime = await client.view(ref["filename"], ref["subfolder"], ref["type"])
    image = Image.open(io.BytesIO(data))
    assert mime == "image/png" and image.size == (128, 96)
    pixel = image.convert("RGB").getpixel((10, 10))
    # inverted colour; a real server's bilinear resize may round a channel by one
    assert all(abs(got - want) <= 2 for got, want in zip(pixel, (255, 155, 55))), pixel


async def test_progress_previews_and_text(stream, client):
    graph = workflow("b_empty_slowprogress_save")
    graph["2"]["inputs"]["seconds_per_step"] = 0.01
    _, seen = await run(stream, client, graph)
    progress = [m["data"] for m in seen if isinstance(m, dict) and m["type"] == "progress"]
    assert [(p["value"], p["max"]) for p in progress] == [(i, 5) for i in range(1, 6)]
    assert sum(isinstance(m, Preview) for m in seen) == 5
    assert [m.text for m in seen if isinstance(m, ProgressText)] == [f"step {i}/5" for i in range(1, 6)]
    assert types(seen).index("execution_start") < types(seen).index("executed") < types(seen).index("execution_success")


async def test_failure_reports_execution_error(stream, client):
    graph = workflow("c_fail_at_execution")
    prompt_id, seen = await run(stream, client, graph)
    error = next(m["data"] for m in seen if isinstance(m, dict) and m["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_type"]) == ("2", "FailOnPurpose", "RuntimeError")
    # current_inputs: JSON scalars as they are, anything else (the image tensor) as its str()
    inputs = error["current_inputs"]
    assert (inputs["message"], inputs["nonce"]) == (["boom (FailOnPurpose)"], [graph["2"]["inputs"]["nonce"]])
    assert isinstance(inputs["image"][0], str)
    assert "execution_success" not in types(seen)
    entry = await client.history(prompt_id)
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)


async def test_invalid_values_are_rejected_with_node_errors(client):
    with pytest.raises(WorkflowRejected) as caught:
        await client.queue_prompt(workflow("d_invalid_values"), prompt_id=str(uuid.uuid4()))
    assert set(caught.value.node_errors) == {"1", "2"}
    assert caught.value.error_type == "prompt_outputs_failed_validation"
    error_types = {e["type"] for e in caught.value.node_errors["2"]["errors"]}
    assert error_types == {"value_not_in_list", "value_bigger_than_max"}


async def test_text_output_lands_in_history(stream, client):
    graph = workflow("f_text_output")
    prompt_id, seen = await run(stream, client, graph)
    assert (await client.history(prompt_id))["outputs"]["1"] == {"text": ["hello from TextOutput"]}


async def test_interrupting_a_long_prompt(stream, client):
    graph = workflow("i_long_slowprogress")
    graph["2"]["inputs"].update(steps=2000, seconds_per_step=0.05)

    async def interrupt_on_first_progress(prompt_id, message):
        if isinstance(message, dict) and message["type"] == "progress" and message["data"]["value"] == 1:
            await client.interrupt(prompt_id)
    prompt_id, seen = await run(stream, client, graph, on_message=interrupt_on_first_progress)
    assert "execution_interrupted" in types(seen) and "execution_success" not in types(seen)
    assert (await client.history(prompt_id))["outputs"] == {}


async def test_history_and_queue_shapes(stream, client):
    prompt_id, _ = await run(stream, client, workflow("f_text_output"))
    entry = await client.history(prompt_id)
    assert set(entry) == {"prompt", "outputs", "status", "meta"}
    number, echoed_id, graph, extra, outputs = entry["prompt"]
    assert echoed_id == prompt_id and extra["client_id"] == client.client_id and outputs == ["1"]
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    snapshot = await client.queue()
    assert prompt_id not in snapshot
    assert await client.history(str(uuid.uuid4())) is None


async def test_model_free_audio_graph_saves_an_mp3_under_audio(stream, client):
    graph = {"1": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 44100, "channels": 2}},
             "2": {"class_type": "AudioAdjustVolume", "inputs": {"audio": ["1", 0], "volume": random.randrange(-20, 0)}},
             "3": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["2", 0], "quality": "128k",
                                                             "filename_prefix": "contract/audio"}}}
    prompt_id, seen = await run(stream, client, graph)
    assert "execution_success" in types(seen)
    [ref] = (await client.history(prompt_id))["outputs"]["3"]["audio"]
    assert ref["filename"].endswith(".mp3") and (ref["subfolder"], ref["type"]) == ("contract", "output")
    data, mime = await client.view(ref["filename"], ref["subfolder"], ref["type"])
    assert mime == "audio/mpeg" and data[:3] == b"ID3"


async def test_a_v3_combo_is_not_checked_and_a_missing_model_fails_when_its_loader_runs(stream, client):
    # UpscaleModelLoader declares ["COMBO", {"options": [...]}]: ComfyUI 0.3.64 validates only old-style
    # list combos, so the prompt is accepted and the loader raises once it runs
    missing = f"missing_{uuid.uuid4().hex[:8]}.pth"
    graph = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": missing}},
             "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "contract/never"}}}
    prompt_id, seen = await run(stream, client, graph)
    error = next(m["data"] for m in seen if isinstance(m, dict) and m["type"] == "execution_error")
    assert (error["node_id"], error["node_type"], error["exception_type"]) == \
        ("1", "UpscaleModelLoader", "FileNotFoundError")
    assert error["exception_message"] == f"Model in folder 'upscale_models' with filename '{missing}' not found.\n"


async def test_a_long_choice_list_is_left_out_of_the_rejection(client):
    sampler = {"seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "no-such-sampler", "scheduler": "normal",
               "denoise": 1.0, "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0]}
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "any.safetensors"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["1", 1]}},
             "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "4": {"class_type": "KSampler", "inputs": sampler},
             "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": "contract/never"}}}
    with pytest.raises(WorkflowRejected) as caught:
        await client.queue_prompt(graph, prompt_id=str(uuid.uuid4()))
    [error] = caught.value.node_errors["4"]["errors"]
    assert (error["type"], error["extra_info"]["input_config"]) == ("value_not_in_list", None)
    assert re.fullmatch(r"sampler_name: 'no-such-sampler' not in \(list of length \d\d+\)", error["details"])


@pytest.mark.parametrize(("body", "status", "error_type"), [
    (b"not json", 500, None), (b'{"prompt": [1]}', 500, None), (b'{"prompt": null}', 500, None), (b"5", 500, None),
    (b'{"prompt": []}', 400, "prompt_no_outputs"), (b'{"prompt": {}}', 400, "prompt_no_outputs"),
    (b"[]", 400, "no_prompt"), (b'"text"', 400, "no_prompt"), (b"{}", 400, "no_prompt")])
async def test_odd_prompt_bodies(comfy_url, body, status, error_type):
    # the server reads the body with `"prompt" in body` and iterates the prompt: what fails there is a 500
    async with aiohttp.ClientSession() as session, session.post(f"{comfy_url}/prompt", data=body) as response:
        assert response.status == status
        if error_type is None:
            assert await response.text() == "500 Internal Server Error\n\nServer got itself in trouble"
        else:
            assert (await response.json())["error"]["type"] == error_type


async def test_an_identical_resubmit_is_answered_from_the_output_cache(stream, client):
    graph = workflow("b_empty_slowprogress_save")
    graph["2"]["inputs"]["seconds_per_step"] = 0.01
    first_id, _ = await run(stream, client, graph)
    second_id, seen = await run(stream, client, graph)
    # nothing runs again: no executing, progress or preview; the output node repeats its output
    assert types(seen) == ["execution_start", "execution_cached", "executed", "progress_state", "execution_success",
                           "executing"]
    assert seen[1]["data"]["nodes"] == ["1", "2", "3"]
    assert (await client.history(second_id))["outputs"] == (await client.history(first_id))["outputs"]


async def test_a_loaded_image_replaced_under_its_name_runs_again(stream, client):
    name = f"contract_{uuid.uuid4().hex[:8]}.png"
    graph = workflow("a_load_invert_scale_save")
    for colour in ((0, 100, 200), (200, 100, 0)):
        buffer = io.BytesIO()
        Image.new("RGB", (50, 40), colour).save(buffer, "PNG")
        graph["1"]["inputs"]["image"] = await client.upload_image(buffer.getvalue(), name, overwrite=True)
        prompt_id, seen = await run(stream, client, graph)  # the same graph: only the file changed
        assert next(m for m in seen if m["type"] == "execution_cached")["data"]["nodes"] == []  # LoadImage: file hash
        ref = (await client.history(prompt_id))["outputs"]["4"]["images"][0]
        data, _ = await client.view(ref["filename"], ref["subfolder"], ref["type"])
        pixel = Image.open(io.BytesIO(data)).convert("RGB").getpixel((10, 10))
        assert all(abs(got - (255 - want)) <= 2 for got, want in zip(pixel, colour)), pixel
