"""The bundled music, sound and Wan 2.2 workflows: binds land where the models need them, and the audio
ones produce a track of the asked length on the fake ComfyUI."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import pytest

from engine import apply_params
from engine.comfy.client import ComfyClient
from tests.engine.test_library import CATALOG, UPLOADED, _graph_problems, _node_titled, _run


def _seconds(data: bytes) -> float:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "-", "-ac", "1", "-ar", "8000",
               "-f", "s16le", "-"]
    return len(subprocess.run(command, input=data, capture_output=True, check=True).stdout) / 2 / 8000


def test_sound_duration_sets_both_the_latent_and_the_timing_conditioning():
    applied = apply_params(CATALOG["sound"], {"prompt": "a door creaks", "duration": 7.5})
    _, latent = _node_titled(applied.graph, "Duration")
    _, timing = _node_titled(applied.graph, "Timing")
    assert latent["inputs"]["seconds"] == 7.5 and timing["inputs"]["seconds_total"] == 7.5
    assert (timing["inputs"]["seconds_start"], latent["class_type"]) == (0.0, "EmptyLatentAudio")


def test_music_style_and_lyrics_reach_the_ace_step_encoder():
    applied = apply_params(CATALOG["music"], {"prompt": "lofi, piano", "lyrics": "[verse]\nla la", "duration": 30})
    _, song = _node_titled(applied.graph, "Song")
    _, latent = _node_titled(applied.graph, "Duration")
    assert song["class_type"] == "TextEncodeAceStepAudio"
    assert (song["inputs"]["tags"], song["inputs"]["lyrics"]) == ("lofi, piano", "[verse]\nla la")
    assert latent["class_type"] == "EmptyAceStepLatentAudio" and latent["inputs"]["seconds"] == 30


@pytest.mark.parametrize("name, duration, key", [("music", 6.0, "audio"), ("sound", 3.5, "audio")])
async def test_audio_workflows_deliver_a_track_of_the_asked_length_on_the_fake(fake_comfy, name, duration, key):
    workflow = CATALOG[name]
    async with ComfyClient(fake_comfy.url, client_id="library-audio") as client:
        entry = await _run(client, name, {"prompt": "rain", "duration": duration})
        [ref] = entry["outputs"][workflow.manifest.outputs[0]][key]
        data, mime = await client.view(ref["filename"], ref["subfolder"], ref["type"])
    assert mime == {"music": "audio/mpeg", "sound": "audio/flac"}[name]
    assert _seconds(data) == pytest.approx(duration, abs=0.1)


def _samplers(graph: dict) -> tuple[dict, dict]:
    return _node_titled(graph, "High Noise Sampler")[1]["inputs"], _node_titled(graph, "Low Noise Sampler")[1]["inputs"]


def test_wan22_two_experts_split_the_steps_and_only_the_first_adds_noise():
    applied = apply_params(CATALOG["wan22-i2v"], {"image": "a.png", "prompt": "waves", "steps": 8, "high_steps": 3,
                                                  "cfg": 2.0, "seed": 42})
    high, low = _samplers(applied.graph)
    assert high["steps"] == low["steps"] == 8 and high["cfg"] == low["cfg"] == 2.0
    assert (high["start_at_step"], high["end_at_step"], low["start_at_step"]) == (0, 3, 3)
    assert (high["add_noise"], high["return_with_leftover_noise"]) == ("enable", "enable")
    assert (low["add_noise"], low["return_with_leftover_noise"]) == ("disable", "disable")
    assert high["noise_seed"] == 42 and low["latent_image"][0] == _node_titled(applied.graph, "High Noise Sampler")[0]
    _, high_model = _node_titled(applied.graph, "High Noise Model")
    _, low_model = _node_titled(applied.graph, "Low Noise Model")
    assert "high_noise_14B" in high_model["inputs"]["unet_name"] and "low_noise_14B" in low_model["inputs"]["unet_name"]


def test_wan22_without_the_speed_loras_splices_both_out_and_with_them_keeps_the_pair():
    workflow = CATALOG["wan22-i2v"]
    high_model, _ = _node_titled(dict(workflow.graph), "High Noise Model")
    plain = apply_params(workflow, {"image": UPLOADED, "prompt": "waves"})
    assert not [n for n in plain.graph.values() if n["class_type"] == "LoraLoaderModelOnly"]
    assert _node_titled(plain.graph, "High Noise Sampling")[1]["inputs"]["model"] == [high_model, 0]
    assert _graph_problems(plain.graph) == []

    fast = apply_params(workflow, {"image": UPLOADED, "prompt": "waves",
                                   "lora_high": "wan/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                                   "lora_low": "wan/wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"})
    assert "high_noise" in _node_titled(fast.graph, "High Noise LoRA")[1]["inputs"]["lora_name"]
    assert "low_noise" in _node_titled(fast.graph, "Low Noise LoRA")[1]["inputs"]["lora_name"]
    assert _graph_problems(fast.graph) == []


def test_wan22_lora_filters_offer_each_expert_only_its_own_half_of_the_pair():
    from tests.engine.test_library import _combo, _input_spec

    offered = _combo(_input_spec("LoraLoaderModelOnly", "lora_name"))
    params = CATALOG["wan22-i2v"].manifest.params
    assert params["lora_high"].offered(offered) == ["wan/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"]
    assert params["lora_low"].offered(offered) == ["wan/wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"]


def test_wan22_text_to_video_uses_the_5b_model_and_its_own_vae_without_a_start_image():
    applied = apply_params(CATALOG["wan22-t2v"], {"prompt": "a paper boat", "frames": 49})
    _, size = _node_titled(applied.graph, "Video Size")
    assert size["class_type"] == "Wan22ImageToVideoLatent" and size["inputs"]["length"] == 49
    assert "start_image" not in size["inputs"]
    assert _node_titled(applied.graph, "Load Diffusion Model")[1]["inputs"]["unet_name"] == "wan2.2_ti2v_5B_fp16.safetensors"
    assert _node_titled(applied.graph, "Load VAE")[1]["inputs"]["vae_name"] == "wan2.2_vae.safetensors"
    assert all((c.value - 1) % 4 == 0 for c in CATALOG["wan22-t2v"].manifest.params["frames"].choices)


@pytest.mark.parametrize("name", ["flux", "edit-qwen", "upscale"])
def test_image_results_lead_to_wan22_image_to_video(name):
    assert "wan22-i2v" in CATALOG[name].manifest.actions
    assert CATALOG["wan22-i2v"].manifest.upload_params == ["image"]
    assert CATALOG["wan22-i2v"].manifest.param_taking("image") == "image"
