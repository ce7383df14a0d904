"""One ComfyUI job from submission to its outputs: ``Job``, and what it hands back (``JobResult``).

A job's task runs: pick a backend → upload image params → ``POST /prompt`` with our own prompt_id
(subscribed to the backend's websocket first) → feed every message to a ``ProgressTracker``
(plus ``GET /queue`` snapshots for the queue position while queued) → on DONE read ``/history``
and download the outputs. Each state change is written to the ``JobStore``.

Faults: a 5xx/unreachable server at submit is retried once on another backend; a backend that
goes down moves the job, while still queued, to another backend (images are kept in memory until
the job starts); a job running on a backend that stays down fails after ``down_grace`` seconds.
The manifest's ``timeout`` cancels the job on the server and fails it with ``ComfyTimeout``.
Every job ends DONE, FAILED with a reason, or CANCELLED — except when the process stops
(``detach``): then it stays unfinished in the store for ``Runtime.resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .apply import apply_params
from .catalog import Workflow
from .errormap import map_execution_error, map_rejection
from .errors import ComfyError, ComfyTimeout, ComfyUnavailable, EngineError, JobCancelled, WorkflowRejected
from .jobparts import ImageInput, JobResult, JobSettings, bind_images, collect_outputs, seed_of, withdraw
from .outputs import parse_status
from .progress import TERMINAL_STATES, JobState, ProgressEvent, ProgressTracker
from .store import JobRecord, JobStore

__all__ = ["Job", "JobResult", "ImageInput", "JobSettings"]

log = logging.getLogger(__name__)

GONE = "the server running this job went away"
LOST = "lost during restart"
DROPPED = "the server dropped this job from its queue"
_CHORES: set[asyncio.Task] = set()  # fire-and-forget clean-ups, referenced until done


class _Signal(enum.Enum):
    BACKEND_DOWN = "backend down"
    CANCEL = "cancel"
    RECHECK = "recheck"


class _Lost(ComfyUnavailable):
    """The server knows the prompt nowhere: neither queued, running nor in history."""


class _Failover(Exception):
    """The backend went down while the job was still queued there."""


class Job:
    """A job in flight; ``events()`` and ``result()`` for consumers, ``cancel()`` to stop it."""

    def __init__(self, workflow: Workflow, values: dict[str, Any], *, pool: Any, store: JobStore,
                 settings: JobSettings, job_id: str | None = None, images: Mapping[str, ImageInput] | None = None,
                 owner: str | None = None, extra: Mapping[str, Any] | None = None):
        self.id = job_id or uuid.uuid4().hex
        self.workflow = workflow
        self.values = values
        self.owner = owner
        self.extra = dict(extra or {})
        self.backend: Any = None
        self.prompt_id: str | None = None
        self.progress = ProgressEvent(JobState.QUEUED)
        self.timings: dict[str, float | None] = {"created": time.time(), "queued": None, "started": None,
                                                 "finished": None}
        self._pool, self._store, self._settings = pool, store, settings
        self._images = dict(images or {})
        self._graph: dict = {}
        self._graph_sent: Mapping[str, Any] = {}
        self._tracker: ProgressTracker | None = None
        self._inbox: asyncio.Queue | None = None
        self._poke = asyncio.Event()
        self._listeners: list[asyncio.Queue] = []
        self._error_data: Mapping[str, Any] = {}
        self._cancel_requested = False
        self._result: JobResult | None = None
        self._error: EngineError | None = None
        self._task: asyncio.Task | None = None
        self._t0 = time.monotonic()

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def submit(cls, workflow: Workflow, values: Mapping[str, Any], *, pool: Any, store: JobStore,
               settings: JobSettings, images: Mapping[str, ImageInput] | None = None,
               live: Mapping[str, Any] | None = None, owner: str | None = None,
               extra: Mapping[str, Any] | None = None) -> Job:
        """Validate ``values`` (``ParamError``), record the job and start it in the background."""
        images = dict(images or {})
        placeholders = {name: image.filename or "upload.png" for name, image in images.items()}
        applied = apply_params(workflow, {**values, **placeholders}, live=live)
        job = cls(workflow, dict(applied.values), pool=pool, store=store, settings=settings, images=images,
                  owner=owner, extra=extra)
        job._graph = applied.graph
        store.create(JobRecord(job.id, workflow.name, values=job.values, seed=seed_of(workflow, job.values),
                               owner=owner, extra=job.extra, created_at=job.timings["created"]))
        job._start(job._run_new())
        return job

    @classmethod
    def resume(cls, workflow: Workflow, record: JobRecord, *, pool: Any, store: JobStore,
               settings: JobSettings) -> Job:
        """Follow (or resubmit) a job the store says is unfinished, after a restart."""
        job = cls(workflow, dict(record.values), pool=pool, store=store, settings=settings, job_id=record.job_id,
                  owner=record.owner, extra=record.extra)
        job.timings.update(created=record.created_at, queued=record.queued_at, started=record.started_at)
        job.prompt_id = record.prompt_id
        job._start(job._run_resumed(record))
        return job

    def _start(self, coroutine: Any) -> None:
        self._task = asyncio.create_task(coroutine, name=f"job {self.id}")

    # -- consumer API ---------------------------------------------------------------------
    @property
    def state(self) -> JobState:
        return self.progress.state

    @property
    def finished(self) -> bool:
        return self.progress.finished

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """The latest event, then every new one, ending after the terminal event."""
        queue: asyncio.Queue = asyncio.Queue()
        self._listeners.append(queue)
        try:
            event = self.progress
            yield event
            while not event.finished:
                event = await queue.get()
                yield event
        finally:
            self._listeners.remove(queue)

    async def result(self) -> JobResult:
        """Wait for the end; raise the job's error (``ExecutionFailed``, ``JobCancelled``, …) if it failed."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    async def cancel(self) -> None:
        """Delete the job from the server's queue, or interrupt it if running; wait until it ends."""
        if self.finished:
            return
        self._cancel_requested = True
        if self._inbox is not None:
            self._inbox.put_nowait(_Signal.CANCEL)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(self._settings.cancel_wait):
                await asyncio.shield(self._task)

    def add_done_callback(self, callback: Any) -> None:
        """``callback(job)`` once the job's task ends (finished, or detached at shutdown)."""
        self._task.add_done_callback(lambda _task: callback(self))

    def backend_down(self, backend: Any) -> None:
        """Called by the runtime when ``backend`` is marked down."""
        if backend is self.backend and self._inbox is not None and not self.finished:
            self._inbox.put_nowait(_Signal.BACKEND_DOWN)

    async def detach(self) -> None:
        """Stop following without ending the job (process shutdown); the store keeps it resumable."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._unsubscribe()

    # -- the job's task -------------------------------------------------------------------
    async def _run_new(self) -> None:
        await self._guarded(self._submit_first, self.workflow.manifest.timeout)

    async def _run_resumed(self, record: JobRecord) -> None:
        left = record.created_at + self.workflow.manifest.timeout - time.time()
        budget = max(left, self._settings.resume_wait)
        if record.prompt_id and record.backend:
            await self._guarded(lambda: self._reattach(record.backend), budget)
        elif self.workflow.manifest.image_params:
            self._end_failed(ComfyUnavailable(f"{LOST} (its input image is gone)"))
        else:
            await self._guarded(self._submit_first, budget)

    async def _guarded(self, start: Any, budget: float) -> None:
        """Run ``start`` then follow to the end, turning every failure into a terminal state."""
        deadline = asyncio.timeout(budget)
        try:
            async with deadline:
                await start()
                await self._follow()
                if self._tracker is not None and self._tracker.state is JobState.DONE:
                    self._end_done(await self._collect())
                else:
                    self._end_from_tracker()
        except TimeoutError as exc:
            if not deadline.expired():
                self._end_failed(exc if isinstance(exc, ComfyTimeout) else ComfyTimeout("the server took too long"))
                return
            await self._withdraw(cancelled=False)
            self._end_failed(ComfyTimeout(f"the job took longer than {self.workflow.manifest.timeout} s"))
        except EngineError as exc:
            self._end_failed(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the job hanging forever
            log.exception("job %s crashed", self.id)
            self._end_failed(ComfyUnavailable(f"the job crashed ({type(exc).__name__})"))
        finally:
            if self.finished:
                self._images.clear()

    # -- submission -----------------------------------------------------------------------
    async def _submit_first(self) -> None:
        """Queue on the best backend; on a 5xx/unreachable server retry once on another one."""
        tried: set[str] = set()
        for attempt in range(self._settings.submit_attempts):
            self._check_cancel()
            try:
                backend = self._pool.pick(self._graph, exclude=tried)
            except ComfyUnavailable:
                if attempt:
                    raise last from None
                raise
            try:
                await self._queue_on(backend)
                return
            except ComfyUnavailable as exc:
                last = exc
                tried.add(backend.name)
                if exc.__cause__ is not None and hasattr(self._pool, "note_unavailable"):
                    self._pool.note_unavailable(backend)
        raise last

    async def _queue_on(self, backend: Any) -> None:
        graph = self._graph
        uploaded = {name: await backend.client.upload_image(image.data, image.filename)
                    for name, image in self._images.items()}
        if uploaded:
            graph = bind_images(self.workflow, graph, uploaded)
            self.values.update(uploaded)
        prompt_id = str(uuid.uuid4())
        inbox = backend.events.subscribe(prompt_id)
        self._check_cancel(backend, prompt_id)
        try:
            await backend.client.queue_prompt(graph, prompt_id=prompt_id)
        except WorkflowRejected as exc:
            backend.events.unsubscribe(prompt_id)
            raise map_rejection(self.workflow, graph, exc) from None
        except ComfyTimeout:
            backend.events.unsubscribe(prompt_id)
            self._chore(withdraw(backend.client, prompt_id))  # it may have been queued after all
            raise
        except BaseException:
            backend.events.unsubscribe(prompt_id)
            raise
        self._attach(backend, prompt_id, inbox, graph)
        self._pool.note_submitted(backend, prompt_id)
        self.timings["queued"] = time.time()
        self._record(backend=backend.name, prompt_id=prompt_id, client_id=backend.client.client_id,
                     queued_at=self.timings["queued"], values=self.values, state=JobState.QUEUED.value)

    def _check_cancel(self, backend: Any = None, prompt_id: str | None = None) -> None:
        if self._cancel_requested:
            if backend is not None:
                backend.events.unsubscribe(prompt_id)
            raise JobCancelled("cancelled before it was queued")

    def _attach(self, backend: Any, prompt_id: str, inbox: asyncio.Queue, graph: Mapping[str, Any]) -> None:
        self.backend, self.prompt_id, self._inbox = backend, prompt_id, inbox
        self._tracker = ProgressTracker(prompt_id, graph, want_previews=self._settings.want_previews,
                                        outputs=self.workflow.output_nodes(backend.object_info))
        self._graph_sent = graph
        if not backend.up:
            inbox.put_nowait(_Signal.BACKEND_DOWN)
        if self._cancel_requested:
            inbox.put_nowait(_Signal.CANCEL)

    def _unsubscribe(self) -> None:
        if self.backend is not None and self.prompt_id is not None:
            self.backend.events.unsubscribe(self.prompt_id)
            self._pool.note_finished(self.backend, self.prompt_id)

    async def _reattach(self, backend_name: str) -> None:
        """After a restart: subscribe again and settle from ``/history`` and ``/queue``."""
        backend = self._pool.get(backend_name)
        if backend is None:
            raise ComfyUnavailable(f"{LOST} (its server is no longer configured)")
        self._attach(backend, self.prompt_id, backend.events.subscribe(self.prompt_id), self._graph_for_resume())
        deadline = time.monotonic() + self._settings.resume_wait
        while True:
            try:
                await self._settle_if_gone(missing=LOST)
                return
            except _Lost:
                raise
            except ComfyError:
                if time.monotonic() >= deadline:
                    raise ComfyUnavailable(f"{LOST} (its server did not come back)") from None
                await asyncio.sleep(self._settings.queue_poll)

    def _graph_for_resume(self) -> dict:
        try:
            return apply_params(self.workflow, self.values).graph
        except EngineError:
            return dict(self.workflow.graph)

    # -- following ------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Consume messages until the tracker is terminal, moving the job if its backend dies."""
        while True:
            poller = asyncio.create_task(self._poll_queue())
            try:
                await self._consume()
                return
            except _Failover:
                pass
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await self._failover()

    async def _consume(self) -> None:
        tracker, grace_until = self._tracker, None
        while tracker.state not in TERMINAL_STATES:
            try:
                async with asyncio.timeout(None if grace_until is None else max(grace_until - time.monotonic(), 0)):
                    message = await self._inbox.get()
            except TimeoutError:
                if self.backend.up and self.backend.events.connected:
                    grace_until = None
                    continue
                raise ComfyUnavailable(GONE) from None
            if message is _Signal.BACKEND_DOWN:
                if tracker.state is JobState.QUEUED:
                    raise _Failover()
                grace_until = grace_until or time.monotonic() + self._settings.down_grace
            elif message is _Signal.CANCEL:
                await self._withdraw(cancelled=True)
            elif message is _Signal.RECHECK:
                await self._recheck()
            else:
                self._feed(message)

    def _feed(self, message: Any) -> None:
        if isinstance(message, dict):
            data = message.get("data") if isinstance(message.get("data"), dict) else {}
            if message.get("type") == "execution_error" and data.get("prompt_id") == self.prompt_id:
                self._error_data = data
            if message.get("type") == "status" and self.state is JobState.QUEUED:
                self._poke.set()
        self._publish(self._tracker.feed(message))

    async def _poll_queue(self) -> None:
        """While queued: ``GET /queue`` every ``queue_poll`` s and on status broadcasts."""
        misses = 0
        while self._tracker.state is JobState.QUEUED:
            with contextlib.suppress(ComfyError):
                snapshot = await self.backend.client.queue()
                self._publish(self._tracker.feed_queue(snapshot.running, snapshot.pending))
                misses = 0 if self.prompt_id in snapshot else misses + 1
                if misses == 2:
                    self._inbox.put_nowait(_Signal.RECHECK)
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.queue_poll):
                    await self._poke.wait()
            await asyncio.sleep(self._settings.queue_poll / 10)

    async def _recheck(self) -> None:
        try:
            await self._settle_if_gone(missing=DROPPED)
        except _Lost:
            raise
        except ComfyError:
            pass  # cannot tell now; the next poll asks again

    async def _settle_if_gone(self, *, missing: str) -> bool:
        """If the prompt is in neither queue: settle from history, or end it (``missing``). True if settled."""
        snapshot = await self.backend.client.queue()
        if self.prompt_id in snapshot:
            self._publish(self._tracker.feed_queue(snapshot.running, snapshot.pending))
            return False
        entry = await self.backend.client.history(self.prompt_id)
        if entry is not None:
            status = parse_status(entry)
            if status.last_type == "execution_error":
                self._error_data = status.last_data
            self._publish(self._tracker.feed_history(entry))
            return self._tracker.state in TERMINAL_STATES
        if self._cancel_requested:
            self._publish(self._tracker.cancel())
            return True
        raise _Lost(missing)

    async def _withdraw(self, *, cancelled: bool) -> None:
        """Delete from the queue and interrupt on the server (best effort)."""
        if self.backend is None or self.prompt_id is None:
            return
        await withdraw(self.backend.client, self.prompt_id)
        if cancelled:
            with contextlib.suppress(ComfyError):
                await self._settle_if_gone(missing="cancelled")

    async def _failover(self) -> None:
        """Move a queued job off a dead backend: same values, new prompt_id, uploads redone."""
        old = self.backend
        self._unsubscribe()
        self._chore(withdraw(old.client, self.prompt_id, timeout=1.0))
        log.info("job %s: backend %s went down while queued, moving it", self.id, old.name)
        exclude = {old.name}
        while True:
            self._check_cancel()
            try:
                await self._queue_on(self._pool.pick(self._graph, exclude=exclude))
                return
            except ComfyUnavailable:
                exclude = set()  # wait for any backend, the old one included
                await asyncio.sleep(self._settings.queue_poll)

    @staticmethod
    def _chore(coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        _CHORES.add(task)
        task.add_done_callback(_CHORES.discard)

    # -- outcome --------------------------------------------------------------------------
    async def _collect(self) -> JobResult:
        outputs, texts, refs = await collect_outputs(self.backend.client, self.prompt_id,
                                                     self.workflow.output_nodes(self.backend.object_info))
        self._record(outputs=[ref.to_dict() for ref in refs])
        return JobResult(outputs, texts, dict(self.values), self.backend.name, self.timings)

    def _publish(self, events: list[ProgressEvent]) -> None:
        for event in events:
            if event.state in TERMINAL_STATES:
                continue  # the end is published by _end_* once outputs are in
            if event.state is JobState.RUNNING and self.state is JobState.QUEUED:
                self._images.clear()
                self.timings["started"] = time.time()
                self._record(state=JobState.RUNNING.value, started_at=self.timings["started"])
            self._emit(event)

    def _emit(self, event: ProgressEvent) -> None:
        self.progress = replace(event, elapsed=time.monotonic() - self._t0)
        for listener in self._listeners:
            listener.put_nowait(self.progress)

    def _end_from_tracker(self) -> None:
        tracker = self._tracker
        if tracker is not None and tracker.state is JobState.FAILED:
            self._end_failed(map_execution_error(self.workflow, self._graph_sent, self._error_data))
        else:
            self._end_failed(JobCancelled("cancelled" if self._cancel_requested else "interrupted on the server"))

    def _end_done(self, result: JobResult) -> None:
        self._result = result
        self._end(JobState.DONE, None)

    def _end_failed(self, error: EngineError) -> None:
        self._error = error
        state = JobState.CANCELLED if isinstance(error, JobCancelled) else JobState.FAILED
        self._end(state, None if state is JobState.CANCELLED else str(error))

    def _end(self, state: JobState, error: str | None) -> None:
        self.timings["finished"] = time.time()
        base = self._tracker.current if self._tracker is not None else self.progress
        node = getattr(self._error, "node_id", None) or None
        self._emit(replace(base, state=state, queue_position=None, error=error, failed_node=node,
                           percent=100.0 if state is JobState.DONE else base.percent, eta_seconds=None))
        self._record(state=state.value, error=error, finished_at=self.timings["finished"])
        self._unsubscribe()

    def _record(self, **changes: Any) -> None:
        try:
            self._store.update(self.id, **changes)
        except Exception as exc:  # the store must never kill a job
            log.error("job %s: cannot update the store (%s)", self.id, type(exc).__name__)
