"""engine.inputs.images.check_image: the one input-image check (type by decoding, byte and pixel caps)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine import ParamError
from engine.inputs.images import check_image


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for an image of the given size, followed by almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("PNG", "image/png")]
)
def test_check_image_accepts_png_jpeg_webp(fmt, mime):
    data = encode(noise(64, 32), fmt)
    decoded = check_image(data, max_bytes=1_000_000, max_pixels=10_000)
    assert (decoded.width, decoded.height, decoded.format, decoded.mime) == (64, 32, fmt, mime)


def test_check_image_rejects_text_named_png():
    with pytest.raises(ParamError) as caught:
        check_image(b"hello, I am a PNG, honest", max_bytes=1000, max_pixels=1000, param="init_image")
    assert caught.value.param == "init_image"
    assert "honest" not in str(caught.value)


def test_check_image_rejects_other_image_formats():
    with pytest.raises(ParamError, match="PNG, JPEG or WebP"):
        check_image(encode(noise(8, 8), "GIF"), max_bytes=10_000, max_pixels=1000)


def test_check_image_rejects_files_over_the_byte_cap():
    data = encode(noise(64, 64), "PNG")
    with pytest.raises(ParamError, match="larger than"):
        check_image(data, max_bytes=len(data) - 1, max_pixels=10_000)


def test_check_image_rejects_a_header_claiming_a_decompression_bomb(recwarn):
    with pytest.raises(ParamError, match="pixels"):
        check_image(png_header_claiming(100_000, 100_000), max_bytes=10_000, max_pixels=10**9)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_check_image_rejects_more_pixels_than_allowed_without_warnings(recwarn):
    data = png_header_claiming(12_000, 9_000)  # over Pillow's own warning threshold too
    with pytest.raises(ParamError, match="12000×9000"):
        check_image(data, max_bytes=10_000, max_pixels=4096 * 4096)
    assert not recwarn.list


def test_check_image_rejects_a_real_image_over_the_pixel_cap():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    with pytest.raises(ParamError, match="300×200"):
        check_image(data, max_bytes=1_000_000, max_pixels=300 * 200 - 1)


def test_check_image_rejects_a_truncated_image():
    data = encode(noise(64, 64), "PNG")
    with pytest.raises(ParamError, match="could not be read"):
        check_image(data[: len(data) // 2], max_bytes=1_000_000, max_pixels=10_000)
