"""Live preview benchmark: encoding time per preview frame.

    python bench/bench_preview.py [--runs 7]

Frames as ComfyUI sends them: latent2rgb previews are the latent's size (128² for a 1024² image),
TAESD previews are full size up to ``--preview-size`` (512 by default), and a server started
with a larger maximum sends up to 1024². Each is a JPEG (the server's default) or a PNG, filled
with noise so the encoder cannot take shortcuts. Median milliseconds per frame over ``--runs``
runs of 20 frames (bench/timing.py), and the preview's size.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.timing import median_seconds  # noqa: E402
from bot.delivery.preview import encode_preview  # noqa: E402

FRAMES = 20


def noise_frame(side: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def per_frame_ms(frame: bytes, runs: int) -> float:
    return median_seconds(lambda: [encode_preview(frame) for _ in range(FRAMES)], runs) / FRAMES * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    print(f"preview encoding, median of {runs} runs of {FRAMES} frames")
    for side in (128, 512, 1024):
        for fmt in ("JPEG", "PNG"):
            frame = noise_frame(side, fmt)
            out = encode_preview(frame)
            print(f"  {side:4}² {fmt:4} ({len(frame) / 1024:6.0f} KiB): {per_frame_ms(frame, runs):6.2f} ms/frame"
                  f" → {len(out) / 1024:4.0f} KiB JPEG")


if __name__ == "__main__":
    main()
