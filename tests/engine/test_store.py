"""The job store: round trips, updates, restarts, two writers, damaged rows, migrations — on every database.

``store_url`` (tests/storekit.py) gives a fresh SQLite file, and a fresh PostgreSQL database when a
server can be had (else those cases are skipped with the reason). SQLite-only behaviour (the file:
locks, corruption, WAL) is in test_store_sqlite.py.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.jobs.progress import JobState
from engine.jobs.store import MIGRATIONS, JobRecord, JobStore, StoreError

from tests.storekit import raw_execute


@pytest.fixture
async def store(store_url):
    async with await JobStore.open(store_url) as job_store:
        yield job_store


def record(job_id: str = "j1", **fields) -> JobRecord:
    base = dict(
        manifest="flux",
        values={"prompt": "a cat", "steps": 30, "lora": None, "image": {"name": "in.png"}},
        seed=2**64 - 1,  # ComfyUI's largest seed does not fit a 64-bit INTEGER
        backend="gpu-1",
        prompt_id="p-" + job_id,
        client_id="discomfy-1",
        created_at=1000.0,
        owner="user-1",
        extra={"channel_id": 42, "message_ids": [1, 2]},
    )
    return JobRecord(job_id=job_id, **{**base, **fields})


async def test_round_trip(store):
    job = record()
    await store.create(job)

    assert await store.get("j1") == job
    assert await store.get("missing") is None


async def test_defaults_round_trip(store):
    job = JobRecord(job_id="bare", manifest="m")
    await store.create(job)

    got = await store.get("bare")
    assert got == job
    assert (got.values, got.outputs, got.extra, got.seed, got.state) == ({}, [], {}, None, "queued")


async def test_duplicate_job_id_is_refused(store):
    await store.create(record())
    with pytest.raises(ValueError, match="already exists"):
        await store.create(record())


async def test_update_sets_fields_and_returns_the_record(store):
    await store.create(record())
    outputs = [{"node_id": "9", "filename": "a.png", "subfolder": "", "type": "output"}]

    updated = await store.update("j1", state=JobState.DONE, finished_at=1010.5, outputs=outputs, error=None)

    assert updated == await store.get("j1")
    assert (updated.state, updated.finished_at, updated.outputs) == ("done", 1010.5, outputs)
    assert updated.finished
    assert updated.values == record().values  # untouched fields stay
    assert await store.update("j1") == updated


async def test_update_of_a_missing_job_returns_none(store):
    assert await store.update("nope", state="failed") is None


@pytest.mark.parametrize("bad", [{"job_id": "x"}, {"colour": "red"}])
async def test_update_and_set_refuse_unknown_or_key_fields(store, bad):
    await store.create(record())
    with pytest.raises(TypeError):
        await store.update("j1", **bad)
    with pytest.raises(TypeError):
        await store.set("j1", **bad)


async def test_set_writes_like_update_without_reading_back(store):
    await store.create(record())
    outputs = [{"node_id": "9", "filename": "a.png", "subfolder": "", "type": "output"}]
    assert await store.set("j1", state=JobState.DONE, finished_at=1010.5, outputs=outputs) is None
    stored = await store.get("j1")
    assert (stored.state, stored.finished_at, stored.outputs, stored.values) == ("done", 1010.5, outputs, record().values)


async def test_merge_extra_keeps_other_keys(store):
    await store.create(record())

    merged = await store.merge_extra("j1", {"result_message_id": 7, "channel_id": 43})

    assert merged.extra == {"channel_id": 43, "message_ids": [1, 2], "result_message_id": 7}
    assert (await store.get("j1")).extra == merged.extra
    assert await store.merge_extra("nope", {"a": 1}) is None


async def test_unfinished_survive_a_restart(store_url):
    async with await JobStore.open(store_url) as first:
        for n, state in enumerate(["queued", "running", "done", "failed", "cancelled", "uploading"]):
            await first.create(record(f"j{n}", state=state, created_at=1000.0 + n))

    async with await JobStore.open(store_url) as second:
        assert [job.job_id for job in await second.unfinished()] == ["j0", "j1", "j5"]
        assert await second.get("j1") == record("j1", state="running", created_at=1001.0)


async def test_recent_newest_first_and_per_owner(store):
    for n in range(5):
        await store.create(record(f"j{n}", created_at=1000.0 + n, owner="a" if n % 2 else "b"))

    assert [job.job_id for job in await store.recent(limit=3)] == ["j4", "j3", "j2"]
    assert [job.job_id for job in await store.recent(owner="a")] == ["j3", "j1"]
    assert await store.recent(owner="nobody") == []


async def test_two_stores_on_one_database_do_not_lose_writes(store_url):
    stores = [await JobStore.open(store_url), await JobStore.open(store_url)]
    await stores[0].create(record("shared", extra={}))

    async def write(worker: int) -> None:
        job_store = stores[worker]
        for n in range(40):
            await job_store.create(record(f"w{worker}-{n}"))
            await job_store.merge_extra("shared", {f"w{worker}-{n}": n})
            await job_store.update(f"w{worker}-{n}", state="done")

    await asyncio.gather(write(0), write(1))
    for job_store in stores:
        await job_store.close()

    async with await JobStore.open(store_url) as reader:
        assert len((await reader.get("shared")).extra) == 80
        assert len(await reader.recent(limit=1000)) == 81
        assert [job.job_id for job in await reader.unfinished()] == ["shared"]


async def test_damaged_rows_never_crash_a_reader(store_url):
    async with await JobStore.open(store_url) as job_store:
        for job_id in "abc":
            await job_store.create(record(job_id))
    await raw_execute(store_url, "UPDATE jobs SET values_json = '{not json', outputs_json = '{}', extra_json = '[1]',"
                                 " seed = 'x', state = '' WHERE job_id = 'a'")
    await raw_execute(store_url, "UPDATE jobs SET values_json = 'null', outputs_json = '" + "[" * 100_000 + "',"
                                 " manifest = '', created_at = 'NaN' WHERE job_id = 'b'")
    await raw_execute(store_url, "UPDATE jobs SET values_json = '{\"steps\": \"many\"}', seed = '99999999999999999999999',"
                                 " extra_json = '{\"inputs\": 7}' WHERE job_id = 'c'")

    async with await JobStore.open(store_url) as job_store:
        a, b, c = [await job_store.get(job_id) for job_id in "abc"]
        assert (a.values, a.outputs, a.extra, a.seed, a.state) == ({}, [], {}, None, "failed")
        assert (b.values, b.outputs, b.manifest) == ({}, [], "")
        assert c.values == {"steps": "many"} and c.seed == 99999999999999999999999
        assert len(await job_store.recent()) == 3
        assert "a" not in {r.job_id for r in await job_store.unfinished()}  # an empty state reads as failed


async def test_values_that_are_not_json_are_stored_as_text(store):
    await store.create(record(values={"path": Path("/tmp/in.png")}))
    assert (await store.get("j1")).values == {"path": "/tmp/in.png"}


LONE = "\udcff"  # what os.fsdecode makes of a server file name that is not UTF-8


async def test_values_the_database_cannot_encode_are_still_stored(store):
    """A lone surrogate or NUL (from a server's file name or text) never makes a write fail."""
    outputs = [{"filename": f"out{LONE}.png", "subfolder": "a\x00b", "type": "output"}]
    await store.create(record(values={"prompt": f"cat {LONE}", f"k{LONE}": "\x00"}, owner=f"u{LONE}"))
    await store.set("j1", state="done", outputs=outputs, error=f"bad {LONE}\x00 name", backend=f"b{LONE}")
    got = await store.get("j1")
    assert got.state == "done"
    assert got.outputs == outputs and got.values == {"prompt": f"cat {LONE}", f"k{LONE}": "\x00"}  # JSON: exact
    assert (got.error, got.owner, got.backend) == ("bad \ufffd\ufffd name", "u\ufffd", "b\ufffd")  # text: replaced
    merged = await store.merge_extra("j1", {"name": LONE})
    assert merged.extra["name"] == LONE and (await store.get("j1")).extra["name"] == LONE


async def test_schema_version_and_a_new_migration(store_url):
    await (await JobStore.open(store_url)).close()
    add_priority = ("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",)

    async with await JobStore.open(store_url, migrations=(*MIGRATIONS, add_priority)) as upgraded:
        await upgraded.create(record())  # a column the record does not know does not get in the way
        assert await upgraded.get("j1") == record()
        rows = await upgraded.db.fetch("SELECT priority FROM jobs")
        assert rows == [{"priority": 0}]

    with pytest.raises(StoreError, match="schema version"):
        await JobStore.open(store_url)  # the older program refuses a newer database instead of damaging it


async def test_a_failing_migration_changes_nothing(store_url):
    await (await JobStore.open(store_url)).close()
    broken = ("ALTER TABLE jobs ADD COLUMN half_done INTEGER", "THIS IS NOT SQL")

    with pytest.raises(StoreError):
        await JobStore.open(store_url, migrations=(*MIGRATIONS, broken))
    async with await JobStore.open(store_url) as job_store:
        await job_store.create(record())
        with pytest.raises(StoreError):
            await job_store.db.fetch("SELECT half_done FROM jobs")


async def test_prune_finished_and_compact(store):
    for n, (state, finished) in enumerate([("done", 10.0), ("failed", 50.0), ("running", None), ("cancelled", None)]):
        await store.create(record(f"j{n}", state=state, finished_at=finished, created_at=5.0 + n))
    assert await store.prune_finished(before=20.0) == 2  # done at 10, cancelled created at 8; never the running one
    await store.compact()
    assert sorted(r.job_id for r in await store.recent()) == ["j1", "j2"]


def test_store_errors_are_engine_errors():
    assert issubclass(StoreError, EngineError)


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
JOB_NUMBERS = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    seed=st.none() | st.integers(0, 2**64 - 1),
    error=st.none() | st.text(max_size=50, alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
)
def test_any_json_values_round_trip(store_url, values, extra, seed, error):
    """Any JSON (surrogates and NUL included) round-trips exactly; encodable text does too."""
    async def round_trip() -> None:
        async with await JobStore.open(store_url) as job_store:
            job = record(f"j{next(JOB_NUMBERS)}", values=values, extra=extra, seed=seed, error=error)
            await job_store.create(job)
            assert await job_store.get(job.job_id) == job

    asyncio.run(round_trip())


def test_public_names_exist():
    import engine.jobs.store as module

    assert all(hasattr(module, name) for name in module.__all__)
