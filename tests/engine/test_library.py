"""The bundled workflow library (manifests/ + workflows/): it loads cleanly, every graph is wired the
way the recorded ComfyUI /object_info says, and every manifest's binds and bypasses do what they claim."""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import json
import subprocess
import uuid
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from engine import apply_params, load_catalog
from engine.comfy.client import ComfyClient
from engine.manifest.binding import is_link
from engine.checks.validate import validate_paths
from tests.fake_comfy.validate import validate_prompt

ROOT = Path(__file__).resolve().parents[2]
OBJECT_INFO = json.loads((ROOT / "tests/data/comfyui/object_info.json").read_text(encoding="utf-8"))
CATALOG = load_catalog([ROOT / "manifests"], ROOT / "workflows")
UPLOADED = "example.png"  # a name in the recorded LoadImage list, so combo checks hold for image params too
UPLOADED_SOUND = "take.flac"  # LoadAudio validates its file itself (its recorded list is empty)

TXT2IMG = {"flux", "flux-krea", "hidream", "qwen-image", "z-image-turbo"}
EDITS = {"edit-flux", "edit-qwen"}
MODEL_FREE = {"invert", "canvas", "resize", "slow-canvas", "fail"}
AUDIO = {"music", "sound"}
AUDIO_ACTIONS = {"remix", "trim"}
WAN22 = {"wan22-i2v", "wan22-t2v"}
EXPECTED = TXT2IMG | EDITS | MODEL_FREE | AUDIO | AUDIO_ACTIONS | WAN22 | {"upscale", "animate"}


def _input_spec(class_type: str, name: str):
    inputs = OBJECT_INFO[class_type]["input"]
    for section in ("required", "optional"):
        if name in inputs.get(section, {}):
            return inputs[section][name]
    return None


def _combo(spec) -> list | None:
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return spec[1]["options"]
    return None


def _is_loader(spec) -> bool:
    """LoadAudio's file combo: the server checks that the file exists (VALIDATE_INPUTS), not its list."""
    return len(spec) > 1 and isinstance(spec[1], dict) and bool(spec[1].get("audio_upload"))


def _graph_problems(graph: dict) -> list[str]:
    """Everything ComfyUI's prompt validation would reject, judged from the recorded object_info."""
    problems = []
    for node_id, node in graph.items():
        info = OBJECT_INFO.get(node["class_type"])
        if info is None:
            problems.append(f"{node_id}: unknown class {node['class_type']}")
            continue
        problems += [f"{node_id}: missing required {name}" for name in info["input"].get("required", {})
                     if name not in node["inputs"]]
        for name, value in node["inputs"].items():
            spec = _input_spec(node["class_type"], name)
            if spec is None:
                problems.append(f"{node_id}: unknown input {name}")
            elif is_link(value):
                source = graph.get(value[0])
                outputs = OBJECT_INFO[source["class_type"]]["output"] if source else []
                if value[1] >= len(outputs) or outputs[value[1]] != spec[0]:
                    problems.append(f"{node_id}.{name}: link {value} does not give {spec[0]}")
            elif _combo(spec) is not None and not _is_loader(spec):
                if value not in _combo(spec):
                    problems.append(f"{node_id}.{name}: {value!r} is not a server choice")
            else:
                limits = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if not limits.get("min", value) <= value <= limits.get("max", value):
                    problems.append(f"{node_id}.{name}: {value!r} outside {limits.get('min')}–{limits.get('max')}")
    return problems


SAMPLE_VALUES = {"image": UPLOADED, "audio": UPLOADED_SOUND, "float": 2.0, "int": 1}


def _required_values(workflow, samples: dict | None = None) -> dict:
    samples = {**SAMPLE_VALUES, **(samples or {})}
    return {name: samples.get(param.type, "a red fox in the snow")
            for name, param in workflow.manifest.params.items() if param.required}


def _node_titled(graph: dict, title: str) -> tuple[str, dict]:
    matches = [(node_id, node) for node_id, node in graph.items() if node.get("_meta", {}).get("title") == title]
    assert len(matches) == 1, f"{len(matches)} nodes titled {title!r}"
    return matches[0]


def test_catalog_loads_every_bundled_manifest_without_issues():
    assert CATALOG.issues == ()
    assert {wf.name for wf in CATALOG} == EXPECTED


def test_commands_group_workflows_like_the_old_bot():
    commands = {command: {wf.name for wf in wfs} for command, wfs in CATALOG.commands().items()}
    assert commands["generate"] == TXT2IMG
    assert commands["edit"] == EDITS
    assert commands["upscale"] == {"upscale"}
    assert commands["animate"] == {"animate"}
    assert commands["test"] == {"slow-canvas", "fail"}
    assert commands["video"] == WAN22
    assert commands["music"] == {"music"} and commands["sound"] == {"sound"}


@pytest.mark.parametrize("name", sorted(TXT2IMG | EDITS))
def test_image_results_chain_to_upscale_edits_and_animate(name):
    assert CATALOG[name].manifest.actions == ["upscale", "edit-flux", "edit-qwen", "animate", "wan22-i2v"]


def test_upscale_chains_to_edits_and_animate_and_video_to_nothing():
    assert CATALOG["upscale"].manifest.actions == ["edit-flux", "edit-qwen", "animate", "wan22-i2v"]
    for name in ("animate", *WAN22):
        assert CATALOG[name].manifest.kind == "video"
        assert CATALOG[name].manifest.actions == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_graph_matches_the_server_node_set(name):
    assert _graph_problems(dict(CATALOG[name].graph)) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_defaults_produce_a_complete_graph_with_every_value_bound(name):
    workflow = CATALOG[name]
    applied = apply_params(workflow, _required_values(workflow))

    assert _graph_problems(applied.graph) == []
    for param, value in applied.values.items():
        for target in workflow.targets[param]:
            if target.node_id not in applied.bypassed:
                assert applied.graph[target.node_id]["inputs"][target.input_name] == value, param
    assert set(workflow.output_nodes()) <= set(applied.graph)


def test_engine_validate_with_the_recorded_object_info_finds_nothing():
    report = validate_paths([ROOT / "manifests"], workflows_dir=ROOT / "workflows", object_info=OBJECT_INFO)
    assert report.lines() == [summary.line() for summary in report.manifests]  # no issue lines
    assert report.ok and len(report.manifests) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fake_comfyui_accepts_the_applied_graph(name):
    workflow = CATALOG[name]
    graph = copy.deepcopy(apply_params(workflow, _required_values(workflow)).graph)  # the validator converts in place
    verdict = validate_prompt(graph, OBJECT_INFO, lambda _name: True)
    assert verdict.error is None and verdict.node_errors == {}
    assert sorted(verdict.outputs) == sorted(workflow.output_nodes())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_manifest_keeps_discord_limits_and_basic_option_budget(name):
    manifest = CATALOG[name].manifest
    assert len(manifest.basic_params) <= 25
    required_first = [n for n in manifest.basic_params if manifest.params[n].required]
    assert manifest.basic_params[: len(required_first)] == required_first  # Discord wants required options first
    assert all(p.description and p.label for p in manifest.params.values())


@pytest.mark.parametrize("name", sorted(TXT2IMG))
def test_txt2img_prompt_is_the_only_required_param_and_settings_are_advanced(name):
    manifest = CATALOG[name].manifest
    assert [n for n, p in manifest.params.items() if p.required] == ["prompt"]
    for setting in ("width", "height", "steps", "seed", "batch"):
        assert manifest.params[setting].advanced, setting


def test_flux_without_lora_splices_the_lora_out_and_feeds_the_unet_to_model_sampling():
    workflow = CATALOG["flux"]
    lora_id, _ = _node_titled(dict(workflow.graph), "LoRA")
    unet_id, _ = _node_titled(dict(workflow.graph), "Load Diffusion Model")

    applied = apply_params(workflow, {"prompt": "a lighthouse"})

    assert lora_id not in applied.graph
    _, sampling = _node_titled(applied.graph, "Model Sampling")
    assert sampling["inputs"]["model"] == [unet_id, 0]
    assert _graph_problems(applied.graph) == []


def test_flux_with_lora_keeps_it_with_the_chosen_file_and_strength():
    applied = apply_params(CATALOG["flux"], {"prompt": "a lighthouse", "lora": "flux/anime_lines.safetensors",
                                             "lora_strength": 0.6})
    _, lora = _node_titled(applied.graph, "LoRA")
    assert lora["inputs"]["lora_name"] == "flux/anime_lines.safetensors"
    assert lora["inputs"]["strength_model"] == 0.6


def test_flux_guidance_and_size_reach_guidance_latent_and_model_sampling():
    applied = apply_params(CATALOG["flux"], {"prompt": "x", "guidance": 6.0, "width": 768, "height": 1344})
    _, guidance = _node_titled(applied.graph, "Guidance")
    _, latent = _node_titled(applied.graph, "Image Size")
    _, sampling = _node_titled(applied.graph, "Model Sampling")
    assert guidance["class_type"] == "FluxGuidance" and guidance["inputs"]["guidance"] == 6.0
    assert (latent["inputs"]["width"], latent["inputs"]["height"]) == (768, 1344)
    assert (sampling["inputs"]["width"], sampling["inputs"]["height"]) == (768, 1344)


def test_flux_lora_filter_offers_only_flux_loras():
    lora = CATALOG["flux"].manifest.params["lora"]
    offered = lora.offered(_combo(_input_spec("LoraLoaderModelOnly", "lora_name")))
    assert offered and all("flux" in name.lower() for name in offered)


def test_edit_qwen_with_one_image_drops_image2_and_image3_everywhere():
    workflow = CATALOG["edit-qwen"]
    second, _ = _node_titled(dict(workflow.graph), "Image 2")
    third, _ = _node_titled(dict(workflow.graph), "Image 3")

    applied = apply_params(workflow, {"image": "a.png", "prompt": "make it night"})

    assert second not in applied.graph and third not in applied.graph
    encoders = [n for n in applied.graph.values() if n["class_type"] == "TextEncodeQwenImageEditPlus"]
    assert len(encoders) == 2
    for encoder in encoders:
        assert "image1" in encoder["inputs"]
        assert "image2" not in encoder["inputs"] and "image3" not in encoder["inputs"]
    assert all(link[0] in applied.graph for node in applied.graph.values()
               for link in node["inputs"].values() if is_link(link))


def test_edit_qwen_with_two_images_keeps_image2_only():
    workflow = CATALOG["edit-qwen"]
    applied = apply_params(workflow, {"image": "a.png", "image2": "b.png", "prompt": "combine them"})

    second, image2 = _node_titled(applied.graph, "Image 2")
    assert image2["inputs"]["image"] == "b.png"
    _, positive = _node_titled(applied.graph, "Positive Prompt")
    assert positive["inputs"]["image2"] == [second, 0]
    assert "image3" not in positive["inputs"]
    assert positive["inputs"]["prompt"] == "combine them"


def test_upscale_scale_lands_on_image_scale_by_after_the_model():
    applied = apply_params(CATALOG["upscale"], {"image": "a.png", "scale": 1.5, "model": "RealESRGAN_x4plus.pth"})

    rescale_id, rescale = _node_titled(applied.graph, "Rescale")
    assert rescale["class_type"] == "ImageScaleBy" and rescale["inputs"]["scale_by"] == 1.5
    assert applied.graph[rescale["inputs"]["image"][0]]["class_type"] == "ImageUpscaleWithModel"
    _, loader = _node_titled(applied.graph, "Load Upscale Model")
    assert loader["inputs"]["model_name"] == "RealESRGAN_x4plus.pth"
    assert applied.graph[CATALOG["upscale"].manifest.outputs[0]]["inputs"]["images"] == [rescale_id, 0]


def test_animate_length_choice_and_mp4_output():
    workflow = CATALOG["animate"]
    applied = apply_params(workflow, {"image": "a.png", "prompt": "waves roll in", "frames": 49})

    _, i2v = _node_titled(applied.graph, "Image To Video")
    assert i2v["class_type"] == "WanImageToVideo" and i2v["inputs"]["length"] == 49
    assert all((c.value - 1) % 4 == 0 for c in workflow.manifest.params["frames"].choices)  # Wan's 4n+1 rule
    save = applied.graph[workflow.manifest.outputs[0]]
    assert save["class_type"] == "SaveVideo" and save["inputs"]["format"] == "mp4"


@pytest.mark.parametrize("name", sorted(MODEL_FREE))
def test_model_free_workflows_load_no_model(name):
    classes = {node["class_type"] for node in CATALOG[name].graph.values()}
    assert not any("Loader" in cls for cls in classes), classes


# -- end to end on the in-process fake ComfyUI (real HTTP, real Pillow work, no models) ------------

def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def flac(seconds: float = 3.0) -> bytes:
    """A real FLAC: a 440 Hz tone of ``seconds``, stereo 44.1 kHz (made by ffmpeg)."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
               f"sine=frequency=440:duration={seconds}", "-ac", "2", "-f", "flac", "-"]
    return subprocess.run(command, capture_output=True, check=True).stdout


async def _run(client: ComfyClient, name: str, values: dict) -> dict:
    """Upload every file value, queue the applied graph, return the finished history entry."""
    workflow = CATALOG[name]
    for param in workflow.manifest.upload_params:
        if isinstance(values.get(param), bytes):
            suffix = {"image": "png", "audio": "flac"}[workflow.manifest.params[param].type]
            values[param] = await client.upload_image(values[param], f"{param}.{suffix}")
    prompt_id = str(uuid.uuid4())
    await client.queue_prompt(apply_params(workflow, values).graph, prompt_id=prompt_id)
    for _ in range(500):
        entry = await client.history(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} did not finish")


async def _output_size(client: ComfyClient, entry: dict, node_id: str) -> tuple[int, int]:
    image = entry["outputs"][node_id]["images"][0]
    data, _ = await client.view(image["filename"], image["subfolder"], image["type"])
    return Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("name", sorted(EXPECTED - {"fail"}))
async def test_every_workflow_runs_to_its_outputs_on_the_fake_comfyui(fake_comfy, name):
    workflow = CATALOG[name]
    values = _required_values(workflow, {"image": _png(64, 48), "audio": flac()})
    async with ComfyClient(fake_comfy.url, client_id="library-test") as client:
        entry = await _run(client, name, values)

    assert entry["status"]["status_str"] == "success"
    assert set(workflow.output_nodes()) <= set(entry["outputs"])


async def test_fail_workflow_fails_with_its_message(fake_comfy):
    async with ComfyClient(fake_comfy.url, client_id="library-test") as client:
        entry = await _run(client, "fail", {"message": "boom from the library test"})
    assert entry["status"]["status_str"] == "error"
    assert "boom from the library test" in json.dumps(entry["status"]["messages"])


async def test_upscale_output_is_model_factor_times_scale(fake_comfy):
    async with ComfyClient(fake_comfy.url, client_id="library-test") as client:
        entry = await _run(client, "upscale", {"image": _png(64, 48), "model": "4x-UltraSharp.pth", "scale": 0.75})
        size = await _output_size(client, entry, CATALOG["upscale"].manifest.outputs[0])
    assert size == (64 * 4 * 0.75, 48 * 4 * 0.75)


async def test_resize_and_canvas_sizes_follow_their_params(fake_comfy):
    async with ComfyClient(fake_comfy.url, client_id="library-test") as client:
        resized = await _run(client, "resize", {"image": _png(64, 48), "scale": 1.5})
        canvas = await _run(client, "canvas", {"width": 40, "height": 24, "color": "Blue"})
        assert await _output_size(client, resized, "3") == (96, 72)
        assert await _output_size(client, canvas, "2") == (40, 24)
