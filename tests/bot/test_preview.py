"""The live preview encoder: small JPEGs from preview frames, None for anything unusable."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from bot.delivery.preview import (MAX_FRAME_BYTES, PREVIEW_MAX_SIDE, encode_preview, encode_preview_async)


def frame(size: tuple[int, int], fmt: str = "JPEG", colour=(200, 40, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


@given(width=st.integers(1, 1500), height=st.integers(1, 1500), fmt=st.sampled_from(["JPEG", "PNG", "WEBP"]))
@settings(max_examples=40, deadline=None)
def test_any_frame_becomes_a_jpeg_within_the_side_keeping_its_shape(width, height, fmt):
    preview = Image.open(io.BytesIO(encode_preview(frame((width, height), fmt))))
    assert preview.format == "JPEG"
    assert max(preview.size) <= PREVIEW_MAX_SIDE
    if max(width, height) <= PREVIEW_MAX_SIDE:
        assert preview.size == (width, height)  # never upscaled
    else:  # scaled as a whole: each side within a pixel of the exact scaled size
        scale = PREVIEW_MAX_SIDE / max(width, height)
        assert abs(preview.width - max(width * scale, 1)) <= 1 and abs(preview.height - max(height * scale, 1)) <= 1


def test_colour_survives_and_the_preview_is_small():
    big = frame((1024, 1024), "PNG", (10, 120, 240))
    preview = encode_preview(big)
    assert len(preview) < 12 * 1024
    pixel = Image.open(io.BytesIO(preview)).getpixel((50, 50))
    assert all(abs(a - b) <= 6 for a, b in zip(pixel, (10, 120, 240)))


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming a huge size, with a tiny (bogus) body: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)) \
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.mark.parametrize("data", [
    b"", b"not an image", b"\xff\xd8\xff" + b"\x00" * 100,  # truncated JPEG
    _png_header_claiming(50_000, 50_000),                    # pixel cap, refused from the header alone
    b"GIF89a" + b"\x00" * 100,                               # a format previews never come in
    b"\xff" * (MAX_FRAME_BYTES + 1),                         # byte cap, refused before decoding
])
def test_unusable_frames_give_none_never_an_exception(data):
    assert encode_preview(data) is None


@given(st.binary(max_size=4096))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_never_raise(data):
    result = encode_preview(data)
    assert result is None or result[:2] == b"\xff\xd8"


async def test_async_twin_gives_the_same_bytes():
    data = frame((640, 480))
    assert await encode_preview_async(data) == encode_preview(data)
