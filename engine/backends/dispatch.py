"""Our own queue: jobs wait in the engine and go to a backend when it is ready (issue 11 §1).

A backend is *ready* while it holds fewer than ``1 + max_pending`` prompts — the one it runs plus
``max_pending`` waiting behind it, counting every client's prompts (the server's own queue count:
other people's ComfyUI jobs are respected) and ours not yet reported (``Backend.occupancy``).
``wait_turn`` puts a job in line and returns the backend it may go to; ``withdraw`` takes it out (a cancel while waiting never
touches ComfyUI). Nothing waiting is bound to a backend, so a backend that goes down loses
nothing. Which job goes next and where is ``engine.backends.fair``: fair turns by owner
(``serve_in_turn``: a heap of each owner's next job, so a dispatch costs O(log owners)), then the ready backend
that can run it (``routing.missing_on``, cached per object_info) and would finish it first.
Places in line ("3rd in line") are told to each job at most every ``place_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ComfyUnavailable, JobCancelled
from .backend import Backend
from .fair import Speeds, Turns, Waiting, best_backend, line_places, serve_in_turn
from .routing import Requirements, missing_on, no_backend_reason

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

PlaceCallback = Callable[[int], None]


@dataclass(eq=False)
class _Entry:
    waiting: Waiting
    workflow: str
    needs: Requirements
    future: asyncio.Future[Backend]
    on_place: PlaceCallback | None
    exclude: frozenset[str]


class Dispatcher:
    """The fair line of jobs in front of the backend pool (see the module docstring)."""

    def __init__(self, pool: Iterable[Backend], *, max_pending: int = 1, place_interval: float = 1.0):
        self._pool = pool
        self.max_pending = max_pending
        self.place_interval = place_interval
        self.turns = Turns()
        self.speeds = Speeds()
        self._lines: dict[str, deque[_Entry]] = {}  # per owner, in arrival order
        self._entries: dict[str, _Entry] = {}
        self._seq = itertools.count()
        self._scheduled = False
        self._places_told = 0.0
        self._ability: dict[tuple[Requirements, str, int], bool] = {}
        self._ticker: asyncio.Task | None = None
        self.priority_of: Callable[[str], int] | None = None  # owner → priority (e.g. from their roles)

    # -- the jobs' side ----------------------------------------------------------------------
    async def wait_turn(self, job_id: str, owner: str | None, workflow: str, needs: Requirements, *,
                        priority: int = 0, on_place: PlaceCallback | None = None,
                        exclude: Iterable[str] = ()) -> Backend:
        """Wait in line; the backend this job may be queued on now (its place is reserved there)."""
        if self.priority_of is not None:
            priority = max(priority, self.priority_of(owner or ""))
        entry = _Entry(Waiting(job_id, owner or "", float(next(self._seq)), priority), workflow, needs,
                       asyncio.get_running_loop().create_future(), on_place, frozenset(exclude))
        self._entries[job_id] = entry
        self._lines.setdefault(entry.waiting.owner, deque()).append(entry)
        self._places_told = 0.0  # a newcomer hears its place at the next dispatch
        self.wake()
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="dispatch tick")
        try:
            return await entry.future
        finally:
            self._remove(entry)

    def withdraw(self, job_id: str) -> bool:
        """Take a waiting job out of line (it ends cancelled); False when it is not waiting."""
        entry = self._entries.get(job_id)
        if entry is None or entry.future.done():
            return False
        entry.future.set_exception(JobCancelled("cancelled while waiting in line"))
        self._remove(entry)
        return True

    def ran(self, backend: str, workflow: str, seconds: float) -> None:
        """A job of ``workflow`` took ``seconds`` on ``backend`` (from start to end): its speed there."""
        self.speeds.measured(backend, workflow, seconds)

    @property
    def waiting(self) -> int:
        return len(self._entries)

    def wake(self) -> None:
        """Something changed (a job arrived, a backend's queue moved): dispatch soon, once per loop turn."""
        if not self._scheduled and self._entries:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def _tick(self) -> None:
        """While jobs wait, look again now and then (a change nobody announced, places to tell)."""
        while self._entries:
            await asyncio.sleep(min(0.5, self.place_interval))
            self.wake()

    # -- dispatching -------------------------------------------------------------------------
    def _dispatch(self) -> None:
        self._scheduled = False
        ready = {b.name: b for b in self._pool if b.up and b.occupancy < 1 + self.max_pending}
        if ready:
            self._grant_while_ready(ready)
        now = time.monotonic()
        if self._entries and now - self._places_told >= self.place_interval:
            self._places_told = now
            self._fail_the_unservable()
            self._tell_places()

    def _grant_while_ready(self, ready: dict[str, Backend]) -> None:
        """Serve the line in fair order (``serve_in_turn``: the order ``fair_order`` tells as places)
        while a backend is ready; a job no ready backend can take is passed over."""
        lines = {owner: [entry.waiting for entry in line] for owner, line in self._lines.items() if line}

        def take(waiting: Waiting, round_: int) -> bool:
            entry = self._entries.get(waiting.job_id)
            if entry is None or entry.future.done():
                return False
            name = best_backend([(b.name, b.occupancy * self.speeds.duration(b.name, entry.workflow))
                                 for b in ready.values() if self._able(b, entry)], entry.workflow, self.speeds)
            if name is None:
                return False
            backend = ready[name]
            backend.reserve()
            entry.future.set_result(backend)
            self._remove(entry)
            if backend.occupancy >= 1 + self.max_pending:
                del ready[name]
            return True

        serve_in_turn(lines, self.turns, take, more=lambda: bool(ready))

    def _able(self, backend: Backend, entry: _Entry) -> bool:
        if backend.name in entry.exclude:
            return False
        key = (entry.needs, backend.name, id(backend.object_info))
        able = self._ability.get(key)
        if able is None:
            if len(self._ability) > 50_000:
                self._ability.clear()
            able = self._ability[key] = missing_on(backend.object_info, entry.needs) is None
        return able

    def _fail_the_unservable(self) -> None:
        """With every backend up, a job none of them can run fails now instead of waiting forever."""
        backends = list(self._pool)
        if not backends or not all(b.up for b in backends):
            return  # a backend that is down may come back with what the job needs
        for entry in [e for e in self._entries.values() if not any(self._able(b, e) for b in backends)]:
            entry.future.set_exception(ComfyUnavailable(no_backend_reason(backends, entry.needs)))
            self._remove(entry)

    def _tell_places(self) -> None:
        places = line_places((e.waiting for e in self._entries.values()), self.turns)
        for job_id, place in places.items():
            entry = self._entries[job_id]
            if entry.on_place is not None:
                try:
                    entry.on_place(place)
                except Exception:  # a consumer's bug must not stop the line
                    log.exception("job %s: telling its place failed", job_id)

    def _remove(self, entry: _Entry) -> None:
        if self._entries.get(entry.waiting.job_id) is entry:
            del self._entries[entry.waiting.job_id]
            line = self._lines.get(entry.waiting.owner)
            if line is not None:
                try:
                    line.remove(entry)
                except ValueError:
                    pass
                if not line:
                    del self._lines[entry.waiting.owner]
            self.wake()
