"""Where a job gets its backend: ``Line`` — in the dispatcher's fair line when the runtime has one
(``JobSettings.max_pending`` set: jobs wait in the engine until a backend is ready), else picked at
once by shortest queue (the pool's ``pick``, submit-at-once).

While the job waits it is told its place ("3rd in line") as a QUEUED progress event; leaving the
line (a cancel) never touches ComfyUI. When the job ends its running time teaches the dispatcher
the backend's speed for this workflow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..backends.backend import Backend
from ..backends.pool import BackendPool
from ..backends.routing import graph_requirements

__all__ = ["Line"]


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
