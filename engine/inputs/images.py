"""Checking an input image by decoding it: PNG, JPEG or WebP, within a byte and a pixel cap.

The one check for every way an image reaches a job (Discord attachments, ``engine run --image``,
stored inputs): the type is judged by content, never by file name, and decompression bombs are
refused before they are decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from ..errors import ParamError
from ..limits import DEFAULT_LIMITS, human_size

__all__ = ["IMAGE_FORMATS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "DecodedImage", "check_image", "human_size"]

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_IMAGE_BYTES = DEFAULT_LIMITS.max_image_bytes
MAX_IMAGE_PIXELS = DEFAULT_LIMITS.max_image_pixels


@dataclass(frozen=True)
class DecodedImage:
    """What ``check_image`` learned about an accepted image."""

    width: int
    height: int
    format: str
    mime: str


def check_image(data: bytes, *, param: str = "image", max_bytes: int = MAX_IMAGE_BYTES,
                max_pixels: int = MAX_IMAGE_PIXELS) -> DecodedImage:
    """Accept a PNG, JPEG or WebP image judged by decoding it, or raise ``ParamError`` for ``param``
    with a short reason (never echoing the file's content)."""
    if len(data) > max_bytes:
        raise ParamError(param, f"the file is larger than {human_size(max_bytes)}")
    with warnings.catch_warnings():
        # Our own pixel cap replaces Pillow's global bomb warning; it must not leak to logs.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                if fmt not in IMAGE_FORMATS:
                    raise ParamError(param, "must be a PNG, JPEG or WebP image")
                width, height = image.size
                if width * height > max_pixels:
                    raise ParamError(param, f"the image is {width}×{height}, over {max_pixels:,} pixels")
                image.load()
        except ParamError:
            raise
        except Image.DecompressionBombError:
            raise ParamError(param, "the image has too many pixels") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ParamError(param, "could not be read as a PNG, JPEG or WebP image") from None
    return DecodedImage(width, height, fmt, IMAGE_FORMATS[fmt])
