"""The job store's schema: one migration path for SQLite and PostgreSQL.

``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``; each is a list of SQL statements that
both databases accept (TEXT, DOUBLE PRECISION, INTEGER; JSON kept as TEXT so both store exactly
the same thing). To change the schema append a migration, never edit an old one. Where the
version lives is the database's business (SQLite: ``PRAGMA user_version``, as before;
PostgreSQL: the one-row table ``discomfy_schema``); every migration runs in one transaction with
the version bump, so a failing one changes nothing.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "Migration"]

Migration = tuple[str, ...]

_V1: Migration = (
    """CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        manifest TEXT NOT NULL,
        values_json TEXT NOT NULL DEFAULT '{}',
        seed TEXT,
        backend TEXT,
        prompt_id TEXT,
        client_id TEXT,
        state TEXT NOT NULL,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        queued_at DOUBLE PRECISION,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        outputs_json TEXT NOT NULL DEFAULT '[]',
        owner TEXT,
        extra_json TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX jobs_state ON jobs (state)",
    "CREATE INDEX jobs_owner_created ON jobs (owner, created_at)",
    "CREATE INDEX jobs_created ON jobs (created_at)",
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
