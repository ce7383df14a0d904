"""PostgreSQL for the job store (``DB_URL=postgresql://…``), with psycopg 3's asyncio API.

Why psycopg 3: it is the PostgreSQL adapter the psycopg project keeps (psycopg2's successor), it
has a native asyncio API and a connection pool (``psycopg_pool``) that reconnects after a server
restart, and its binary wheel carries libpq, so nothing is needed from the system.

Writes go through ONE writer task on one connection at a time, in order (the posts of the job
runner run in the order they were made, as on SQLite); each batch the writer finds waiting runs
in one transaction (one commit for many jobs' state changes). A statement that fails in a batch
fails alone: the batch is rolled back and its calls are redone one by one. Reads use the pool's
other connections. A lock held by another session (``lock_timeout``) or a server that cannot be
reached is retried until the call's deadline, then ``StoreBusy`` / ``StoreError``. The schema
version lives in the one-row table ``discomfy_schema``; a migration holds an advisory lock, so
processes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import StoreBusy, StoreError
from .schema import Migration

__all__ = ["PostgresDatabase"]

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
OnFailure = Callable[[BaseException], None]
MIGRATION_LOCK = 0x64_69_73_63  # pg_advisory_xact_lock key: "disc"
RETRY_PAUSE = 0.05


@dataclass(frozen=True)
class _Write:
    sql: str
    params: tuple[Any, ...]
    rows: bool  # the caller wants the rows (… RETURNING), else the row count
    deadline: float
    future: asyncio.Future | None  # None: posted
    on_failure: OnFailure | None = None

    def settle(self, result: Any, error: BaseException | None) -> None:
        if error is not None and self.on_failure is not None:
            with contextlib.suppress(Exception):
                self.on_failure(error)
        if self.future is None or self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


def _with_lock_timeout(url: str, seconds: float) -> str:
    """``url`` with ``-c lock_timeout=…`` added to its own ``options`` (a search_path there stays)."""
    params = conninfo_to_dict(url)
    params["options"] = f"{params.get('options', '')} -c lock_timeout={int(seconds * 1000)}".strip()
    return make_conninfo("", **params)


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """``?`` placeholders (the store's, as SQLite's) → psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase:
    """The job store's statements on PostgreSQL (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, retry_for: float = 20.0, lock_timeout: float = 2.0, max_size: int = 4):
        self.retry_for = retry_for
        self._pool = AsyncConnectionPool(_with_lock_timeout(url, lock_timeout), min_size=1, max_size=max_size,
                                         open=False, name="discomfy-jobs",
                                         connection_class=psycopg.AsyncConnection[DictRow],
                                         kwargs={"autocommit": True, "row_factory": dict_row})
        self._writes: asyncio.Queue[_Write | None] = asyncio.Queue()
        self._writer: asyncio.Task | None = None

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        try:
            await self._pool.open(wait=True, timeout=self.retry_for)
        except PoolTimeout:
            raise StoreError("cannot reach the job database (PostgreSQL did not answer)") from None
        await self._attempts(lambda conn: _migrate(conn, migrations), time.monotonic() + self.retry_for)
        self._writer = asyncio.create_task(self._write_loop(), name="job store writer")

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None,
                    write: bool = False) -> Rows:
        if write:
            return await self._enqueue(sql, params, timeout, rows=True)
        deadline = time.monotonic() + self._limit(timeout)
        return await self._bounded(self._attempts(lambda conn: _run(conn, _pg(sql), params, True), deadline), timeout)

    async def execute(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> int:
        return await self._enqueue(sql, params, timeout, rows=False)

    def post(self, sql: str, params: Sequence[Any], on_failure: OnFailure) -> None:
        self._writes.put_nowait(_Write(_pg(sql), tuple(params), False, time.monotonic() + self.retry_for, None,
                                       on_failure))

    async def compact(self) -> None:
        """``VACUUM`` the jobs table (outside a transaction; PostgreSQL also does this on its own)."""
        await self._attempts(lambda conn: conn.execute("VACUUM (ANALYZE) jobs"), time.monotonic() + self.retry_for)

    async def close(self) -> None:
        if self._writer is not None:
            self._writes.put_nowait(None)
            await self._writer
            self._writer = None
        await self._pool.close()

    # -- the writer -----------------------------------------------------------------------------
    async def _enqueue(self, sql: str, params: Sequence[Any], timeout: float | None, *, rows: bool) -> Any:
        future = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + self._limit(timeout)
        self._writes.put_nowait(_Write(_pg(sql), tuple(params), rows, deadline, future))
        return await self._bounded(future, timeout)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._writes.get()]
            while not self._writes.empty():
                batch.append(self._writes.get_nowait())
            writes = [write for write in batch if write is not None]
            if writes:
                try:
                    await self._write_batch(writes)
                except Exception as exc:  # never lose the writer: every call hears of it
                    for write in writes:
                        write.settle(None, _translate(exc))
            if None in batch:
                return

    async def _write_batch(self, writes: list[_Write]) -> None:
        if len(writes) > 1:
            try:
                results = await self._attempts(lambda conn: _in_one_transaction(conn, writes),
                                               max(write.deadline for write in writes))
            except (StoreError, ValueError):
                pass  # one of them failed: redo each on its own, so that each hears its own outcome
            else:
                for write, result in zip(writes, results):
                    write.settle(result, None)
                return
        for write in writes:
            try:
                write.settle(await self._attempts(lambda conn: _run(conn, write.sql, write.params, write.rows),
                                                  write.deadline), None)
            except Exception as exc:
                write.settle(None, _translate(exc))

    # -- retries ----------------------------------------------------------------------------------
    async def _attempts(self, work: Callable[[psycopg.AsyncConnection[DictRow]], Any], deadline: float) -> Any:
        """``await work(connection)``, again while locked or unreachable, until ``deadline``."""
        while True:
            try:
                async with self._pool.connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
                    return await work(conn)
            except Exception as exc:
                error = _translate(exc)
                if not _retryable(exc) or time.monotonic() >= deadline:
                    raise error from None
            await asyncio.sleep(RETRY_PAUSE)

    def _limit(self, timeout: float | None) -> float:
        return self.retry_for if timeout is None else min(timeout, self.retry_for)

    async def _bounded(self, awaitable: Any, timeout: float | None) -> Any:
        try:
            async with asyncio.timeout(self._limit(timeout) if timeout is not None else self.retry_for + 5.0):
                return await awaitable
        except TimeoutError:
            raise StoreBusy("the job database did not answer in time") from None


async def _run(conn: psycopg.AsyncConnection[DictRow], sql: str, params: Sequence[Any], rows: bool) -> Any:
    cursor = await conn.execute(sql, params)
    if rows:
        return await cursor.fetchall() if cursor.description else []
    return cursor.rowcount


async def _in_one_transaction(conn: psycopg.AsyncConnection[DictRow], writes: list[_Write]) -> list[Any]:
    async with conn.transaction():
        return [await _run(conn, write.sql, write.params, write.rows) for write in writes]


async def _migrate(conn: psycopg.AsyncConnection[DictRow], migrations: Sequence[Migration]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS discomfy_schema (version INTEGER NOT NULL)")
        row: Any = await (await conn.execute("SELECT version FROM discomfy_schema")).fetchone()  # a dict_row
        version = int(row["version"]) if row else 0
        if row is None:
            await conn.execute("INSERT INTO discomfy_schema (version) VALUES (0)")
        if version > len(migrations):
            raise StoreError(f"the job database is at schema version {version}; this program knows {len(migrations)}")
        for number in range(version, len(migrations)):
            for statement in migrations[number]:
                await conn.execute(statement)
        await conn.execute("UPDATE discomfy_schema SET version = %s", (len(migrations),))


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected, pg_errors.SerializationFailure,
                            psycopg.OperationalError, PoolTimeout))


def _translate(exc: BaseException) -> BaseException:
    """psycopg's exceptions as the store's (one line each, never the URL); others unchanged."""
    if isinstance(exc, pg_errors.UniqueViolation):
        return ValueError(_reason(exc))
    if isinstance(exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected)):
        return StoreBusy("the job database is locked by another session")
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
        return StoreError("cannot reach the job database (PostgreSQL did not answer)")
    if isinstance(exc, psycopg.Error):
        return StoreError(f"the job database failed ({_reason(exc)})")
    return exc


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
