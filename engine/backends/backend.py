"""One ComfyUI server as the pool sees it: ``Backend`` (client, websocket, health, queue) and ``BackendStatus``.

The queue is shared by every job of ours on the server: one ``GET /queue`` snapshot at a time
(``queue``, ``position``, ``is_running``), stamped with the moment it was asked for so an older
answer never replaces a newer one. Callers that ask together share one request
(``refresh_queue``). A queued job does not poll: it registers with ``watch_queue`` and is called
back with every new snapshot; while anyone watches, a snapshot is taken at least every ``every``
seconds (the pool also takes one on bursts of ``status`` broadcasts and on health checks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..comfy.client import ComfyClient
from ..errors import ComfyError
from ..comfy.events import EventStream
from ..comfy.wire import QueueSnapshot

__all__ = ["Backend", "BackendStatus", "RESERVATION_SECONDS"]

log = logging.getLogger(__name__)

RESERVATION_SECONDS = 10.0  # a pick counts towards the queue until submitted, at most this long

QueueWatcher = Callable[[QueueSnapshot, float], None]  # (snapshot, monotonic time it was asked for)


@dataclass(frozen=True)
class BackendStatus:
    """What users may see about a backend (never its URL)."""

    name: str
    up: bool
    running: int
    pending: int
    version: str | None


class Backend:
    """One ComfyUI server: its client, websocket, health, cached ``object_info`` and queue counts.

    ``load`` is what routing compares: the server's last reported queue (``running`` +
    ``pending``), plus our submissions it has not reported yet, plus fresh picks not yet submitted.
    """

    def __init__(self, name: str, client: ComfyClient, events: EventStream):
        self.name = name
        self.client = client
        self.events = events
        self.up = False
        self.object_info: dict[str, Any] = {}
        self.version: str | None = None
        self.running = 0
        self.pending = 0
        self.in_flight: set[str] = set()
        self.info_fetched_at: float | None = None
        self.ws_down_since: float | None = None
        self.slow_checks = 0  # health checks in a row that timed out
        self.owed: set[str] = set()  # prompts moved elsewhere while this server hung: withdraw when it answers
        self.last_view: tuple[frozenset, frozenset] | None = None  # the queue at the last health check
        self.last_view_at = float("-inf")
        self.changed_since: float | None = None  # the queue changed after this (monotonic): a status is due
        self.problem: str | None = None  # why the last health check failed (no URL), None when it passed
        self.queue = QueueSnapshot()
        self.queue_asked_at = float("-inf")  # monotonic time the request behind ``queue`` was sent
        self._positions: dict[str, int] = {}
        self._unreported = 0
        self._reservations: list[float] = []
        self._queue_changed = asyncio.Event()
        self._refreshing: asyncio.Task | None = None
        self._watchers: dict[object, QueueWatcher] = {}
        self._watch_every = float("inf")
        self._watch_task: asyncio.Task | None = None
        self.on_change: Callable[[], None] | None = None  # its queue count moved (the dispatcher listens)

    # -- load and routing ---------------------------------------------------------------------
    @property
    def load(self) -> int:
        now = time.monotonic()
        self._reservations = [t for t in self._reservations if now - t < RESERVATION_SECONDS]
        reported = self.running + self.pending + self._unreported
        return max(reported, len(self.in_flight)) + len(self._reservations)

    @property
    def occupancy(self) -> int:
        """Prompts the server holds now by its own count (every client's) plus ours it has not reported
        and fresh picks — unlike ``load``, not our prompts that ended there but are still being collected."""
        now = time.monotonic()
        self._reservations = [t for t in self._reservations if now - t < RESERVATION_SECONDS]
        return self.running + self.pending + self._unreported + len(self._reservations)

    def reserve(self) -> None:
        self._reservations.append(time.monotonic())

    def submitted(self, prompt_id: str) -> None:
        if self._reservations:
            self._reservations.pop(0)
        self.in_flight.add(prompt_id)
        self._unreported += 1

    def finished(self, prompt_id: str) -> None:
        self.in_flight.discard(prompt_id)
        self._changed()

    def report_queue(self, running: int, pending: int) -> None:
        """The server's own count (``GET /queue``, or ``status`` broadcasts via ``report_remaining``)."""
        self.running, self.pending, self._unreported = max(running, 0), max(pending, 0), 0
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def report_remaining(self, queue_remaining: int) -> None:
        running = min(1, max(queue_remaining, 0))  # ComfyUI runs one prompt at a time
        self.report_queue(running, queue_remaining - running)

    # -- the shared queue snapshot ------------------------------------------------------------
    def report_snapshot(self, snapshot: QueueSnapshot, asked_at: float | None = None) -> None:
        """A fresh ``GET /queue`` (sent at monotonic ``asked_at``): shared by every job of ours on
        this backend (see ``watch_queue``). An answer older than the current one is ignored."""
        asked_at = time.monotonic() if asked_at is None else asked_at
        if asked_at < self.queue_asked_at:
            return
        self.queue, self.queue_asked_at = snapshot, asked_at
        self._positions = {prompt_id: place for place, prompt_id in enumerate(snapshot.pending, 1)}
        self.report_queue(len(snapshot.running), len(snapshot.pending))
        changed, self._queue_changed = self._queue_changed, asyncio.Event()
        changed.set()
        for key, watcher in list(self._watchers.items()):
            try:
                watcher(snapshot, asked_at)
            except Exception:  # one broken watcher must not starve the others
                log.exception("backend %s: a queue watcher failed", self.name)
                self._watchers.pop(key, None)

    async def queue_changed(self) -> QueueSnapshot:
        """Wait for the next ``GET /queue`` snapshot the pool takes (on status broadcasts, health polls)."""
        await self._queue_changed.wait()
        return self.queue

    async def refresh_queue(self) -> QueueSnapshot:
        """Take a new shared snapshot now; callers arriving while one is being taken share it.

        Raises ``ComfyError`` when the server cannot answer.
        """
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._take_snapshot(), name=f"queue {self.name}")
            self._refreshing.add_done_callback(_retrieve)  # every waiter may have gone
        return await asyncio.shield(self._refreshing)

    async def _take_snapshot(self) -> QueueSnapshot:
        asked_at = time.monotonic()
        snapshot = await self.client.queue()
        self.report_snapshot(snapshot, asked_at)
        return snapshot

    def position(self, prompt_id: str) -> int | None:
        """1-based place of ``prompt_id`` among pending prompts in the latest snapshot."""
        return self._positions.get(prompt_id)

    def is_running(self, prompt_id: str) -> bool:
        """``prompt_id`` runs according to the latest snapshot."""
        return prompt_id in self.queue.running

    def watch_queue(self, key: object, watcher: QueueWatcher, *, every: float) -> None:
        """Call ``watcher(snapshot, asked_at)`` with every new snapshot until ``unwatch_queue(key)``;
        meanwhile a snapshot is taken at least every ``every`` seconds (the smallest asked for)."""
        self._watchers[key] = watcher
        self._watch_every = min(self._watch_every, every)
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.create_task(self._poll_while_watched(), name=f"watch {self.name}")

    def unwatch_queue(self, key: object) -> None:
        self._watchers.pop(key, None)

    async def _poll_while_watched(self) -> None:
        while self._watchers:
            due = self.queue_asked_at + self._watch_every - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            try:
                await self.refresh_queue()
            except ComfyError:
                await asyncio.sleep(self._watch_every)  # down or slow: ask again later, not at once

    def stop(self) -> None:
        """Cancel the background queue requests (the pool is closing)."""
        for task in (self._refreshing, self._watch_task):
            if task is not None:
                task.cancel()
        self._watchers.clear()

    def status(self) -> BackendStatus:
        return BackendStatus(self.name, self.up, self.running, self.pending, self.version)

    def __repr__(self) -> str:  # no URL
        return f"<Backend {self.name} {'up' if self.up else 'down'} load={self.load}>"


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()
