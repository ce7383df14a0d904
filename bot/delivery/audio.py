"""Audio results for Discord: fitting a track to the upload limit, and a waveform picture for the embed.

``fit_audio`` re-encodes a track that is over the limit with the ffmpeg binary moviepy ships
(imageio-ffmpeg): to MP3 at the highest standard bitrate the track's duration allows (Discord
plays MP3 inline everywhere), and to Opus in Ogg when even 32 kbps MP3 would not fit (Opus still
sounds like music at 12–24 kbps, MP3 does not). ``waveform_png`` draws the track's peaks as a
small PNG. Both are CPU-bound and synchronous (call them in a thread); both bound what they do:
at most ``MAX_SECONDS`` of audio are decoded, ffmpeg gets a time limit, and a file ffmpeg cannot
read raises ``AudioError`` (never a traceback to users).
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from PIL import Image, ImageDraw

from engine import FfmpegTimeout, header_seconds, human_size, run_ffmpeg

__all__ = ["AudioError", "AudioFit", "MP3_BITRATES", "audio_duration", "fit_audio", "plan_bitrate", "waveform_png"]

MP3_BITRATES = (320, 256, 224, 192, 160, 128, 112, 96, 80, 64, 56, 48, 40, 32)  # kbps, MPEG-1/2 layer III
MIN_OPUS_KBPS = 6
MAX_OPUS_KBPS = 256
AUDIO_MARGIN = 0.95  # container overhead: headers, Ogg pages, ID3
ATTEMPTS = 3
MAX_SECONDS = 3 * 3600  # longer "audio" from a server is refused rather than decoded
FFMPEG_TIMEOUT = 300
WAVEFORM_SIZE = (800, 160)
WAVEFORM_RATE = 8000  # Hz: enough samples per column to find the peaks of a short clip
WAVEFORM_SECONDS = 1800  # the picture covers at most the first 30 minutes (≤ 29 MB of samples)
WAVEFORM_COLOUR, WAVEFORM_BACKGROUND = (88, 101, 242), (43, 45, 49)  # Discord blurple on its dark grey
_TIME = re.compile(rb"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")


class AudioError(Exception):
    """ffmpeg could not read or write the audio; the message is short and safe to show."""


@dataclass(frozen=True)
class AudioFit:
    """A re-encoded track: bytes, file name, mime and a notice saying what changed."""

    data: bytes
    filename: str
    mime: str
    notice: str


def plan_bitrate(seconds: float, limit: int) -> tuple[str, int] | None:
    """``("mp3" | "opus", kbps)``: the best encoding whose size at ``seconds`` stays within ``limit``
    bytes, or None when even the lowest Opus bitrate would not fit."""
    affordable = limit * 8 * AUDIO_MARGIN / max(seconds, 0.1) / 1000
    for kbps in MP3_BITRATES:
        if kbps <= affordable:
            return "mp3", kbps
    if affordable >= MIN_OPUS_KBPS:
        return "opus", min(int(affordable), MAX_OPUS_KBPS)
    return None


def _run(arguments: list[str]) -> subprocess.CompletedProcess:
    try:
        return run_ffmpeg(arguments, timeout=FFMPEG_TIMEOUT)
    except FfmpegTimeout:
        raise AudioError("re-encoding took too long") from None


def _seconds(parts: Sequence[bytes]) -> float:
    hours, minutes, seconds = parts
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def audio_duration(path: Path) -> float:
    """Seconds of audio in ``path``: from the container header, else by decoding it once."""
    probe = _run(["-i", str(path)])
    stated = header_seconds(probe.stderr.decode("utf-8", "replace"))
    if stated is not None:
        return stated
    decoded = _run(["-i", str(path), "-t", str(MAX_SECONDS), "-vn", "-f", "null", "-"])
    times = _TIME.findall(decoded.stderr)
    if decoded.returncode != 0 or not times:
        raise AudioError("it could not be read")
    return _seconds(times[-1])


def _encode(source: Path, target: Path, codec: str, kbps: int) -> bytes:
    encoder = ["-c:a", "libmp3lame", "-b:a", f"{kbps}k"] if codec == "mp3" else \
        ["-c:a", "libopus", "-b:a", f"{kbps}k", "-vbr", "constrained"]
    done = _run(["-y", "-loglevel", "error", "-i", str(source), "-map", "0:a:0", "-vn", "-map_metadata", "-1",
                 "-t", str(MAX_SECONDS), *encoder, str(target)])
    if done.returncode != 0 or not target.is_file():
        raise AudioError("it could not be re-encoded")
    return target.read_bytes()


def fit_audio(data: bytes, *, filename: str, limit: int) -> AudioFit:
    """``data`` re-encoded to fit ``limit`` bytes (see the module docstring).

    Raises:
        AudioError: ffmpeg cannot read it, it is longer than ``MAX_SECONDS``, or nothing fits.
    """
    with tempfile.TemporaryDirectory(prefix="discomfy-audio-") as tmp:
        source = Path(tmp) / ("source" + (PurePath(filename).suffix or ".audio"))
        source.write_bytes(data)
        seconds = audio_duration(source)
        if seconds > MAX_SECONDS:
            raise AudioError(f"it is longer than {MAX_SECONDS // 3600} hours")
        budget = limit
        for attempt in range(ATTEMPTS):
            plan = plan_bitrate(seconds, budget)
            if plan is None:
                break
            codec, kbps = plan
            encoded = _encode(source, Path(tmp) / f"fitted-{attempt}.{'mp3' if codec == 'mp3' else 'ogg'}", codec, kbps)
            if len(encoded) <= limit:
                return _fitted(encoded, filename, codec, kbps, limit)
            budget = int(budget * 0.9 * limit / len(encoded))
    raise AudioError("it is too long even at the lowest bitrate")


def _fitted(encoded: bytes, filename: str, codec: str, kbps: int, limit: int) -> AudioFit:
    stem = PurePath(filename or "audio").stem
    label, suffix, mime = ("MP3", ".mp3", "audio/mpeg") if codec == "mp3" else ("Opus", ".ogg", "audio/ogg")
    notice = f"Re-encoded as {label} ({kbps} kbps) to fit Discord's {human_size(limit)} limit"
    return AudioFit(encoded, stem + suffix, mime, notice)


def _peaks(data: bytes, columns: int) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="discomfy-wave-") as tmp:
        source = Path(tmp) / "source"
        source.write_bytes(data)
        done = _run(["-loglevel", "error", "-i", str(source), "-t", str(WAVEFORM_SECONDS), "-vn", "-ac", "1",
                     "-ar", str(WAVEFORM_RATE), "-f", "s16le", "-"])
    if done.returncode != 0 or len(done.stdout) < 4:
        raise AudioError("it could not be read")
    samples = np.abs(np.frombuffer(done.stdout[: len(done.stdout) // 2 * 2], dtype="<i2").astype(np.int32))
    per_column = max(math.ceil(len(samples) / columns), 1)
    padded = np.pad(samples, (0, per_column * columns - len(samples)))
    return padded.reshape(columns, per_column).max(axis=1) / 32768.0


def waveform_png(data: bytes, *, size: tuple[int, int] = WAVEFORM_SIZE) -> bytes:
    """A PNG of the track's peaks (mirrored bars around the middle line), ``size`` pixels.

    Raises:
        AudioError: ffmpeg cannot read ``data``.
    """
    width, height = size
    peaks = _peaks(data, width)
    loudest = float(peaks.max()) or 1.0
    image = Image.new("RGB", size, WAVEFORM_BACKGROUND)
    draw = ImageDraw.Draw(image)
    middle = height / 2
    for x, peak in enumerate(peaks):
        half = max(peak / loudest * (middle - 4), 0.5)
        draw.line([(x, middle - half), (x, middle + half)], fill=WAVEFORM_COLOUR)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
