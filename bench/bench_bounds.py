"""Issue 7's must-show figures: time and peak memory of the hostile cases, each in a fresh process.

    python bench/bench_bounds.py [--runs 5]

For each case: the median wall time and CPU time (user + system: what the process cost, however
busy the shared machine is; interpreter start-up and imports included, ~0.5 s of it, so both are
upper bounds of the work itself) and the largest peak resident memory over the runs, plus the one
line the case ended with. The time goal is checked on the CPU time. Goals: the 9-level alias bomb under 1 s and 200 MB; the 300 MB websocket
frame and the 95 MB JSON answers under 300 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bounded_process import run_bounded  # noqa: E402
from tests.engine.test_bounds import laughs  # noqa: E402

MB = 1000 * 1000


def cases(folder: Path) -> dict[str, tuple[list[str], float, float]]:
    """name → (python arguments, time goal s, memory goal MB)."""
    bomb = folder / "bomb.yaml"
    bomb.write_text(laughs(9))
    (folder / "workflows").mkdir()
    memory = ["-m", "tests.memory_cases"]
    return {
        "engine validate, 9-level alias bomb": (["-m", "engine.cli", "validate", str(bomb), "--workflows",
                                                 str(folder / "workflows")], 1.0, 200),
        "a 300 MB websocket frame during a job": ([*memory, "frame", str(300 * MB)], 0, 300),
        "a 95 MB /object_info at start-up (chunked)": ([*memory, "answer", "/object_info", str(95 * MB), "chunked"],
                                                       0, 300),
        "a 95 MB /history when a job ends": ([*memory, "answer", "/history", str(95 * MB), "declared"], 0, 300),
        "3 PNGs of 12000×12000 in one result": ([*memory, "grid", "3", "12000"], 0, 300),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        for name, (argv, time_goal, memory_goal) in cases(Path(folder)).items():
            outcomes = [run_bounded(argv, timeout=120) for _ in range(args.runs)]
            seconds = statistics.median(o.seconds for o in outcomes)
            cpu = statistics.median(o.cpu_seconds for o in outcomes)
            peak = max(o.peak_mb for o in outcomes)
            line = (outcomes[-1].stdout.strip().splitlines() or outcomes[-1].stderr.strip().splitlines() or [""])[0]
            ok = peak < memory_goal and (not time_goal or cpu < time_goal)
            failed |= not ok
            goal = f"goal < {memory_goal} MB" + (f", < {time_goal:g} s" if time_goal else "")
            print(f"{'ok  ' if ok else 'MISS'} {name}: {seconds:.2f} s wall / {cpu:.2f} s CPU median, "
                  f"peak {peak:.0f} MB ({goal})")
            print(f"     {line[:160]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
