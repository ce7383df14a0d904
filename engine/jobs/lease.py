"""This process's leases on jobs in the job store: ``Leases`` (issue 11 §3).

Several bot processes may share one PostgreSQL job store. Each job that still needs a process —
it has not ended, or its outcome has not been delivered — is held by one of them under a lease:
its row names the holder (``lease_holder``) and the time until which the lease runs
(``lease_until``). The holder renews all its leases in one statement every third of the lease
time (``renew``). A process that dies stops renewing; once its leases ran out, another process
takes the jobs over (``take``: one conditional statement, so each job goes to one taker) and
resumes the unfinished ones or delivers their outcomes. A process that stops gracefully lets its
jobs go at once (``release``).

What a process may do with a job only while it holds the lease — the rules that make a job's
prompt be sent once and its outcome delivered once:

- send the prompt: ``claim`` writes the backend and prompt id under the lease (a conditional
  write, awaited) before ``POST /prompt``; a process that takes the job over later finds that
  prompt id and follows the prompt instead of sending another;
- write the job's record: every write is conditional on the lease (``holder``), so a process that
  lost it cannot overwrite what the new holder writes;
- deliver the outcome: ``claim`` once more right before posting it, ``end`` after (the job then
  needs no process: its lease is gone for good).

A claim is trusted for two thirds of the lease after it (or the renewal confirming it) was sent
(``holds``); the rest covers a late renewal and clocks that differ between machines (each
holder writes its own clock's time: they must agree to well within a third of the lease). A
renewal that does not find a job held any more reports it ``lost``: the runtime hands the job
over (stops following it, delivers nothing). Rows held under this process's name that nothing
here works on (a delivery that could not record its end) come back as ``orphans``, to be taken
up again.

With one process per database (``shared=False``: SQLite, whose file one bot process owns) the
same columns mark what needs a process, but nothing is renewed and a claim is not written: at
start the process takes every such job at once (no one else can hold one).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from .records import JobRecord
from .store import JobStore

__all__ = ["Leases", "process_holder"]

log = logging.getLogger(__name__)

TAKE_AT_ONCE = 100  # jobs taken over per statement


def process_holder() -> str:
    """A name for this process, unique across machines and restarts: host, pid, random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """This process's hold on its jobs (see the module docstring)."""

    def __init__(self, store: JobStore, *, seconds: float = 30.0, shared: bool = True, holder: str | None = None,
                 clock: Callable[[], float] = time.time):
        if seconds <= 0:
            raise ValueError("a lease must last a positive number of seconds")
        self.store = store
        self.seconds = seconds
        self.shared = shared
        self.holder = holder or process_holder()
        self._clock = clock
        self._trusted: dict[str, float] = {}  # held job id → monotonic time until which a claim is trusted

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    def until(self) -> float:
        """The end of a lease given now (this process's clock)."""
        return self._clock() + self.seconds

    def hold(self, job_id: str, since: float | None = None) -> None:
        """``job_id`` is held by this process from monotonic ``since`` (default now): created or taken."""
        self._trusted[job_id] = (time.monotonic() if since is None else since) + self.seconds * 2 / 3

    def holds(self, job_id: str) -> bool:
        """This process works on ``job_id`` and its last claim or renewal is recent enough to act on."""
        trusted = self._trusted.get(job_id)
        return trusted is not None and (not self.shared or time.monotonic() < trusted)

    def held(self) -> set[str]:
        return set(self._trusted)

    def forget(self, job_id: str) -> None:
        """Nothing here works on ``job_id`` any more (lost, or left for a renewal to find again)."""
        self._trusted.pop(job_id, None)

    async def claim(self, job_id: str, **changes: Any) -> bool:
        """Before an act that must happen once: True when this process still holds the job's lease —
        renewed, with ``changes`` written under it. False: another process has the job (forgotten
        here). ``StoreError`` when the database cannot tell (then nothing may be done either)."""
        if not self.shared:
            return job_id in self._trusted
        if job_id not in self._trusted:
            return False
        sent = time.monotonic()
        if await self.store.set_held(job_id, self.holder, lease_until=self.until(), **changes):
            self.hold(job_id, sent)
            return True
        self.forget(job_id)
        return False

    async def end(self, job_id: str) -> None:
        """The job's outcome was delivered: it needs no process any more."""
        self.forget(job_id)
        await self.store.end_lease(job_id, self.holder)

    async def renew(self) -> tuple[set[str], set[str]]:
        """Extend every lease of this process: (jobs it lost, jobs held here that nothing works on)."""
        before, sent = set(self._trusted), time.monotonic()
        held = set(await self.store.renew_leases(self.holder, self.until()))
        lost = {job_id for job_id in before - held if job_id in self._trusted}
        for job_id in lost:
            log.warning("job %s: its lease was taken over by another process", job_id)
            self.forget(job_id)
        for job_id in held & set(self._trusted):
            self.hold(job_id, sent)
        return lost, held - set(self._trusted)

    async def take(self) -> list[JobRecord]:
        """Jobs this process takes over now: those whose lease ran out — every one that needs a
        process when it is the only process (``shared=False``)."""
        taken: list[JobRecord] = []
        while True:
            sent = time.monotonic()
            batch = await self.store.take_leases(self.holder, self.until(), limit=TAKE_AT_ONCE,
                                                 expired_before=self._clock() if self.shared else None)
            for record in batch:
                self.hold(record.job_id, sent)
            taken += batch
            if len(batch) < TAKE_AT_ONCE or self.shared:  # shared: the next round takes more
                return taken

    async def release(self) -> None:
        """This process stops: every job it holds may be taken over at once."""
        self._trusted.clear()
        count = await self.store.release_leases(self.holder)
        if count:
            log.info("let %d job(s) go for another process to take over", count)
