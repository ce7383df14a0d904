"""Sounds as job inputs, offline: the attachment option and modal upload of an audio param, a music result's
action buttons leading to the ACE-Step remix (a sound fed into its audio param, an audio result back), an
uploaded sound trimmed, and the refusals (not audio, mislabelled, too long) — on the fake ComfyUI."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pytest

from bot.commands.slash import build_commands, command_payload, inert_hooks
from bot.commands.payload_limits import check_payload
from bot.views.modals import settings_modals
from engine.jobs.progress import JobState
from engine.manifest.catalog import load_catalog

from .harness import fake_discord
from .payloads import Upload
from .stack import REPO, png, running_stack

AUDIO_FORMATS_TEXT = "MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC"


@pytest.fixture
def audio_catalog(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    for name in ("music", "sound", "remix", "trim"):
        shutil.copy(REPO / "manifests" / f"{name}.yaml", folder / f"{name}.yaml")
    catalog = load_catalog([folder], REPO / "workflows")
    assert not catalog.issues, catalog.issues
    return catalog


def tone(seconds: float, fmt: str = "ogg", source: str = "sine=frequency=330") -> bytes:
    """A real file made by ffmpeg (written to a file, so its header states its length)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"take.{fmt}"
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                   f"{source}:duration={seconds}", "-ac", "1", "-b:a", "32k", str(path)]
        subprocess.run(command, check=True, capture_output=True)
        return path.read_bytes()


def seconds_of(data: bytes) -> float:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "-", "-ac", "1", "-ar", "8000",
               "-f", "s16le", "-"]
    return len(subprocess.run(command, input=data, capture_output=True, check=True).stdout) / 2 / 8000


def _button_ids(payload: dict) -> list[str]:
    return [c["custom_id"] for row in payload.get("components", []) for c in row["components"]]


def _modal_fields(modal: dict) -> dict[str, dict]:
    return {label["component"]["custom_id"]: label["component"] for label in modal["data"]["components"]}


# -- the Discord payload ---------------------------------------------------------------------------

def test_an_audio_param_is_an_attachment_option_and_a_file_upload_field(audio_catalog):
    payload = {c["name"]: c for c in command_payload(build_commands(audio_catalog, inert_hooks()))}
    assert payload["trim"]["options"][0] == {
        "type": 11, "name": "audio", "description": "The track or sound to cut (MP3, FLAC, WAV, Ogg…)",
        "required": True}
    assert [o["name"] for o in payload["remix"]["options"]][:2] == ["audio", "prompt"]
    assert check_payload(list(payload.values())) == []

    async def ignore(interaction, values):
        raise AssertionError("not submitted here")

    (modal,) = settings_modals(audio_catalog["trim"], ["audio", "length"], {}, on_values=ignore, key="w")
    upload, length = (label["component"] for label in modal.to_dict()["components"])
    assert (upload["type"], upload["custom_id"], upload["required"], upload["max_values"]) == (19, "audio", True, 1)
    assert length["type"] == 4


async def test_an_attachment_discord_calls_an_image_is_refused_by_an_audio_option(audio_catalog):
    from .conftest import RecordingHooks

    hooks = RecordingHooks()
    async with fake_discord(build_commands(audio_catalog, hooks.hooks())) as fake:
        await fake.slash("trim", audio=Upload("cover.png", png(), "image/png"), length=2.0)
        await fake.slash("trim", audio=Upload("voice-message.ogg", b"ogg?", "audio/ogg"), length=2.0)
        await fake.slash("trim", audio=Upload("clip.webm", b"webm?", "video/webm"), length=2.0)
    assert [str(e) for e in fake.errors] == [f"audio: must be an audio file ({AUDIO_FORMATS_TEXT})"]
    assert [call[2]["audio"].filename for call in hooks.calls] == ["voice-message.ogg", "clip.webm"]


# -- on the offline stack --------------------------------------------------------------------------

async def test_a_music_result_leads_to_a_remix_that_delivers_an_audio_result(fake_comfy, db_path, audio_catalog):
    async with running_stack(fake_comfy.url, db_path, audio_catalog) as stack:
        await stack.slash("music", prompt="lofi, mellow piano", duration=6.0)
        (music,) = await stack.jobs()
        assert music.state == JobState.DONE
        first = stack.webhook_edits()[-1]
        assert [name.rsplit(".", 1)[1] for name, _ in first.files] == ["mp3", "png"]  # the track and its waveform
        assert {f"dc:act:{music.job_id}:1:remix", f"dc:act:{music.job_id}:1:trim"} <= set(_button_ids(first.payload))

        await stack.dispatch(stack.fake.component_payload(f"dc:act:{music.job_id}:1:remix"))
        modal = stack.fake.callbacks()[-1]
        assert modal["type"] == 9
        fields = _modal_fields(modal)
        assert "audio" not in fields  # the music result is the remix's track
        assert fields["prompt"]["value"] == "lofi, mellow piano"  # prefilled from the music job
        await stack.dispatch(stack.fake.modal_payload(modal["data"]["custom_id"], {
            "prompt": "jazz, upright bass, brushes", "lyrics": "[inst]", "strength": "0.4", "length": "4"}))

        remix = next(r for r in await stack.jobs() if r.manifest == "remix")
        assert remix.state == JobState.DONE, remix.error
        assert remix.extra["source"] == {"job": music.job_id, "output": 1}
        assert remix.values["audio"].endswith(".mp3")  # uploaded under a name that says what it is
        assert (remix.values["strength"], remix.values["prompt"]) == (0.4, "jazz, upright bass, brushes")
        assert (db_path.parent / "inputs" / remix.extra["inputs"]["audio"]["sha256"]).is_file()  # kept for reruns
        result = stack.webhook_edits()[-1]
        (track_name, track), (wave_name, wave) = result.files
        assert track_name.endswith(".mp3") and seconds_of(track) == pytest.approx(4.0, abs=0.15)  # 4 s of the 6
        assert wave.startswith(b"\x89PNG") and result.payload["embeds"][0]["image"]["url"] == f"attachment://{wave_name}"
        assert {f"dc:act:{remix.job_id}:1:remix", f"dc:act:{remix.job_id}:1:trim"} <= set(_button_ids(result.payload))


async def test_an_uploaded_sound_is_trimmed_to_the_asked_length(fake_comfy, db_path, audio_catalog):
    async with running_stack(fake_comfy.url, db_path, audio_catalog) as stack:
        await stack.slash("trim", audio=Upload("voice-message.ogg", tone(3.0), "audio/ogg"), length=1.5, start=-2.0)
        (job,) = await stack.jobs()
        assert job.state == JobState.DONE, job.error
        assert job.values["audio"] == "voice-message.ogg" and job.values["start"] == -2.0
        (name, data), _wave = stack.webhook_edits()[-1].files
        assert name.endswith(".flac") and seconds_of(data) == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize(("upload", "answer"), [
    (Upload("song.mp3", b"ID3 but not really a song", "audio/mpeg"),
     f"audio: must be an audio file ({AUDIO_FORMATS_TEXT})"),
    (Upload("cover.mp3", png(), "audio/mpeg"), f"audio: must be an audio file ({AUDIO_FORMATS_TEXT})"),
    (Upload("hour.ogg", tone(601.0, source="anullsrc=r=8000:cl=mono"), "audio/ogg"),
     "audio: the sound is 10 min 1 s long, over 10 min"),
], ids=["junk", "an-image-labelled-audio", "too-long"])
async def test_a_sound_that_is_not_one_or_is_too_long_starts_nothing_and_says_why(fake_comfy, db_path, audio_catalog,
                                                                                   upload, answer):
    async with running_stack(fake_comfy.url, db_path, audio_catalog) as stack:
        await stack.slash("trim", audio=upload, length=1.0)
        assert stack.fake.callbacks() == [{"type": 5}]
        assert stack.webhook_edits()[-1].payload["content"] == answer
        assert await stack.jobs() == []
        assert fake_comfy.state.files.input_names() == ["example.png"]  # nothing was uploaded
