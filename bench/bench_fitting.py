"""How long bot.delivery.fitting takes on realistic outputs (run: ``python bench/bench_fitting.py``).

Synthetic inputs stand in for ComfyUI outputs: a photo-like still (smooth gradients plus grain,
which compresses like a real render), a pure-noise still (the worst case), an animation and an
81-frame 720×720 video (a typical Wan/LTX clip), each fitted to Discord's 10 MiB default limit and
to a tighter limit. Prints one line per case: input size, output size, seconds, notice.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.delivery.fitting import fit_file, make_grid  # noqa: E402

MIB = 1024 * 1024


def photo_like(size: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([np.sin(6 * x + 1) * 90 + 128, np.cos(5 * y) * 90 + 128, (x + y) * 60 + 60], axis=-1)
    grain = rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


def noise(size: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=4)  # what ComfyUI's SaveImage uses
    return buffer.getvalue()


def animated_webp(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=62, lossless=True)
    return buffer.getvalue()


def video(frames: int, side: int) -> bytes:
    from moviepy import ImageSequenceClip

    rng = np.random.default_rng(3)
    base = np.asarray(photo_like(side)).astype(np.int16)
    clip_frames = [
        np.clip(np.roll(base, 4 * i, axis=1) + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        for i in range(frames)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        ImageSequenceClip(clip_frames, fps=16).write_videofile(
            str(path), codec="libx264", logger=None, ffmpeg_params=["-crf", "4", "-preset", "ultrafast"]
        )
        return path.read_bytes()


def run(label: str, data: bytes, filename: str, mime: str, limit: int) -> None:
    start = time.perf_counter()
    fitted = fit_file(data, filename=filename, mime=mime, limit=limit)
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {len(data) / MIB:7.1f} MiB -> {len(fitted.data) / MIB:6.2f} MiB "
          f"(limit {limit / MIB:4.1f}) {elapsed:6.2f} s  {fitted.notice}")


def main() -> None:
    photo = png(photo_like(4096))
    run("photo-like 4096² PNG", photo, "a.png", "image/png", 10 * MIB)
    run("photo-like 4096² PNG", photo, "a.png", "image/png", 2 * MIB)
    worst = png(noise(4096))
    run("noise 4096² PNG (worst case)", worst, "b.png", "image/png", 10 * MIB)
    frames = [photo_like(512, seed) for seed in range(48)]
    run("animated WebP 48×512²", animated_webp(frames), "c.webp", "image/webp", 2 * MIB)
    clip = video(81, 720)
    run("video 81×720² (5 s)", clip, "d.mp4", "video/mp4", 10 * MIB)
    run("video 81×720² (5 s)", clip, "d.mp4", "video/mp4", 1 * MIB)
    tiles = [png(photo_like(1024, seed)) for seed in range(4)]
    start = time.perf_counter()
    grid = make_grid(tiles, limit=10 * MIB)
    print(f"{'grid of 4 × 1024²':<34} -> {len(grid) / MIB:6.2f} MiB {time.perf_counter() - start:6.2f} s")


if __name__ == "__main__":
    main()
