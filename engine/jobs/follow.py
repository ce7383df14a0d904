"""Following one queued prompt on one backend until it ends: ``PromptFollower``.

The follower reads the prompt's subscription queue (from the backend's ``EventStream``) into a
``ProgressTracker``, takes the queue position while the prompt waits from the backend's shared
``GET /queue`` snapshot (``Backend.watch_queue``: one request per backend for all jobs, taken on
``status`` broadcasts or after ``queue_poll`` s without one; while the prompt runs, the same
snapshots tell that it is still there), and reacts to signals the job puts in the same queue:
``CANCEL`` (delete + interrupt on the server), ``BACKEND_DOWN`` (a queued prompt raises
``_BackendLost`` so the job can move; a running one gets ``down_grace`` seconds for the server to
come back and tell from ``/history`` how it ended), ``RECHECK`` (the prompt vanished from the
queue — dropped, or ended with its last messages lost: settle from ``/history``). A prompt queued
by another client id (found again after a restart) gets no websocket messages, so its end is
found by polling too (``foreign``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..backends.backend import Backend
from ..errors import ComfyError, ComfyUnavailable
from .parts import JobSettings, withdraw
from ..comfy.outputs import parse_status
from ..comfy.wire import mapping_at
from .progress import TERMINAL_STATES, JobState, ProgressEvent, ProgressTracker

__all__ = ["PromptFollower", "Signal", "GONE", "DROPPED", "NOWHERE"]  # _BackendLost, _PromptLost: for engine.jobs.job only

GONE = "the server running this job went away"
DROPPED = "the server dropped this job from its queue"
NOWHERE: dict[str, str | None] = {"backend": None, "prompt_id": None, "client_id": None}  # no prompt anywhere


class Signal(enum.Enum):
    BACKEND_DOWN = "backend down"
    CANCEL = "cancel"
    RECHECK = "recheck"


class _PromptLost(ComfyUnavailable):
    """The server knows the prompt nowhere: neither queued, running nor in its history."""


class _BackendLost(Exception):
    """The backend went down while the prompt was still queued there: the job should move."""


class PromptFollower:
    """Follows ``prompt_id`` on ``backend`` (see the module docstring); ``run()`` returns at the end."""

    def __init__(self, backend: Backend, prompt_id: str, inbox: asyncio.Queue[Any], graph: Mapping[str, Any], *,
                 outputs: Iterable[str], settings: JobSettings, publish: Callable[[list[ProgressEvent]], None],
                 cancelled: Callable[[], bool], foreign: bool = False):
        self.backend = backend
        self.prompt_id = prompt_id
        self.graph = graph
        self.tracker = ProgressTracker(prompt_id, graph, want_previews=settings.want_previews, outputs=outputs)
        self.error_data: Mapping[str, Any] = {}  # the execution_error payload, when it failed
        self._inbox = inbox
        self._settings = settings
        self._publish = publish
        self._cancelled = cancelled
        self._foreign = foreign
        self._queued_at = time.monotonic()  # snapshots asked for before this may not show the prompt
        self._misses = 0  # snapshots in a row without the prompt

    @property
    def state(self) -> JobState:
        return self.tracker.state

    def place(self) -> dict[str, str | None]:
        """Where the prompt is, as the job store records it."""
        return {"backend": self.backend.name, "prompt_id": self.prompt_id, "client_id": self.backend.client.client_id}

    def signal(self, signal: Signal) -> None:
        self._inbox.put_nowait(signal)

    def unsubscribe(self) -> None:
        self.backend.events.unsubscribe(self.prompt_id)

    async def run(self) -> None:
        """Until the tracker is terminal; raises ``_BackendLost``, ``_PromptLost`` or ``ComfyUnavailable``."""
        if self._watching():
            self.backend.watch_queue(self, self._on_snapshot, every=self._settings.queue_poll)
        try:
            await self._consume()
        finally:
            self.backend.unwatch_queue(self)

    async def _consume(self) -> None:
        grace_until = poll_every = None
        while self.state not in TERMINAL_STATES:
            try:
                async with asyncio.timeout(poll_every):
                    message = await self._inbox.get()
            except TimeoutError:
                grace_until = await self._check_after_down(grace_until)
                continue
            if message is Signal.BACKEND_DOWN:
                if self.state is JobState.QUEUED:
                    raise _BackendLost()
                grace_until = grace_until or time.monotonic() + self._settings.down_grace
                poll_every = self._settings.queue_poll  # messages may have been lost: poll from now on
            elif message is Signal.CANCEL:
                await self.withdraw(cancelled=True)
            elif message is Signal.RECHECK:
                await self._recheck(DROPPED if self.state is JobState.QUEUED else GONE)
            else:
                self._feed(message)

    async def _check_after_down(self, grace_until: float | None) -> float | None:
        """Settle from history once the backend answers again; fail ``down_grace`` s after it went
        down if it does not. Returns the deadline still in force (None once the server answered)."""
        if self.backend.up and await self._recheck(GONE):
            return None  # settled, or the server still has it queued/running
        if grace_until is not None and time.monotonic() >= grace_until:
            raise ComfyUnavailable(GONE)
        return grace_until

    def _feed(self, message: Any) -> None:
        if isinstance(message, dict):
            data = mapping_at(message, "data")
            if message.get("type") == "execution_error" and data.get("prompt_id") == self.prompt_id:
                self.error_data = data
        self._publish(self.tracker.feed(message))

    def _watching(self) -> bool:
        """Until the prompt ends: its place while queued, and while it runs whether it is still there
        (its last messages may be lost with the socket still open, e.g. a server that hung a moment)."""
        return self.state not in TERMINAL_STATES

    def _on_snapshot(self, snapshot: Any, asked_at: float) -> None:
        """A new shared ``GET /queue`` snapshot of the backend (see ``Backend.watch_queue``).

        Snapshots asked for before the prompt was queued say nothing; missing from two later ones
        (one for a foreign prompt) it may have ended unseen or been dropped → RECHECK.
        """
        if not self._watching():
            self.backend.unwatch_queue(self)
            return
        if asked_at <= self._queued_at:
            return
        self._misses = 0 if self._take_place() else self._misses + 1
        if self._misses >= (1 if self._foreign else 2):
            self._misses = 0
            self.signal(Signal.RECHECK)

    def _take_place(self) -> bool:
        """Feed the latest shared snapshot to the tracker; False when the prompt is not in it."""
        if self.backend.is_running(self.prompt_id):
            if self.state is JobState.QUEUED:
                self._publish(self.tracker.feed_queue((self.prompt_id,), ()))
            return True
        position = self.backend.position(self.prompt_id)
        if position is None:
            return False
        self._publish(self.tracker.feed_position(position))
        return True

    async def _recheck(self, missing: str) -> bool:
        """``settle_if_gone`` that tolerates a server that cannot answer now; True if it answered."""
        try:
            await self.settle_if_gone(missing=missing)
            return True
        except _PromptLost:
            raise
        except ComfyError:
            return False

    async def settle_if_gone(self, *, missing: str) -> bool:
        """If the prompt is in neither queue: settle from history, else raise ``_PromptLost(missing)``.

        True when the prompt has ended; False while the server still has it queued or running.
        """
        asked_at = time.monotonic()
        snapshot = await self.backend.client.queue()
        self.backend.report_snapshot(snapshot, asked_at)
        if self.prompt_id in snapshot:
            self._publish(self.tracker.feed_queue(snapshot.running, snapshot.pending))
            return False
        entry = await self.backend.client.history(self.prompt_id)
        if entry is not None:
            status = parse_status(entry)
            if status.last_type == "execution_error":
                self.error_data = status.last_data
            self._publish(self.tracker.feed_history(entry))
            return self.state in TERMINAL_STATES
        if self._cancelled():
            self._publish(self.tracker.cancel())
            return True
        raise _PromptLost(missing)

    async def withdraw(self, *, cancelled: bool) -> None:
        """Delete from the queue and interrupt on the server (best effort); settle if it is gone."""
        await withdraw(self.backend.client, self.prompt_id)
        if cancelled:
            with contextlib.suppress(ComfyError):
                await self.settle_if_gone(missing="cancelled")
