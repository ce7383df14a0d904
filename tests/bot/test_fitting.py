"""Tests for bot.delivery.fitting: outputs fitted to Discord's upload limit, grids, upload validation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.delivery.fitting import (
    TooLargeError,
    fit_file,
    fit_file_async,
    make_grid,
    sniff_image_mime,
)
from engine.errors import ParamError

LIMIT = 200_000


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze())
    assert image.mode == mode
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture(scope="module")
def noisy_mp4(tmp_path_factory) -> bytes:
    """A 2 s, 128×96 noise video at near-lossless quality: far bigger than the test limits."""
    from moviepy import ImageSequenceClip

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(16)]
    path = tmp_path_factory.mktemp("video") / "noise.mp4"
    ImageSequenceClip(frames, fps=8).write_videofile(
        str(path), codec="libx264", logger=None, ffmpeg_params=["-crf", "10"]
    )
    return path.read_bytes()


# --- fit_file: stills -----------------------------------------------------------------------


def test_small_file_is_returned_unchanged():
    data = encode(noise(32, 32), "PNG")
    fitted = fit_file(data, filename="out.png", mime="image/png", limit=LIMIT)
    assert fitted.data is data
    assert (fitted.filename, fitted.mime, fitted.changed, fitted.notice) == (
        "out.png", "image/png", False, ""
    )


def test_noise_png_is_reencoded_under_the_limit_and_still_decodes():
    data = encode(noise(400, 400), "PNG")
    assert len(data) > LIMIT
    fitted = fit_file(data, filename="ComfyUI_0001_.png", mime="image/png", limit=LIMIT)
    assert len(fitted.data) <= LIMIT
    assert fitted.changed
    image = decode(fitted.data)
    assert image.format == "JPEG" and image.size == (400, 400)
    assert fitted.filename == "ComfyUI_0001_.jpg" and fitted.mime == "image/jpeg"
    assert fitted.notice.startswith("Re-encoded as JPEG (quality ")
    assert "195 KiB limit" in fitted.notice


def test_a_tight_limit_downscales_keeping_the_aspect_ratio():
    data = encode(noise(600, 300), "PNG")
    fitted = fit_file(data, filename="wide.png", mime="image/png", limit=30_000)
    image = decode(fitted.data)
    assert len(fitted.data) <= 30_000
    assert image.width < 600
    assert image.width / image.height == pytest.approx(2.0, rel=0.02)
    assert fitted.notice.startswith(f"Downscaled from 600×300 to {image.width}×{image.height}")


def test_transparent_images_become_webp_and_keep_their_alpha():
    data = encode(noise(200, 200, "RGBA"), "PNG")
    fitted = fit_file(data, filename="cutout.png", mime="image/png", limit=100_000)
    image = decode(fitted.data)
    assert len(fitted.data) <= 100_000
    assert image.format == "WEBP" and image.mode == "RGBA"
    assert fitted.filename == "cutout.webp" and fitted.mime == "image/webp"


def test_a_png_just_over_the_limit_is_recompressed_losslessly():
    # Flat colour stripes: tiny when compressed well, bulky with compression off.
    stripes = Image.new("RGB", (256, 256))
    stripes.paste((200, 30, 30), (0, 0, 256, 128))
    data = encode(stripes, "PNG", compress_level=0)
    limit = len(data) - 1
    fitted = fit_file(data, filename="flat.png", mime="image/png", limit=limit)
    assert fitted.notice.startswith("Recompressed losslessly")
    assert fitted.mime == "image/png"
    assert np.array_equal(np.asarray(decode(fitted.data)), np.asarray(stripes))


def test_animated_gif_stays_animated():
    frames = [noise(96, 96, seed=i) for i in range(6)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    fitted = fit_file(data, filename="loop.gif", mime="image/gif", limit=len(data) // 3)
    image = Image.open(io.BytesIO(fitted.data))
    assert len(fitted.data) <= len(data) // 3
    assert image.format == "WEBP" and image.is_animated and image.n_frames == 6
    assert "animated WebP" in fitted.notice


def test_unknown_content_over_the_limit_raises_a_user_safe_error():
    with pytest.raises(TooLargeError, match="too large for Discord's 1 KiB limit"):
        fit_file(b"x" * 5000, filename="notes.txt", mime="text/plain", limit=1024)


def test_a_corrupt_image_over_the_limit_raises_instead_of_crashing():
    data = encode(noise(200, 200), "PNG")
    with pytest.raises(TooLargeError, match="could not be re-encoded"):
        fit_file(data[: len(data) // 2], filename="cut.png", mime="image/png", limit=1000)


def test_an_image_that_cannot_fit_even_tiny_raises():
    data = encode(noise(200, 200), "PNG")
    with pytest.raises(TooLargeError, match="image is too large"):
        fit_file(data, filename="a.png", mime="image/png", limit=300)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(40, 160),
    height=st.integers(40, 160),
    mode=st.sampled_from(["RGB", "RGBA", "L"]),
    limit_ratio=st.floats(0.05, 1.5),
)
def test_fit_file_result_always_fits_or_refuses(width, height, mode, limit_ratio):
    data = encode(noise(width, height, mode), "PNG")
    limit = max(1, int(len(data) * limit_ratio))
    try:
        fitted = fit_file(data, filename="x.png", mime="image/png", limit=limit)
    except TooLargeError:
        return
    assert len(fitted.data) <= limit
    assert fitted.changed == (fitted.data is not data)
    decode(fitted.data)


async def test_fit_file_async_gives_the_same_result():
    data = encode(noise(300, 300), "PNG")
    fitted = await fit_file_async(data, filename="a.png", mime="image/png", limit=LIMIT)
    assert fitted == fit_file(data, filename="a.png", mime="image/png", limit=LIMIT)


# --- fit_file: video ------------------------------------------------------------------------


def test_video_is_transcoded_under_the_limit_and_still_plays(noisy_mp4, tmp_path):
    from moviepy import VideoFileClip

    limit = 60_000
    assert len(noisy_mp4) > 3 * limit
    fitted = fit_file(noisy_mp4, filename="clip.mp4", mime="video/mp4", limit=limit)
    assert len(fitted.data) <= limit
    assert (fitted.filename, fitted.mime, fitted.changed) == ("clip.mp4", "video/mp4", True)
    assert fitted.notice.startswith("Re-encoded as H.264 MP4 (")
    assert fitted.data.find(b"moov") < fitted.data.find(b"mdat")  # faststart: playable while loading
    path = tmp_path / "fitted.mp4"
    path.write_bytes(fitted.data)
    with VideoFileClip(str(path)) as clip:
        assert clip.duration == pytest.approx(2.0, abs=0.2)
        assert clip.get_frame(1.0).shape[2] == 3


def test_video_that_cannot_fit_falls_back_to_its_first_frame(noisy_mp4):
    fitted = fit_file(noisy_mp4, filename="clip.mp4", mime="video/mp4", limit=4_000)
    assert len(fitted.data) <= 4_000
    assert fitted.filename.startswith("clip_first_frame.")
    assert decode(fitted.data).format in {"JPEG", "WEBP"}
    assert "first frame" in fitted.notice


def test_broken_video_raises_instead_of_crashing():
    broken = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 4000
    with pytest.raises(TooLargeError, match="could not be re-encoded"):
        fit_file(broken, filename="bad.mp4", mime="video/mp4", limit=1000)


# --- make_grid ------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "columns", "rows"), [(1, 1, 1), (2, 2, 1), (4, 2, 2), (5, 3, 2)])
def test_grid_has_ceil_sqrt_columns(count, columns, rows):
    images = [encode(noise(64, 48, seed=i), "PNG") for i in range(count)]
    grid = decode(make_grid(images, limit=10 * 1024 * 1024))
    assert grid.size == (columns * 64, rows * 48)


def test_grid_centres_smaller_images_in_cells_the_size_of_the_largest():
    red = encode(Image.new("RGB", (20, 20), (255, 0, 0)), "PNG")
    blue = encode(Image.new("RGB", (40, 40), (0, 0, 255)), "PNG")
    grid = decode(make_grid([red, blue], limit=10 * 1024 * 1024)).convert("RGB")
    assert grid.size == (80, 40)

    def close(xy, colour):  # JPEG: colours survive only approximately
        return all(abs(a - b) <= 12 for a, b in zip(grid.getpixel(xy), colour))

    assert close((20, 20), (255, 0, 0))
    assert close((2, 2), (0, 0, 0))
    assert close((60, 20), (0, 0, 255))


def test_grid_is_fitted_to_the_limit():
    images = [encode(noise(200, 200, seed=i), "PNG") for i in range(4)]
    data = make_grid(images, limit=LIMIT)
    assert len(data) <= LIMIT
    assert sniff_image_mime(data) == "image/jpeg"
    assert decode(data).size == (400, 400)


def test_grid_needs_images():
    with pytest.raises(ValueError):
        make_grid([], limit=LIMIT)
