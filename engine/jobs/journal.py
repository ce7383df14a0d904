"""A job's writes to the job store, in order, never killing the job: ``Journal``.

The runner posts each state change (``create``, ``post``: queued behind every earlier call, nobody
waits) and awaits only the end (``finish``), which the store runs after all of them: a job waits on
the database once. A write that fails is logged with the job id and remembered in ``unsaved``:
the job still ends and its outcome is still delivered, with a notice that it could not be saved.
``finish`` falls back to the fields that matter for a restart (state, times, error) when the full
write fails, so that a job whose outputs could not be recorded is still not re-run at every restart.

Under a lease (``engine.jobs.lease``) every write is conditional on it: a process that lost the
job changes nothing. ``sending`` records where the prompt goes before it is sent — awaited and
claimed under the lease when processes share the store — and ``finish`` says whether the lease
was still held.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .lease import Leases
from .records import JobRecord
from .store import JobStore

__all__ = ["Journal", "UNSAVED"]

log = logging.getLogger(__name__)

UNSAVED = "this job could not be saved in the job database"
_ESSENTIAL = ("state", "error", "finished_at")


class Journal:
    """Ordered, failure-tolerant writes of one job's record (see the module docstring)."""

    def __init__(self, store: JobStore, job_id: str, lease: Leases | None = None):
        self._store, self._job_id, self._lease = store, job_id, lease
        self._held = {"holder": lease.holder} if lease is not None else {}
        self.unsaved: str | None = None  # why the record is behind the job (None: it is not)

    def create(self, record: JobRecord) -> None:
        """Record the new job (posted)."""
        self._store.post_create(record, lambda error: self._failed(error, ("created",)))

    def post(self, **changes: Any) -> None:
        """Record ``changes`` (posted; never blocks)."""
        names = tuple(changes)
        self._store.post_set(self._job_id, changes, lambda error: self._failed(error, names), **self._held)

    async def sending(self, **changes: Any) -> bool:
        """Record where the job's prompt goes (backend, prompt id …) before it is sent. Processes
        sharing the store: claimed under the lease and awaited — False when another process has the
        job, ``StoreError`` when the database cannot tell; else posted like any write (True)."""
        if self._lease is not None and self._lease.shared:
            return await self._lease.claim(self._job_id, **changes)
        self.post(**changes)
        return True

    async def finish(self, **changes: Any) -> bool:
        """The end state, awaited: the whole record, or at least its state, times and error. False
        when the job's lease is held by another process (nothing was written: the job is theirs)."""
        written = await self._write(changes)
        if written is None:
            essential = {name: value for name, value in changes.items() if name in _ESSENTIAL}
            if essential != changes and (written := await self._write(essential)):
                log.warning("job %s: saved its end state without its outputs", self._job_id)
        return written is not False

    async def _write(self, changes: dict[str, Any]) -> bool | None:
        """True: written; False: the lease is another process's; None: the write failed."""
        try:
            if self._lease is not None:
                return await self._store.set_held(self._job_id, self._lease.holder, **changes)
            await self._store.set(self._job_id, **changes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store must never kill a job
            self._failed(exc, tuple(changes))
            return None
        return True

    def _failed(self, exc: BaseException, names: tuple[str, ...]) -> None:
        """Log and remember a failed write (may run on the store's worker thread)."""
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        log.error("job %s: cannot save %s in the job store (%s: %s)", self._job_id, ", ".join(sorted(names)),
                  type(exc).__name__, reason)
        self.unsaved = UNSAVED
