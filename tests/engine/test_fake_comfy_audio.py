"""The fake ComfyUI's audio outputs behave like the recorded real server (captures/audio_k.json)."""

from __future__ import annotations

import json
import re
import subprocess

import aiohttp
import imageio_ffmpeg
import numpy as np
import pytest

from tests.fake_comfy import DATA_DIR, load_capture
from tests.fake_comfy.recorder import capture_kinds, message_kinds, record_prompt

CAPTURE = load_capture("audio_k")


def workflow(name: str) -> dict:
    return json.loads((DATA_DIR / "workflows" / f"{name}.json").read_text())


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as session:
        yield session


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float samples in [-1, 1] and the sample rate, decoded by ffmpeg."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "-", "-ac", "1", "-f", "s16le", "-"]
    pcm = subprocess.run(command, input=data, capture_output=True, check=True).stdout
    return np.frombuffer(pcm, dtype="<i2") / 32768.0, 44100


def _shape(outputs: dict) -> dict:
    """Each output node's entries with the counter taken out of the file names."""
    return {node: {key: [{**e, "filename": re.sub(r"_\d{5}_", "_N_", re.sub(r"temp_[a-z]{5}", "temp_X", e["filename"]))}
                         for e in entries] for key, entries in ui.items()} for node, ui in outputs.items()}


async def test_audio_prompt_sends_the_recorded_message_sequence(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("k_audio_outputs"), client_id="k")
    assert message_kinds(recording.messages) == capture_kinds(CAPTURE["ws_messages"])


async def test_audio_outputs_come_under_the_audio_key_with_recorded_names_types_and_bytes(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, workflow("k_audio_outputs"), client_id="k")
    entry = (await (await session.get(f"{fake_comfy.url}/history/{recording.prompt_id}")).json())[recording.prompt_id]

    assert _shape(entry["outputs"]) == _shape(CAPTURE["history_outputs"])
    recorded = {key.split(":")[0]: view for key, view in CAPTURE["views"].items()}
    for node, ui in entry["outputs"].items():
        response = await session.get(f"{fake_comfy.url}/view", params=ui["audio"][0])
        body = await response.read()
        assert response.headers["Content-Type"] == recorded[node]["headers"]["Content-Type"]
        assert body[:4].hex() == recorded[node]["magic_hex"][:8]  # fLaC / ID3
        samples, rate = decode(body)
        assert len(samples) == pytest.approx(1.5 * rate, abs=0.05 * rate)  # EmptyAudio duration 1.5 s


async def test_decoded_audio_lasts_the_latent_seconds_and_volume_applies_in_decibels(fake_comfy, session):
    graph = {
        "1": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 2.5, "batch_size": 1}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "3": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["1", 0], "vae": ["2", 0]}},
        "4": {"class_type": "AudioAdjustVolume", "inputs": {"audio": ["3", 0], "volume": -6}},
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "probe/loud"}},
        "6": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "probe/quiet"}},
    }
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="v")
    outputs = {e["node"]: e["output"]["audio"][0] for e in recording.of_type("executed")}
    loud, rate = decode(await (await session.get(f"{fake_comfy.url}/view", params=outputs["5"])).read())
    quiet, _ = decode(await (await session.get(f"{fake_comfy.url}/view", params=outputs["6"])).read())

    assert len(loud) == pytest.approx(2.5 * rate, abs=10)
    assert np.abs(loud).max() > 0.1  # a tone, not silence
    assert np.abs(quiet).max() / np.abs(loud).max() == pytest.approx(10 ** (-6 / 20), rel=0.02)
