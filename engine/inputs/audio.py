"""Checking an input audio file: a known audio container with sound, within a byte and a length cap.

The one check for every way audio reaches a job (Discord attachments, an earlier result fed to an
action, ``engine run --file``). Like ``engine.inputs.images.check_image`` it judges the content, never the
file name, and refuses what is too big before decoding it:

1. more than ``max_bytes`` → refused without looking further;
2. ffmpeg reads the container's header — its own content probing, limited to the containers of
   ``AUDIO_FORMATS`` and to the local file (a playlist cannot make it open anything else): another
   format, no audio stream, or a stated length over ``max_seconds`` → refused;
3. the sound is decoded once, at most ``max_seconds`` + 1 s of it with the samples thrown away, to
   prove it plays and to measure its real length: a header can understate it (a few MiB of FLAC
   silence hold hours, which the server would decode whole).

ffmpeg is the binary moviepy ships (imageio-ffmpeg) — the libraries ComfyUI's LoadAudio decodes
with (PyAV) — run as a subprocess with a time limit. It blocks: call ``check_audio`` in a thread.
``run_ffmpeg`` and ``header_seconds`` are shared with the bot's audio fitting.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParamError
from ..limits import DEFAULT_LIMITS, human_size

__all__ = ["AUDIO_FORMATS", "AudioFormat", "DecodedAudio", "FfmpegTimeout", "check_audio", "header_seconds",
           "run_ffmpeg"]


@dataclass(frozen=True)
class AudioFormat:
    label: str
    extension: str
    mime: str


AUDIO_FORMATS = {  # ffmpeg's demuxer (the first part of its name) → what we call it
    "mp3": AudioFormat("MP3", ".mp3", "audio/mpeg"),
    "flac": AudioFormat("FLAC", ".flac", "audio/flac"),
    "wav": AudioFormat("WAV", ".wav", "audio/wav"),
    "ogg": AudioFormat("Ogg", ".ogg", "audio/ogg"),
    "mov": AudioFormat("M4A", ".m4a", "audio/mp4"),
    "matroska": AudioFormat("WebM", ".webm", "audio/webm"),
    "aiff": AudioFormat("AIFF", ".aiff", "audio/aiff"),
    "aac": AudioFormat("AAC", ".aac", "audio/aac"),
}
FORMAT_NAMES = ", ".join(dict.fromkeys(f.label for f in AUDIO_FORMATS.values()))
FFMPEG_TIMEOUT = 120  # seconds for one ffmpeg run; decoding 10 minutes of MP3 takes about one
LENGTH_SLACK = 0.5  # seconds a length may exceed the cap (encoder padding of a file exactly at it)
_SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(AUDIO_FORMATS)]
_INPUT = re.compile(r"^Input #0, ([^,\s]+)[^\n]*?, from ", re.MULTILINE)
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Audio: ", re.MULTILINE)
_DECODED = re.compile(r"^out_time_us=(\d+)$", re.MULTILINE)


class FfmpegTimeout(Exception):
    """ffmpeg did not finish within its time limit (and was killed)."""


@dataclass(frozen=True)
class DecodedAudio:
    """What ``check_audio`` learned about an accepted file."""

    seconds: float
    format: AudioFormat


def run_ffmpeg(arguments: list[str], *, timeout: float = FFMPEG_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """ffmpeg with ``arguments`` (no banner, no stdin), its output captured; ``FfmpegTimeout`` past ``timeout``."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", *arguments]
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FfmpegTimeout from None


def header_seconds(report: str) -> float | None:
    """The length an ffmpeg input report (its stderr) states in ``Duration: HH:MM:SS.ss``; None for ``N/A``."""
    found = _DURATION.search(report)
    if found is None:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def check_audio(data: bytes, *, param: str = "audio", max_bytes: int = DEFAULT_LIMITS.max_audio_bytes,
                max_seconds: int = DEFAULT_LIMITS.max_audio_seconds) -> DecodedAudio:
    """Accept an audio file (see the module docstring) or raise ``ParamError`` for ``param`` with a
    short reason that never echoes the file's content."""
    if len(data) > max_bytes:
        raise ParamError(param, f"the file is larger than {human_size(max_bytes)}")
    with tempfile.TemporaryDirectory(prefix="discomfy-audio-in-") as folder:
        path = Path(folder) / "input"
        path.write_bytes(data)
        try:
            found = _read_header(path, param, max_seconds)
            seconds = _decoded_seconds(path, param, max_seconds)
        except FfmpegTimeout:
            raise ParamError(param, "could not be read in time") from None
    if seconds > max_seconds + LENGTH_SLACK:
        raise ParamError(param, f"the sound is longer than {_minutes(max_seconds)}")
    return DecodedAudio(seconds, found)


def _read_header(path: Path, param: str, max_seconds: int) -> AudioFormat:
    report = run_ffmpeg([*_SAFE_INPUT, "-i", str(path)]).stderr.decode("utf-8", "replace")
    container = _INPUT.search(report)
    found = AUDIO_FORMATS.get(container.group(1)) if container else None
    if found is None:
        raise ParamError(param, f"must be an audio file ({FORMAT_NAMES})")
    if not _AUDIO_STREAM.search(report):
        raise ParamError(param, "has no sound in it")
    stated = header_seconds(report)
    if stated is not None and stated > max_seconds + LENGTH_SLACK:
        raise ParamError(param, f"the sound is {_minutes(stated)} long, over {_minutes(max_seconds)}")
    return found


def _decoded_seconds(path: Path, param: str, max_seconds: int) -> float:
    """Seconds of sound decoded from the first audio stream, reading at most ``max_seconds`` + 1."""
    done = run_ffmpeg([*_SAFE_INPUT, "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", str(max_seconds + 1),
                       "-nostats", "-progress", "pipe:1", "-f", "null", "-"])
    times = _DECODED.findall(done.stdout.decode("ascii", "replace"))
    if done.returncode != 0 or not times or int(times[-1]) <= 0:
        raise ParamError(param, "could not be decoded as audio")
    return int(times[-1]) / 1e6


def _minutes(seconds: float) -> str:
    """``45 s``, ``10 min``, ``2 min 5 s``."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")
