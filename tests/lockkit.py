"""Another process holding an SQLite database's lock, as another bot, a backup tool or a person
with the ``sqlite3`` shell would: ``async with locked(path, seconds): …``."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

__all__ = ["locked"]

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
for statement in sys.argv[3].split(";"):
    db.execute(statement)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@contextlib.asynccontextmanager
async def locked(path: Path, seconds: float, statement: str = "BEGIN EXCLUSIVE"):
    """Another process holds ``statement``'s lock on ``path`` for ``seconds`` (killed at the block's end
    if it still holds it)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLD_LOCK, str(path), str(seconds), statement,
                                                stdout=subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 10)).strip() == b"locked"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
