"""Making files fit Discord: output re-encoding and batch grids.

Discord refuses any file above the interaction's ``filesize_limit`` (10 MiB unless boosted), so
every output goes through :func:`fit_file` before upload. Stills are re-compressed losslessly,
then re-encoded lossy (JPEG, or WebP when they have transparency), then downscaled. Animated
images stay animated (animated WebP). Videos are transcoded to H.264 MP4 with a bitrate computed
from their duration; a video that cannot fit is replaced by its first frame. Audio is re-encoded
to MP3 or Opus at the bitrate its duration allows (``audio.fit_audio``). Anything that still
cannot fit raises :class:`TooLargeError`, whose message is safe to show to users.

(Uploaded images are checked by the engine: ``engine.inputs.images.check_image``.)
Everything here is CPU-bound and synchronous; use the ``*_async`` twins from the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath

from PIL import Image, ImageSequence

from engine import DEFAULT_LIMITS, IMAGE_FORMATS, human_size

from ..metrics import observe_fitting

from .audio import AudioError, fit_audio

__all__ = [
    "FittedFile",
    "TooLargeError",
    "fit_file",
    "fit_file_async",
    "make_grid",
    "sniff_image_mime",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
UPLOAD_FORMATS = IMAGE_FORMATS
OUTPUT_MIMES = {**UPLOAD_FORMATS, "GIF": "image/gif"}
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif"}
STILL_QUALITIES = (95, 90, 80, 70, 60)
ANIMATED_QUALITIES = (80, 60, 40)
DOWNSCALE_QUALITY = 80
WEBP_MAX_SIDE = 16383
MIN_SIDE = 32  # below this a downscaled image is useless: give up instead
GRID_MAX_SIDE = 4096  # a grid is a preview; the full-size images are sent separately
VIDEO_MARGIN = 0.92  # container overhead and bitrate overshoot
VIDEO_ATTEMPTS = 3
MIN_VIDEO_KBPS = 40
AUDIO_KBPS = 64
BITS_PER_PIXEL = 0.08  # H.264 needs roughly this per pixel per frame to look acceptable
MIN_VIDEO_SIDE = 96


class TooLargeError(Exception):
    """A file cannot be made to fit; the message is short and safe to show to users."""


@dataclass(frozen=True)
class FittedFile:
    """A file ready for upload. ``notice`` says what was changed ("" when nothing was)."""

    data: bytes
    filename: str
    mime: str
    changed: bool
    notice: str
    source: int = 0  # which output (1-based) this file shows; 0 for a grid of several


@dataclass(frozen=True)
class _Encoded:
    data: bytes
    format: str
    quality: int | None
    size: tuple[int, int]


def fit_file(data: bytes, *, filename: str, mime: str, limit: int,
             max_pixels: int = DEFAULT_LIMITS.max_output_pixels) -> FittedFile:
    """Return ``data`` unchanged if it fits in ``limit`` bytes, else a re-encoded version.

    An image is only decoded within ``max_pixels`` (all frames of an animation together).

    Raises:
        TooLargeError: nothing acceptable fits (the message explains it to the user).
    """
    if len(data) <= limit:
        return FittedFile(data, filename, mime, changed=False, notice="")
    try:
        image = _open_image(data)
        if image is not None:
            with image:
                _refuse_pixels(image.size, max_pixels)
                if getattr(image, "is_animated", False):
                    return _fit_animated(image, filename=filename, limit=limit, max_pixels=max_pixels)
                return _fit_still_file(image, filename=filename, source_size=len(data), limit=limit)
        if _looks_like_audio(data, mime):
            return _fit_audio(data, filename=filename, limit=limit)
        if _looks_like_video(data, mime):
            return _fit_video(data, filename=filename, limit=limit)
    except (OSError, ValueError, EOFError, SyntaxError, KeyError, IndexError, AttributeError) as exc:
        # Corrupt or exotic files (Pillow, ffmpeg or moviepy choked): report, never crash.
        log.warning("could not re-encode a %d-byte file: %s", len(data), type(exc).__name__)
        log.debug("re-encoding failure", exc_info=True)
        raise TooLargeError(
            f"This file is too large for Discord's {human_size(limit)} limit and could not be re-encoded."
        ) from None
    raise TooLargeError(f"This file is too large for Discord's {human_size(limit)} limit.")


async def fit_file_async(data: bytes, *, filename: str, mime: str, limit: int,
                         max_pixels: int = DEFAULT_LIMITS.max_output_pixels) -> FittedFile:
    """:func:`fit_file` in a worker thread, so the event loop keeps running."""
    started = time.perf_counter()
    try:
        return await asyncio.to_thread(fit_file, data, filename=filename, mime=mime, limit=limit, max_pixels=max_pixels)
    finally:
        observe_fitting(mime.partition("/")[0] or "other", time.perf_counter() - started)


def make_grid(images: list[bytes], *, limit: int, max_pixels: int = DEFAULT_LIMITS.max_output_pixels) -> bytes:
    """Tile images into one preview, ``ceil(sqrt(n))`` columns, as a JPEG within ``limit``.

    Cells are the size of the largest image (scaled so the grid's longest side is at most
    4096 px); smaller images are centred on black. JPEG because a grid is only a preview and a
    lossless PNG of a 2048² grid takes seconds to encode. Sizes are read from the headers first:
    an image over ``max_pixels`` refuses the grid (``TooLargeError``) before anything is decoded,
    and the tiles are decoded and shrunk one at a time, so memory holds one image, not the batch.
    """
    if not images:
        raise ValueError("make_grid needs at least one image")
    sizes = [_checked_size(data, max_pixels) for data in images]
    columns = math.ceil(math.sqrt(len(sizes)))
    rows = math.ceil(len(sizes) / columns)
    cell_w = max(w for w, _ in sizes)
    cell_h = max(h for _, h in sizes)
    shrink = min(1.0, GRID_MAX_SIDE / max(columns * cell_w, rows * cell_h))
    cell_w, cell_h = max(1, int(cell_w * shrink)), max(1, int(cell_h * shrink))
    grid = Image.new("RGB", (columns * cell_w, rows * cell_h))
    for index, data in enumerate(images):
        tile = _decode_rgb(data)
        tile.thumbnail((cell_w, cell_h), Image.Resampling.LANCZOS)
        row, column = divmod(index, columns)
        x = column * cell_w + (cell_w - tile.width) // 2
        y = row * cell_h + (cell_h - tile.height) // 2
        grid.paste(tile, (x, y))
        del tile
    return _fit_still(grid, try_lossless=False, limit=limit).data


def _checked_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """An image's size from its header; ``TooLargeError`` past ``max_pixels``, ``ValueError`` if unreadable."""
    image = _open_image(data)
    if image is None:
        raise ValueError("not an image")
    with image:
        _refuse_pixels(image.size, max_pixels)
        return image.size


def _refuse_pixels(size: tuple[int, int], max_pixels: int, frames: int = 1) -> None:
    if size[0] * size[1] * frames > max_pixels:
        raise TooLargeError(f"This image has too many pixels ({size[0]}×{size[1]}"
                            f"{f' × {frames} frames' if frames > 1 else ''}) to be re-encoded "
                            f"(limit max_output_pixels).")


def sniff_image_mime(data: bytes) -> str:
    """The MIME type of image ``data`` judged by its content, or "application/octet-stream"."""
    image = _open_image(data)
    if image is None:
        return "application/octet-stream"
    with image:
        return OUTPUT_MIMES.get(image.format or "", "application/octet-stream")


def _fit_still_file(image: Image.Image, *, filename: str, source_size: int, limit: int) -> FittedFile:
    # Recompressing ComfyUI's PNGs (zlib level 4) at level 9 saves ~3-8% and costs ~0.5 s per
    # megapixel, so it is only worth trying for files just over the limit.
    lossless = image.format == "PNG" and source_size <= limit * 1.08
    encoded = _fit_still(image, try_lossless=lossless, limit=limit)
    name, mime = _renamed(filename, EXTENSIONS[encoded.format]), UPLOAD_FORMATS[encoded.format]
    return FittedFile(encoded.data, name, mime, True, _describe(encoded, image.size, "image", limit))


def _fit_still(image: Image.Image, *, try_lossless: bool, limit: int) -> _Encoded:
    if try_lossless:
        encoded = _encode_still(image, "PNG", None)
        if len(encoded.data) <= limit:
            return encoded
    lossy = "WEBP" if _has_alpha(image) and max(image.size) <= WEBP_MAX_SIDE else "JPEG"
    for quality in STILL_QUALITIES:
        encoded = _encode_still(image, lossy, quality)
        if len(encoded.data) <= limit:
            return encoded
    return _downscale_until_fits(
        image.size, len(encoded.data), limit,
        lambda size: _encode_still(image.resize(size, Image.Resampling.LANCZOS), lossy, DOWNSCALE_QUALITY),
        what="image",
    )


def _downscale_until_fits(original, last_size: int, limit: int, encode, *, what: str) -> _Encoded:
    """Shrink by the square root of the size ratio (bytes scale with area) until ``encode`` fits."""
    scale = 1.0
    while True:
        scale *= min(0.9, max(0.25, math.sqrt(limit / last_size) * 0.95))
        size = (round(original[0] * scale), round(original[1] * scale))
        if min(size) < MIN_SIDE:
            raise TooLargeError(f"This {what} is too large for Discord's {human_size(limit)} limit.")
        encoded = encode(size)
        if len(encoded.data) <= limit:
            return encoded
        last_size = len(encoded.data)


def _encode_still(image: Image.Image, fmt: str, quality: int | None) -> _Encoded:
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, "PNG", optimize=True)
    elif fmt == "JPEG":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(buffer, "JPEG", quality=quality, optimize=True)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return _Encoded(buffer.getvalue(), fmt, quality, image.size)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _fit_animated(image: Image.Image, *, filename: str, limit: int, max_pixels: int) -> FittedFile:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(image):
        _refuse_pixels(image.size, max_pixels, len(frames) + 1)  # before this frame is decoded
        durations.append(int(frame.info.get("duration", 100)) or 100)
        frames.append(frame.convert("RGBA"))
    loop = int(image.info.get("loop", 0))

    def encode(size: tuple[int, int], quality: int) -> _Encoded:
        scaled = frames if size == image.size else [f.resize(size, Image.Resampling.LANCZOS) for f in frames]
        buffer = io.BytesIO()
        scaled[0].save(
            buffer, "WEBP", save_all=True, append_images=scaled[1:], duration=durations,
            loop=loop, quality=quality, method=0,  # 4× faster than method=4, about as small
        )
        return _Encoded(buffer.getvalue(), "WEBP", quality, size)

    for quality in ANIMATED_QUALITIES:
        encoded = encode(image.size, quality)
        if len(encoded.data) <= limit:
            break
    else:
        encoded = _downscale_until_fits(
            image.size, len(encoded.data), limit,
            lambda size: encode(size, ANIMATED_QUALITIES[-1]), what="animation",
        )
    notice = _describe(encoded, image.size, "animation", limit)
    return FittedFile(encoded.data, _renamed(filename, ".webp"), "image/webp", True, notice)


def _looks_like_audio(data: bytes, mime: str) -> bool:
    # FLAC, MP3 with an ID3 tag, Ogg (Opus/Vorbis), WAV; a video's sound track stays with the video
    return mime.startswith("audio/") or data[:4] in (b"fLaC", b"OggS") or data[:3] == b"ID3" \
        or (data[:4] == b"RIFF" and data[8:12] == b"WAVE")


def _fit_audio(data: bytes, *, filename: str, limit: int) -> FittedFile:
    try:
        fitted = fit_audio(data, filename=filename, limit=limit)
    except AudioError as exc:
        raise TooLargeError(f"This audio does not fit Discord's {human_size(limit)} limit ({exc}).") from None
    return FittedFile(fitted.data, fitted.filename, fitted.mime, True, fitted.notice)


def _looks_like_video(data: bytes, mime: str) -> bool:
    # MP4/MOV carry "ftyp" at offset 4; WebM/MKV start with the EBML magic number.
    return mime.startswith("video/") or data[4:8] == b"ftyp" or data[:4] == b"\x1aE\xdf\xa3"


def _fit_video(data: bytes, *, filename: str, limit: int) -> FittedFile:
    # moviepy is heavy to import; only videos pay for it.
    from moviepy import VideoFileClip

    with tempfile.TemporaryDirectory(prefix="discomfy-fit-") as tmp:
        source = Path(tmp) / ("source" + (PurePath(filename).suffix or ".mp4"))
        source.write_bytes(data)
        with VideoFileClip(str(source)) as clip:
            duration, original, fps = clip.duration or 0.0, tuple(clip.size), clip.fps or 24
            has_audio = clip.audio is not None
            first_frame = clip.get_frame(0)
        attempt = _transcode_attempts(source, Path(tmp), duration, original, fps, has_audio, limit)
    if attempt is not None:
        video, size, kbps = attempt
        notice = f"Re-encoded as H.264 MP4 ({kbps:,} kbps"
        if size != original:
            notice += f", downscaled from {original[0]}×{original[1]} to {size[0]}×{size[1]}"
        notice += f") to fit Discord's {human_size(limit)} limit"
        return FittedFile(video, _renamed(filename, ".mp4"), "video/mp4", True, notice)
    still = _fit_still(Image.fromarray(first_frame), try_lossless=False, limit=limit)
    notice = f"The video does not fit Discord's {human_size(limit)} limit; this is its first frame"
    name = _renamed(filename, "") + "_first_frame" + EXTENSIONS[still.format]
    return FittedFile(still.data, name, UPLOAD_FORMATS[still.format], True, notice)


def _transcode_attempts(source, tmp, duration, original, fps, has_audio, limit):
    """Try up to three bitrates; return ``(bytes, size, kbps)`` or None when it cannot fit."""
    audio_kbps = AUDIO_KBPS if has_audio else 0
    kbps = limit * 8 * VIDEO_MARGIN / max(duration, 0.1) / 1000 - audio_kbps
    for attempt in range(VIDEO_ATTEMPTS):
        if kbps < MIN_VIDEO_KBPS:
            return None
        size = _video_size(original, fps, kbps)
        target = tmp / f"fitted-{attempt}.mp4"
        _transcode(source, target, size=size, kbps=int(kbps), audio_kbps=audio_kbps)
        video = target.read_bytes()
        if len(video) <= limit:
            return video, size, int(kbps)
        kbps *= 0.9 * limit / len(video)
    return None


def _video_size(original: tuple[int, int], fps: float, kbps: float) -> tuple[int, int]:
    """The largest even-sided size (same aspect) the bitrate can fill at BITS_PER_PIXEL."""
    width, height = original
    affordable = kbps * 1000 / (fps * BITS_PER_PIXEL)
    scale = min(1.0, math.sqrt(affordable / (width * height)))
    scale = max(scale, min(1.0, MIN_VIDEO_SIDE / min(width, height)))
    return (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))


def _transcode(source: Path, target: Path, *, size, kbps: int, audio_kbps: int) -> None:
    from moviepy import VideoFileClip

    with VideoFileClip(str(source), target_resolution=size, audio=audio_kbps > 0) as clip:
        clip.write_videofile(
            str(target), codec="libx264", bitrate=f"{kbps}k", preset="veryfast",
            audio=audio_kbps > 0, audio_codec="aac", audio_bitrate=f"{audio_kbps}k",
            temp_audiofile_path=str(target.parent), pixel_format="yuv420p", logger=None,
            ffmpeg_params=["-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k", "-movflags", "+faststart"],
        )


def _open_image(data: bytes) -> Image.Image | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None


def _decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        if _has_alpha(image):
            backdrop = Image.new("RGBA", image.size, (0, 0, 0, 255))
            return Image.alpha_composite(backdrop, image.convert("RGBA")).convert("RGB")
        return image.convert("RGB")


def _describe(encoded: _Encoded, original: tuple[int, int], what: str, limit: int) -> str:
    label = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "animated WebP" if what == "animation" else "WebP"}
    if encoded.quality is None:
        how = "Recompressed losslessly"
    else:
        how = f"Re-encoded as {label[encoded.format]} (quality {encoded.quality})"
    if encoded.size != original:
        how = (
            f"Downscaled from {original[0]}×{original[1]} to {encoded.size[0]}×{encoded.size[1]}"
            f" and {how[0].lower()}{how[1:]}"
        )
    return f"{how} to fit Discord's {human_size(limit)} limit"


def _renamed(filename: str, suffix: str) -> str:
    return PurePath(filename or "output").stem + suffix
