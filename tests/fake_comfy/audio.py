"""Audio nodes of the fake ComfyUI: real PCM and real ffmpeg encoding, no models (docs/comfyui-protocol.md: audio outputs).

AUDIO values are ``Audio`` (interleaved signed 16-bit PCM). The model-free nodes a real CPU server
runs (EmptyAudio, AudioAdjustVolume, TrimAudioDuration, SaveAudio, SaveAudioMP3, SaveAudioOpus,
PreviewAudio) work like the real ones; an AUDIO made by a node without an implementation here
(``VAEDecodeAudio`` of ACE-Step or Stable Audio) is a quiet tone as long as the latent's
``seconds``, so a manifest's duration reaches the output file. Saved audio comes under the history
key ``audio``, as recorded in ``captures/audio_k.json``.

LoadAudio reads an uploaded file of the input folder as ComfyUI's does (``comfy_extras/nodes_audio.py``:
PyAV decodes the first audio stream at its own sample rate and channel count; a file without one
raises "No audio stream found in the file."); here ffmpeg decodes it. VAEEncodeAudio turns a sound
into a latent of its length (``Latent.seconds``), so an audio-to-audio workflow (ACE-Step remix)
gives back a sound as long as the one it was given.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Audio", "AUDIO_NODES", "placeholder_audio"]

PLACEHOLDER_RATE = 44100
TONE_HZ = 440.0
MP3_QUALITY = {"V0": ["-q:a", "0"], "128k": ["-b:a", "128k"], "320k": ["-b:a", "320k"]}
_STREAM = re.compile(r"Stream #0:\d+\S*: Audio: [^,]+, (\d+) Hz, (mono|stereo|\d+ channels)")


@dataclass(frozen=True)
class Audio:
    pcm: bytes  # interleaved s16le
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2").reshape(-1, self.channels)


def silence(seconds: float, sample_rate: int, channels: int) -> Audio:
    frames = max(int(round(seconds * sample_rate)), 0)
    return Audio(bytes(frames * channels * 2), sample_rate, channels)


def placeholder_audio(seconds: float, channels: int = 2) -> Audio:
    """A quiet 440 Hz tone that fades in and out: something a waveform can show."""
    frames = max(int(round(seconds * PLACEHOLDER_RATE)), 1)
    t = np.arange(frames) / PLACEHOLDER_RATE
    envelope = np.sin(np.pi * np.arange(frames) / frames)
    wave = (0.3 * 32767 * envelope * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    return Audio(np.repeat(wave[:, None], channels, axis=1).tobytes(), PLACEHOLDER_RATE, channels)


def _ffmpeg() -> str:
    """The ffmpeg binary moviepy ships (imageio-ffmpeg)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def decode_file(path: Path) -> Audio:
    """The first audio stream of ``path`` at its own rate and channels; ``ValueError`` with the real
    server's message when there is none."""
    probe = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, timeout=60)
    found = _STREAM.search(probe.stderr.decode("utf-8", "replace"))
    if found is None:
        raise ValueError("No audio stream found in the file.")
    rate, layout = int(found.group(1)), found.group(2)
    channels = {"mono": 1, "stereo": 2}.get(layout) or int(layout.split()[0])
    done = subprocess.run([_ffmpeg(), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
                           "-f", "s16le", "-ac", str(channels), "-ar", str(rate), "-"], capture_output=True, timeout=120)
    if done.returncode != 0 or not done.stdout:
        raise ValueError("No audio frames decoded.")
    return Audio(done.stdout, rate, channels)


def _encode(audio: Audio, path: object, codec: list[str]) -> None:
    """Encode with the ffmpeg binary moviepy ships (imageio-ffmpeg)."""
    command = [_ffmpeg(), "-y", "-loglevel", "error", "-f", "s16le",
               "-ar", str(audio.sample_rate), "-ac", str(audio.channels), "-i", "-", *codec, str(path)]
    subprocess.run(command, input=audio.pcm, check=True, capture_output=True, timeout=120)


async def _save(ctx, audio: Audio, kind: str, prefix: str, ext: str, codec: list[str]):
    path, entry = ctx.save(kind, prefix, ext)
    await asyncio.to_thread(_encode, audio, path, codec)
    return (), {"audio": [entry]}


async def empty_audio(ctx, i: dict):
    return (silence(float(i["duration"]), int(i["sample_rate"]), int(i["channels"])),), None


async def load_audio(ctx, i: dict):
    path = ctx.input_path(i["audio"])
    return (await asyncio.to_thread(decode_file, path),), None


async def trim_audio(ctx, i: dict):
    """TrimAudioDuration: ``start_index`` seconds (negative: from the end) for ``duration`` seconds, clamped."""
    audio: Audio = i["audio"]
    frames, rate = len(audio.samples()), audio.sample_rate
    start = float(i["start_index"])
    first = frames + int(round(start * rate)) if start < 0 else int(round(start * rate))
    first = max(0, min(first, frames - 1))
    end = max(0, min(first + int(round(float(i["duration"]) * rate)), frames))
    if first >= end:
        raise ValueError("AudioTrim: Start time must be less than end time and be within the audio length.")
    width = 2 * audio.channels
    return (Audio(audio.pcm[first * width:end * width], rate, audio.channels),), None


async def adjust_volume(ctx, i: dict):
    audio: Audio = i["audio"]
    gain = 10 ** (float(i["volume"]) / 20)
    scaled = np.clip(audio.samples().astype(np.float64) * gain, -32768, 32767).astype("<i2")
    return (Audio(scaled.tobytes(), audio.sample_rate, audio.channels),), None


async def save_audio(ctx, i: dict):
    return await _save(ctx, i["audio"], "output", i["filename_prefix"], "flac", ["-c:a", "flac"])


async def save_audio_mp3(ctx, i: dict):
    quality = MP3_QUALITY.get(i.get("quality", "V0"), MP3_QUALITY["V0"])
    return await _save(ctx, i["audio"], "output", i["filename_prefix"], "mp3", ["-c:a", "libmp3lame", *quality])


async def save_audio_opus(ctx, i: dict):
    return await _save(ctx, i["audio"], "output", i["filename_prefix"], "opus",
                       ["-c:a", "libopus", "-b:a", str(i.get("quality", "128k"))])


async def preview_audio(ctx, i: dict):
    return await _save(ctx, i["audio"], "temp", ctx.temp_prefix(), "flac", ["-c:a", "flac"])


AUDIO_NODES = {
    "EmptyAudio": empty_audio, "LoadAudio": load_audio, "TrimAudioDuration": trim_audio,
    "AudioAdjustVolume": adjust_volume, "SaveAudio": save_audio,
    "SaveAudioMP3": save_audio_mp3, "SaveAudioOpus": save_audio_opus, "PreviewAudio": preview_audio,
}
