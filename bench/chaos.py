"""The seeded chaos run (issue 9 §6): jobs from many users through the whole bot on fake ComfyUIs while
websockets drop, backends die and return, HTTP fails or times out, the database is locked and the bot
restarts. Prints delivered / failed (with reasons) / cancelled / lost / duplicated.

The bot runs with its defaults: our own queue in front of the servers, queue_depth 1 (issue 11 §1).

    python bench/chaos.py                      # seed 1, 1000 jobs, 50 users, 3 backends, 2 restarts
    python bench/chaos.py --seed 7             # replay seed 7 (same jobs, users and fault schedule)
    python bench/chaos.py --seeds 1-10         # one run per seed, and a total
    python bench/chaos.py --jobs 200 --seed 3  # smaller
    python bench/chaos.py --no-queue           # the old mode: every job sent to a server at once

Exit 1 when a job was lost or ran twice. The schedule (which job, which fault, when) comes from the
seed; what the servers and the event loop make of it can differ a little between runs, so counts
of failures may vary while lost = 0 and duplicated = 0 must hold for every run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos import QUEUE_DEPTH, ChaosCounts, run_chaos  # noqa: E402


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=_seeds, help="a range of seeds, e.g. 1-10 (one run each)")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--pace", type=float, default=0.04, help="mean seconds between two submissions")
    parser.add_argument("--queue-depth", type=int, default=QUEUE_DEPTH,
                        help=f"prompts sent ahead to each server (the bot's QUEUE_DEPTH, default {QUEUE_DEPTH})")
    parser.add_argument("--no-queue", action="store_true", help="no queue of ours: every job sent at once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    runs: list[ChaosCounts] = []
    for seed in args.seeds or [args.seed]:
        counts = asyncio.run(run_chaos(seed, jobs=args.jobs, users=args.users, backends=args.backends,
                                       restarts=args.restarts, pace=args.pace,
                                       queue_depth=None if args.no_queue else args.queue_depth))
        print("\n".join(counts.lines()), flush=True)
        runs.append(counts)
    if len(runs) > 1:
        print(f"{len(runs)} seeds: delivered {sum(r.delivered for r in runs)}, "
              f"failed {sum(sum(r.failed.values()) for r in runs)}, cancelled {sum(r.cancelled for r in runs)}, "
              f"lost = {sum(r.lost for r in runs)}, duplicated = {sum(r.duplicated for r in runs)}")
    return 1 if any(r.lost or r.duplicated for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
