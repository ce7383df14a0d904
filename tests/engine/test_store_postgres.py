"""The PostgreSQL job store beyond the shared cases: another session's locks, an unreachable server,
several processes' stores on one database. Skipped with the reason when no server can be had."""

from __future__ import annotations

import asyncio
import socket

import psycopg
import pytest

from engine.errors import StoreBusy, StoreError
from engine.jobs.store import MIGRATIONS, JobRecord, JobStore


async def _hold_row_lock(url: str, job_id: str, release: asyncio.Event) -> None:
    async with await psycopg.AsyncConnection.connect(url) as db:
        async with db.transaction():
            await db.execute("SELECT 1 FROM jobs WHERE job_id = %s FOR UPDATE", (job_id,))
            await release.wait()


async def test_a_row_locked_by_another_session_is_waited_for(pg_url):
    async with await JobStore.open(pg_url) as store:
        await store.create(JobRecord("j1", "m", created_at=1.0))
        release = asyncio.Event()
        holder = asyncio.create_task(_hold_row_lock(pg_url, "j1", release))
        await asyncio.sleep(0.3)
        asyncio.get_running_loop().call_later(2.5, release.set)  # past one lock_timeout (2 s): retried
        await store.set("j1", state="running")
        await holder
        assert (await store.get("j1")).state == "running"


async def test_a_lock_held_past_the_retries_is_store_busy(pg_url):
    store = await JobStore.open(pg_url, retry_for=2.5)
    try:
        await store.create(JobRecord("j1", "m", created_at=1.0))
        release = asyncio.Event()
        holder = asyncio.create_task(_hold_row_lock(pg_url, "j1", release))
        await asyncio.sleep(0.3)
        with pytest.raises(StoreBusy, match="locked by another session"):
            await store.set("j1", state="running")
        assert (await store.get("j1", timeout=1.0)).state == "queued"  # reads are not blocked by a row lock
        release.set()
        await holder
    finally:
        await store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_an_unreachable_server_is_one_line_without_the_password():
    url = f"postgresql://bot:s3cret-pass@127.0.0.1:{_closed_port()}/jobs"
    with pytest.raises(StoreError) as caught:
        await JobStore.open(url, retry_for=1.0)
    text = str(caught.value)
    assert "cannot reach the job database" in text and "s3cret" not in text and "\n" not in text


async def test_processes_starting_together_migrate_once(pg_url):
    stores = await asyncio.gather(*(JobStore.open(pg_url) for _ in range(4)))
    try:
        await stores[0].create(JobRecord("j1", "m"))
        assert [len(await s.recent()) for s in stores] == [1, 1, 1, 1]
        assert await stores[1].db.fetch("SELECT version FROM discomfy_schema") == [{"version": len(MIGRATIONS)}]
    finally:
        for store in stores:
            await store.close()


async def test_a_batch_with_one_failing_write_fails_only_that_write(pg_url):
    async with await JobStore.open(pg_url) as store:
        failures = []
        store.post_create(JobRecord("j1", "m", created_at=1.0), failures.append)
        store.post_create(JobRecord("j1", "m", created_at=2.0), failures.append)  # taken
        store.post_create(JobRecord("j2", "m", created_at=3.0), failures.append)
        store.post_set("j2", {"state": "running"}, failures.append)
        await store.set("j1", state="done")
        assert len(failures) == 1 and isinstance(failures[0], ValueError)
        assert [(r.job_id, r.state, r.created_at) for r in await store.recent()] == [("j2", "running", 3.0),
                                                                                   ("j1", "done", 1.0)]
