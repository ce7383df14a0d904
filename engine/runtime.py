"""The engine's runtime facade: the backend pool, the job store and the jobs in flight, wired together.

``Runtime`` is what the bot talks to (see runtime_api.md): ``start``/``close``, ``submit`` a
manifest with values, find a job (``get`` from the store, ``job`` if live), ``resume`` unfinished
jobs after a restart, live ``choices`` and backend ``status``. It holds no job logic itself:
``engine.jobs.Job`` runs each job, ``engine.backends.BackendPool`` owns the servers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .backends.pool import BackendPool, BackendStatus
from .manifest.catalog import Catalog
from .comfy.client import Timeouts
from .errors import EngineError, ParamError
from .images import check_image
from .jobs.job import Job
from .jobs.parts import ImageInput, JobResult, JobSettings
from .jobs.progress import JobState
from .jobs.store import JobRecord, JobStore

__all__ = ["Runtime", "Job", "JobResult", "ImageInput", "BackendStatus", "JobSettings"]

log = logging.getLogger(__name__)


class Runtime:
    """Runs manifests' jobs on a pool of ComfyUI backends, recording them in a ``JobStore``."""

    def __init__(self, catalog: Catalog, backends: Sequence[tuple[str, str]], store: JobStore, *,
                 client_id: str | None = None, health_interval: float = 5.0, health_timeout: float | None = None,
                 timeouts: Timeouts | None = None, settings: JobSettings | None = None, session_factory: Any = None):
        self.catalog = catalog
        self.store = store
        self.client_id = client_id or f"discomfy-{uuid.uuid4().hex[:12]}"
        self.settings = settings or JobSettings()
        self.pool = BackendPool(backends, client_id=self.client_id, health_interval=health_interval,
                                health_timeout=health_timeout, timeouts=timeouts, session_factory=session_factory)
        self._jobs: dict[str, Job] = {}

    async def start(self) -> None:
        """Open one session and one websocket per backend and fetch their ``object_info``."""
        self.pool.on_down(self._backend_down)
        await self.pool.start()

    async def close(self) -> None:
        """Stop following jobs (they stay resumable in the store) and close every connection."""
        for job in list(self._jobs.values()):
            await job.detach()
        self._jobs.clear()
        await self.pool.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- jobs -----------------------------------------------------------------------------
    async def submit(self, workflow: str, values: Mapping[str, Any], *,
                     images: Mapping[str, ImageInput] | None = None, owner: str | None = None,
                     extra: Mapping[str, Any] | None = None) -> Job:
        """Validate ``values`` and images (``ParamError``) and start the job; its outcome comes via
        events/result."""
        if workflow not in self.catalog:
            raise EngineError(f"there is no workflow named {workflow!r}")
        wf = self.catalog[workflow]
        unknown = sorted(set(images or {}) - set(wf.manifest.image_params))
        if unknown:
            raise ParamError(unknown[0], "is not an image parameter of this workflow")
        for name, image in (images or {}).items():  # decoded off the loop: a large image takes a while
            await asyncio.to_thread(check_image, image.data, param=name, max_bytes=self.settings.max_image_bytes,
                                    max_pixels=self.settings.max_image_pixels)
        live = {p.live_source: self.pool.choices(p.live_source) for p in wf.manifest.params.values()
                if p.live_source}
        live = {source: choices for source, choices in live.items() if choices}
        job = await Job.submit(wf, values, pool=self.pool, store=self.store, settings=self.settings, images=images,
                         live=live, owner=owner, extra=extra)
        self._track(job)
        return job

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

    async def resume(self) -> list[Job]:
        """Follow again every unfinished job of the store (after a restart); returns the resumed jobs."""
        resumed = []
        for record in await self.store.unfinished():
            if record.job_id in self._jobs:
                continue
            if record.manifest not in self.catalog:
                await self.store.set(record.job_id, state=JobState.FAILED.value, finished_at=time.time(),
                                  error=f"lost during restart (workflow {record.manifest} no longer exists)")
                continue
            job = Job.resume(self.catalog[record.manifest], record, pool=self.pool, store=self.store,
                             settings=self.settings)
            self._track(job)
            resumed.append(job)
        return resumed

    def _track(self, job: Job) -> None:
        self._jobs[job.id] = job
        job.add_done_callback(lambda done: self._jobs.pop(done.id, None))

    async def _backend_down(self, backend: Any) -> None:
        for job in list(self._jobs.values()):
            job.backend_down(backend)

    # -- servers --------------------------------------------------------------------------
    def choices(self, source: str) -> list[str]:
        """The live list for a ``choices_from`` source (``Class.input``), over healthy backends."""
        return self.pool.choices(source)

    def status(self) -> list[BackendStatus]:
        """Every backend: name, up, running, pending, version (never its URL)."""
        return self.pool.status()
