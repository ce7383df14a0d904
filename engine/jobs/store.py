"""The job store: every job, its values, backend, prompt_id, outcome and the bot's extras, in SQLite.

Embedded (stdlib ``sqlite3``), WAL mode, one row per job. Calls take well under a millisecond to a
few milliseconds, so the methods are synchronous; run them in ``asyncio.to_thread`` if ever needed
(a lock makes one ``JobStore`` safe to share between threads). Several ``JobStore`` objects (or
processes) may open the same file: SQLite serialises the writers, ``merge_extra`` is atomic.

JSON columns never crash a read: a value that does not decode comes back as ``{}`` / ``[]``.
The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` upgrades version ``i`` to
``i + 1``. To change the schema append a migration, never edit an old one. The bot keeps its own
data (channel, message ids, interaction info) in ``extra``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .progress import TERMINAL_STATES, JobState

__all__ = ["JobRecord", "JobStore", "MIGRATIONS", "StoreError"]

log = logging.getLogger(__name__)

Migration = Callable[[sqlite3.Connection], None]


class StoreError(RuntimeError):
    """The database cannot be used (e.g. it was written by a newer version)."""


@dataclass
class JobRecord:
    """One job as stored. Times are Unix seconds; ``state`` is a ``JobState`` value or a runner's own."""

    job_id: str
    manifest: str
    values: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    backend: str | None = None
    prompt_id: str | None = None
    client_id: str | None = None
    state: str = JobState.QUEUED.value
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


_FIELDS = tuple(f.name for f in fields(JobRecord))
_JSON_FIELDS = {"values": dict, "outputs": list, "extra": dict}
_COLUMNS = {name: f"{name}_json" if name in _JSON_FIELDS else name for name in _FIELDS}
_FINISHED = tuple(sorted(str(state) for state in TERMINAL_STATES))


def _create_v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            manifest TEXT NOT NULL,
            values_json TEXT NOT NULL DEFAULT '{}',
            seed TEXT,                      -- TEXT: ComfyUI seeds go up to 2**64 - 1
            backend TEXT,
            prompt_id TEXT,
            client_id TEXT,
            state TEXT NOT NULL,
            error TEXT,
            created_at REAL NOT NULL,
            queued_at REAL,
            started_at REAL,
            finished_at REAL,
            outputs_json TEXT NOT NULL DEFAULT '[]',
            owner TEXT,
            extra_json TEXT NOT NULL DEFAULT '{}'
        )"""
    )
    db.execute("CREATE INDEX jobs_state ON jobs (state)")
    db.execute("CREATE INDEX jobs_owner_created ON jobs (owner, created_at)")
    db.execute("CREATE INDEX jobs_created ON jobs (created_at)")


MIGRATIONS: tuple[Migration, ...] = (_create_v1,)


class JobStore:
    """Jobs in one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: str, *, migrations: Sequence[Migration] = MIGRATIONS, timeout: float = 10.0):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            _migrate(self._db, migrations)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(self, record: JobRecord) -> None:
        """Store a new job; raises ``ValueError`` if ``job_id`` is taken."""
        row = _to_row(asdict(record))
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._lock:
                self._db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job {record.job_id!r} already exists") from exc

    def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        """Set fields of a job; returns the updated record, or None when there is no such job."""
        unknown = set(changes) - set(_FIELDS) | ({"job_id"} & set(changes))
        if unknown:
            raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
        with self._lock, _transaction(self._db):
            if changes:
                row = _to_row(changes)
                assignments = ", ".join(f"{column} = ?" for column in row)
                self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*row.values(), job_id))
            return self._select_one(job_id)

    def set(self, job_id: str, **changes: Any) -> None:
        """``update`` without reading the record back (the job runner's hot path)."""
        unknown = set(changes) - set(_FIELDS) | ({"job_id"} & set(changes))
        if unknown:
            raise TypeError(f"cannot update {', '.join(sorted(unknown))}")
        if changes:
            row = _to_row(changes)
            assignments = ", ".join(f"{column} = ?" for column in row)
            with self._lock:
                self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*row.values(), job_id))

    def merge_extra(self, job_id: str, patch: Mapping[str, Any]) -> JobRecord | None:
        """Add or replace keys of ``extra`` atomically (other writers' keys survive)."""
        with self._lock, _transaction(self._db):
            record = self._select_one(job_id)
            if record is None:
                return None
            extra = {**record.extra, **patch}
            self._db.execute("UPDATE jobs SET extra_json = ? WHERE job_id = ?", (_dump(extra), job_id))
            record.extra = extra
            return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._select_one(job_id)

    def unfinished(self) -> list[JobRecord]:
        """Jobs not yet done, failed or cancelled, oldest first (to resume after a restart)."""
        marks = ", ".join("?" for _ in _FINISHED)
        return self._select(f"WHERE state NOT IN ({marks}) ORDER BY created_at, rowid", _FINISHED)

    def recent(self, owner: str | None = None, limit: int = 20) -> list[JobRecord]:
        """The newest jobs first, all or one owner's."""
        if owner is None:
            return self._select("ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,))
        return self._select("WHERE owner = ? ORDER BY created_at DESC, rowid DESC LIMIT ?", (owner, limit))

    def _select(self, clause: str, params: Sequence[Any]) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs {clause}", tuple(params)).fetchall()
        return [_from_row(row) for row in rows]

    def _select_one(self, job_id: str) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _from_row(row) if row is not None else None


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: takes the write lock up front so read-modify-write is atomic."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    with _transaction(db):
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(migrations):
            raise StoreError(f"job database is at schema version {version}; this program knows {len(migrations)}")
        for number in range(version, len(migrations)):
            migrations[number](db)
        db.execute(f"PRAGMA user_version = {len(migrations)}")


def _to_row(values: Mapping[str, Any]) -> dict[str, Any]:
    row = {}
    for name, value in values.items():
        if name in _JSON_FIELDS:
            value = _dump(value)
        elif name == "seed":
            value = None if value is None else str(int(value))
        elif name == "state":
            value = str(value)
        row[_COLUMNS[name]] = value
    return row


def _from_row(row: sqlite3.Row) -> JobRecord:
    keys = set(row.keys())
    values = {name: row[_COLUMNS[name]] for name in _FIELDS if _COLUMNS[name] in keys}
    for name, kind in _JSON_FIELDS.items():
        values[name] = _load(values.get(name), kind, row["job_id"], name)
    values["seed"] = _seed(values.get("seed"))
    return JobRecord(**values)


def _dump(value: Any) -> str:
    # default=str: an odd value (a Path, a datetime) is stored as text rather than failing the job
    return json.dumps(value, ensure_ascii=False, default=str)


def _load(text: Any, kind: type, job_id: str, name: str) -> Any:
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else None
    except ValueError:
        value = None
    if not isinstance(value, kind):
        if text is not None:
            log.warning("job %s: unreadable %s column, using an empty value", job_id, name)
        return kind()
    return value


def _seed(text: Any) -> int | None:
    try:
        return None if text is None else int(text)
    except (TypeError, ValueError):
        return None
