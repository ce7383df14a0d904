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

# Leases (issue 11 §3): a job that still needs a bot process — unfinished, or its outcome not yet
# delivered — has a ``lease_until``; ``lease_holder`` is the process acting on it. NULL: nobody needs
# to (finished and delivered, or a job run without leases). Jobs a v1 bot left unfinished or with
# their outcome still due (its ``outcome_due`` flag, written by json.dumps as ``"outcome_due": true``)
# start with an expired lease, so the next bot takes them over.
_V2: Migration = (
    "ALTER TABLE jobs ADD COLUMN lease_holder TEXT",
    "ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION",
    "CREATE INDEX jobs_lease_until ON jobs (lease_until) WHERE lease_until IS NOT NULL",
    "CREATE INDEX jobs_lease_holder ON jobs (lease_holder) WHERE lease_until IS NOT NULL",
    """UPDATE jobs SET lease_until = 0
       WHERE state NOT IN ('cancelled', 'done', 'failed') OR extra_json LIKE '%"outcome_due": true%'""",
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2)
