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


# -- LoadAudio, TrimAudioDuration, VAEEncodeAudio: as ComfyUI's nodes_audio.py behaves ---------------

def tone(seconds: float, rate: int = 22050, fmt: str = "flac") -> bytes:
    """A real file: a 440 Hz tone of ``seconds`` at ``rate`` Hz, mono, encoded by ffmpeg."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
               f"sine=frequency=440:sample_rate={rate}:duration={seconds}", "-f", fmt, "-"]
    return subprocess.run(command, capture_output=True, check=True).stdout


async def upload(session, url: str, data: bytes, name: str) -> str:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=name)
    return (await (await session.post(f"{url}/upload/image", data=form)).json())["name"]


def trim_graph(name: str, start: float, duration: float) -> dict:
    return {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": name}},
        "2": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": start, "duration": duration}},
        "3": {"class_type": "SaveAudio", "inputs": {"audio": ["2", 0], "filename_prefix": "probe/cut"}},
    }


async def _saved(session, url: str, recording) -> bytes:
    [entry] = [e["output"]["audio"][0] for e in recording.of_type("executed")]
    return await (await session.get(f"{url}/view", params=entry)).read()


@pytest.mark.parametrize(("start", "duration", "kept"), [(0.5, 1.0, 1.0), (-1.0, 5.0, 1.0), (2.5, 10.0, 0.5)])
async def test_load_audio_reads_the_upload_and_trim_cuts_it_like_the_real_node(fake_comfy, session, start, duration,
                                                                               kept):
    name = await upload(session, fake_comfy.url, tone(3.0), "take.flac")
    recording = await record_prompt(session, fake_comfy.url, trim_graph(name, start, duration), client_id="t")
    body = await _saved(session, fake_comfy.url, recording)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", "-"]
    probe = subprocess.run(command, input=body, capture_output=True).stderr.decode()
    assert "22050 Hz, mono" in probe  # LoadAudio keeps the file's own rate and channels
    samples, _ = decode(body)  # at the file's own rate
    assert len(samples) / 22050 == pytest.approx(kept, abs=0.02)


async def test_a_trim_past_the_end_fails_with_the_real_message(fake_comfy, session):
    name = await upload(session, fake_comfy.url, tone(1.0), "short.flac")
    recording = await record_prompt(session, fake_comfy.url, trim_graph(name, 5.0, 0.0), client_id="t")
    [error] = recording.of_type("execution_error")
    assert error["exception_type"] == "ValueError"
    assert "Start time must be less than end time" in error["exception_message"]


async def test_load_audio_of_a_file_without_sound_fails_at_execution_like_pyav(fake_comfy, session):
    name = await upload(session, fake_comfy.url, b"not a sound at all", "fake.mp3")
    recording = await record_prompt(session, fake_comfy.url, trim_graph(name, 0, 1), client_id="t")
    [error] = recording.of_type("execution_error")
    assert (error["node_type"], error["exception_message"].strip()) == \
        ("LoadAudio", "No audio stream found in the file.")


async def test_load_audio_of_a_missing_file_is_refused_at_validation(fake_comfy, session):
    recording = await record_prompt(session, fake_comfy.url, trim_graph("nope.mp3", 0, 1), client_id="t")
    assert recording.status == 400
    [error] = recording.answer["node_errors"]["1"]["errors"]
    assert (error["type"], error["details"]) == ("custom_validation_failed", "audio - Invalid audio file: nope.mp3")


async def test_load_audio_lists_the_input_folder_sounds_but_not_its_images(fake_comfy, session):
    name = await upload(session, fake_comfy.url, tone(0.5, fmt="mp3"), "listed.mp3")
    entry = (await (await session.get(f"{fake_comfy.url}/object_info/LoadAudio")).json())["LoadAudio"]
    listed, options = entry["input"]["required"]["audio"]
    assert name in listed and "example.png" not in listed and options == {"audio_upload": True}


async def test_an_encoded_sound_keeps_its_length_through_sampling_and_decoding(fake_comfy, session):
    name = await upload(session, fake_comfy.url, tone(2.0), "remix-me.flac")
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ace_step_v1_3.5b.safetensors"}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": name}},
        "3": {"class_type": "VAEEncodeAudio", "inputs": {"audio": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "5": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["4", 0], "filename_prefix": "probe/remix",
                                                          "quality": "V0"}},
    }
    recording = await record_prompt(session, fake_comfy.url, graph, client_id="e")
    samples, rate = decode(await _saved(session, fake_comfy.url, recording))
    assert len(samples) / rate == pytest.approx(2.0, abs=0.1)


async def test_load_audio_runs_again_when_its_file_changes_and_not_when_it_does_not(fake_comfy, session):
    name = await upload(session, fake_comfy.url, tone(2.0), "cached.flac")
    first = await record_prompt(session, fake_comfy.url, trim_graph(name, 0, 5), client_id="c")
    again = await record_prompt(session, fake_comfy.url, trim_graph(name, 0, 5), client_id="c")
    assert "1" in again.of_type("execution_cached")[0]["nodes"] and not again.of_type("executing")[1:]

    form = aiohttp.FormData()  # the same name, other content: LoadAudio's IS_CHANGED is the file's hash
    form.add_field("image", tone(1.0), filename=name)
    form.add_field("overwrite", "true")
    await session.post(f"{fake_comfy.url}/upload/image", data=form)
    changed = await record_prompt(session, fake_comfy.url, trim_graph(name, 0, 5), client_id="c")
    assert "1" not in changed.of_type("execution_cached")[0]["nodes"]
    lengths = [len(decode(await _saved(session, fake_comfy.url, r))[0]) / 22050 for r in (first, changed)]
    assert lengths == [pytest.approx(2.0, abs=0.02), pytest.approx(1.0, abs=0.02)]
