"""Where a job gets its backend: ``Line`` — in the dispatcher's fair line when the runtime has one
(``JobSettings.max_pending`` set: jobs wait in the engine until a backend is ready), else picked at
once by shortest queue (the pool's ``pick``, submit-at-once).

While the job waits it is told its place ("3rd in line") as a QUEUED progress event
(``line_position``); leaving the line (a cancel) never touches ComfyUI. When the job ends its
running time teaches the dispatcher the backend's speed for this workflow.

``place_text`` is the one wording of where a queued job stands, for the bot and the CLI alike:
"3rd in line" while it waits with us (its place in the order the dispatcher will serve), then
"starting" once sent to a server, "next" when it is first in that server's own queue (the
server runs something else first: with the default queue depth there is never more than one
ahead), "2nd in the server's queue" when more are ahead there (other clients' prompts, a
deeper queue, or no queue of ours at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..backends.backend import Backend
from ..backends.pool import BackendPool
from ..backends.routing import graph_requirements
from .progress import JobState, ProgressEvent

__all__ = ["Line", "ordinal", "place_text"]


def ordinal(number: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``12th``, ``13th``, ``21st``, ``101st``, ``111th``."""
    suffix = "th" if number % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def place_text(event: ProgressEvent) -> str | None:
    """Where a queued job stands, in words (see the module docstring); None when there is nothing to say."""
    if event.state is not JobState.QUEUED:
        return None
    if event.line_position:
        return f"{ordinal(event.line_position)} in line"
    if event.queue_position == 1:
        return "next"
    if event.queue_position:
        return f"{ordinal(event.queue_position)} in the server's queue"
    return "starting" if event.on_server else None


class Line:
    """One job's way to a backend (see the module docstring)."""

    def __init__(self, pool: BackendPool, job_id: str, owner: str | None, workflow: str, *, priority: int = 0,
                 on_place: Callable[[int], None] | None = None):
        self._pool, self._job_id, self._owner, self._workflow = pool, job_id, owner, workflow
        self._priority, self._on_place = priority, on_place

    async def backend(self, graph: dict[str, Any], exclude: Iterable[str] = ()) -> Backend:
        """The backend to queue on now (``ComfyUnavailable`` when none can run ``graph``)."""
        dispatcher = self._pool.dispatcher
        if dispatcher is None:
            return self._pool.pick(graph, exclude=exclude)
        return await dispatcher.wait_turn(self._job_id, self._owner, self._workflow, graph_requirements(graph),
                                          priority=self._priority, on_place=self._on_place, exclude=exclude)

    def leave(self) -> bool:
        """Out of the line (the job was cancelled while waiting); False when it was not waiting."""
        dispatcher = self._pool.dispatcher
        return dispatcher is not None and dispatcher.withdraw(self._job_id)

    def ran(self, backend: str | None, done: bool, timings: dict[str, float | None]) -> None:
        """The job ended; when ``done`` on ``backend``, it ran from ``timings["started"]`` to ``["finished"]``."""
        dispatcher = self._pool.dispatcher
        started, finished = timings.get("started"), timings.get("finished")
        if dispatcher is not None and done and backend and started is not None and finished is not None:
            dispatcher.ran(backend, self._workflow, finished - started)
