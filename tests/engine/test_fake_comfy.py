"""The fake ComfyUI behaves like the recorded real server (docs/comfyui-protocol.md and tests/data/comfyui/captures/)."""

from __future__ import annotations

import copy
import io
import json

import aiohttp
import pytest
from PIL import Image

from tests.fake_comfy import DATA_DIR, load_capture
from tests.fake_comfy.recorder import capture_kinds, message_kinds, record_prompt


def workflow(name: str) -> dict:
    return json.loads((DATA_DIR / "workflows" / f"{name}.json").read_text())


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


def png(color=(10, 200, 30), size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


async def upload(session, url, data: bytes, name: str, **fields) -> tuple[int, dict | None]:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=name, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    response = await session.post(f"{url}/upload/image", data=form)
    return response.status, (await response.json() if response.status == 200 else None)


@pytest.mark.parametrize("name, capture", [
    ("b_empty_slowprogress_save", lambda: load_capture("progress_b")["no_feature_flags"]["ws_messages"]),
    ("c_fail_at_execution", lambda: load_capture("fail_c")["ws_messages"]),
    ("e_video_outputs", lambda: load_capture("video_e")["ws_messages"]),
])
async def test_message_sequence_matches_the_capture(fake_comfy, session, name, capture):
    recording = await record_prompt(session, fake_comfy.url, workflow(name), client_id="seq")
    assert message_kinds(recording.messages) == capture_kinds(capture())


async def test_preview_metadata_clients_get_event_4_before_progress(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("b_empty_slowprogress_save"),
                                    client_id="flags", flags=True)
    kinds = message_kinds(recording.messages)
    captured = capture_kinds(load_capture("progress_b")["supports_preview_metadata"]["ws_messages"])

    def steps(seq):  # from the first TEXT frame to the last progress message
        last_progress = len(seq) - 1 - seq[::-1].index("progress")
        return seq[seq.index("TEXT"): last_progress + 1]
    assert steps(kinds) == steps(captured)
    meta = [m for m in recording.messages if isinstance(m, bytes) and m[:4] == b"\x00\x00\x00\x04"]
    header_len = int.from_bytes(meta[0][4:8], "big")
    assert json.loads(meta[0][8:8 + header_len])["prompt_id"] == recording.prompt_id


async def test_history_entry_has_the_recorded_shape(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("b_empty_slowprogress_save"), client_id="h")
    entry = (await (await session.get(f"{fake_comfy.url}/history/{recording.prompt_id}")).json())[recording.prompt_id]
    recorded = next(iter(load_capture("progress_b")["no_feature_flags"]["history"].values()))
    assert entry.keys() == recorded.keys()
    assert [m[0] for m in entry["status"]["messages"]] == [m[0] for m in recorded["status"]["messages"]]
    assert entry["prompt"][3] == {"client_id": "h"} and entry["prompt"][4] == ["3"]
    assert entry["outputs"]["3"]["images"][0]["filename"] == "slow_00001_.png"
    assert await (await session.get(f"{fake_comfy.url}/history/unknown")).json() == {}


async def test_failure_message_has_the_recorded_fields(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("c_fail_at_execution"), client_id="f")
    [error] = recording.of_type("execution_error")
    recorded = load_capture("fail_c")["ws_messages"][-3]["data"]
    assert list(error) == list(recorded)
    assert (error["node_id"], error["node_type"], error["executed"]) == ("2", "FailOnPurpose", ["1"])
    assert error["exception_message"] == "boom (FailOnPurpose)\n"


async def test_load_invert_scale_save_produces_real_pixels(fake_comfy, session):
    status, uploaded = await upload(session, fake_comfy.url, png((10, 200, 30)), "green.png")
    graph = workflow("a_load_invert_scale_save")
    graph["1"]["inputs"]["image"] = uploaded["name"]
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="a")
    [executed] = recording.of_type("executed")
    image_ref = executed["output"]["images"][0]
    assert image_ref == {"filename": "invert_00001_.png", "subfolder": "probe", "type": "output"}
    response = await session.get(f"{fake_comfy.url}/view", params=image_ref)
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(await response.read()))
    assert image.size == (128, 96)
    assert image.convert("RGB").getpixel((5, 5)) == (245, 55, 225)


async def test_upscale_with_model_uses_the_factor_in_the_name(fake_comfy, session):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
             "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
             "4": {"class_type": "ImageScaleBy", "inputs": {"image": ["3", 0], "upscale_method": "area", "scale_by": 0.5}},
             "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "up"}}}
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="u")
    ref = recording.of_type("executed")[0]["output"]["images"][0]
    body = await (await session.get(f"{fake_comfy.url}/view", params=ref)).read()
    assert Image.open(io.BytesIO(body)).size == (32, 16)


async def test_video_outputs_are_real_files_under_images(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("e_video_outputs"), client_id="v")
    outputs = {e["node"]: e["output"] for e in recording.of_type("executed")}
    assert all(o["animated"] == [True] for o in outputs.values())
    magic = {"4": (b"ftyp", "video/mp4"), "5": (b"\x1a\x45\xdf\xa3", "video/webm"),
             "2": (b"WEBP", "image/webp"), "6": (b"\x89PNG", "image/png")}
    for node, (signature, mime) in magic.items():
        response = await session.get(f"{fake_comfy.url}/view", params=outputs[node]["images"][0])
        assert response.headers["Content-Type"] == mime
        assert signature in (await response.read())[:16]


async def test_text_output_and_websocket_images(fake_comfy, session):
    text = await record_prompt(session, fake_comfy.url, workflow("f_text_output"), client_id="t")
    assert text.of_type("executed")[0]["output"] == {"text": ["hello from TextOutput"]}
    frames = await record_prompt(session, fake_comfy.url, workflow("g_websocket_image"), client_id="g")
    assert message_kinds(frames.messages) == capture_kinds(load_capture("text_and_wsimage")["g_websocket_image"]["ws_messages"])
    pngs = [m for m in frames.messages if isinstance(m, bytes)]
    assert [m[:8] for m in pngs] == [b"\x00\x00\x00\x01\x00\x00\x00\x02"] * 2 and pngs[0][8:12] == b"\x89PNG"
    history = await (await session.get(f"{fake_comfy.url}/history/{frames.prompt_id}")).json()
    assert history[frames.prompt_id]["outputs"] == {}


async def test_generic_nodes_run_a_diffusion_workflow(fake_comfy, session):
    graph = workflow("j_txt2img_missing_model")
    choices = fake_comfy.state.object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    graph["4"]["inputs"]["ckpt_name"] = choices[0]
    graph["3"]["inputs"]["steps"] = 3
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="gen")
    assert [p["value"] for p in recording.of_type("progress")] == [1, 2, 3]
    ref = recording.of_type("executed")[0]["output"]["images"][0]
    body = await (await session.get(f"{fake_comfy.url}/view", params=ref)).read()
    assert Image.open(io.BytesIO(body)).size == (512, 512)


INVALID = load_capture("invalid_d")


def _without_tracebacks(body: dict) -> dict:
    body = copy.deepcopy(body)
    for node in body["node_errors"].values():
        for error in node["errors"]:
            error["extra_info"].pop("traceback", None)
    return body


def _empty(color=None, width=8):
    inputs = {"width": width, "height": 8, "batch_size": 1}
    if color is not None:
        inputs["color"] = color
    return {"class_type": "EmptyImage", "inputs": inputs}


def _preview(source="1", index=0):
    return {"class_type": "PreviewImage", "inputs": {"images": [source, index]}}


@pytest.mark.parametrize("case, graph", [
    ("d_invalid_values", workflow("d_invalid_values")),
    ("d2_unknown_class_type", workflow("d2_unknown_class_type")),
    ("missing_required_input", {"1": _empty(), "2": _preview()}),
    ("string_for_int", {"1": _empty(0, "abc"), "2": _preview()}),
    ("no_output_node", {"1": _empty(0)}),
    ("missing_class_type", {"1": {"inputs": {}}, "2": _preview()}),
    ("node_is_string", {"1": "EmptyImage", "2": _preview()}),
    ("link_to_missing_node", {"1": _empty(0), "2": _preview("99")}),
    ("wrong_link_type", {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
                         "2": _preview()}),
])
async def test_invalid_prompts_answer_the_recorded_400(fake_comfy, session, case, graph):
    response = await session.post(f"{fake_comfy.url}/prompt", json={"prompt": graph, "client_id": "x"})
    assert response.status == 400
    assert _without_tracebacks(await response.json()) == _without_tracebacks(INVALID[case]["json"])
    assert fake_comfy.state.queue_remaining == 0


async def test_one_valid_output_is_queued_with_the_other_errors(fake_comfy, session):
    graph = {"1": _empty(7), "2": _preview(), "3": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
             "4": _preview("3")}
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="x")
    assert recording.answer["node_errors"] == INVALID["one_good_one_bad_output"]["json"]["node_errors"]
    history = await (await session.get(f"{fake_comfy.url}/history/{recording.prompt_id}")).json()
    assert history[recording.prompt_id]["prompt"][4] == ["2"]


@pytest.mark.parametrize("body", [b"not json", json.dumps({"prompt": [1, 2]}).encode()])
async def test_unparseable_prompts_answer_500_text(fake_comfy, session, body):
    response = await session.post(f"{fake_comfy.url}/prompt", data=body)
    assert response.status == 500
    assert await response.text() == INVALID["bad_json_body"]["text"]


async def test_numbers_count_every_json_post_and_front_is_negative(fake_comfy, session):
    url, graph = fake_comfy.url, {"1": {"class_type": "TextOutput", "inputs": {"text": "x"}}}
    fake_comfy.state.pause()
    numbers = []
    for body in ({"prompt": graph}, {}, {"prompt": graph, "front": True}, {"prompt": graph, "number": 7.5},
                 {"prompt": graph, "prompt_id": "mine", "extra_data": {"k": 1}, "client_id": "c"}):
        numbers.append((await (await session.post(f"{url}/api/prompt", json=body)).json()).get("number"))
    assert numbers == [0, None, -2, 7.5, 3]
    queue = await (await session.get(f"{url}/queue")).json()
    items = {item[1]: item for item in queue["queue_pending"]}
    assert items["mine"] == [3, "mine", graph, {"k": 1, "client_id": "c"}, ["1"]]
    assert sorted(item[0] for item in items.values()) == [-2, 0, 3, 7.5]
    await session.post(f"{url}/queue", json={"delete": ["mine"]})
    assert (await (await session.get(f"{url}/prompt")).json()) == {"exec_info": {"queue_remaining": 3}}
    await session.post(f"{url}/queue", json={"clear": True})
    assert (await (await session.get(f"{url}/queue")).json()) == {"queue_running": [], "queue_pending": []}


async def test_an_identical_resubmit_replays_the_captured_cached_run(fake_comfy, session):
    graph = workflow("a_load_invert_scale_save")
    first = await record_prompt(session, fake_comfy.url, graph, client_id="cache")
    second = await record_prompt(session, fake_comfy.url, graph, client_id="cache")
    assert message_kinds(second.messages) == capture_kinds(load_capture("basic_a")["runs"][1]["ws_messages"])
    assert second.of_type("execution_cached")[0]["nodes"] == ["1", "2", "3", "4"]
    assert second.of_type("executed")[0]["output"] == first.of_type("executed")[0]["output"]
    assert second.of_type("progress_state")[-1]["nodes"]["4"]["value"] == 1


async def test_websocket_images_are_never_cached_and_the_cache_can_be_turned_off(fake_comfy, session):
    graph = workflow("g_websocket_image")
    await record_prompt(session, fake_comfy.url, graph, client_id="ws")
    again = await record_prompt(session, fake_comfy.url, graph, client_id="ws")
    assert again.of_type("execution_cached")[0]["nodes"] == ["1"]  # SaveImageWebsocket's IS_CHANGED is the time
    assert len(again.of_type("progress")) == 2
    fake_comfy.state.output_cache = False
    fresh = await record_prompt(session, fake_comfy.url, graph, client_id="ws")
    assert fresh.of_type("execution_cached")[0]["nodes"] == []
