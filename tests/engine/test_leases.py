"""Leases on jobs in the job store (issue 11 §3), on every database: who holds a job, renewing,
taking over what ran out (each job by one taker, also when two take at once), conditional writes,
letting go, and the migration that gives jobs left by a v1 bot an expired lease."""

from __future__ import annotations

import asyncio

import pytest

from engine.jobs.lease import Leases
from engine.jobs.store import MIGRATIONS, JobRecord, JobStore

from tests.storekit import raw_execute


@pytest.fixture
async def store(store_url):
    async with await JobStore.open(store_url) as job_store:
        yield job_store


def leased(job_id: str, holder: str | None, until: float | None, **fields) -> JobRecord:
    return JobRecord(job_id, "m", lease_holder=holder, lease_until=until, created_at=float(len(job_id)), **fields)


async def test_only_expired_leases_are_taken_and_the_only_process_takes_all(store):
    await store.create(leased("live", "a", 2000.0))
    await store.create(leased("expired", "a", 900.0))
    await store.create(leased("delivered", None, None, state="done"))

    taken = await store.take_leases("b", 3000.0, expired_before=1000.0)
    assert [r.job_id for r in taken] == ["expired"] and (taken[0].lease_holder, taken[0].lease_until) == ("b", 3000.0)
    assert (await store.get("live")).lease_holder == "a"

    every = await store.take_leases("c", 4000.0)  # the only process: nobody else can hold one
    assert sorted(r.job_id for r in every) == ["expired", "live"]
    assert (await store.get("delivered")).lease_holder is None


async def test_two_takers_at_once_get_each_job_once(store_url):
    async with await JobStore.open(store_url) as setup:
        for n in range(60):
            await setup.create(leased(f"j{n:02}", "dead", 10.0))
    stores = [await JobStore.open(store_url) for _ in range(2)]
    try:
        rounds = [asyncio.gather(*(s.take_leases(f"p{i}", 5000.0, expired_before=100.0, limit=7)
                                   for i, s in enumerate(stores))) for _ in range(12)]
        taken = [record.job_id for both in await asyncio.gather(*rounds) for batch in both for record in batch]
        assert sorted(taken) == [f"j{n:02}" for n in range(60)]  # every job once, none twice
        holders = {r.job_id: r.lease_holder for r in await stores[0].recent(limit=100)}
        assert set(holders.values()) <= {"p0", "p1"}
    finally:
        for s in stores:
            await s.close()


async def test_renewal_extends_what_is_still_held(store):
    await store.create(leased("mine", "a", 100.0))
    await store.create(leased("ended", "a", None, state="done"))
    await store.create(leased("theirs", "b", 100.0))
    assert await store.renew_leases("a", 500.0) == {"mine"}
    assert (await store.get("mine")).lease_until == 500.0 and (await store.get("theirs")).lease_until == 100.0


async def test_writes_under_a_lease_change_nothing_for_another_holder(store):
    await store.create(leased("j", "b", 100.0))
    assert not await store.set_held("j", "a", state="running")
    failures: list = []
    store.post_set("j", {"state": "failed"}, failures.append, holder="a")
    assert await store.set_held("j", "b", state="done")
    assert (await store.get("j")).state == "done" and failures == []


async def test_the_end_of_a_lease_and_letting_go(store):
    await store.create(leased("a1", "a", 500.0))
    await store.create(leased("a2", "a", 500.0))
    assert await store.end_lease("a1", "a") and not await store.end_lease("a2", "b")
    assert (await store.get("a1")).lease_until is None
    assert await store.release_leases("a") == 1  # a2 only: a1 needs nobody
    assert [r.job_id for r in await store.take_leases("b", 900.0, expired_before=1.0)] == ["a2"]


async def test_jobs_a_v1_bot_left_get_an_expired_lease(store_url):
    async with await JobStore.open(store_url, migrations=MIGRATIONS[:1]) as old:
        await raw_execute(store_url, "INSERT INTO jobs (job_id, manifest, state, created_at, extra_json) "
                                     "VALUES (?, 'm', ?, 1.0, ?)", ("running", "running", "{}"))
        await raw_execute(store_url, "INSERT INTO jobs (job_id, manifest, state, created_at, extra_json) "
                                     "VALUES (?, 'm', ?, 2.0, ?)", ("due", "done", '{"outcome_due": true, "x": 1}'))
        await raw_execute(store_url, "INSERT INTO jobs (job_id, manifest, state, created_at, extra_json) "
                                     "VALUES (?, 'm', ?, 3.0, ?)", ("posted", "done", '{"outcome_due": false}'))
        assert len(await old.recent()) == 3
    async with await JobStore.open(store_url) as store:
        leases = {r.job_id: (r.lease_holder, r.lease_until) for r in await store.recent()}
        assert leases == {"running": (None, 0.0), "due": (None, 0.0), "posted": (None, None)}


# -- Leases: one process's view -----------------------------------------------------------------

async def test_a_claim_needs_the_lease_and_renews_it(store):
    a, b = Leases(store, seconds=30, holder="a"), Leases(store, seconds=30, holder="b")
    await store.create(leased("j", "a", a.until()))
    a.hold("j")
    assert await a.claim("j", backend="gpu1") and a.holds("j")
    assert not await b.claim("j")  # b never held it
    await raw_execute_lease(store, "j", "b")  # b took it over behind a's back
    b.hold("j")
    assert not await a.claim("j") and not a.holds("j")  # forgotten: a does nothing more with it
    assert (await store.get("j")).backend == "gpu1"


async def test_a_renewal_reports_what_was_lost_and_what_nothing_works_on(store):
    a = Leases(store, seconds=30, holder="a")
    for job_id in ("kept", "lost", "orphan"):
        await store.create(leased(job_id, "a", a.until()))
    a.hold("kept")
    a.hold("lost")
    await raw_execute_lease(store, "lost", "b")
    assert await a.renew() == ({"lost"}, {"orphan"})
    assert a.held() == {"kept"}


async def test_the_only_process_takes_everything_at_once_and_claims_without_writing(store):
    for n in range(250):
        await store.create(leased(f"j{n:03}", "old", 1e12))  # live leases of the process before
    only = Leases(store, seconds=30, shared=False, holder="new")
    assert len(await only.take()) == 250
    await raw_execute_lease(store, "j000", "other")
    assert await only.claim("j000")  # nobody else can hold one: no statement needed


async def test_a_process_that_stops_lets_its_jobs_go_at_once(store):
    a, b = Leases(store, seconds=30, holder="a"), Leases(store, seconds=30, holder="b")
    await store.create(leased("j", "a", a.until()))
    assert await b.take() == []
    await a.release()
    assert [r.job_id for r in await b.take()] == ["j"] and b.holds("j")


async def raw_execute_lease(store: JobStore, job_id: str, holder: str) -> None:
    await store.db.execute("UPDATE jobs SET lease_holder = ? WHERE job_id = ?", (holder, job_id))
