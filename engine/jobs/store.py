"""The job store: every job, its values, backend, prompt_id, outcome and the bot's extras.

Async: every method is a coroutine and the database works off the event loop (SQLite on its own
threads, see ``sqlite_db``), so a slow or locked database delays only the callers that need it.
``await JobStore.open(url)`` opens (and migrates) the database ``url`` names: a file path or
``":memory:"`` for SQLite, the zero-setup default. Several stores (or processes) may share one
database: writes are single statements, and ``merge_extra`` is a compare-and-swap, so no writer's
keys are lost. The job runner's hot path posts its writes (``post_create``, ``post_set``: queued in
order with every other call, nobody waits, a failure is reported to ``on_failure``) and awaits only
the last one (``set``), so a job pays one wait on the database, at its end.

What a row holds and how a damaged one reads is ``records``' business; the schema and its one
migration path are in ``schema``. Every failure is a ``StoreError`` (``StoreBusy`` when the
database stayed locked past the retries, ``StoreCorrupt`` when it is damaged), except
``ValueError`` for a taken job id and ``TypeError`` for a field that cannot be set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from ..errors import StoreBusy, StoreCorrupt, StoreError
from .records import COLUMNS, FINISHED_STATES, JobRecord, check_changes, from_row, to_row
from .schema import MIGRATIONS, Migration

__all__ = ["JobRecord", "JobStore", "Database", "MIGRATIONS", "StoreError", "StoreBusy", "StoreCorrupt"]

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
OnFailure = Callable[[BaseException], None]
_CAS_ATTEMPTS = 50


class Database(Protocol):
    """What the store needs of a database: single statements with ``?`` placeholders, off the loop."""

    dialect: str

    async def migrate(self, migrations: Sequence[Migration]) -> None: ...

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None,
                    write: bool = False) -> Rows: ...

    async def execute(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> int: ...

    def post(self, sql: str, params: Sequence[Any], on_failure: OnFailure) -> None: ...

    async def close(self) -> None: ...

    async def compact(self) -> None: ...


def database_for(url: str, *, retry_for: float = 20.0) -> Database:
    """The database ``url`` names: ``postgresql://…`` (or ``postgres://…``), else an SQLite path."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres_db import PostgresDatabase

        return PostgresDatabase(url, retry_for=retry_for)
    from .sqlite_db import SqliteDatabase

    return SqliteDatabase(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url,
                          retry_for=retry_for)


class JobStore:
    """Jobs in one database; build it with ``await JobStore.open(url)``."""

    def __init__(self, db: Database):
        self.db = db

    @classmethod
    async def open(cls, url: str = ":memory:", *, migrations: Sequence[Migration] = MIGRATIONS,
                   retry_for: float = 20.0) -> JobStore:
        """Open and migrate; ``StoreError`` (busy, corrupt, too new, unreachable) in one clear line."""
        db = database_for(url, retry_for=retry_for)
        try:
            await db.migrate(migrations)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> JobStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writing ----------------------------------------------------------------------------
    async def create(self, record: JobRecord) -> None:
        """Store a new job; raises ``ValueError`` if ``job_id`` is taken."""
        row = to_row(asdict(record))
        marks = ", ".join("?" for _ in row)
        try:
            await self.db.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))
        except ValueError:
            raise ValueError(f"job {record.job_id!r} already exists") from None

    def post_create(self, record: JobRecord, on_failure: OnFailure) -> None:
        """``create`` without waiting: ``on_failure(error)`` (from any thread) if it fails. Never blocks."""
        row = to_row(asdict(record))
        marks = ", ".join("?" for _ in row)
        self.db.post(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({marks})", tuple(row.values()), on_failure)

    def post_set(self, job_id: str, changes: Mapping[str, Any], on_failure: OnFailure, *,
                 holder: str | None = None) -> None:
        """``set`` without waiting, in order with every call made before and after it. Never blocks.
        With ``holder``, only while that process holds the job's lease (else nothing changes)."""
        check_changes(changes)
        if changes:
            self.db.post(*_update_sql(changes, job_id, holder), on_failure)

    async def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        """Set fields of a job; returns the updated record, or None when there is no such job."""
        check_changes(changes)
        if not changes:
            return await self.get(job_id)
        sql, params = _update_sql(changes, job_id)
        rows = await self.db.fetch(sql + " RETURNING *", params, write=True)
        return from_row(rows[0]) if rows else None

    async def set(self, job_id: str, **changes: Any) -> None:
        """``update`` without reading the record back (the job runner's hot path)."""
        check_changes(changes)
        if changes:
            await self.db.execute(*_update_sql(changes, job_id))

    async def set_held(self, job_id: str, holder: str, **changes: Any) -> bool:
        """``set`` while ``holder`` holds the job's lease; False (nothing changed) when it does not."""
        check_changes(changes)
        sql, params = _update_sql(changes or {"lease_holder": holder}, job_id, holder)
        return await self.db.execute(sql, params) == 1

    async def merge_extra(self, job_id: str, patch: Mapping[str, Any]) -> JobRecord | None:
        """Add or replace keys of ``extra`` atomically (other writers' keys survive)."""
        for _ in range(_CAS_ATTEMPTS):
            rows = await self.db.fetch("SELECT * FROM jobs WHERE job_id = ?", (job_id,), write=True)
            if not rows:
                return None
            record = from_row(rows[0])
            record.extra = {**record.extra, **patch}
            column = COLUMNS["extra"]
            new = to_row({"extra": record.extra})[column]
            changed = await self.db.execute(f"UPDATE jobs SET {column} = ? WHERE job_id = ? AND {column} = ?",
                                            (new, job_id, rows[0][column]))
            if changed:
                return record
        raise StoreBusy(f"job {job_id}: extra kept changing under another writer")

    # -- leases (``engine.jobs.lease``) --------------------------------------------------------
    async def renew_leases(self, holder: str, until: float) -> frozenset[str]:
        """Extend every lease ``holder`` has to ``until``; the ids of the jobs it still holds."""
        rows = await self.db.fetch("UPDATE jobs SET lease_until = ? WHERE lease_holder = ? AND lease_until IS NOT NULL "
                                   "RETURNING job_id", (until, holder), write=True)
        return frozenset(str(row["job_id"]) for row in rows)

    async def take_leases(self, holder: str, until: float, *, expired_before: float | None = None,
                          limit: int = 100) -> list[JobRecord]:
        """Take over up to ``limit`` jobs that need a process and whose lease ran out before
        ``expired_before`` — every such job when it is None (the only process: nobody else can
        hold one) — oldest lease first; their records, now held by ``holder``. Jobs ``holder``
        holds already are not taken again. One statement: of two processes taking at once, each job
        goes to one of them."""
        mine = "(lease_holder IS NULL OR lease_holder <> ?)"
        params: tuple[Any, ...] = (holder,)
        if expired_before is None:
            condition = f"lease_until IS NOT NULL AND {mine}"
        else:
            condition, params = f"lease_until < ? AND {mine}", (expired_before, holder)
        rows = await self.db.fetch(
            f"UPDATE jobs SET lease_holder = ?, lease_until = ? WHERE {condition} AND job_id IN "
            f"(SELECT job_id FROM jobs WHERE {condition} ORDER BY lease_until, job_id LIMIT ?) RETURNING *",
            (holder, until, *params, *params, limit), write=True)
        return sorted((from_row(row) for row in rows), key=lambda record: (record.created_at, record.job_id))

    async def end_lease(self, job_id: str, holder: str) -> bool:
        """The job needs no process any more (its outcome was delivered): its lease ends for good."""
        return await self.db.execute("UPDATE jobs SET lease_holder = NULL, lease_until = NULL "
                                     "WHERE job_id = ? AND lease_holder = ?", (job_id, holder)) == 1

    async def release_leases(self, holder: str) -> int:
        """``holder`` stops (gracefully): each of its jobs may be taken over at once."""
        return await self.db.execute("UPDATE jobs SET lease_holder = NULL, lease_until = 0 "
                                     "WHERE lease_holder = ? AND lease_until IS NOT NULL", (holder,))

    # -- retention --------------------------------------------------------------------------
    async def prune_finished(self, before: float) -> int:
        """Delete the finished jobs that ended (or, unrecorded, began) before ``before`` (Unix
        seconds); how many. Unfinished jobs are never pruned."""
        marks = ", ".join("?" for _ in FINISHED_STATES)
        return await self.db.execute(f"DELETE FROM jobs WHERE state IN ({marks}) AND "
                                     "COALESCE(finished_at, created_at) < ?", (*FINISHED_STATES, before))

    async def compact(self) -> None:
        """Give the space of deleted rows back to the file system."""
        await self.db.compact()

    # -- reading ----------------------------------------------------------------------------
    async def get(self, job_id: str, *, timeout: float | None = None) -> JobRecord | None:
        """The job, or None; ``timeout`` bounds the wait on a locked database (``StoreBusy`` past it)."""
        rows = await self.db.fetch("SELECT * FROM jobs WHERE job_id = ?", (job_id,), timeout=timeout)
        return from_row(rows[0]) if rows else None

    async def finished_since(self, since: float) -> list[JobRecord]:
        """Jobs that ended at or after ``since`` (Unix seconds), oldest first."""
        marks = ", ".join("?" for _ in FINISHED_STATES)
        return await self._select(f"WHERE state IN ({marks}) AND finished_at >= ? ORDER BY finished_at, job_id",
                                  (*FINISHED_STATES, since))

    async def unfinished(self) -> list[JobRecord]:
        """Jobs not yet done, failed or cancelled, oldest first (to resume after a restart)."""
        marks = ", ".join("?" for _ in FINISHED_STATES)
        records = await self._select(f"WHERE state NOT IN ({marks}) ORDER BY created_at, job_id", FINISHED_STATES)
        return [record for record in records if not record.finished]  # a damaged state reads as failed

    async def recent(self, owner: str | None = None, limit: int = 20, *,
                     timeout: float | None = None) -> list[JobRecord]:
        """The newest jobs first, all or one owner's."""
        if owner is None:
            return await self._select("ORDER BY created_at DESC, job_id DESC LIMIT ?", (limit,), timeout)
        return await self._select("WHERE owner = ? ORDER BY created_at DESC, job_id DESC LIMIT ?", (owner, limit),
                                  timeout)

    async def _select(self, clause: str, params: Sequence[Any], timeout: float | None = None) -> list[JobRecord]:
        rows = await self.db.fetch(f"SELECT * FROM jobs {clause}", params, timeout=timeout)
        return [from_row(row) for row in rows]


def _update_sql(changes: Mapping[str, Any], job_id: str, holder: str | None = None) -> tuple[str, tuple[Any, ...]]:
    row = to_row(changes)
    assignments = ", ".join(f"{column} = ?" for column in row)
    if holder is None:
        return f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*row.values(), job_id)
    return f"UPDATE jobs SET {assignments} WHERE job_id = ? AND lease_holder = ?", (*row.values(), job_id, holder)
