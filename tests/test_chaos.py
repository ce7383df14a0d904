"""A small seeded chaos run in CI (the full one is ``python bench/chaos.py``: 1000 jobs, 50 users)."""

from __future__ import annotations

import pytest

from tests.chaos import run_chaos


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11])
async def test_every_job_ends_in_exactly_one_delivered_outcome_and_none_runs_twice(seed):
    counts = await run_chaos(seed, jobs=150, users=15, restarts=2, pace=0.04, drain_timeout=90)
    report = "\n".join(counts.lines())
    assert counts.lost == 0 and counts.duplicated == 0, report
    outcomes = counts.delivered + sum(counts.failed.values()) + counts.cancelled + sum(counts.refused.values())
    assert outcomes == counts.interactions == 150, report
    assert counts.faults["bot restart"] == 2 and counts.delivered > 100, report
    assert len({"ws drop", "die", "http 500", "timeout", "db lock"} & set(counts.faults)) >= 3, report
