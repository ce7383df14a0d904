"""Audio results: fitted to the upload limit by re-encoding (MP3, then Opus), and a waveform for the embed."""

from __future__ import annotations

import io
import subprocess

import discord
import imageio_ffmpeg
import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from bot.delivery.audio import (AUDIO_MARGIN, MIN_OPUS_KBPS, MP3_BITRATES, WAVEFORM_BACKGROUND, WAVEFORM_SIZE,
                                AudioError, fit_audio, plan_bitrate, waveform_png)
from bot.delivery.fitting import TooLargeError, fit_file
from bot.delivery.message import result_fields
from engine.comfy.outputs import OutputFile
from engine.jobs.parts import JobResult

RATE = 44100


def encode(samples: np.ndarray, fmt: list[str]) -> bytes:
    """Stereo float samples in [-1, 1] encoded by ffmpeg (e.g. ``["-f", "flac"]``)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    pcm = np.repeat(pcm[:, None], 2, axis=1).tobytes()
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "s16le", "-ar", str(RATE), "-ac", "2",
               "-i", "-", *fmt, "-"]
    return subprocess.run(command, input=pcm, capture_output=True, check=True).stdout


def noise(seconds: float, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * RATE))


def seconds_of(data: bytes) -> float:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "-", "-ac", "1", "-ar", str(RATE),
               "-f", "s16le", "-"]
    return len(subprocess.run(command, input=data, capture_output=True, check=True).stdout) / 2 / RATE


@given(seconds=st.floats(0.1, 4 * 3600), limit=st.integers(1024, 500 * 1024 * 1024))
def test_planned_bitrate_fits_the_limit_and_is_the_best_that_does(seconds, limit):
    plan = plan_bitrate(seconds, limit)
    affordable = limit * 8 * AUDIO_MARGIN / seconds / 1000
    if plan is None:
        assert affordable < MIN_OPUS_KBPS
        return
    codec, kbps = plan
    assert kbps * 1000 / 8 * seconds <= limit * AUDIO_MARGIN
    if codec == "mp3":
        assert kbps == max(b for b in MP3_BITRATES if b <= affordable)
    else:
        assert affordable < min(MP3_BITRATES) and kbps >= MIN_OPUS_KBPS


def test_a_flac_over_the_limit_becomes_an_mp3_that_fits_and_keeps_its_length():
    flac = encode(noise(20), ["-f", "flac"])
    limit = 400 * 1024
    assert len(flac) > limit

    fitted = fit_audio(flac, filename="song_00001_.flac", limit=limit)

    assert len(fitted.data) <= limit and fitted.data[:3] == b"ID3"
    assert (fitted.filename, fitted.mime) == ("song_00001_.mp3", "audio/mpeg")
    assert "MP3 (128 kbps)" in fitted.notice and "400 KiB" in fitted.notice
    assert seconds_of(fitted.data) == pytest.approx(20, abs=0.1)


def test_a_track_too_long_for_any_mp3_bitrate_becomes_opus_in_ogg():
    flac = encode(noise(60), ["-f", "flac"])
    fitted = fit_audio(flac, filename="long.flac", limit=150 * 1024)
    assert len(fitted.data) <= 150 * 1024 and fitted.data[:4] == b"OggS"
    assert (fitted.filename, fitted.mime) == ("long.ogg", "audio/ogg") and "Opus" in fitted.notice
    assert seconds_of(fitted.data) == pytest.approx(60, abs=0.1)


def test_fit_file_passes_audio_that_fits_and_refuses_what_cannot_fit_with_a_short_reason():
    mp3 = encode(noise(2), ["-f", "mp3"])
    assert fit_file(mp3, filename="a.mp3", mime="audio/mpeg", limit=len(mp3)).changed is False
    with pytest.raises(TooLargeError, match=r"^This audio does not fit Discord's 1 KiB limit \(it is too long"):
        fit_file(mp3, filename="a.mp3", mime="audio/mpeg", limit=1024)


@pytest.mark.parametrize("data", [b"fLaC" + bytes(5000), b"ID3" + b"\xff" * 5000, b"not audio at all" * 400])
def test_garbage_audio_is_refused_with_a_short_reason_never_a_traceback(data):
    with pytest.raises(TooLargeError) as caught:
        fit_file(data, filename="x.flac", mime="audio/flac", limit=1000)
    assert "could not be read" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(AudioError):
        waveform_png(data)


def test_waveform_shows_sound_where_there_is_sound_and_a_flat_line_in_the_silence():
    tone = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)
    loud_then_silent = np.concatenate([tone, np.zeros(RATE)])
    picture = Image.open(io.BytesIO(waveform_png(encode(loud_then_silent, ["-f", "flac"]))))
    assert picture.format == "PNG" and picture.size == WAVEFORM_SIZE

    def lit(x: int) -> int:
        return sum(picture.getpixel((x, y)) != WAVEFORM_BACKGROUND for y in range(picture.height))

    width, height = WAVEFORM_SIZE
    assert all(lit(x) > height * 0.8 for x in range(20, width // 2 - 20, 40))  # the steady tone, at full scale
    assert all(lit(x) <= 2 for x in range(width // 2 + 20, width - 20, 40))  # the flat middle line only


async def test_an_audio_result_attaches_the_track_and_shows_its_waveform(bundled_catalog):
    mp3 = encode(noise(1.5), ["-f", "mp3"])
    output = OutputFile(mp3, "audio/mpeg", "audio", "sound_00001_.mp3", "9")
    workflow = next(wf for wf in bundled_catalog if wf.manifest.kind == "image")
    result = JobResult(outputs=[output], texts=[], values={}, backend="local", timings={"queued": 0.0, "finished": 3.0})

    fields = await result_fields("job1", workflow, result, limit=10 * 1024 * 1024, actions=[])

    files: list[discord.File] = fields["attachments"]
    assert [f.filename for f in files] == ["sound_00001_.mp3", "waveform.png"]
    assert files[0].fp.read() == mp3
    assert fields["embeds"][0].image.url == "attachment://waveform.png"
