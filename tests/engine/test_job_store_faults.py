"""Jobs when the job database misbehaves: values it could not encode, writes that fail, a lock.

Every job still ends in exactly one outcome; what could not be saved is logged with the job id
and shown on the job (``unsaved``); a lock only delays the job's record.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.errors import ExecutionFailed, StoreError
from engine.jobs.journal import UNSAVED, Journal
from engine.jobs.progress import JobState
from engine.jobs.store import JobRecord, JobStore

from tests.lockkit import locked

from .jobkit import catalog, collect, fakes, start_runtime  # noqa: F401

LONE = "\udcff"  # a server's non-UTF-8 file name as Python decodes it


async def test_a_server_error_with_a_lone_surrogate_is_stored_and_not_resumed(fakes, start_runtime, tmp_path):
    """The write of such an error used to fail silently: the job stayed 'running' and ran again at
    every restart."""
    [fake] = await fakes()
    runtime = await start_runtime(fake, store_path=tmp_path / "jobs.db")
    fake.state.fail_node(class_type="ImageScale", message=f"bad {LONE} name")  # a user's text cannot carry one
    job = await runtime.submit("scale", {})
    with pytest.raises(ExecutionFailed):
        await job.result()
    row = await runtime.get(job.id)
    assert row.state == "failed" and row.error == "width: bad \ufffd name"
    assert job.unsaved is None and await runtime.store.unfinished() == []
    second = await start_runtime(fake, store_path=tmp_path / "jobs.db")
    assert await second.resume() == []


async def test_a_job_whose_writes_all_fail_still_ends_and_says_so(fakes, start_runtime, monkeypatch, caplog):
    [fake] = await fakes()
    runtime = await start_runtime(fake)
    store = runtime.store

    def post_failing(*args, **kwargs):
        kwargs.get("on_failure", args[-1])(StoreError("the job database failed (disk I/O error)"))

    async def set_failing(job_id, **changes):
        raise StoreError("the job database failed (disk I/O error)")

    monkeypatch.setattr(store, "post_create", post_failing)
    monkeypatch.setattr(store, "post_set", post_failing)
    monkeypatch.setattr(store, "set", set_failing)
    with caplog.at_level(logging.ERROR):
        job = await runtime.submit("canvas", {"width": 16, "height": 16})
        result = await job.result()
    assert result.outputs and job.state is JobState.DONE and job.unsaved == UNSAVED
    assert f"job {job.id}: cannot save" in caplog.text and "disk I/O error" in caplog.text


async def test_a_lock_delays_the_record_but_not_the_job(fakes, start_runtime, tmp_path):
    [fake] = await fakes()
    path = tmp_path / "jobs.db"
    runtime = await start_runtime(fake, store_path=path)
    async with locked(path, 1.5):
        job = await runtime.submit("canvas", {"width": 16, "height": 16})
        events = await collect(job)  # ends once the lock is gone and its end is recorded
    assert events[-1].state is JobState.DONE and job.unsaved is None
    row = await runtime.get(job.id)
    assert (row.state, row.backend, len(row.outputs)) == ("done", "b1", 1)


class _Recorder:
    """A store that records the journal's calls and fails the ones it is told to."""

    def __init__(self, fail: set[str]):
        self.calls: list[tuple[str, dict]] = []
        self.fail = fail

    def post_create(self, record, on_failure):
        self.calls.append(("create", {"job_id": record.job_id}))
        if "create" in self.fail:
            on_failure(StoreError("no"))

    def post_set(self, job_id, changes, on_failure):
        self.calls.append(("post", dict(changes)))
        if "post" in self.fail:
            on_failure(StoreError("no"))

    async def set(self, job_id, **changes):
        self.calls.append(("set", dict(changes)))
        if "set" in self.fail or ("outputs" in changes and "outputs" in self.fail):
            raise StoreError("no")


async def test_journal_falls_back_to_the_end_state_without_outputs():
    store = _Recorder({"outputs"})
    journal = Journal(store, "j1")
    await journal.finish(state="done", error=None, finished_at=5.0, outputs=[{"filename": "x"}])
    assert store.calls[-1] == ("set", {"state": "done", "error": None, "finished_at": 5.0})
    assert journal.unsaved == UNSAVED  # the outputs are not saved: the notice stays


@pytest.mark.parametrize("failing", ["create", "post", "set"])
async def test_journal_remembers_any_failed_write(failing):
    store = _Recorder({failing})
    journal = Journal(store, "j1")
    journal.create(JobRecord("j1", "m"))
    journal.post(state="queued")
    await journal.finish(state="done", error=None, finished_at=1.0)
    assert journal.unsaved == UNSAVED
    assert [name for name, _ in store.calls][:3] == ["create", "post", "set"]


async def test_journal_with_nothing_failing_has_nothing_unsaved():
    store = _Recorder(set())
    journal = Journal(store, "j1")
    journal.create(JobRecord("j1", "m"))
    journal.post(state="running")
    await journal.finish(state="done", error=None, finished_at=1.0)
    assert journal.unsaved is None and len(store.calls) == 3


async def test_posted_writes_run_in_order_with_awaited_ones(tmp_path):
    async with await JobStore.open(str(tmp_path / "jobs.db")) as store:
        failures = []
        store.post_create(JobRecord("j1", "m", created_at=1.0), failures.append)
        for n in range(50):
            store.post_set("j1", {"error": f"step {n}"}, failures.append)
        await store.set("j1", state="done")
        row = await store.get("j1")
        assert (row.state, row.error, failures) == ("done", "step 49", [])
        store.post_create(JobRecord("j1", "m"), failures.append)  # a taken id: reported, not raised
        await asyncio.wait_for(store.set("j1", state="done"), 5)
        assert len(failures) == 1 and isinstance(failures[0], ValueError)
