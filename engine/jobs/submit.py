"""Getting a job's prompt onto a backend: ``Submission``.

The backend comes from the job's ``Line`` (our fair queue, or picked at once). The job's images
are uploaded there and its random seeds drawn within what that server accepts; then where the
prompt goes is recorded (``Journal.sending``: claimed under the job's lease when processes share
the store) before ``POST /prompt`` — after a restart or a takeover the prompt is followed, never
sent again.

A send that fails is tried once more on another backend (``JobSettings.submit_attempts``), but
only when the first server cannot have the prompt: the connection could not be opened (nothing
was sent), or the server answers that the prompt is neither queued, running nor in its history.
A server that failed the request after taking the prompt (a proxy's 502 after ComfyUI queued it)
is followed as if it had answered; one that cannot tell owes a withdrawal and the job fails with
the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..backends.backend import Backend
from ..backends.pool import BackendPool
from ..comfy.client import never_sent
from ..errors import ComfyError, ComfyUnavailable, JobCancelled, JobHandedOver
from ..manifest.apply import bind_values, draw_seeds
from ..manifest.catalog import Workflow
from .follow import NOWHERE
from .journal import Journal
from .line import Line
from .parts import ImageInput, JobSettings, send_prompt, spawn, upload_filename, withdraw
from .progress import JobState

__all__ = ["Submission", "Sent"]

log = logging.getLogger(__name__)


class Sent(NamedTuple):
    """A prompt on a backend: what the job follows from now on."""

    backend: Backend
    prompt_id: str
    inbox: asyncio.Queue[Any]
    graph: dict[str, Any]


class Submission:
    """One job's way onto a backend (see the module docstring). ``values`` and ``timings`` are the
    job's own: the values sent (drawn seeds, uploaded names) and the time it was queued land there."""

    def __init__(self, job_id: str, workflow: Workflow, values: dict[str, Any], *, images: dict[str, ImageInput],
                 journal: Journal, line: Line, pool: BackendPool, settings: JobSettings,
                 timings: dict[str, float | None], cancelled: Callable[[], bool], log_fields: dict[str, Any]):
        self._job_id, self._workflow, self._values, self._images = job_id, workflow, values, images
        self._journal, self._line, self._pool, self._settings = journal, line, pool, settings
        self._timings, self._cancelled, self._log_fields = timings, cancelled, log_fields
        self._drawn: set[str] = set()  # random params drawn for the backend the job is queued on

    def check_cancel(self) -> None:
        if self._cancelled():
            raise JobCancelled("cancelled before it was queued")

    async def first(self, graph: dict[str, Any]) -> Sent:
        """Queue ``graph`` on the best backend; when that fails and the server cannot have the prompt,
        once more on another one."""
        tried: set[str] = set()
        error: ComfyUnavailable | None = None
        for _ in range(self._settings.submit_attempts):
            self.check_cancel()
            try:
                backend = await self._line.backend(graph, tried)
            except ComfyUnavailable:
                if error is None:
                    raise
                raise error from None
            try:
                return await self.to(backend, graph)
            except ComfyUnavailable as exc:  # nothing of this job is on that server (see ``to``)
                error = exc
                tried.add(backend.name)
                if exc.__cause__ is not None:  # unreachable (not a 5xx): take it out of routing now
                    self._pool.note_unavailable(backend)
        raise error or ComfyUnavailable("no attempt to queue the job was allowed")

    async def to(self, backend: Backend, graph: dict[str, Any], *, was: Mapping[str, str | None] = NOWHERE) -> Sent:
        """Upload, draw seeds, record, ``POST /prompt`` on ``backend``. ``ComfyUnavailable`` only when
        the server surely has no prompt of this job (the record says again where it ``was``: nowhere,
        or the prompt it moves away from, still owed there); ``JobHandedOver`` when another process has it."""
        self._log_fields["backend"] = backend.name  # the job's log lines name the server from now on
        uploaded = {name: await backend.client.upload_image(image.data, upload_filename(image.filename))
                    for name, image in self._images.items()}
        drawn = self._draw_seeds(backend)
        bound = bind_values(self._workflow, graph, {**drawn, **uploaded})
        self._values.update({**drawn, **uploaded})  # the values sent are the values shown and stored
        prompt_id, self._timings["queued"] = str(uuid.uuid4()), time.time()
        place = {"backend": backend.name, "prompt_id": prompt_id, "client_id": backend.client.client_id}
        if not await self._journal.sending(**place, queued_at=self._timings["queued"], values=self._values,
                                           state=JobState.QUEUED.value,
                                           seed=self._workflow.manifest.seed_of(self._values)):
            raise JobHandedOver(f"job {self._job_id} was taken over before it was sent")
        try:
            inbox = await send_prompt(backend, self._workflow, bound, prompt_id, before=self.check_cancel,
                                      unsent=lambda: self._journal.post(**was))
        except ComfyUnavailable as exc:  # a failure may come after the server took the prompt
            inbox = await self._taken_after_all(backend, prompt_id, exc)
            self._journal.post(**place)  # it is there after all
        self._pool.note_submitted(backend, prompt_id)
        log.info("job %s queued on backend %s", self._job_id, backend.name)
        return Sent(backend, prompt_id, inbox, bound)

    async def _taken_after_all(self, backend: Backend, prompt_id: str, error: ComfyUnavailable) -> asyncio.Queue[Any]:
        """After a failed ``POST /prompt``: the prompt's inbox when the server has it all the same;
        ``error`` again when it surely has not (another backend may be tried); ``ComfyError`` when
        it cannot tell (the withdrawal is owed: it never runs there unnoticed)."""
        if never_sent(error):
            raise error
        try:
            async with asyncio.timeout(self._settings.cancel_wait):
                there = prompt_id in await backend.client.queue() or await backend.client.history(prompt_id) is not None
        except (ComfyError, TimeoutError):
            backend.owed.add(prompt_id)
            spawn(withdraw(backend.client, prompt_id, timeout=1.0))
            raise ComfyError(f"{error}; the server could not say whether it took the job") from None
        if not there:
            raise error
        log.info("job %s: backend %s took the prompt although the request failed; following it there",
                 self._job_id, backend.name)
        return backend.events.subscribe(prompt_id)

    def _draw_seeds(self, backend: Backend) -> dict[str, Any]:
        """Random values for the unset seeds (and those drawn for a backend the job left), within
        what ``backend``'s inputs accept."""
        kept = {name: value for name, value in self._values.items() if name not in self._drawn}
        values = draw_seeds(self._workflow, kept, object_info=backend.object_info)
        self._drawn = {name for name in values if name not in kept}
        return {name: values[name] for name in self._drawn}
