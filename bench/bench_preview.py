"""Live preview benchmark: encoding time per preview frame, and the effect of previews on job overhead.

    python bench/bench_preview.py [--runs 7] [--jobs 40]

Frames as ComfyUI sends them: latent2rgb previews are the latent's size (128² for a 1024² image),
TAESD previews are full size up to ``--preview-size`` (512 by default), and a server started
with a larger maximum sends up to 1024². Each is a JPEG (the server's default) or a PNG, filled
with noise so the encoder cannot take shortcuts. Median milliseconds per frame over ``--runs``
runs of 20 frames (bench/timing.py), and the preview's size.

Job overhead, built on bench_runtime.py's measurement: one job at a time on an in-process fake
ComfyUI (``time_scale`` 0, its own handling timed and subtracted), the job's progress drawn by
the bot's real progress loop (``show_progress``) into a message whose edits cost nothing. The
job is ``slow-canvas`` with 20 steps, each sending a 256² JPEG preview frame. Overhead = submit →
result in hand and progress loop ended, minus the fake's time; the median over ``--jobs`` jobs
× ``--runs`` runs, without previews, with previews at the shortest allowed interval (1.5 s, counted
from the job's start: these ~10 ms jobs end before a preview is due, as any job shorter than the
interval does), and with every frame (interval 0: an upload whenever the previous encoding is
done — the worst case, far beyond what a setting allows; what one preview costs a job shows here).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench import bench_runtime  # noqa: E402
from bench.bench_runtime import FakeClock, start_fakes  # noqa: E402
from bench.timing import median_seconds  # noqa: E402
from bot.delivery.preview import encode_preview  # noqa: E402
from bot.delivery.progress import show_progress  # noqa: E402
from engine import JobStore, Runtime, load_catalog  # noqa: E402

FRAMES = 20
JOB_VALUES = {"steps": 20, "seconds_per_step": 0.0}
VARIANTS = {"no previews": None, "previews every 1.5 s": 1.5, "previews of every frame": 0.0}


def noise_frame(side: int, fmt: str) -> bytes:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def per_frame_ms(frame: bytes, runs: int) -> float:
    return median_seconds(lambda: [encode_preview(frame) for _ in range(FRAMES)], runs) / FRAMES * 1000


class NullMessage:
    """A progress message whose edits cost nothing; counts the preview uploads."""

    def __init__(self) -> None:
        self.uploads = 0

    async def edit(self, **fields) -> None:
        self.uploads += bool(fields.get("attachments"))


async def job_overheads(jobs: int, preview_interval: float | None) -> tuple[list[float], int]:
    """Per-job overhead in seconds (see the module docstring) and the preview uploads made."""
    with tempfile.TemporaryDirectory() as tmp:
        [(fake, server, _)] = await start_fakes(1, Path(tmp))
        fake.preview_side = 256
        catalog = load_catalog([ROOT / "manifests" / "slow-canvas.yaml"], ROOT / "workflows")
        store = await JobStore.open(":memory:")
        runtime = Runtime(catalog, backends=[("b1", str(server.make_url("")).rstrip("/"))], store=store)
        await runtime.start()
        message, overheads = NullMessage(), []
        try:
            for number in range(jobs + 5):  # 5 to warm up
                fake_before, start = FakeClock.now(), time.perf_counter()
                job = await runtime.submit("slow-canvas", {**JOB_VALUES, "nonce": number})
                await asyncio.gather(job.result(), show_progress(job, message, title="Slow canvas", interval=0.0,
                                                                 preview_interval=preview_interval))
                if number >= 5:
                    overheads.append(time.perf_counter() - start - (FakeClock.now() - fake_before))
        finally:
            await runtime.close()
            await store.close()
            await server.close()
        return overheads, message.uploads


async def overhead_report(runs: int, jobs: int) -> None:
    bench_runtime._instrument_fake_code()
    print(f"job overhead with the progress loop, median of {jobs} jobs × {runs} runs (20 preview frames per job)")
    overheads = {label: [] for label in VARIANTS}
    uploads = dict.fromkeys(VARIANTS, 0)
    order = list(VARIANTS.items())
    for run in range(runs):  # variants interleaved, in a rotating order, so a busy moment hits them alike
        for label, interval in order[run % len(order):] + order[:run % len(order)]:
            found, made = await job_overheads(jobs, interval)
            overheads[label] += found
            uploads[label] += made
    baseline = statistics.median(overheads["no previews"]) * 1000
    for label in VARIANTS:
        median = statistics.median(overheads[label]) * 1000
        print(f"  {label:24}: {median:6.2f} ms/job ({median / baseline:6.1%} of no previews), "
              f"{uploads[label] / ((jobs + 5) * runs):.1f} uploads/job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=40)
    options = parser.parse_args()
    runs = options.runs
    print(f"preview encoding, median of {runs} runs of {FRAMES} frames")
    for side in (128, 512, 1024):
        for fmt in ("JPEG", "PNG"):
            frame = noise_frame(side, fmt)
            out = encode_preview(frame)
            print(f"  {side:4}² {fmt:4} ({len(frame) / 1024:6.0f} KiB): {per_frame_ms(frame, runs):6.2f} ms/frame"
                  f" → {len(out) / 1024:4.0f} KiB JPEG")
    asyncio.run(overhead_report(runs, options.jobs))


if __name__ == "__main__":
    main()
