"""The engine's runtime facade: the backend pool, the job store and the jobs in flight, wired together.

``Runtime`` is what the bot and ``engine run`` talk to: ``start``/``close``; ``prepare`` a
workflow's values (the one check of a job's values, no I/O) and ``start_job`` the prepared job, or
``submit`` both at once; find a job (``get`` from the store, ``job`` if live); ``output`` fetches a
stored job's output again from its server and ``attach`` adds data to a job's record; ``resume``
unfinished jobs after a restart; live ``choices`` and backend ``status``. It holds no job logic
itself: ``engine.jobs.Job`` runs each job, ``engine.backends.BackendPool`` owns the servers.

With ``leases`` (``engine.jobs.lease``; the bot always passes them) every job is held by this
process until its outcome is delivered: ``take_over`` resumes the jobs that need a process (all of
them when it is the only one; those whose lease ran out when processes share the store), a
background loop renews the leases, hands over the jobs another process took and passes the
jobs it takes over on to ``on_take_over``; ``claim_delivery`` / ``delivered`` bracket posting a
job's outcome so that it is posted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp

from .backends.backend import Backend
from .backends.pool import BackendPool, BackendStatus
from .comfy.client import Timeouts
from .comfy.outputs import OutputFile, OutputRef
from .errors import ComfyError, ComfyUnavailable, EngineError, ParamError, StoreError
from .jobs.job import Job
from .jobs.lease import Leases
from .jobs.parts import ImageInput, JobResult, JobSettings
from .jobs.progress import JobState
from .jobs.store import JobRecord, JobStore
from .limits import DEFAULT_LIMITS, Limits
from .manifest.apply import Prepared, prepare
from .manifest.catalog import Catalog, Workflow

__all__ = ["Runtime", "Job", "JobResult", "ImageInput", "BackendStatus", "JobSettings", "TakeOver"]

log = logging.getLogger(__name__)

TakeOver = Callable[[list[Job], list[JobRecord]], object]  # resumed jobs, ended ones whose outcome is due


class Runtime:
    """Runs manifests' jobs on a pool of ComfyUI backends, recording them in a ``JobStore``."""

    def __init__(self, catalog: Catalog, backends: Sequence[tuple[str, str]], store: JobStore, *,
                 client_id: str | None = None, health_interval: float = 5.0, health_timeout: float | None = None,
                 timeouts: Timeouts | None = None, settings: JobSettings | None = None,
                 session_factory: Callable[[], aiohttp.ClientSession] | None = None,
                 limits: Limits = DEFAULT_LIMITS, priority_of: Callable[[str], int] | None = None,
                 leases: Leases | None = None):
        self.catalog = catalog
        self.priority_of = priority_of  # owner → priority in our own queue (higher goes first)
        self.store = store
        self.client_id = client_id or f"discomfy-{uuid.uuid4().hex[:12]}"
        self.settings = settings or JobSettings()
        self.limits = limits
        self.pool = BackendPool(backends, client_id=self.client_id, health_interval=health_interval,
                                health_timeout=health_timeout, timeouts=timeouts, session_factory=session_factory,
                                limits=limits)
        self.leases = leases
        self._jobs: dict[str, Job] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._on_take_over: TakeOver | None = None

    async def start(self) -> None:
        """Open one session and one websocket per backend and fetch their ``object_info``; keep the
        leases when processes share the store."""
        self.pool.on_down(self._backend_down)
        await self.pool.start()
        if self.settings.max_pending is not None:
            self.pool.use_dispatcher(self.settings.max_pending).priority_of = self.priority_of
        if self.leases is not None and self.leases.shared:
            self._keeper = asyncio.create_task(self._keep_leases(self.leases), name="job leases")

    async def close(self) -> None:
        """Stop following jobs (they stay resumable in the store, let go for another process to take
        over at once) and close every connection."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        for job in list(self._jobs.values()):
            await job.detach()
        self._jobs.clear()
        if self.leases is not None:
            try:
                await self.leases.release()
            except StoreError as exc:  # they run out on their own
                log.warning("cannot let this process's jobs go (%s); they are taken over when their leases end", exc)
        await self.pool.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- jobs -----------------------------------------------------------------------------
    def workflow(self, workflow: Workflow | str) -> Workflow:
        """The catalog's workflow (by name), or ``EngineError`` when there is none."""
        if isinstance(workflow, Workflow):
            return workflow
        if workflow not in self.catalog:
            raise EngineError(f"there is no workflow named {workflow!r}")
        return self.catalog[workflow]

    def prepare(self, workflow: Workflow | str, values: Mapping[str, Any], *, uploads: Iterable[str] = ()) -> Prepared:
        """Check ``values`` once (``ParamError`` naming the param) and build the job's graph, without
        I/O; ``uploads`` are the upload params whose files ``start_job`` will get. Live lists
        (``choices_from``) are the healthy backends' current ones."""
        wf = self.workflow(workflow)
        live = {source: choices for p in wf.manifest.params.values()
                if (source := p.live_source) and (choices := self.pool.choices(source))}
        return prepare(wf, values, uploads=uploads, live=live)

    async def start_job(self, prepared: Prepared, *, images: Mapping[str, ImageInput] | None = None,
                    owner: str | None = None, extra: Mapping[str, Any] | None = None) -> Job:
        """Start a prepared job; ``images`` hold the files of its uploads (images, audio), each checked
        by its param (``check_upload``: decoded, ``ParamError``). Its outcome comes via ``events``/``result``."""
        images = dict(images or {})
        for name in sorted(set(images) ^ set(prepared.uploads)):
            raise ParamError(name, "needs a file" if name in prepared.uploads else
                             "is not a file parameter of this workflow")
        params = prepared.workflow.manifest.params
        for name, image in images.items():  # decoded off the loop: a large file takes a while
            filename = await asyncio.to_thread(params[name].check_upload, name, image.data, image.filename, self.limits)
            images[name] = ImageInput(image.data, filename)
        job = Job.start(prepared, pool=self.pool, store=self.store, settings=self.settings, images=images,
                        owner=owner, extra=extra, lease=self.leases)
        self._track(job)
        return job

    async def submit(self, workflow: Workflow | str, values: Mapping[str, Any], *,
                     images: Mapping[str, ImageInput] | None = None, owner: str | None = None,
                     extra: Mapping[str, Any] | None = None) -> Job:
        """``prepare`` then ``start_job``: check ``values`` and images (``ParamError``) and start the job."""
        prepared = self.prepare(workflow, values, uploads=images or ())
        return await self.start_job(prepared, images=images, owner=owner, extra=extra)

    async def get(self, job_id: str, *, timeout: float | None = None) -> JobRecord | None:
        """The stored record of a job (also of finished jobs and after a restart); ``timeout`` bounds
        the wait on a locked database (``StoreBusy`` past it)."""
        return await self.store.get(job_id, timeout=timeout)

    def job(self, job_id: str) -> Job | None:
        """The live job, while it is in flight in this process."""
        return self._jobs.get(job_id)

    def jobs_in_flight(self) -> list[Job]:
        """Every live job of this process (for metrics and status)."""
        return list(self._jobs.values())

    async def resume(self, *, on_lost: Callable[[JobRecord], object] | None = None) -> list[Job]:
        """Follow again every unfinished job of the store (after a restart); returns the resumed jobs.

        A job that cannot be resumed (its workflow is gone) is marked failed, and ``on_lost(record)``
        gets its record (``error`` says why) so that its outcome is delivered too — even when the
        store cannot take the write (then it is logged, and the job is found again next time)."""
        resumed = []
        for record in await self.store.unfinished():
            if record.job_id in self._jobs:
                continue
            if record.manifest not in self.catalog:
                await self._give_up(record, f"lost during restart (workflow {record.manifest} no longer exists)")
                if on_lost is not None:
                    on_lost(record)
                continue
            job = Job.resume(self.catalog[record.manifest], record, pool=self.pool, store=self.store,
                             settings=self.settings, lease=self.leases)
            self._track(job)
            resumed.append(job)
        return resumed

    # -- leases: jobs held by this process until their outcome is delivered --------------------
    def on_take_over(self, callback: TakeOver) -> None:
        """``callback(jobs, ended)`` with the jobs the lease loop takes over later (see ``take_over``);
        nothing is taken over by the loop before a callback is set."""
        self._on_take_over = callback

    async def take_over(self) -> tuple[list[Job], list[JobRecord]]:
        """The jobs that need this process now (``leases``: all of them when it is the only process,
        those whose lease ran out when processes share the store): unfinished ones resumed, and the
        records of ended ones whose outcome is not delivered yet — jobs that could not be resumed
        (their workflow is gone) among them, marked failed, ``error`` saying why."""
        if self.leases is None:
            raise EngineError("taking jobs over needs leases")
        return await self._adopt(await self.leases.take())

    async def claim_delivery(self, job_id: str) -> bool:
        """Right before posting a job's outcome: True when this process may post it — it holds the
        job's lease (renewed now); always without leases."""
        if self.leases is None:
            return True
        try:
            return await self.leases.claim(job_id)
        except StoreError as exc:  # the database cannot tell: the lease as last confirmed decides
            log.warning("job %s: cannot claim its delivery (%s)", job_id, exc)
            return self.leases.holds(job_id)

    async def delivered(self, job_id: str, *, posted: bool = True) -> None:
        """This process is done with the job's outcome: posted, it needs no process any more (its
        lease ends). Not posted (Discord took none of it): with processes sharing the store the
        lease ends too (else every process would try again every few seconds); the only process
        keeps it, and its next start tries again."""
        if self.leases is None:
            return
        if not posted and not self.leases.shared:
            self.leases.forget(job_id)
            return
        try:
            await self.leases.end(job_id)
        except StoreError as exc:  # found again by a renewal: posted once more, as an edit of its message
            log.warning("job %s: cannot record that its outcome was posted (%s)", job_id, exc)

    async def _adopt(self, records: Iterable[JobRecord]) -> tuple[list[Job], list[JobRecord]]:
        jobs, ended = [], []
        for record in records:
            if record.job_id in self._jobs:
                continue
            if not record.finished and record.manifest not in self.catalog:
                await self._give_up(record, f"lost during restart (workflow {record.manifest} no longer exists)")
            if record.finished:
                ended.append(record)
                continue
            job = Job.resume(self.catalog[record.manifest], record, pool=self.pool, store=self.store,
                             settings=self.settings, lease=self.leases)
            self._track(job)
            jobs.append(job)
        return jobs, ended

    async def _keep_leases(self, leases: Leases) -> None:
        """Every third of a lease: renew, hand over the jobs another process took, take over others."""
        while True:
            await asyncio.sleep(leases.renew_every)
            try:
                lost, orphans = await leases.renew()
                for job_id in lost:
                    if (job := self._jobs.get(job_id)) is not None:
                        await job.hand_over()
                if self._on_take_over is not None:
                    found = [record for job_id in orphans if (record := await self.store.get(job_id)) is not None]
                    for record in found:
                        leases.hold(record.job_id)
                    jobs, ended = await self._adopt(found + await leases.take())
                    if jobs or ended:
                        self._on_take_over(jobs, ended)
            except StoreError as exc:
                log.warning("cannot renew this process's job leases (%s)", exc)
            except Exception:  # never lose the loop
                log.exception("keeping the job leases failed")

    async def _give_up(self, record: JobRecord, error: str) -> None:
        record.state, record.error, record.finished_at = JobState.FAILED.value, error, time.time()
        end = {"state": record.state, "finished_at": record.finished_at, "error": error}
        try:
            if self.leases is not None:
                await self.store.set_held(record.job_id, self.leases.holder, **end)
            else:
                await self.store.set(record.job_id, **end)
        except StoreError as exc:
            log.error("job %s: cannot record that it was %s (%s)", record.job_id, error, exc)

    async def output(self, job_id: str, index: int, *, timeout: float | None = None) -> OutputFile:
        """Output #``index`` (1-based) of a stored job, downloaded again from the server that made it.

        ``EngineError`` when the job has no such output, ``ComfyUnavailable`` when its server is down
        or cannot send it (the messages are fit for users: no server names)."""
        record = await self.get(job_id, timeout=timeout)
        if record is None or not 1 <= index <= len(record.outputs):
            raise EngineError(f"job {job_id} has no output #{index}")
        ref = OutputRef.from_dict(record.outputs[index - 1])
        backend = self.pool.get(record.backend) if record.backend else None
        if backend is None or not backend.up:
            raise ComfyUnavailable(f"the server that made output #{index} is not available right now")
        try:
            data, mime = await backend.client.view(ref.filename, ref.subfolder, ref.type)
        except ComfyError:
            raise ComfyUnavailable(f"output #{index} could not be fetched from its server") from None
        return OutputFile.from_ref(ref, data, mime)

    async def attach(self, job_id: str, extra: Mapping[str, Any]) -> JobRecord | None:
        """Add or replace keys of a job's ``extra`` (others' keys survive); None when there is no such job."""
        return await self.store.merge_extra(job_id, extra)

    def _track(self, job: Job) -> None:
        self._jobs[job.id] = job
        job.add_done_callback(lambda done: self._jobs.pop(done.id, None))

    async def _backend_down(self, backend: Backend) -> None:
        for job in list(self._jobs.values()):
            job.backend_down(backend)

    # -- servers --------------------------------------------------------------------------
    def choices(self, source: str) -> list[str]:
        """The live list for a ``choices_from`` source (``Class.input``), over healthy backends."""
        return self.pool.choices(source)

    def object_infos(self) -> list[Mapping[str, Any]]:
        """The ``/object_info`` of every healthy backend (what reloaded manifests are checked against)."""
        return [backend.object_info for backend in self.pool if backend.up and backend.object_info]

    def status(self) -> list[BackendStatus]:
        """Every backend: name, up, running, pending, version (never its URL)."""
        return self.pool.status()
