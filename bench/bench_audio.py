"""Audio benchmark: fitting a 3-minute track to Discord's upload limit, and drawing its waveform.

    python bench/bench_audio.py [--runs 5]

The track is 3 minutes of 44.1 kHz stereo noise (noise defeats any encoder's savings, the worst
case) as FLAC (what SaveAudio writes, ~30 MB) and as 320 kbps MP3 (~7 MB). Each is fitted to an
8 MiB limit (over it for the FLAC: re-encoded to MP3) and to a 2 MiB limit (MP3 at a lower
bitrate), and its waveform is drawn. Median seconds of ``--runs`` runs each (bench/timing.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import imageio_ffmpeg  # noqa: E402
import numpy as np  # noqa: E402

from bench.timing import median_seconds  # noqa: E402
from bot.delivery.audio import fit_audio, waveform_png  # noqa: E402

RATE, SECONDS, MIB = 44100, 180, 1024 * 1024


def track(fmt: list[str]) -> bytes:
    pcm = (np.random.default_rng(7).uniform(-0.4, 0.4, (RATE * SECONDS, 2)) * 32767).astype("<i2").tobytes()
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "s16le", "-ar", str(RATE), "-ac", "2",
               "-i", "-", *fmt, "-"]
    return subprocess.run(command, input=pcm, capture_output=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    sources = {"FLAC": track(["-f", "flac"]), "MP3 320k": track(["-f", "mp3", "-b:a", "320k"])}
    print(f"3-minute track, median of {runs} runs")
    for name, data in sources.items():
        for limit in (8 * MIB, 2 * MIB):
            if len(data) <= limit:
                print(f"  {name:9} {len(data) / MIB:5.1f} MiB → {limit // MIB} MiB: fits as it is")
                continue
            fitted = fit_audio(data, filename="track.flac", limit=limit)
            seconds = median_seconds(lambda: fit_audio(data, filename="track.flac", limit=limit), runs)
            print(f"  {name:9} {len(data) / MIB:5.1f} MiB → {limit // MIB} MiB: {seconds:5.2f} s "
                  f"({fitted.notice.split(' to fit')[0]}, {len(fitted.data) / MIB:.2f} MiB)")
        print(f"  {name:9} waveform: {median_seconds(lambda: waveform_png(data), runs):5.2f} s")


if __name__ == "__main__":
    main()
