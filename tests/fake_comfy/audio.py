"""Audio nodes of the fake ComfyUI: real PCM and real ffmpeg encoding, no models (docs/comfyui-protocol.md: audio outputs).

AUDIO values are ``Audio`` (interleaved signed 16-bit PCM). The model-free nodes a real CPU server
runs (EmptyAudio, AudioAdjustVolume, SaveAudio, SaveAudioMP3, SaveAudioOpus, PreviewAudio) work
like the real ones; an AUDIO made by a node without an implementation here (``VAEDecodeAudio``
of ACE-Step or Stable Audio) is a quiet tone as long as the latent's ``seconds``, so a manifest's
duration reaches the output file. Saved audio comes under the history key ``audio``, as recorded
in ``captures/audio_k.json``.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

import numpy as np

__all__ = ["Audio", "AUDIO_NODES", "placeholder_audio"]

PLACEHOLDER_RATE = 44100
TONE_HZ = 440.0
MP3_QUALITY = {"V0": ["-q:a", "0"], "128k": ["-b:a", "128k"], "320k": ["-b:a", "320k"]}


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


def _encode(audio: Audio, path: object, codec: list[str]) -> None:
    """Encode with the ffmpeg binary moviepy ships (imageio-ffmpeg)."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "s16le",
               "-ar", str(audio.sample_rate), "-ac", str(audio.channels), "-i", "-", *codec, str(path)]
    subprocess.run(command, input=audio.pcm, check=True, capture_output=True, timeout=120)


async def _save(ctx, audio: Audio, kind: str, prefix: str, ext: str, codec: list[str]):
    path, entry = ctx.save(kind, prefix, ext)
    await asyncio.to_thread(_encode, audio, path, codec)
    return (), {"audio": [entry]}


async def empty_audio(ctx, i: dict):
    return (silence(float(i["duration"]), int(i["sample_rate"]), int(i["channels"])),), None


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
    "EmptyAudio": empty_audio, "AudioAdjustVolume": adjust_volume, "SaveAudio": save_audio,
    "SaveAudioMP3": save_audio_mp3, "SaveAudioOpus": save_audio_opus, "PreviewAudio": preview_audio,
}
