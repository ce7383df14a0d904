"""A throw-away PostgreSQL server for tests (filled in with the PostgreSQL store)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def postgres_url() -> Iterator[tuple[str | None, str]]:
    url = os.environ.get("DISCOMFY_TEST_POSTGRES")
    yield (url, "") if url else (None, "not set up yet")
