"""SQLite for the job store, on worker threads: the event loop never waits on the file.

Each connection lives on its own thread (``_Worker``). The loop only buffers calls and hands the
buffer over once per loop turn; the worker runs the batch — on the writer in ONE transaction, so
500 jobs' state changes cost one commit and one thread hop rather than 500 — and settles every
future of the batch with one callback. A file database has a writer and a reader thread (WAL
mode: reads go on while another process holds the write lock); ``:memory:`` has one thread for
both. The busy timeout is short (``busy_slice``): a database locked by another process is retried
on the worker until each call's deadline (``retry_for`` seconds, or the caller's ``timeout``), then
``StoreBusy``; a lock delays the calls that need the store, never the loop. A file that is not a
database gives ``StoreCorrupt``; a taken key ``ValueError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import StoreBusy, StoreCorrupt, StoreError
from .schema import Migration

__all__ = ["SqliteDatabase"]

Rows = list[dict[str, Any]]
Outcome = tuple["_Call", Any, BaseException | None]
OnFailure = Callable[[BaseException], None]
RETRY_PAUSE = 0.01


@dataclass(frozen=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    deadline: float  # monotonic: no retries on a locked database past this
    future: asyncio.Future | None  # None: posted, nobody waits (``on_failure`` hears of a failure)
    alone: bool = False  # run outside the batch's transaction (a migration manages its own)
    on_failure: OnFailure | None = None

    def settle(self, result: Any, error: BaseException | None) -> None:
        """On the loop: hand the outcome to the waiting caller."""
        if self.future is None or self.future.done():
            return  # posted, or the caller gave up (timeout, cancelled)
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class _Worker:
    """One sqlite3 connection on its own thread; ``call(fn, deadline)`` runs ``fn(connection)`` there."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str, *, grouped: bool):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._buffer: list[_Call] = []
        self._connect, self._grouped = connect, grouped
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[sqlite3.Connection], Any], deadline: float, *, alone: bool = False
             ) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._add(loop, _Call(fn, deadline, future, alone))
        return future

    def post(self, fn: Callable[[sqlite3.Connection], Any], deadline: float, on_failure: OnFailure) -> None:
        """Run ``fn`` in order with the calls, nobody waiting: ``on_failure(error)`` runs on the worker."""
        self._add(asyncio.get_running_loop(), _Call(fn, deadline, None, on_failure=on_failure))

    def _add(self, loop: asyncio.AbstractEventLoop, call: _Call) -> None:
        if not self._buffer:
            loop.call_soon(self._hand_over, loop)
        self._buffer.append(call)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._buffer = self._buffer, []
        self._queue.put((loop, batch))

    def stop(self) -> None:
        self._queue.put(None)

    async def join(self) -> None:
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        failure: BaseException | None = None
        try:
            db = self._connect()
        except sqlite3.Error as exc:  # every call fails with this (the opener reports it)
            failure = StoreError(f"cannot open the job database ({_reason(exc)})")
        while (item := self._queue.get()) is not None:
            loop, batch = item
            if db is None:
                outcomes = [(call, None, failure) for call in batch]
            else:
                outcomes = _run_batch(db, batch, self._grouped)
            _report_posted(outcomes)
            if any(call.future is not None for call, _, _ in outcomes):
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_resolve, outcomes)
        if db is not None:
            db.close()


def _run_batch(db: sqlite3.Connection, batch: list[_Call], grouped: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    group: list[_Call] = []
    for call in batch:
        if call.alone:
            outcomes += _run_group(db, group, grouped) + [_run_single(db, call)]
            group = []
        else:
            group.append(call)
    return outcomes + _run_group(db, group, grouped)


def _run_group(db: sqlite3.Connection, calls: list[_Call], grouped: bool) -> list[Outcome]:
    """``calls`` in one transaction (each call's failure its own); one by one when that is not possible."""
    if not grouped or len(calls) < 2:
        return [_run_single(db, call) for call in calls]
    outcomes, calls = _begin(db, calls)
    if not db.in_transaction:  # BEGIN failed for another reason than a lock: each call tells its own
        return outcomes + [_run_single(db, call) for call in calls]
    done: list[Outcome] = []
    for call in calls:
        try:
            done.append((call, call.fn(db), None))
        except sqlite3.IntegrityError as exc:  # only this statement is undone
            done.append((call, None, _translate(exc)))
        except Exception:  # something worse (disk full, I/O): redo each call on its own
            _rollback(db)
            return outcomes + [_run_single(db, call) for call in calls]
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        _rollback(db)
        return outcomes + [_run_single(db, call) for call in calls]
    return outcomes + done


def _begin(db: sqlite3.Connection, calls: list[_Call]) -> tuple[list[Outcome], list[_Call]]:
    """``BEGIN IMMEDIATE``, retried while locked; calls past their deadline meanwhile fail busy."""
    expired: list[Outcome] = []
    while calls:
        try:
            db.execute("BEGIN IMMEDIATE")
            return expired, calls
        except sqlite3.Error as exc:
            if not (isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)):
                return expired, calls
        now = time.monotonic()
        expired += [(call, None, _busy()) for call in calls if call.deadline <= now]
        calls = [call for call in calls if call.deadline > now]
        time.sleep(RETRY_PAUSE)
    return expired, calls


def _run_single(db: sqlite3.Connection, call: _Call) -> Outcome:
    """``call`` in autocommit, again while the database is locked by someone else, until its deadline."""
    while True:
        try:
            return call, call.fn(db), None
        except sqlite3.OperationalError as exc:
            _rollback(db)
            if not _is_busy(exc) or time.monotonic() >= call.deadline:
                return call, None, _translate(exc)
            time.sleep(RETRY_PAUSE)
        except Exception as exc:  # handed to the awaiting coroutine
            _rollback(db)
            return call, None, _translate(exc)


def _translate(exc: BaseException) -> BaseException:
    """sqlite3's exceptions as the store's (one line each); others unchanged."""
    if isinstance(exc, sqlite3.IntegrityError):
        return ValueError(_reason(exc))
    if isinstance(exc, sqlite3.OperationalError):
        return _busy() if _is_busy(exc) else StoreError(f"the job database failed ({_reason(exc)})")
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreCorrupt(f"the job database is damaged ({_reason(exc)})")
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"the job database failed ({_reason(exc)})")
    return exc


def _busy() -> StoreBusy:
    return StoreBusy("the job database is locked by another program")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _resolve(outcomes: list[Outcome]) -> None:
    for call, result, error in outcomes:
        call.settle(result, error)


def _report_posted(outcomes: list[Outcome]) -> None:
    for call, _, error in outcomes:
        if error is not None and call.on_failure is not None:
            with contextlib.suppress(Exception):  # a reporting bug must not stop the worker
                call.on_failure(error)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


class SqliteDatabase:
    """The job store's statements on SQLite (``path`` or ``":memory:"``), off the event loop."""

    dialect = "sqlite"

    def __init__(self, path: str, *, retry_for: float = 20.0, busy_slice: float = 0.05):
        self.path = path
        self.retry_for = retry_for
        connect = lambda: _connect(path, busy_slice)  # noqa: E731
        self._writer = _Worker(connect, "job store writer", grouped=True)
        shared = path == ":memory:" or path.startswith("file:")
        self._reader = self._writer if shared else _Worker(connect, "job store reader", grouped=False)

    async def migrate(self, migrations: Sequence[Migration]) -> None:
        await self._call(self._writer, lambda db: _migrate(db, migrations), None, alone=True)

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None,
                    write: bool = False) -> Rows:
        """The rows of one statement (``write`` for ``… RETURNING``)."""
        worker = self._writer if write else self._reader
        return await self._call(worker, lambda db: _rows(db.execute(sql, tuple(params))), timeout)

    async def execute(self, sql: str, params: Sequence[Any] = (), *, timeout: float | None = None) -> int:
        """Run one writing statement; the number of rows it changed."""
        return await self._call(self._writer, lambda db: db.execute(sql, tuple(params)).rowcount, timeout)

    def post(self, sql: str, params: Sequence[Any], on_failure: OnFailure) -> None:
        """Run one writing statement after every call made before it, without waiting for it (never
        blocks); ``on_failure(error)`` is called — on the worker thread — when it fails."""
        self._writer.post(lambda db: db.execute(sql, tuple(params)), time.monotonic() + self.retry_for, on_failure)

    async def compact(self) -> None:
        """Checkpoint the WAL and ``VACUUM`` (alone: it cannot run inside a transaction)."""
        await self._call(self._writer, _vacuum, None, alone=True)

    async def close(self) -> None:
        workers = {self._writer, self._reader}
        await asyncio.sleep(0)  # hand over what was buffered this turn
        for worker in workers:
            worker.stop()
        for worker in workers:
            await worker.join()

    async def _call(self, worker: _Worker, fn: Callable, timeout: float | None, *, alone: bool = False) -> Any:
        limit = self.retry_for if timeout is None else min(timeout, self.retry_for)
        future = worker.call(fn, time.monotonic() + limit, alone=alone)
        try:  # with a timeout, stop waiting then; else give a statement stuck past its retries some slack
            async with asyncio.timeout(limit if timeout is not None else limit + 5.0):
                return await future
        except TimeoutError:
            raise StoreBusy("the job database did not answer in time") from None


def _connect(path: str, busy_slice: float) -> sqlite3.Connection:
    uri = path.startswith("file:")
    db = sqlite3.connect(path, timeout=busy_slice, isolation_level=None, check_same_thread=False, uri=uri)
    db.row_factory = sqlite3.Row
    return db


def _vacuum(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _rows(cursor: sqlite3.Cursor) -> Rows:
    return [dict(row) for row in cursor.fetchall()]


def _migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise StoreError(f"the job database is at schema version {version}; this program knows {len(migrations)}")
        for number in range(version, len(migrations)):
            for statement in migrations[number]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(migrations)}")
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
