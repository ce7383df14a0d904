"""A job's writes to the job store, in order, never killing the job: ``Journal``.

The runner posts each state change (``create``, ``post``: queued behind every earlier call, nobody
waits) and awaits only the end (``finish``), which the store runs after all of them: a job waits on
the database once. A write that fails is logged with the job id and remembered in ``unsaved``:
the job still ends and its outcome is still delivered, with a notice that it could not be saved.
``finish`` falls back to the fields that matter for a restart (state, times, error) when the full
write fails, so that a job whose outputs could not be recorded is still not re-run at every restart.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .records import JobRecord
from .store import JobStore

__all__ = ["Journal", "UNSAVED"]

log = logging.getLogger(__name__)

UNSAVED = "this job could not be saved in the job database"
_ESSENTIAL = ("state", "error", "finished_at")


class Journal:
    """Ordered, failure-tolerant writes of one job's record (see the module docstring)."""

    def __init__(self, store: JobStore, job_id: str):
        self._store, self._job_id = store, job_id
        self.unsaved: str | None = None  # why the record is behind the job (None: it is not)

    def create(self, record: JobRecord) -> None:
        """Record the new job (posted)."""
        self._store.post_create(record, lambda error: self._failed(error, ("created",)))

    def post(self, **changes: Any) -> None:
        """Record ``changes`` (posted; never blocks)."""
        names = tuple(changes)
        self._store.post_set(self._job_id, changes, lambda error: self._failed(error, names))

    async def finish(self, **changes: Any) -> None:
        """The end state, awaited: the whole record, or at least its state, times and error."""
        if await self._write(changes):
            return
        essential = {name: value for name, value in changes.items() if name in _ESSENTIAL}
        if essential != changes and await self._write(essential):
            log.warning("job %s: saved its end state without its outputs", self._job_id)

    async def _write(self, changes: dict[str, Any]) -> bool:
        try:
            await self._store.set(self._job_id, **changes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store must never kill a job
            self._failed(exc, tuple(changes))
            return False
        return True

    def _failed(self, exc: BaseException, names: tuple[str, ...]) -> None:
        """Log and remember a failed write (may run on the store's worker thread)."""
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        log.error("job %s: cannot save %s in the job store (%s: %s)", self._job_id, ", ".join(sorted(names)),
                  type(exc).__name__, reason)
        self.unsaved = UNSAVED
