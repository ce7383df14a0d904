"""Live preview frames for the progress message: ComfyUI's latest preview, small enough to re-upload often.

ComfyUI sends a preview image (JPEG or PNG, as large as the latent decoder makes it) with many
sampling steps. ``encode_preview`` turns one into a small JPEG: bounded before it is decoded
(bytes, then pixels read from the header), downscaled so its longest side is at most
``PREVIEW_MAX_SIDE`` with Pillow's draft mode (a JPEG is decoded at a fraction of its size
directly), and encoded at ``PREVIEW_QUALITY``. Pure (bytes in, bytes out) and synchronous; the
progress loop calls ``encode_preview_async``, which runs it in a worker thread. A frame that
cannot be decoded or breaks a cap gives None: a preview is a courtesy, never an error.
"""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from collections.abc import Callable

from PIL import Image

__all__ = ["LivePreview", "PREVIEW_NAME", "PREVIEW_MAX_SIDE", "PREVIEW_QUALITY", "MAX_FRAME_BYTES", "MAX_FRAME_PIXELS",
           "encode_preview", "encode_preview_async"]

PREVIEW_NAME = "preview.jpg"
PREVIEW_MAX_SIDE = 320
PREVIEW_QUALITY = 70
MAX_FRAME_BYTES = 8 * 1024 * 1024  # a preview frame bigger than this is not a preview
MAX_FRAME_PIXELS = 16_000_000      # 4000 × 4000: far beyond any latent preview
_FORMATS = ("JPEG", "PNG", "WEBP")


def encode_preview(frame: bytes, *, max_side: int = PREVIEW_MAX_SIDE, quality: int = PREVIEW_QUALITY) -> bytes | None:
    """A JPEG of ``frame`` whose longest side is at most ``max_side``; None for an unusable frame."""
    if not frame or len(frame) > MAX_FRAME_BYTES:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(frame), formats=_FORMATS) as image:
                width, height = image.size
                if width < 1 or height < 1 or width * height > MAX_FRAME_PIXELS:
                    return None
                image.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
                small = image.convert("RGB")
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            return None
    small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


async def encode_preview_async(frame: bytes, **options: int) -> bytes | None:
    """:func:`encode_preview` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(encode_preview, frame, **options)


class LivePreview:
    """Which preview the progress message shows, re-uploaded at most every ``interval`` seconds.

    ``offer`` each event's preview frame; ``poll`` starts encoding the latest frame (in a worker
    thread, never awaited by the caller) once ``interval`` has passed since the last upload (or
    since the start: a job that ends sooner shows no preview and pays nothing for one), and
    hands out the encoded JPEG when it is ready. ``wait_time`` says when polling again makes
    sense; ``close`` drops an encoding still running, so the result never waits for a preview.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._offered: bytes | None = None  # the latest frame offered
        self._frame: bytes | None = None  # ... while it is still to be encoded
        self._encoding: asyncio.Task | None = None
        self._shown_at = clock()  # the first frame waits one interval too: a job shorter than that needs none
        self.uploads = 0

    def offer(self, frame: bytes | None) -> None:
        """The preview of the latest event (events repeat the last frame: only a new one counts)."""
        if frame is not None and frame is not self._offered:
            self._frame = self._offered = frame

    def _due(self) -> bool:
        return self._clock() - self._shown_at >= self.interval

    def poll(self) -> bytes | None:
        """An encoded preview to upload now (counted as uploaded), or None."""
        if self._encoding is not None and self._encoding.done():
            task, self._encoding = self._encoding, None
            encoded = None if task.cancelled() or task.exception() else task.result()
            if encoded is not None:
                self._shown_at = self._clock()
                self.uploads += 1
                return encoded
        if self._encoding is None and self._frame is not None and self._due():
            frame, self._frame = self._frame, None
            self._encoding = asyncio.ensure_future(encode_preview_async(frame))
        return None

    @property
    def encoding(self) -> asyncio.Task | None:
        """The encoding under way (wait for it, then ``poll``)."""
        return self._encoding

    def wait_time(self) -> float | None:
        """Seconds until ``poll`` may start an encoding; None when there is nothing to encode."""
        if self._encoding is not None or self._frame is None:
            return None
        return max(self.interval - (self._clock() - self._shown_at), 0.0)

    def close(self) -> None:
        if self._encoding is not None:
            self._encoding.cancel()
            self._encoding = None
