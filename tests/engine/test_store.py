"""The SQLite job store: round trips, updates, restarts, two writers, damaged rows, migrations."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jobs.progress import JobState
from engine.jobs.store import MIGRATIONS, JobRecord, JobStore, StoreError


@pytest.fixture
def store():
    with JobStore(":memory:") as job_store:
        yield job_store


def record(job_id: str = "j1", **fields) -> JobRecord:
    base = dict(
        manifest="flux",
        values={"prompt": "a cat", "steps": 30, "lora": None, "image": {"name": "in.png"}},
        seed=2**64 - 1,  # ComfyUI's largest seed does not fit SQLite's INTEGER
        backend="gpu-1",
        prompt_id="p-" + job_id,
        client_id="discomfy-1",
        created_at=1000.0,
        owner="user-1",
        extra={"channel_id": 42, "message_ids": [1, 2]},
    )
    return JobRecord(job_id=job_id, **{**base, **fields})


def test_round_trip(store):
    job = record()
    store.create(job)

    assert store.get("j1") == job
    assert store.get("missing") is None


def test_defaults_round_trip(store):
    job = JobRecord(job_id="bare", manifest="m")
    store.create(job)

    got = store.get("bare")
    assert got == job
    assert (got.values, got.outputs, got.extra, got.seed, got.state) == ({}, [], {}, None, "queued")


def test_duplicate_job_id_is_refused(store):
    store.create(record())
    with pytest.raises(ValueError, match="already exists"):
        store.create(record())


def test_update_sets_fields_and_returns_the_record(store):
    store.create(record())
    outputs = [{"node_id": "9", "filename": "a.png", "subfolder": "", "type": "output"}]

    updated = store.update("j1", state=JobState.DONE, finished_at=1010.5, outputs=outputs, error=None)

    assert updated == store.get("j1")
    assert (updated.state, updated.finished_at, updated.outputs) == ("done", 1010.5, outputs)
    assert updated.finished
    assert updated.values == record().values  # untouched fields stay


def test_update_of_a_missing_job_returns_none(store):
    assert store.update("nope", state="failed") is None


@pytest.mark.parametrize("bad", [{"job_id": "x"}, {"colour": "red"}])
def test_update_refuses_unknown_or_key_fields(store, bad):
    store.create(record())
    with pytest.raises(TypeError):
        store.update("j1", **bad)


def test_set_writes_like_update_without_reading_back(store):
    store.create(record())
    outputs = [{"node_id": "9", "filename": "a.png", "subfolder": "", "type": "output"}]
    store.set("j1", state=JobState.DONE, finished_at=1010.5, outputs=outputs)
    stored = store.get("j1")
    assert (stored.state, stored.finished_at, stored.outputs, stored.values) == ("done", 1010.5, outputs, record().values)
    with pytest.raises(TypeError):
        store.set("j1", job_id="x")


def test_merge_extra_keeps_other_keys(store):
    store.create(record())

    merged = store.merge_extra("j1", {"result_message_id": 7, "channel_id": 43})

    assert merged.extra == {"channel_id": 43, "message_ids": [1, 2], "result_message_id": 7}
    assert store.get("j1").extra == merged.extra
    assert store.merge_extra("nope", {"a": 1}) is None


def test_unfinished_survive_a_restart(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite3")
    with JobStore(path) as first:
        for n, state in enumerate(["queued", "running", "done", "failed", "cancelled", "uploading"]):
            first.create(record(f"j{n}", state=state, created_at=1000.0 + n))

    with JobStore(path) as second:
        assert [job.job_id for job in second.unfinished()] == ["j0", "j1", "j5"]
        assert second.get("j1") == record("j1", state="running", created_at=1001.0)


def test_recent_newest_first_and_per_owner(store):
    for n in range(5):
        store.create(record(f"j{n}", created_at=1000.0 + n, owner="a" if n % 2 else "b"))

    assert [job.job_id for job in store.recent(limit=3)] == ["j4", "j3", "j2"]
    assert [job.job_id for job in store.recent(owner="a")] == ["j3", "j1"]
    assert store.recent(owner="nobody") == []


def test_two_stores_on_one_file_do_not_lose_writes(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite3")
    stores = [JobStore(path), JobStore(path)]
    stores[0].create(record("shared", extra={}))

    def write(worker: int) -> None:
        job_store = stores[worker]
        for n in range(40):
            job_store.create(record(f"w{worker}-{n}"))
            job_store.merge_extra("shared", {f"w{worker}-{n}": n})
            job_store.update(f"w{worker}-{n}", state="done")

    threads = [threading.Thread(target=write, args=(worker,)) for worker in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with JobStore(path) as reader:
        assert len(reader.get("shared").extra) == 80
        assert len(reader.recent(limit=1000)) == 81
        assert [job.job_id for job in reader.unfinished()] == ["shared"]
        assert reader._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert reader._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for job_store in stores:
        job_store.close()


def test_damaged_json_and_seed_never_crash(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite3")
    with JobStore(path) as job_store:
        job_store.create(record("a"))
        job_store.create(record("b"))
    raw = sqlite3.connect(path)
    raw.execute(
        "UPDATE jobs SET values_json = '{not json', outputs_json = '{}', extra_json = '[1]', seed = 'x'"
        " WHERE job_id = 'a'"
    )
    raw.execute("UPDATE jobs SET values_json = 'null', outputs_json = X'00ff' WHERE job_id = 'b'")
    raw.commit()
    raw.close()

    with JobStore(path) as job_store:
        a, b = job_store.get("a"), job_store.get("b")
        assert (a.values, a.outputs, a.extra, a.seed) == ({}, [], {}, None)
        assert (b.values, b.outputs) == ({}, [])
        assert a.manifest == "flux" and len(job_store.recent()) == 2


def test_values_that_are_not_json_are_stored_as_text(store):
    store.create(record(values={"path": Path("/tmp/in.png")}))
    assert store.get("j1").values == {"path": "/tmp/in.png"}


def test_schema_version_and_a_new_migration(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite3")
    JobStore(path).close()

    def add_priority(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    with JobStore(path, migrations=(*MIGRATIONS, add_priority)) as upgraded:
        upgraded.create(record())  # a column the record does not know does not get in the way
        assert upgraded._db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert upgraded._db.execute("SELECT priority FROM jobs").fetchone()[0] == 0
        assert upgraded.get("j1") == record()

    with pytest.raises(StoreError, match="schema version"):
        JobStore(path)  # the older program refuses a newer database instead of damaging it


def test_a_failing_migration_changes_nothing(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite3")
    JobStore(path).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE jobs ADD COLUMN half_done INTEGER")
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError):
        JobStore(path, migrations=(*MIGRATIONS, broken))
    with JobStore(path) as job_store:
        columns = [row[1] for row in job_store._db.execute("PRAGMA table_info(jobs)")]
        assert "half_done" not in columns


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


ROUND_TRIP_STORE = JobStore(":memory:")
JOB_NUMBERS = itertools.count()


@settings(max_examples=40, deadline=None)
@given(
    values=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    seed=st.none() | st.integers(0, 2**64 - 1),
    error=st.none() | st.text(max_size=50),
)
def test_any_json_values_round_trip(values, extra, seed, error):
    job = record(f"j{next(JOB_NUMBERS)}", values=values, extra=extra, seed=seed, error=error)
    ROUND_TRIP_STORE.create(job)
    assert ROUND_TRIP_STORE.get(job.job_id) == job


def test_public_names_exist():
    import engine.jobs.store as module

    assert all(hasattr(module, name) for name in module.__all__)
