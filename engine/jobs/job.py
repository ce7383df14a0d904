"""One ComfyUI job from submission to its outputs: ``Job``, and what it hands back (``JobResult``).

A job's task runs: get a backend (``Line``: our fair queue, or picked at once) → upload image
params, draw random seeds for that backend → ``POST /prompt`` with our own prompt_id (subscribed to
the backend's websocket first) → feed every message to a ``ProgressTracker`` (plus ``GET /queue``
snapshots while queued) → on DONE read ``/history`` and download the outputs. Each state change is
written to the ``JobStore`` (``Journal``: a failed write is logged and shown as ``unsaved``).

Faults: a 5xx/unreachable server at submit is retried once elsewhere; a backend that goes down
moves a queued job to another one (images stay in memory until it starts) and fails a running one
after ``down_grace`` s; the manifest's ``timeout`` cancels the job on the server (``ComfyTimeout``).
Every job ends DONE, FAILED or CANCELLED — unless the process stops (``detach``; ``Runtime.resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from ..backends.backend import Backend
from ..backends.pool import BackendPool
from ..comfy.error_map import map_execution_error
from ..errors import ComfyError, ComfyTimeout, ComfyUnavailable, EngineError, JobCancelled, JobHandedOver
from ..manifest.apply import Prepared, build_graph, resolve_values
from ..manifest.catalog import Workflow
from .follow import _BackendLost, PromptFollower, _PromptLost, Signal
from .journal import Journal
from .lease import Leases
from .line import Line
from .log_context import bind_job, job_fields
from .parts import EventFeed, ImageInput, JobResult, JobSettings, collect_result, withdraw_from
from .progress import TERMINAL_STATES, JobState, ProgressEvent
from .records import JobRecord
from .store import JobStore
from .submit import Submission

__all__ = ["Job", "JobResult", "ImageInput", "JobSettings"]

log = logging.getLogger(__name__)

LOST = "lost during restart"


class Job:
    """A job in flight; ``events()`` and ``result()`` for consumers, ``cancel()`` to stop it."""

    def __init__(self, workflow: Workflow, values: dict[str, Any], *, pool: BackendPool, store: JobStore,
                 settings: JobSettings, job_id: str | None = None, images: Mapping[str, ImageInput] | None = None,
                 owner: str | None = None, extra: Mapping[str, Any] | None = None, lease: Leases | None = None):
        self.id = job_id or uuid.uuid4().hex
        self.workflow = workflow
        self.values = values
        self.owner = owner
        self.extra = dict(extra or {})
        self._follower: PromptFollower | None = None
        self._resumed_prompt_id: str | None = None
        self.created_at = time.time()
        self.timings: dict[str, float | None] = {"created": self.created_at, "queued": None, "started": None,
                                                 "finished": None}
        self._pool, self._settings = pool, settings
        self._journal = Journal(store, self.id, lease)
        self.handed_over = False  # another process took the job over: this one delivers nothing
        self._images = dict(images or {})
        self._graph: dict[str, Any] = {}
        self._feed, self._cancel_requested = EventFeed(), False
        self._result: JobResult | None = None
        self._error: EngineError | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = time.monotonic()
        self.log_fields = job_fields(self.id, workflow.name, owner)  # the job's log lines carry these
        self._line = Line(pool, self.id, owner, workflow.name, on_place=self._in_line)
        self._submission = Submission(self.id, workflow, values, images=self._images, journal=self._journal,
                                      line=self._line, pool=pool, settings=settings, timings=self.timings,
                                      cancelled=lambda: self._cancel_requested, log_fields=self.log_fields)

    # -- creation -------------------------------------------------------------------------
    @classmethod
    def start(cls, prepared: Prepared, *, pool: BackendPool, store: JobStore, settings: JobSettings,
              images: Mapping[str, ImageInput] | None = None, owner: str | None = None,
              extra: Mapping[str, Any] | None = None, lease: Leases | None = None) -> Job:
        """Record a prepared job (its values were checked by ``prepare``) and run it in the background;
        with ``lease``, held by this process from the start.

        ``images`` hold the bytes of ``prepared.uploads``; until uploaded, their values are the file names."""
        images = dict(images or {})
        values = {**prepared.values, **{name: image.filename for name, image in images.items()}}
        job = cls(prepared.workflow, values, pool=pool, store=store, settings=settings, images=images,
                  owner=owner, extra=extra, lease=lease)
        job._graph = prepared.graph
        job._journal.create(JobRecord(job.id, job.workflow.name, values=job.values, owner=owner, extra=job.extra,
                                      created_at=job.created_at, lease_holder=lease.holder if lease else None,
                                      lease_until=lease.until() if lease else None))
        if lease is not None:
            lease.hold(job.id)
        job._run(job._guarded(job._submit_first, job.workflow.manifest.timeout))
        return job

    @classmethod
    def resume(cls, workflow: Workflow, record: JobRecord, *, pool: BackendPool, store: JobStore,
               settings: JobSettings, lease: Leases | None = None) -> Job:
        """Follow (or resubmit) a job the store says is unfinished, after a restart or taken over
        from another process (``lease``: held here)."""
        job = cls(workflow, dict(record.values), pool=pool, store=store, settings=settings, job_id=record.job_id,
                  owner=record.owner, extra=record.extra, lease=lease)
        job.timings.update(created=record.created_at, queued=record.queued_at, started=record.started_at)
        job._resumed_prompt_id = record.prompt_id
        job._run(job._run_resumed(record))
        return job

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        context = contextvars.copy_context()
        context.run(bind_job, self.log_fields)
        self._task = asyncio.create_task(coroutine, name=f"job {self.id}", context=context)

    # -- consumer API ---------------------------------------------------------------------
    @property
    def backend(self) -> Backend | None:
        """The ``Backend`` the job is queued on (None before that)."""
        return self._follower.backend if self._follower else None

    @property
    def prompt_id(self) -> str | None:
        return self._follower.prompt_id if self._follower else self._resumed_prompt_id

    @property
    def progress(self) -> ProgressEvent:
        """The latest event."""
        return self._feed.latest

    @property
    def state(self) -> JobState:
        return self.progress.state

    @property
    def finished(self) -> bool:
        return self.progress.finished

    @property
    def unsaved(self) -> str | None:
        """Why the job store is behind this job (a write failed), or None."""
        return self._journal.unsaved

    def events(self) -> AsyncGenerator[ProgressEvent, None]:
        """The latest event, then every new one, ending after the terminal event."""
        return self._feed.events()

    async def result(self) -> JobResult:
        """Wait for the end; raise the job's error (``ExecutionFailed``, ``JobCancelled``, …) if it failed,
        ``JobHandedOver`` when another process took it over."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self.handed_over:
            raise JobHandedOver(f"job {self.id} is followed by another process now")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    async def cancel(self) -> None:
        """Delete the job from the server's queue, or interrupt it if running; wait until it ends."""
        if self.finished:
            return
        self._cancel_requested = True
        if self._follower is None:
            self._line.leave()  # waiting in our line: nothing on a server to cancel
        else:
            self._follower.signal(Signal.CANCEL)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(self._settings.cancel_wait):
                if self._task is not None:
                    await asyncio.shield(self._task)

    def add_done_callback(self, callback: Callable[[Job], object]) -> None:
        """``callback(job)`` once the job's task ends (finished, or detached at shutdown)."""
        if self._task is not None:
            self._task.add_done_callback(lambda _task: callback(self))

    def backend_down(self, backend: Backend) -> None:
        """Called by the runtime when ``backend`` is marked down."""
        if self._follower is not None and backend is self._follower.backend and not self.finished:
            self._follower.signal(Signal.BACKEND_DOWN)

    async def detach(self) -> None:
        """Stop following without ending the job (process shutdown); the store keeps it resumable."""
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._unsubscribe()

    async def hand_over(self) -> None:
        """Another process holds the job's lease now: stop, deliver nothing (``result`` raises
        ``JobHandedOver``, ``events`` end without a terminal event)."""
        if self.finished or self.handed_over:
            return
        log.info("job %s: handed over to another process", self.id)
        self.handed_over = True
        await self.detach()
        self._feed.close()

    # -- the job's task -------------------------------------------------------------------
    async def _run_resumed(self, record: JobRecord) -> None:
        left = record.created_at + self.workflow.manifest.timeout - time.time()
        budget = max(left, self._settings.resume_wait)
        if record.prompt_id and record.backend:
            await self._guarded(lambda: self._reattach(record), budget)
        elif self.workflow.manifest.upload_params:
            await self._end_failed(ComfyUnavailable(f"{LOST} (its input image is gone)"))
        else:  # never queued: submit it now, from its stored values
            self._graph = self._graph_for_resume()
            await self._guarded(self._submit_first, budget)

    async def _guarded(self, start: Callable[[], Awaitable[None]], budget: float) -> None:
        """Run ``start`` then follow to the end, turning every failure into a terminal state."""
        deadline = asyncio.timeout(budget)
        try:
            async with deadline:
                await start()
                await self._follow()
                done = self._follower
                if done is not None and done.state is JobState.DONE:
                    await self._end_done(*await collect_result(done.backend, done.prompt_id, self.workflow,
                                                                self.values, self.timings, self._pool.limits))
                else:
                    await self._end_from_tracker()
        except TimeoutError as exc:
            if not deadline.expired():
                await self._end_failed(exc if isinstance(exc, ComfyTimeout) else ComfyTimeout("the server took too long"))
                return
            if self._follower is not None:
                await self._follower.withdraw(cancelled=False)
            timeout = self.workflow.manifest.timeout
            await self._end_failed(ComfyTimeout(f"the job took longer than {timeout} s", seconds=timeout))
        except EngineError as exc:
            await self._end_failed(exc)
        except JobHandedOver:
            await self.hand_over()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the job hanging forever
            log.exception("job %s crashed", self.id)
            await self._end_failed(ComfyUnavailable(f"the job crashed ({type(exc).__name__})"))
        finally:
            if self.finished:
                self._images.clear()

    # -- submission -----------------------------------------------------------------------
    async def _submit_first(self) -> None:
        """Queue on the best backend; on a 5xx/unreachable server perhaps once on another (``Submission``)."""
        self._attach(*await self._submission.first(self._graph))

    def _in_line(self, place: int) -> None:  # "3rd in line" while waiting in our queue
        if self._follower is None and self.state is JobState.QUEUED and self.progress.line_position != place:
            self._emit(self.progress.evolve(line_position=place))

    def _attach(self, backend: Backend, prompt_id: str, inbox: asyncio.Queue[Any], graph: Mapping[str, Any], *,
                foreign: bool = False) -> PromptFollower:
        self.log_fields["backend"] = backend.name
        self._follower = PromptFollower(backend, prompt_id, inbox, graph, settings=self._settings,
                                        outputs=self.workflow.output_nodes(backend.object_info),
                                        publish=self._publish, cancelled=lambda: self._cancel_requested,
                                        foreign=foreign)
        if not backend.up:
            self._follower.signal(Signal.BACKEND_DOWN)
        if self._cancel_requested:
            self._follower.signal(Signal.CANCEL)
        self._emit(self._follower.tracker.current)  # out of our line, on the server: "starting", then its place there
        return self._follower

    def _unsubscribe(self) -> None:
        if self._follower is not None:
            self._follower.unsubscribe()
            self._pool.note_finished(self._follower.backend, self._follower.prompt_id)

    async def _reattach(self, record: JobRecord) -> None:
        """After a restart: subscribe again and settle from ``/history`` and ``/queue``."""
        backend = self._pool.get(record.backend or "")
        if backend is None or not record.prompt_id:
            raise ComfyUnavailable(f"{LOST} (its server is no longer configured)")
        foreign = record.client_id != backend.client.client_id  # its messages go to a closed socket
        self._graph = self._graph_for_resume()  # also what a move to another backend sends
        follower = self._attach(backend, record.prompt_id, backend.events.subscribe(record.prompt_id),
                                self._graph, foreign=foreign)
        deadline = time.monotonic() + self._settings.resume_wait
        while True:
            try:
                await follower.settle_if_gone(missing=LOST)
                return
            except _PromptLost:
                raise
            except ComfyError:
                if time.monotonic() >= deadline:
                    raise ComfyUnavailable(f"{LOST} (its server did not come back)") from None
                await asyncio.sleep(self._settings.queue_poll)

    def _graph_for_resume(self) -> dict[str, Any]:
        """The graph of stored values, checked again: the manifest may have changed since the restart."""
        try:
            return build_graph(self.workflow, resolve_values(self.workflow, self.values)).graph
        except EngineError:
            return dict(self.workflow.graph)

    # -- following ------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Follow the prompt to its end, moving the job while it is queued on a backend that dies."""
        while self._follower is not None:
            try:
                await self._follower.run()
                return
            except _BackendLost:
                lost = self._follower
                if await withdraw_from(self._pool, lost.backend, lost.prompt_id, wait=self._settings.cancel_wait):
                    await self._failover(lost)
                # else it started or ended there, or the server may still run it: keep following it there

    async def _failover(self, lost: PromptFollower) -> None:
        """Move a queued job off a dead backend: same values, new prompt_id, uploads redone."""
        self._unsubscribe()
        log.info("job %s: backend %s went down while queued, moving it", self.id, lost.backend.name)
        exclude = {lost.backend.name}
        while True:
            self._submission.check_cancel()
            try:
                backend = await self._line.backend(self._graph, exclude)
                self._attach(*await self._submission.to(backend, self._graph, was=lost.place()))
                return
            except ComfyUnavailable:
                exclude = set()  # wait for any backend, the old one included
                await asyncio.sleep(self._settings.queue_poll)

    # -- outcome --------------------------------------------------------------------------
    def _publish(self, events: list[ProgressEvent]) -> None:
        for event in events:
            if event.state in TERMINAL_STATES:
                continue  # the end is published by _end_* once outputs are in
            if event.state is JobState.RUNNING and self.state is JobState.QUEUED:
                self._images.clear()
                self.timings["started"] = self.timings["started"] or time.time()  # kept across a restart
                log.info("job %s started", self.id)
                self._journal.post(state=JobState.RUNNING.value, started_at=self.timings["started"])
            self._emit(event)

    def _emit(self, event: ProgressEvent) -> None:
        self._feed.emit(event.evolve(elapsed=time.monotonic() - self._t0))

    async def _end_from_tracker(self) -> None:
        follower = self._follower
        if follower is not None and follower.state is JobState.FAILED:
            await self._end_failed(map_execution_error(self.workflow, follower.graph, follower.error_data))
        else:
            await self._end_failed(JobCancelled("cancelled" if self._cancel_requested else "interrupted on the server"))

    async def _end_done(self, result: JobResult, outputs: list[dict[str, Any]]) -> None:
        self._result = result
        await self._end(JobState.DONE, None, outputs=outputs)

    async def _end_failed(self, error: EngineError) -> None:
        self._error = error
        state = JobState.CANCELLED if isinstance(error, JobCancelled) else JobState.FAILED
        await self._end(state, None if state is JobState.CANCELLED else str(error))

    async def _end(self, state: JobState, error: str | None, **record: Any) -> None:
        """Record the end (before anyone hears of it: ``unsaved`` is known then), then publish it."""
        self.timings["finished"] = time.time()
        log.info("job %s %s%s", self.id, state.value, f" ({error})" if error else "")
        if not await self._journal.finish(state=state.value, error=error, finished_at=self.timings["finished"], **record):
            self._result = self._error = None
            return await self.hand_over()  # another process holds the job now: its end is theirs to tell
        self._line.ran(self._follower.backend.name if self._follower else None, state is JobState.DONE, self.timings)
        base = self._follower.tracker.current if self._follower is not None else self.progress
        node = getattr(self._error, "node_id", None) or None
        self._emit(replace(base, state=state, queue_position=None, line_position=None, error=error, failed_node=node,
                           percent=100.0 if state is JobState.DONE else base.percent, eta_seconds=None))
        self._unsubscribe()
