"""The SQLite job store as a file other programs can touch: locks, damage, and the event loop.

A lock is taken by a real second process (``sqlite3`` in a subprocess holding ``BEGIN EXCLUSIVE``),
as another bot or a backup tool would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from engine.errors import StoreBusy, StoreCorrupt, StoreError
from engine.jobs.store import JobRecord, JobStore

from tests.lockkit import locked


async def ticking(stop: asyncio.Event) -> float:
    """The longest gap between the loop's turns (ticks every 10 ms) until ``stop``."""
    longest, last = 0.0, time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


async def test_a_write_waits_for_a_lock_off_the_loop(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    async with await JobStore.open(str(path)) as store:
        await store.create(JobRecord("j1", "m", created_at=1.0))
        stop = asyncio.Event()
        ticker = asyncio.create_task(ticking(stop))
        async with locked(path, 1.5):
            started = time.monotonic()
            await store.set("j1", state="running")  # waits for the other process, retrying on the worker
            waited = time.monotonic() - started
        stop.set()
        assert waited > 0.5  # it really waited for the lock
        assert await ticker < 0.5  # while the loop kept turning (generous: a hang bound, not a speed figure)
        assert (await store.get("j1")).state == "running"


async def test_reads_go_on_while_another_process_writes(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    async with await JobStore.open(str(path)) as store:
        await store.create(JobRecord("j1", "m", created_at=1.0))
        async with locked(path, 30):
            async with asyncio.timeout(5):  # WAL: the reader thread is not behind the lock
                assert (await store.get("j1", timeout=1.0)).manifest == "m"
                assert len(await store.recent(timeout=1.0)) == 1


async def test_a_lock_held_past_the_retries_is_store_busy(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = await JobStore.open(str(path), retry_for=0.5)
    try:
        await store.create(JobRecord("j1", "m", created_at=1.0))
        async with locked(path, 30):
            with pytest.raises(StoreBusy, match="locked"):
                await store.set("j1", state="running")
        await store.set("j1", state="running")  # the lock is gone: the store works again
        assert (await store.get("j1")).state == "running"
    finally:
        await store.close()


async def test_a_read_with_a_timeout_gives_up_in_time(tmp_path):
    """Before an interaction is answered a read may wait only so long (``timeout``), then StoreBusy —
    here behind a slow statement on the reader thread (in WAL mode another process cannot block reads)."""
    path = tmp_path / "jobs.sqlite3"
    async with await JobStore.open(str(path)) as store:
        slow = asyncio.create_task(store.db.fetch(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) SELECT count(*) FROM c"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(StoreBusy):
            await store.get("j1", timeout=0.3)
        assert time.monotonic() - started < 2.0
        with contextlib.suppress(StoreBusy):  # on a very busy machine the slow statement itself may time out
            await slow


async def test_locked_at_start_is_one_clear_error(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    async with locked(path, 30):
        with pytest.raises(StoreBusy, match="locked by another program") as caught:
            await JobStore.open(str(path), retry_for=0.3)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
async def test_a_corrupt_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreCorrupt, match="damaged") as caught:
        await JobStore.open(str(path))
    assert "\n" not in str(caught.value)


async def test_an_unopenable_path_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        await JobStore.open(str(tmp_path / "no-such-folder" / "jobs.sqlite3"))


async def test_wal_mode_and_integrity(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    async with await JobStore.open(str(path)) as store:
        await store.create(JobRecord("j1", "m"))
        assert await store.db.fetch("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
        assert await store.db.fetch("PRAGMA integrity_check") == [{"integrity_check": "ok"}]


async def test_closing_with_calls_in_flight_answers_them(tmp_path):
    store = await JobStore.open(str(tmp_path / "jobs.sqlite3"))
    writes = [asyncio.create_task(store.create(JobRecord(f"j{n}", "m"))) for n in range(50)]
    await asyncio.sleep(0)
    await store.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 10)
    assert all(outcome is None for outcome in outcomes)
