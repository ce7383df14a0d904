"""A small seeded chaos run in CI (the full one is ``python bench/chaos.py``: 1000 jobs, 50 users), with the
bot's defaults (our own queue, ``queue_depth`` 1) and in the old mode (every job sent to a server at once)."""

from __future__ import annotations

import pytest

from tests.chaos import QUEUE_DEPTH, run_chaos


@pytest.mark.slow
@pytest.mark.parametrize("queue_depth", [QUEUE_DEPTH, None], ids=["our-queue", "sent-at-once"])
@pytest.mark.parametrize("seed", [11])
async def test_every_job_ends_in_exactly_one_delivered_outcome_and_none_runs_twice(seed, queue_depth):
    counts = await run_chaos(seed, jobs=150, users=15, restarts=2, pace=0.04, drain_timeout=90,
                             queue_depth=queue_depth)
    report = "\n".join(counts.lines())
    assert counts.lost == 0 and counts.duplicated == 0, report
    outcomes = counts.delivered + sum(counts.failed.values()) + counts.cancelled + sum(counts.refused.values())
    assert outcomes == counts.interactions == 150, report
    assert counts.faults["bot restart"] == 2 and counts.delivered > 100, report
    assert len({"ws drop", "die", "http 500", "timeout", "db lock"} & set(counts.faults)) >= 3, report
