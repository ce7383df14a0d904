"""Job databases for tests: ``store_url`` is a fresh SQLite file, then a fresh PostgreSQL schema.

PostgreSQL comes from ``TEST_POSTGRES_URL`` (a ``postgresql://`` URL, as ``.ci/run`` sets it),
else from a throw-away server this module starts when the PostgreSQL binaries are installed
(``initdb``/``pg_ctl``, run as the ``postgres`` user when we are root: they refuse root), else the
PostgreSQL cases are skipped with the reason. Each test gets its own schema on that server.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import pytest

from tests.pgserver import postgres_url

__all__ = ["store_url", "pg_url", "postgres_server", "raw_execute", "DATABASES"]

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server for the whole session (``pytest.skip`` when there is none)."""
    with postgres_url() as (url, reason):
        if url is None:
            pytest.skip(f"no PostgreSQL server for the store tests: {reason}")
        yield url


@pytest.fixture(params=DATABASES)
def store_url(request, tmp_path) -> str:
    """A database URL no other test uses, on each database."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.sqlite3")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh schema of the session's PostgreSQL server, as a URL."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_pg_execute(postgres_server, f"CREATE SCHEMA {schema}"))
    return f"{postgres_server}{'&' if '?' in postgres_server else '?'}options=-csearch_path%3D{schema}"


async def raw_execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run ``sql`` on the database behind the store's back (to damage rows, lock tables, …)."""
    if url.startswith("postgresql://"):
        await _pg_execute(url, sql, params)
    else:
        await asyncio.to_thread(_sqlite_execute, url, sql, params)


def _sqlite_execute(path: str, sql: str, params: tuple[Any, ...]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(sql, params)
        db.commit()
    finally:
        db.close()


async def _pg_execute(url: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute(sql.replace("?", "%s"), params)
