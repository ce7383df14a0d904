"""Progress of one ComfyUI prompt, computed from what the server tells us (pure, no I/O).

``ProgressTracker`` is a small state machine in the style of httpx's auth flow: the websocket
loop reads frames and feeds them in, the tracker answers with the ``ProgressEvent``s worth showing.

- ``feed(message)`` takes a text frame as a dict ``{"type": ..., "data": ...}`` or a decoded
  binary preview (``Preview``); anything else is ignored.
- ``feed_queue(running, pending)`` takes a ``GET /queue`` snapshot (pending sorted by number);
  ``feed_position(n)`` takes just the prompt's place in one.
- ``feed_status(queue_remaining)`` takes the ``status`` broadcast (``feed`` routes it there too).
- ``feed_history(entry)`` settles the outcome from ``GET /history/{id}`` after a reconnect.
- ``cancel()`` records that the job was removed from the queue before it ran.

Rules (docs/comfyui-protocol.md §6): the prompt is done at ``executing`` with ``node: null`` and our prompt_id
(``execution_success`` alone is not done); ``execution_error`` fails it; ``execution_interrupted``
cancels it. An ``executing`` without prompt_id (sent after a reconnect) and a preview without
prompt_id belong to this prompt only while it runs. Messages for other prompts are ignored.

Percent covers the whole workflow: (finished + cached nodes + the step fraction of running nodes)
divided by the nodes that will run. It never goes backwards and reaches 100 only when done.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeGuard

from ..comfy.outputs import failure_text, node_title, parse_status
from ..comfy.wire import Preview

__all__ = [
    "visible_key",
    "JobState",
    "ProgressEvent",
    "ProgressTracker",
    "TERMINAL_STATES",
    "nodes_to_run",
]

MAX_RUNNING_PERCENT = 99.0  # shown until the server says the prompt is done
ETA_MIN_SECONDS = 0.5  # running this long ...
ETA_MIN_PERCENT = 1.0  # ... and this much progress before an ETA is estimated


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class ProgressEvent:
    """What a user can see about a job at one moment."""

    state: JobState
    queue_position: int | None = None  # 1-based among the server's pending prompts; None when unknown/running
    line_position: int | None = None  # 1-based place in our own queue (the engine's fair line) while it waits there
    on_server: bool = False  # its prompt was sent to a server (waiting in ComfyUI's queue, or further)
    percent: float = 0.0  # whole workflow, 0-100
    phase: str | None = None  # current node's title, or its class_type
    step: int | None = None
    steps: int | None = None
    eta_seconds: float | None = None
    elapsed: float = 0.0  # seconds since the tracker was created
    preview: bytes | None = None  # latest preview, only when the tracker wants previews
    error: str | None = None  # short text for FAILED, never a traceback
    failed_node: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def evolve(self, **changes: Any) -> ProgressEvent:
        """A copy with ``changes``: ``dataclasses.replace`` without its per-call cost (hot path)."""
        unknown = changes.keys() - _EVENT_FIELDS
        if unknown:
            raise TypeError(f"ProgressEvent has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(ProgressEvent)
        copy.__dict__.update(self.__dict__, **changes)
        return copy


_EVENT_FIELDS = frozenset(f.name for f in fields(ProgressEvent))


def nodes_to_run(graph: Mapping[str, Any], outputs: Iterable[str] | None = None) -> frozenset[str]:
    """Node ids that run for ``outputs``: the outputs and everything they link to.

    Without ``outputs`` every node of the graph is counted.
    """
    if outputs is None:
        return frozenset(str(node_id) for node_id in graph)
    seen: set[str] = set()
    todo = [str(node_id) for node_id in outputs if str(node_id) in graph]
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(_linked_inputs(graph[node_id], graph))
    return frozenset(seen)


def _linked_inputs(node: Any, graph: Mapping[str, Any]) -> list[str]:
    inputs = node.get("inputs", {}) if isinstance(node, Mapping) else {}
    return [
        str(value[0])
        for value in inputs.values()
        if isinstance(value, list) and len(value) == 2 and str(value[0]) in graph
    ]


class ProgressTracker:
    """Follows one prompt; see the module docstring for what to feed it."""

    def __init__(
        self,
        prompt_id: str,
        graph: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
        want_previews: bool = False,
        outputs: Iterable[str] | None = None,
    ):
        self.prompt_id = prompt_id
        self._graph = graph
        self._clock = clock
        self._want_previews = want_previews
        self._counted = nodes_to_run(graph, outputs)
        self._started_at = clock()
        self._finished_nodes: set[str] = set()
        self._fractions: dict[str, float] = {}
        self._current: str | None = None
        self._running_since: tuple[float, float] | None = None  # (clock, percent) at start
        self._event = ProgressEvent(JobState.QUEUED, on_server=True)
        self._shown = visible_key(self._event)

    @property
    def state(self) -> JobState:
        return self._event.state

    @property
    def current(self) -> ProgressEvent:
        """The latest event (with fresh ``elapsed`` and ETA), whether or not it was emitted."""
        return self._stamped(self._event)

    # -- inputs ---------------------------------------------------------------------------

    def feed(self, message: Any) -> list[ProgressEvent]:
        """Feed a websocket message (text frame dict or ``Preview``); returns events to show."""
        if self.state in TERMINAL_STATES:
            return []
        if isinstance(message, Mapping):
            return self._feed_text(message)
        if isinstance(message, Preview):
            return self._feed_preview(message)
        return []

    def feed_queue(self, running: Sequence[str], pending: Sequence[str]) -> list[ProgressEvent]:
        """Feed a queue snapshot; ``pending`` must be in execution order (sorted by number)."""
        if self.state in TERMINAL_STATES:
            return []
        if self.prompt_id in running:
            return self._start_running()
        if self.prompt_id in pending:
            return self.feed_position(list(pending).index(self.prompt_id) + 1)
        return []

    def feed_position(self, position: int) -> list[ProgressEvent]:
        """Feed the prompt's 1-based place among pending prompts (e.g. from a shared snapshot)."""
        if self.state is not JobState.QUEUED or position < 1:
            return []
        return self._update(queue_position=position)

    def feed_status(self, queue_remaining: int) -> list[ProgressEvent]:
        """Feed a ``status`` count: a known queue position can only be as large as the queue."""
        position = self._event.queue_position
        if self.state is not JobState.QUEUED or position is None or queue_remaining < 1:
            return []
        return self._update(queue_position=min(position, int(queue_remaining)))

    def feed_history(self, entry: Mapping[str, Any]) -> list[ProgressEvent]:
        """Settle the outcome from a ``/history/{id}`` entry (for when websocket messages were missed)."""
        if self.state in TERMINAL_STATES or not entry:
            return []
        status = parse_status(entry)
        if status.last_type == "execution_error":
            return self._fail(status.last_data)
        if status.last_type == "execution_interrupted":
            return self._cancel()
        if status.completed or status.status_str == "success":
            return self._finish()
        return []

    def cancel(self) -> list[ProgressEvent]:
        """Record that the job was cancelled outside the websocket (e.g. deleted from the queue)."""
        return [] if self.state in TERMINAL_STATES else self._cancel()

    # -- text frames ----------------------------------------------------------------------

    def _feed_text(self, message: Mapping[str, Any]) -> list[ProgressEvent]:
        kind, data = message.get("type"), message.get("data")
        if not isinstance(data, Mapping):
            return []
        if kind == "status":
            return self._feed_status_message(data)
        if not self._is_ours(kind, data):
            return []
        handler = _HANDLERS.get(str(kind))
        return handler(self, data) if handler else self._start_running()

    def _is_ours(self, kind: Any, data: Mapping[str, Any]) -> bool:
        prompt_id = data.get("prompt_id")
        if prompt_id is not None:
            return prompt_id == self.prompt_id
        # after a reconnect the server repeats the running node without a prompt_id
        return kind == "executing" and data.get("node") is not None and self.state is JobState.RUNNING

    def _feed_status_message(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        status = data.get("status")
        exec_info = status.get("exec_info") if isinstance(status, Mapping) else None
        remaining = exec_info.get("queue_remaining") if isinstance(exec_info, Mapping) else None
        return self.feed_status(int(remaining)) if _is_number(remaining) else []

    def _on_cached(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        nodes = data.get("nodes")
        if isinstance(nodes, list):
            self._finished_nodes.update(str(node) for node in nodes)
        return self._start_running()

    def _on_executing(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        node = data.get("node")
        if node is None:
            return self._finish()
        node = str(node)
        if self._current is not None and self._current != node:
            self._finished_nodes.add(self._current)
        self._current = node
        self._start_running(emit=False)
        phase = node_title(self._graph, node) or node_title(self._graph, data.get("display_node"))
        return self._update(phase=phase, step=None, steps=None)

    def _on_progress(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        value, maximum = data.get("value"), data.get("max")
        self._start_running(emit=False)
        if not _is_number(value) or not _is_number(maximum) or maximum <= 0:
            return self._update()
        node = str(data.get("node") or self._current or "")
        self._set_fraction(node, value / maximum)
        if node != self._current and self._current is not None:
            return self._update()
        return self._update(step=int(value), steps=int(maximum))

    def _on_progress_state(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        self._start_running(emit=False)
        nodes = data.get("nodes")
        steps: dict[str, Any] = {}
        for node_id, node in (nodes.items() if isinstance(nodes, Mapping) else ()):
            if not isinstance(node, Mapping):
                continue
            if node.get("state") == "finished":
                self._finished_nodes.add(str(node_id))
            elif _is_number(node.get("value")) and _is_number(node.get("max")) and node["max"] > 0:
                self._set_fraction(str(node_id), node["value"] / node["max"])
                # max 1.0 is the placeholder of nodes without a progress bar
                if str(node_id) == self._current and node["max"] > 1:
                    steps = {"step": int(node["value"]), "steps": int(node["max"])}
        return self._update(**steps)

    def _on_executed(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        if data.get("node") is not None:
            self._finished_nodes.add(str(data["node"]))
        return self._start_running()

    def _on_success(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        # every node ran, but history is only ready at ``executing`` with node null
        if self._current is not None:
            self._finished_nodes.add(self._current)
        return self._start_running()

    # -- previews -------------------------------------------------------------------------

    def _feed_preview(self, preview: Preview) -> list[ProgressEvent]:
        prompt_id = preview.prompt_id
        if prompt_id is not None and prompt_id != self.prompt_id:
            return []
        if prompt_id is None and self.state is not JobState.RUNNING:
            return []
        self._start_running(emit=False)
        if not self._want_previews:
            return self._update()
        return self._update(preview=bytes(preview.image))

    # -- state changes --------------------------------------------------------------------

    def _set_fraction(self, node: str, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self._fractions[node] = max(fraction, self._fractions.get(node, 0.0))

    def _start_running(self, *, emit: bool = True) -> list[ProgressEvent]:
        if self.state is JobState.QUEUED:
            self._event = self._event.evolve(state=JobState.RUNNING, queue_position=None)
            self._running_since = (self._clock(), self._event.percent)
        return self._update() if emit else []

    def _cancel(self, data: Mapping[str, Any] | None = None) -> list[ProgressEvent]:
        return self._update(state=JobState.CANCELLED, queue_position=None)

    def _fail(self, data: Mapping[str, Any]) -> list[ProgressEvent]:
        node_id = data.get("node_id")
        return self._update(
            state=JobState.FAILED,
            queue_position=None,
            error=failure_text(data, self._graph),
            failed_node=str(node_id) if node_id is not None else None,
        )

    def _finish(self) -> list[ProgressEvent]:
        return self._update(state=JobState.DONE, queue_position=None, percent=100.0)

    def _update(self, **changes: Any) -> list[ProgressEvent]:
        """Apply ``changes``, recompute percent, and return the event if something visible changed."""
        event = self._event.evolve(**changes)
        if "percent" not in changes and event.state not in TERMINAL_STATES:
            event = event.evolve(percent=max(event.percent, self._work_percent()))
        self._event = event
        visible = visible_key(event)
        if visible == self._shown:
            return []
        self._shown = visible
        return [self._stamped(event)]

    def _work_percent(self) -> float:
        if not self._counted:
            return 0.0
        done = self._finished_nodes & self._counted
        partial = sum(f for node, f in self._fractions.items() if node in self._counted and node not in done)
        return min(100.0 * (len(done) + partial) / len(self._counted), MAX_RUNNING_PERCENT)

    def _stamped(self, event: ProgressEvent) -> ProgressEvent:
        now = self._clock()
        return event.evolve(elapsed=max(now - self._started_at, 0.0), eta_seconds=self._eta(event, now))

    def _eta(self, event: ProgressEvent, now: float) -> float | None:
        if event.state is not JobState.RUNNING or self._running_since is None:
            return None
        since, start_percent = self._running_since
        seconds, gained = now - since, event.percent - start_percent
        if seconds < ETA_MIN_SECONDS or gained < ETA_MIN_PERCENT:
            return None
        return (100.0 - event.percent) * seconds / gained


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_HANDLERS: dict[str, Callable[[ProgressTracker, Mapping[str, Any]], list[ProgressEvent]]] = {
    "execution_cached": ProgressTracker._on_cached,
    "executing": ProgressTracker._on_executing,
    "progress": ProgressTracker._on_progress,
    "progress_state": ProgressTracker._on_progress_state,
    "executed": ProgressTracker._on_executed,
    "execution_error": ProgressTracker._fail,
    "execution_interrupted": ProgressTracker._cancel,
    "execution_success": ProgressTracker._on_success,
}


def visible_key(event: ProgressEvent) -> tuple:
    """What a user can see of an event; the tracker emits only when this changes."""
    return (event.state, event.queue_position, event.line_position, event.on_server, int(event.percent), event.phase,
            event.step, event.steps, event.preview)
