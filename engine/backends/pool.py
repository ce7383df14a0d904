"""The pool of ComfyUI backends: health, cached ``object_info``, queue lengths and routing.

One ``ComfyClient`` (one aiohttp session) and one ``EventStream`` (one websocket) per backend for
the process lifetime. A health loop per backend polls ``GET /queue``: a failed poll, or the
websocket staying disconnected for more than ``DOWN_AFTER_INTERVALS`` intervals, marks the
backend down (``on_down`` callbacks fire once per fall); when it answers again its
``object_info`` is refreshed and it rejoins. ``object_info`` is also refreshed every
``object_info_ttl`` seconds. Queue positions are shared: while we have prompts on a backend,
each burst of ``status`` broadcasts triggers one ``GET /queue`` for all of them
(``Backend.queue`` / ``position`` / ``watch_queue``, see ``engine.backends.backend``), instead of one
poll per job.

``pick`` routes with the pure rules of ``engine.backends.routing``: up, has every node class and combo
value (model file) the graph uses, shortest queue first. Nothing here shows a URL: backends are
known by name. A refused connection or a 5xx marks a backend down at once, a timed-out health
check only the second time in a row, and not while the websocket keeps delivering messages
(under load a slow answer is our own busy event loop, not a dead server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from .backend import Backend, BackendStatus
from .dispatch import Dispatcher
from ..comfy.client import ComfyClient, Timeouts
from ..errors import ComfyError, ComfyTimeout, ComfyUnavailable
from ..limits import DEFAULT_LIMITS, Limits
from ..comfy.events import EventStream
from ..comfy.object_info import combo_choices
from ..comfy.wire import mapping_at
from .routing import graph_requirements, no_backend_reason, rank_backends

__all__ = ["Backend", "BackendPool", "BackendStatus", "rank_backends"]

log = logging.getLogger(__name__)

DOWN_AFTER_INTERVALS = 2.0  # websocket disconnected this many health intervals → down
SLOW_CHECKS_DOWN = 2  # timed-out health checks in a row that mark a backend down (refusals: at once)
QUEUE_POLL_GAP = 0.5  # seconds between two shared GET /queue taken on status broadcasts (a big answer)


# -- the pool -------------------------------------------------------------------------------

DownCallback = Callable[[Backend], Coroutine[Any, Any, None]]


class BackendPool:
    """Every configured backend, kept healthy and routable (see the module docstring)."""

    def __init__(self, backends: Sequence[tuple[str, str]], *, client_id: str,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None,
                 health_interval: float = 5.0, object_info_ttl: float = 300.0,
                 health_timeout: float | None = None, timeouts: Timeouts | None = None,
                 limits: Limits = DEFAULT_LIMITS):
        names = [name for name, _ in backends]
        if not names or len(set(names)) != len(names):
            raise ValueError("backends need at least one entry and unique names")
        self._configured = list(backends)
        self._client_id = client_id
        self._session_factory = session_factory
        self._timeouts = timeouts
        self.limits = limits
        self._sessions: list[aiohttp.ClientSession] = []
        self.health_interval = health_interval
        self.object_info_ttl = object_info_ttl
        self.health_timeout = health_timeout if health_timeout is not None else max(health_interval, 2.0)
        self._backends: dict[str, Backend] = {}
        self._down_callbacks: list[DownCallback] = []
        self.dispatcher: Dispatcher | None = None  # our own queue in front of the backends (use_dispatcher)
        self._tasks: list[asyncio.Task] = []
        self._callback_tasks: set[asyncio.Task] = set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Open every client and websocket and check every backend once (down ones stay down)."""
        for name, url in self._configured:
            session = self._session_factory() if self._session_factory else None
            if session is not None:
                self._sessions.append(session)
            client = ComfyClient(url, client_id=self._client_id, name=name, session=session, timeouts=self._timeouts,
                                 limits=self.limits)
            backend = self._backends[name] = Backend(name, client, self._event_stream(client))
            backend.events.on_stray_start = lambda prompt_id, b=backend: self._stray_started(b, prompt_id)
        await asyncio.gather(*(self._open(b) for b in self._backends.values()))
        for backend in self._backends.values():
            self._tasks.append(asyncio.create_task(self._watch(backend), name=f"health {backend.name}"))
            dirty = asyncio.Event()  # a status moved while we have prompts there: positions to refresh
            self._tasks.append(asyncio.create_task(self._follow_status(backend, dirty), name=f"status {backend.name}"))
            self._tasks.append(asyncio.create_task(self._refresh_when_dirty(backend, dirty),
                                                   name=f"positions {backend.name}"))

    def _event_stream(self, client: ComfyClient) -> EventStream:
        # reconnect at least as often as we poll, so a revived server rejoins within an interval or two
        cap = min(10.0, 2 * self.health_interval)
        return EventStream(client, backoff_base=min(0.25, cap / 4), backoff_cap=cap)

    async def _open(self, backend: Backend) -> None:
        await backend.events.start()
        with contextlib.suppress(ComfyError, TimeoutError):
            async with asyncio.timeout(self.health_timeout):
                await backend.client.queue()  # an unreachable server fails fast, without waiting for the socket
                await backend.events.wait_connected()
        await self._check(backend)

    async def close(self) -> None:
        tasks = self._tasks + list(self._callback_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for backend in self._backends.values():
            backend.stop()
            with contextlib.suppress(Exception):
                await backend.events.close()
            await backend.client.close()
        for session in self._sessions:
            await session.close()

    # -- queries ------------------------------------------------------------------------
    def get(self, name: str) -> Backend | None:
        return self._backends.get(name)

    def __iter__(self):
        return iter(self._backends.values())

    def pick(self, graph: Mapping[str, Any], *, exclude: Iterable[str] = frozenset()) -> Backend:
        """The best backend for ``graph``; ``ComfyUnavailable`` says why there is none."""
        needs = graph_requirements(graph)
        skipped = set(exclude)
        candidates = [b for b in self._backends.values() if b.name not in skipped]
        ranked = rank_backends(candidates, needs)
        if not ranked:
            raise ComfyUnavailable(no_backend_reason(candidates, needs))
        best = ranked[0]
        best.reserve()
        return best

    def choices(self, source: str) -> list[Any]:
        """The live list of a ``Class.input`` combo: union over up backends, sorted, deduplicated."""
        class_type, _, input_name = source.rpartition(".")
        seen: dict[str, Any] = {}
        for backend in self._backends.values():
            if backend.up:
                for value in combo_choices(backend.object_info, class_type, input_name) or ():
                    seen.setdefault(str(value), value)
        return [seen[key] for key in sorted(seen)]

    def status(self) -> list[BackendStatus]:
        return [b.status() for b in self._backends.values()]

    # -- notes from the job runner ------------------------------------------------------
    def use_dispatcher(self, max_pending: int) -> Dispatcher:
        """Jobs wait in a fair line and go to a backend once it holds fewer than ``1 + max_pending`` prompts."""
        self.dispatcher = Dispatcher(self, max_pending=max_pending)
        for backend in self._backends.values():
            backend.on_change = self.dispatcher.wake
        return self.dispatcher

    def on_down(self, callback: DownCallback) -> None:
        """``await callback(backend)`` each time a backend goes down."""
        self._down_callbacks.append(callback)

    def note_submitted(self, backend: Backend, prompt_id: str) -> None:
        backend.submitted(prompt_id)

    def note_finished(self, backend: Backend, prompt_id: str) -> None:
        backend.finished(prompt_id)

    def note_unavailable(self, backend: Backend) -> None:
        """The runner could not reach ``backend``: take it out now; the health loop brings it back."""
        self._mark_down(backend, "unreachable")

    # -- health -------------------------------------------------------------------------
    async def _watch(self, backend: Backend) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await self._check(backend)
            except Exception:  # never let one odd answer end the watch
                log.exception("backend %s: health check crashed", backend.name)

    async def _follow_status(self, backend: Backend, dirty: asyncio.Event) -> None:
        """``status`` broadcasts keep the queue count fresh; while we have prompts there, one shared
        ``GET /queue`` per burst of broadcasts (at most every ``QUEUE_POLL_GAP`` s) refreshes positions."""
        statuses = backend.events.statuses()
        while True:  # counts at once (the dispatcher acts on them), positions at _refresh_when_dirty's pace
            backend.report_remaining(await statuses.get())
            while not statuses.empty():
                backend.report_remaining(statuses.get_nowait())
            if backend.in_flight and backend.up:
                dirty.set()

    async def _refresh_when_dirty(self, backend: Backend, dirty: asyncio.Event) -> None:
        while True:
            await dirty.wait()
            dirty.clear()
            with contextlib.suppress(ComfyError):
                await backend.refresh_queue()
            await asyncio.sleep(QUEUE_POLL_GAP)

    async def _check(self, backend: Backend) -> None:
        try:
            asked_at = time.monotonic()
            async with asyncio.timeout(self.health_timeout):
                snapshot = await backend.client.queue()
            if not backend.up or self._info_stale(backend):
                await self._refresh(backend)  # big answer: the client's own request timeout applies
        except (ComfyError, TimeoutError) as exc:
            self._note_problem(backend, str(exc) or type(exc).__name__)
            slow = isinstance(exc, (TimeoutError, ComfyTimeout))
            backend.slow_checks = backend.slow_checks + 1 if slow else 0
            if not slow or backend.slow_checks >= SLOW_CHECKS_DOWN and not self._heard_lately(backend):
                self._mark_down(backend, type(exc).__name__)
            return
        backend.slow_checks = 0
        self._note_problem(backend, None)
        backend.report_snapshot(snapshot, asked_at)
        await self._withdraw_owed(backend, snapshot)
        self._check_silence(backend, snapshot, asked_at)
        if self._websocket_lost(backend):
            self._mark_down(backend, "websocket lost")
        elif not backend.up and backend.events.connected:
            backend.up = True
            if self.dispatcher is not None:
                self.dispatcher.wake()
            log.info("backend %s is up", backend.name)

    def owe_withdrawal(self, backend: Backend, prompt_id: str) -> None:
        """``prompt_id`` was moved off ``backend`` (hung or down): take it out of that server's queue as
        soon as it answers again, so it never runs twice."""
        backend.owed.add(prompt_id)

    def _stray_started(self, backend: Backend, prompt_id: str) -> None:
        """A prompt we moved elsewhere starts on the server after all (it answered again and took it
        before our withdrawal): interrupt it at once, by its id."""
        if prompt_id in backend.owed:
            log.info("backend %s started a moved job; interrupting it", backend.name)
            task = asyncio.create_task(_quietly(backend.client.interrupt(prompt_id)), name=f"interrupt {backend.name}")
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_done)

    async def _withdraw_owed(self, backend: Backend, snapshot: Any) -> None:
        """Delete (and interrupt, if it already started) every owed prompt the server still has; a
        prompt it no longer has is settled."""
        present = {prompt_id for prompt_id in backend.owed if prompt_id in snapshot}
        backend.owed &= present
        if not present:
            return
        log.info("backend %s answers again: withdrawing %d moved job(s)", backend.name, len(present))
        with contextlib.suppress(ComfyError):  # kept owed: the next check tries again
            await backend.client.delete_queued(sorted(present))
            for prompt_id in present & set(snapshot.running):
                await backend.client.interrupt(prompt_id)

    def _check_silence(self, backend: Backend, snapshot: Any, asked_at: float) -> None:
        """ComfyUI broadcasts ``status`` on every change of its queue. A connected websocket that
        delivered nothing since before a change seen one check ago is open but silent: reconnect it
        (the stream then reconciles every prompt of ours from ``/history``). Detection takes at most
        two health intervals after the change."""
        events = backend.events
        if backend.changed_since is not None and events.connected and backend.in_flight \
                and events.last_message_at < backend.changed_since:
            log.warning("backend %s: websocket open but silent; reconnecting", backend.name)
            task = asyncio.create_task(events.reconnect(), name=f"reconnect {backend.name}")
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_done)
        view = (frozenset(snapshot.running), frozenset(snapshot.pending))
        changed = backend.last_view is not None and view != backend.last_view
        backend.changed_since = backend.last_view_at if changed else None
        backend.last_view, backend.last_view_at = view, asked_at

    @staticmethod
    def _note_problem(backend: Backend, problem: str | None) -> None:
        """Keep why ``backend`` fails its checks; log each new reason once (a limit names itself)."""
        if problem is not None and problem != backend.problem:
            named = problem if problem.startswith(f"backend {backend.name}") else f"backend {backend.name}: {problem}"
            log.warning("health check failed: %s", named)
        backend.problem = problem

    def _heard_lately(self, backend: Backend) -> bool:
        """The websocket delivered a message within the last check's time: the server is alive, and
        a timed-out check says more about our own busy event loop than about the server."""
        silent_for = time.monotonic() - backend.events.last_message_at
        return backend.events.connected and silent_for <= self.health_interval + self.health_timeout

    def _info_stale(self, backend: Backend) -> bool:
        fetched = backend.info_fetched_at
        return fetched is None or time.monotonic() - fetched >= self.object_info_ttl

    async def _refresh(self, backend: Backend) -> None:
        info, stats = await asyncio.gather(backend.client.object_info(), backend.client.system_stats())
        backend.object_info = info
        backend.info_fetched_at = time.monotonic()
        version = mapping_at(stats, "system").get("comfyui_version")
        backend.version = str(version) if version else None

    def _websocket_lost(self, backend: Backend) -> bool:
        if backend.events.connected:
            backend.ws_down_since = None
            return False
        now = time.monotonic()
        if backend.ws_down_since is None:
            backend.ws_down_since = now
        return now - backend.ws_down_since > DOWN_AFTER_INTERVALS * self.health_interval

    def _mark_down(self, backend: Backend, reason: str) -> None:
        if not backend.up:
            return
        backend.up = False
        backend.info_fetched_at = None  # refetch object_info on rejoin
        log.warning("backend %s is down (%s)", backend.name, reason)
        for callback in self._down_callbacks:
            task = asyncio.create_task(callback(backend), name=f"on_down {backend.name}")
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("backend down callback failed (%s)", type(task.exception()).__name__)


async def _quietly(call: Awaitable[None]) -> None:
    """A best-effort request: the next health check retries what it could not do."""
    with contextlib.suppress(ComfyError):
        await call
