"""Running a hostile case in a process of its own, bounded in time and address space, and reading
its peak memory — so a memory case that regresses fails with a number instead of taking the
machine down.

``run_bounded(["-m", "engine.cli", "validate", …])`` or ``run_bounded(["-c", CODE])``; the child
runs from the repository root with ``tests`` importable. It is started through this module
(``python -m tests.bounded_process REPORT ARGS…``), which sets ``RLIMIT_AS``, runs the target and
at exit writes the process's own peak resident memory (``VmHWM``, which starts afresh at exec —
unlike ``ru_maxrss``, which keeps the high-water mark of the forking test process) and CPU time.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outcome", "run_bounded", "png_bomb", "ROOT"]

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float  # the child's own peak resident memory (VmHWM)
    seconds: float  # wall-clock, interpreter start-up included
    cpu_seconds: float  # user + system time of the child (what it cost, however busy the machine is)


def run_bounded(args: list[str], *, timeout: float = 60.0, address_space_mb: int = 2048,
                env: dict[str, str] | None = None) -> Outcome:
    """Run ``python ARGS``; killed after ``timeout`` s (AssertionError), allocations past
    ``address_space_mb`` fail inside the child (MemoryError there, a non-zero exit here)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", **(env or {})}
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "tests.bounded_process", str(report), str(address_space_mb), *args]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the bounded case ran longer than {timeout} s") from None
        seconds = time.perf_counter() - started
        figures = json.loads(report.read_text()) if report.exists() else {"peak_mb": float("nan"), "cpu": 0.0}
    return Outcome(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"),
                   figures["peak_mb"], seconds, figures["cpu"])


def _report(path: str) -> None:
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(path).write_text(json.dumps({"peak_mb": peak_kb / 1024, "cpu": usage.ru_utime + usage.ru_stime}))


def _launch(report: str, address_space_mb: str, *args: str) -> None:
    """The child side: limit, report at exit, then run ``-m MODULE …`` or ``-c CODE …`` as python would."""
    cap = int(address_space_mb) * MIB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    atexit.register(_report, report)
    flag, target, *rest = args
    sys.argv = [target, *rest]
    if flag == "-m":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv[0] = "-c"
        exec(compile(target, "<bounded case>", "exec"), {"__name__": "__main__"})


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width``×``height`` black pixels, compressed to a few KiB per
    10k rows: built row by row, so making it costs no memory (decoding it to RGB costs 3 B/px)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


if __name__ == "__main__":
    _launch(*sys.argv[1:])
