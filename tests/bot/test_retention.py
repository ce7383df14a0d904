"""Retention with a fake clock: kept inputs pruned by age (from the last use) and total size, finished
job records pruned after the setting and the database compacted; buttons of pruned jobs and reruns of
pruned inputs answer clearly; unfinished jobs are never pruned."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.jobs.inputs import NOT_KEPT, InputFolder
from bot.retention import DAY, RetentionPolicy, prune_folder, prune_once
from bot.views.buttons import UNKNOWN_JOB
from engine.jobs.store import JobRecord, JobStore

from .harness import Upload
from .stack import flow_catalog, png, running_stack

NOW = 1_900_000_000.0


def kept(folder: Path, name: str, size: int, age_days: float) -> Path:
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_old_files_go_then_the_least_recently_used_until_the_folder_fits(tmp_path):
    old = kept(tmp_path, "old", 10, age_days=31)
    middle = kept(tmp_path, "middle", 50, age_days=5)
    young = kept(tmp_path, "young", 50, age_days=1)
    pruned = prune_folder(tmp_path, max_age=30 * DAY, max_bytes=60, now=NOW)
    assert (old.exists(), middle.exists(), young.exists()) == (False, False, True)
    assert (pruned.files, pruned.bytes, pruned.kept_bytes) == (2, 60, 50)
    assert prune_folder(tmp_path / "missing", max_age=1, max_bytes=1, now=NOW).files == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(st.integers(0, 400), st.floats(0, 60)), max_size=12),
       max_days=st.floats(1, 60), max_bytes=st.integers(0, 2000))
def test_pruning_keeps_exactly_the_youngest_files_that_fit(tmp_path_factory, files, max_days, max_bytes):
    folder = tmp_path_factory.mktemp("inputs")
    paths = [kept(folder, f"f{i}", size, age) for i, (size, age) in enumerate(files)]
    prune_folder(folder, max_age=max_days * DAY, max_bytes=max_bytes, now=NOW)
    left = [p for p in paths if p.exists()]
    assert sum(p.stat().st_size for p in left) <= max_bytes
    assert all(p.stat().st_mtime > NOW - max_days * DAY for p in left)
    if left:  # what stays is never older than what went
        oldest_left = min(p.stat().st_mtime for p in left)
        assert all(NOW - age * DAY <= oldest_left for p, (_, age) in zip(paths, files) if not p.exists())


def test_keeping_an_input_again_counts_as_a_use(tmp_path):
    folder = InputFolder(tmp_path)
    sha = folder.keep(b"data")
    long_ago = time.time() - 40 * DAY
    os.utime(folder.file(sha), (long_ago, long_ago))
    folder.keep(b"data")
    assert folder.file(sha).stat().st_mtime > time.time() - 60


async def test_finished_jobs_are_pruned_unfinished_never_and_the_file_shrinks(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    async with await JobStore.open(str(path)) as store:
        filler = {"blob": "x" * 20_000}
        for i in range(200):
            await store.create(JobRecord(f"old{i}", "m", extra=filler, state="done", created_at=NOW - 100 * DAY,
                                         finished_at=NOW - 99 * DAY))
        await store.create(JobRecord("recent", "m", state="failed", created_at=NOW - DAY, finished_at=NOW - DAY))
        await store.create(JobRecord("stuck", "m", state="running", created_at=NOW - 200 * DAY))
        await store.create(JobRecord("no-end", "m", state="cancelled", created_at=NOW - 200 * DAY))
        before = path.stat().st_size + _wal(path)
        assert await store.prune_finished(NOW - 90 * DAY) == 201
        await store.compact()
        assert {r.job_id for r in await store.recent(limit=500)} == {"recent", "stuck"}
        assert path.stat().st_size + _wal(path) < before / 10


def _wal(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_buttons_of_pruned_jobs_and_reruns_of_pruned_inputs_answer_clearly(tmp_path, fake_comfy):
    catalog = flow_catalog(tmp_path / "manifests")
    db_path = tmp_path / "data" / "jobs.sqlite3"
    async with running_stack(fake_comfy.url, db_path, catalog) as stack:
        await stack.slash("invert", image=Upload("in.png", png()))
        (job,) = await stack.jobs()
        assert job.state == "done" and len(list((db_path.parent / "inputs").iterdir())) == 1
        policy = RetentionPolicy(inputs_max_age=30 * DAY, inputs_max_bytes=1 << 30, jobs_max_age=90 * DAY)

        pruned = await prune_once(stack.store, db_path.parent / "inputs", policy, now=time.time() + 40 * DAY)
        assert (pruned.files, pruned.jobs) == (1, 0)
        await stack.dispatch(stack.fake.component_payload(f"dc:rerun:{job.job_id}"))
        assert any(NOT_KEPT in text for text in stack.ephemeral_texts() + _edits(stack))

        pruned = await prune_once(stack.store, db_path.parent / "inputs", policy, now=time.time() + 100 * DAY)
        assert pruned.jobs == 1 and await stack.jobs() == []
        await stack.dispatch(stack.fake.component_payload(f"dc:seed:{job.job_id}"))
        assert stack.ephemeral_texts()[-1] == UNKNOWN_JOB


def _edits(stack) -> list[str]:
    return [str(r.payload) for r in stack.fake.requests]
