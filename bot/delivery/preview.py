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
import warnings

from PIL import Image

__all__ = ["PREVIEW_NAME", "PREVIEW_MAX_SIDE", "PREVIEW_QUALITY", "MAX_FRAME_BYTES", "MAX_FRAME_PIXELS",
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
