"""The seeded chaos run (issue 9 §6): jobs from many users through the whole bot on fake ComfyUIs while
websockets drop, backends die and return, HTTP fails or times out, the database is locked and the bot
restarts. Prints delivered / failed (with reasons) / cancelled / lost / duplicated.

    python bench/chaos.py                      # seed 1, 1000 jobs, 50 users, 3 backends, 2 restarts
    python bench/chaos.py --seed 7             # replay seed 7 (same jobs, users and fault schedule)
    python bench/chaos.py --jobs 200 --seed 3  # smaller

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

from tests.chaos import run_chaos  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--backends", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--pace", type=float, default=0.04, help="mean seconds between two submissions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    counts = asyncio.run(run_chaos(args.seed, jobs=args.jobs, users=args.users, backends=args.backends,
                                   restarts=args.restarts, pace=args.pace))
    print("\n".join(counts.lines()))
    return 1 if counts.lost or counts.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
