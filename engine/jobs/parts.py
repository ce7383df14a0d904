"""The small pieces a ``Job`` is made of: its inputs, settings and result, and its server chores.

- ``ImageInput``    bytes + file name of an upload param (image, audio); the job uploads it where it runs
- ``JobSettings``   polling intervals and grace periods of the job runner
- ``JobResult``     what a finished job produced
- ``EventFeed``     a job's latest ``ProgressEvent`` and everyone waiting for the next ones
- ``send_prompt``   ``POST /prompt`` on a backend, subscribed to its websocket first; rejections mapped
- ``upload_filename`` the file name an image is uploaded under (pure)
- ``collect_outputs`` read ``/history`` and download every output file of the manifest's outputs
- ``withdraw``      delete a prompt from the queue and interrupt it if running (best effort)
- ``withdraw_from`` take a prompt off a backend marked down, unless it already started there
- ``spawn``         run a clean-up in the background, keeping a reference until it is done
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..backends.backend import Backend
from ..backends.pool import BackendPool
from ..comfy.client import ComfyClient
from ..comfy.error_map import ParamLookup, map_rejection
from ..limits import DEFAULT_LIMITS, Limits, human_size
from ..comfy.outputs import OutputFile, OutputRef, output_refs, output_texts
from ..errors import ComfyError, ComfyTimeout, ComfyUnavailable, ServerLimitExceeded, WorkflowRejected
from ..manifest.catalog import Workflow
from .progress import JobState, ProgressEvent

__all__ = ["ImageInput", "JobSettings", "JobResult", "EventFeed", "send_prompt", "upload_filename", "collect_result",
           "collect_outputs", "withdraw", "withdraw_from", "spawn"]

HISTORY_ATTEMPTS = 5
T = TypeVar("T")
_BACKGROUND: set[asyncio.Task[Any]] = set()


@dataclass(frozen=True)
class ImageInput:
    """The file of an upload param (an image, a sound): uploaded by the runtime to the backend that runs the job."""

    data: bytes = field(repr=False)
    filename: str = "image.png"


@dataclass(frozen=True)
class JobSettings:
    """Knobs of the job runner (times in seconds)."""

    queue_poll: float = 1.0  # a queued job wants a GET /queue snapshot at least this often (shared per backend)
    down_grace: float = 30.0  # a running job's backend may come back within this
    resume_wait: float = 30.0  # after a restart, how long to wait for a job's backend to answer
    cancel_wait: float = 10.0  # cancel() waits this long for the job to end
    submit_attempts: int = 2  # 1 + retries on another backend when the server is unavailable
    max_pending: int | None = None  # set: jobs wait in our fair queue until a backend has fewer than 1 + this
    #                                 prompts (engine.backends.dispatch); None: each job is sent at once
    want_previews: bool = True


@dataclass(frozen=True)
class JobResult:
    """A finished job: downloaded ``outputs``, text outputs, the values used, where and when it ran."""

    outputs: list[OutputFile]
    texts: list[str]
    values: dict[str, Any]
    backend: str
    timings: dict[str, float | None]

    @property
    def seconds(self) -> float | None:
        """Seconds from queueing to the end."""
        queued, finished = self.timings.get("queued"), self.timings.get("finished")
        return finished - queued if queued is not None and finished is not None else None


class EventFeed:
    """A job's latest ``ProgressEvent`` and the listeners waiting for the next ones."""

    def __init__(self) -> None:
        self.latest = ProgressEvent(JobState.QUEUED)
        self.closed = False
        self._listeners: list[asyncio.Queue[ProgressEvent | None]] = []

    def emit(self, event: ProgressEvent) -> None:
        self.latest = event
        for listener in self._listeners:
            listener.put_nowait(event)

    def close(self) -> None:
        """No more events (the job was handed over to another process): every listener ends."""
        self.closed = True
        for listener in self._listeners:
            listener.put_nowait(None)

    async def events(self) -> AsyncGenerator[ProgressEvent, None]:
        """The latest event, then every new one, ending after the terminal event (or ``close``)."""
        queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            event: ProgressEvent | None = self.latest
            while event is not None and not self.closed:
                yield event
                if event.finished:
                    return
                event = await queue.get()
        finally:
            self._listeners.remove(queue)


async def send_prompt(backend: Backend, workflow: ParamLookup, graph: dict[str, Any], prompt_id: str, *,
                      before: Callable[[], None], unsent: Callable[[], None] = lambda: None) -> asyncio.Queue[Any]:
    """Subscribe to ``prompt_id`` on the backend's websocket, call ``before()`` (it may raise: the job
    was cancelled meanwhile), then ``POST /prompt``; returns the prompt's message queue.

    The caller records where the prompt goes before calling: a process stopped while the POST is under
    way (its answer never read) then follows the prompt after a restart instead of sending the job
    again. ``unsent()`` is called when the prompt did not reach the server (a 400, a refusal or a 5xx,
    a cancel before sending): the caller records again where the job's prompt was (none, or the one
    it moved away from, still owed there), so a restart does not follow a prompt that is nowhere. A 400 is ``WorkflowRejected`` with problems
    mapped to the params; after a timeout the prompt is withdrawn (it may have been queued after all),
    now and again when the server answers. The job is not sent elsewhere: a server that answers late
    would run it as well."""
    inbox = backend.events.subscribe(prompt_id)
    try:
        before()
        await backend.client.queue_prompt(graph, prompt_id=prompt_id)
    except WorkflowRejected as exc:
        backend.events.unsubscribe(prompt_id)
        unsent()
        raise map_rejection(workflow, graph, exc) from None
    except ComfyTimeout:
        backend.events.unsubscribe(prompt_id)
        backend.owed.add(prompt_id)  # it may have been queued after all: withdrawn when the server answers
        spawn(withdraw(backend.client, prompt_id))
        raise
    except BaseException as exc:
        backend.events.unsubscribe(prompt_id)
        if isinstance(exc, ComfyError):  # a stop (CancelledError) may come after the server took it
            unsent()
        raise
    return inbox


def upload_filename(filename: str) -> str:
    """The name an image is uploaded under: the last part of ``filename`` without control
    characters or a leading dot, at most 100 characters; ``upload.png`` when nothing is left."""
    name = "".join(c for c in filename.replace("\\", "/").rsplit("/", 1)[-1] if c.isprintable()).lstrip(".")
    return name[-100:].strip() or "upload.png"


async def collect_result(backend: Backend, prompt_id: str, workflow: Workflow, values: Mapping[str, Any],
                         timings: dict[str, float | None], limits: Limits = DEFAULT_LIMITS
                         ) -> tuple[JobResult, list[dict[str, Any]]]:
    """A done prompt's result, and its output refs for the store (written with the end state: one write)."""
    outputs, texts, refs = await collect_outputs(backend.client, prompt_id,
                                                 workflow.output_nodes(backend.object_info), limits)
    return JobResult(outputs, texts, dict(values), backend.name, timings), [ref.to_dict() for ref in refs]


async def collect_outputs(client: ComfyClient, prompt_id: str, nodes: Iterable[str], limits: Limits = DEFAULT_LIMITS
                          ) -> tuple[list[OutputFile], list[str], list[OutputRef]]:
    """Files (downloaded), texts and file refs of ``nodes`` from the prompt's history entry, within
    ``max_output_files`` and ``max_output_bytes`` (all files together)."""
    entry = None
    for attempt in range(HISTORY_ATTEMPTS):
        entry = await _transient_retried(lambda: client.history(prompt_id))
        if entry is not None:
            break
        await asyncio.sleep(0.05 * (attempt + 1))
    if entry is None:
        raise ComfyUnavailable("the server finished the job but has no record of its outputs")
    nodes = list(nodes)
    refs = output_refs(entry, nodes)
    if len(refs) > limits.max_output_files:
        raise ServerLimitExceeded(f"the job made more than {limits.max_output_files} output files "
                                  "(limit max_output_files)", "max_output_files")
    files, left = [], limits.max_output_bytes
    for ref in refs:
        try:
            data, mime = await _download(client, ref, left)
        except ServerLimitExceeded:
            raise ServerLimitExceeded(f"the job's outputs are larger than {human_size(limits.max_output_bytes)} "
                                      "(limit max_output_bytes)", "max_output_bytes") from None
        files.append(OutputFile.from_ref(ref, data, mime))
        left -= len(data)
    return files, [text.text for text in output_texts(entry, nodes)], refs


async def _download(client: ComfyClient, ref: OutputRef, max_bytes: int) -> tuple[bytes, str]:
    return await _transient_retried(lambda: client.view(**ref.view_params(), max_bytes=max_bytes))


async def _transient_retried(call: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """``call()``, again after a 5xx, a refused connection or a timeout (a brief hiccup must not
    fail a job that ran to its end); the last failure is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ServerLimitExceeded:
            raise  # the same answer again would break the same limit
        except (ComfyUnavailable, ComfyTimeout):
            if attempt == attempts:
                raise
            await asyncio.sleep(0.25 * attempt)
    raise AssertionError("unreachable")


async def withdraw(client: ComfyClient, prompt_id: str, *, timeout: float = 5.0) -> None:
    """Remove ``prompt_id`` from the pending queue, then interrupt it if it runs (errors ignored).

    Delete first: a prompt that starts between the two calls is still caught by the interrupt.
    """
    for call in (lambda: client.delete_queued([prompt_id]), lambda: client.interrupt(prompt_id)):
        with contextlib.suppress(ComfyError, TimeoutError):
            async with asyncio.timeout(timeout):
                await call()


async def withdraw_from(pool: BackendPool, backend: Backend, prompt_id: str, *, wait: float) -> bool:
    """Take ``prompt_id`` out of the queue of ``backend`` (marked down). True when it cannot run there:
    deleted while still waiting, or the server cannot be reached at all (refused, cut off: it crashed,
    and its queue with it; the withdrawal is owed for when it answers); False when it started or ended
    there, or when the server answers with an error or not in time: it is alive or hung and may still
    run the prompt, so the job keeps following it there (moving it then could run it twice)."""
    client = backend.client
    try:
        async with asyncio.timeout(wait):
            await client.delete_queued([prompt_id])
            if prompt_id in await client.queue():  # running, or a delete that did not take
                return False
            return await client.history(prompt_id) is None
    except ComfyUnavailable as exc:
        if exc.__cause__ is None:  # a 5xx: the server is there
            return False
    except (ComfyError, TimeoutError):
        return False
    pool.owe_withdrawal(backend, prompt_id)
    spawn(withdraw(client, prompt_id, timeout=1.0))
    return True


def spawn(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Fire and forget ``coroutine`` (a best-effort clean-up); the task is referenced until done."""
    task = asyncio.create_task(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
