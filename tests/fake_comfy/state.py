"""The fake ComfyUI's state: queue, worker, history, files, and the fault-injection knobs.

One worker runs one prompt at a time, in ``number`` order (``front`` → negative numbers). The
queue order, ``status`` broadcasts (on put, take, finish, delete/clear) and history timing follow
docs/comfyui-protocol.md §2–§4 and §7: history is written before the final ``status`` / ``executing null``.

Fault knobs (all synchronous setters unless noted):
``fail_http(route, times, status, method)``, ``delay(route, seconds, method)``,
``reject_next(body)``, ``fail_node(class_type=, node_id=, message=, times=)``,
``drop_websockets_after(messages, prompt_id)``, ``await drop_websockets()``, ``crash()``,
``await die(mode="refuse"|"hang")``, ``await revive(restart=False)``, ``node_seconds``,
``time_scale`` (multiplies SlowProgress' seconds_per_step), ``preview_side`` (SlowProgress' preview
frames fit this square; 64 by default), ``output_cache`` (True: identical nodes are answered from the
cache like on the real server, ``cache.py``), ``pause()``/``resume()`` the worker; hostile answers:
``answer(route, body, …)`` (fixed, computed or ``Streamed`` bodies of any size, e.g.
``deep_json(100_000)``), ``send_raw(payload)`` (any websocket frame, ``HugeFrame`` of any size).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import string
import uuid
from dataclasses import dataclass
from pathlib import Path

from .cache import OutputCache
from .executor import PromptRun, QueueItem
from .faults import Body, HttpFaults
from .hub import ALL, CLIENT, Hub, HugeFrame
from .store import Files, History
from .templates import object_info_snapshot
from .validate import top_error, validate_prompt

__all__ = ["FakeComfy", "NodeFailureRule"]


@dataclass
class NodeFailureRule:
    class_type: str | None
    node_id: str | None
    message: str
    times: int


class FakeComfy:
    """State of one fake ComfyUI server (see module docstring for the knobs)."""

    def __init__(self, root: Path, *, object_info: dict | None = None, time_scale: float = 1.0):
        self.files = Files(root)
        self.history = History()
        self.hub = Hub()
        self.http = HttpFaults()
        # shared and never mutated here: the routes copy what they change (LoadImage's file list)
        self.object_info = object_info if object_info is not None else object_info_snapshot(shared=True)
        self.time_scale = time_scale
        self.preview_side = 64  # SlowProgress previews: the image scaled to fit this square
        self.output_cache = True
        self.cache = OutputCache()
        self.node_seconds: dict[str, float] = {}
        self.temp_prefix = "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))
        self.number = 0
        self.pending: list[tuple[float, int, QueueItem]] = []
        self.running: QueueItem | None = None
        self.last_node: str | None = None
        self.interrupt_requested = False
        self.posted: list[dict] = []  # every accepted POST /prompt body, for tests
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._node_failures: list[NodeFailureRule] = []
        self._worker: asyncio.Task | None = None
        self._current: asyncio.Task | None = None
        self.server = None  # aiohttp TestServer, set by attach(); needed by die()/revive()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.hub.start()
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        self.http.stop()
        for task in (self._worker, self._current):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.hub.stop()

    def attach(self, server: object) -> None:
        self.server = server

    # -- queue ----------------------------------------------------------------------------
    @property
    def queue_remaining(self) -> int:
        return len(self.pending) + (1 if self.running else 0)

    def status_data(self) -> dict:
        return {"status": {"exec_info": {"queue_remaining": self.queue_remaining}}}

    def broadcast_status(self, prompt_id: str | None = None) -> None:
        self.hub.send("status", self.status_data(), route=ALL, prompt_id=prompt_id)

    def queue_listing(self) -> dict:
        running = [self.running.to_list()] if self.running else []
        return {"queue_running": running, "queue_pending": [entry[2].to_list() for entry in self.pending]}

    def pending_ids(self) -> list[str]:
        """Prompt ids waiting in the queue, in order."""
        return [entry[2].prompt_id for entry in sorted(self.pending)]

    def submit(self, body: dict) -> tuple[int, dict]:
        """``POST /prompt`` on a parsed JSON body; raises TypeError for a non-dict prompt (→ 500)."""
        if "number" in body:
            number: float = float(body["number"])
        else:
            number = -self.number if body.get("front") else self.number
            self.number += 1
        if "prompt" not in body:
            return 400, {"error": top_error("no_prompt", "No prompt provided", "No prompt provided"), "node_errors": {}}
        graph = body["prompt"]
        if isinstance(graph, (list, str)) and not graph:  # nothing to iterate: no output node either
            return 400, {"error": top_error("prompt_no_outputs", "Prompt has no outputs"), "node_errors": {}}
        if not isinstance(graph, dict):
            raise TypeError("prompt is not an object")
        forced = self.http.take_rejection()
        if forced is not None:
            return 400, forced
        verdict = validate_prompt(graph, self.object_info, lambda name: self.files.input_path(name) is not None,
                                  body.get("partial_execution_targets"))
        if verdict.error is not None:
            return 400, {"error": verdict.error, "node_errors": verdict.node_errors}
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        self._push(QueueItem(number, prompt_id, graph, extra, verdict.outputs))
        self.posted.append(body)
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors}

    def _push(self, item: QueueItem) -> None:
        self._seq += 1
        heapq.heappush(self.pending, (item.number, self._seq, item))
        self.broadcast_status(item.prompt_id)
        self._wakeup.set()

    def delete_pending(self, prompt_ids: list[str]) -> None:
        kept = [entry for entry in self.pending if entry[2].prompt_id not in prompt_ids]
        if len(kept) != len(self.pending):
            self.pending = kept
            heapq.heapify(self.pending)
            self.broadcast_status()

    def clear_pending(self) -> None:
        self.pending = []
        self.broadcast_status()

    def interrupt(self, prompt_id: str | None) -> None:
        """Targeted interrupt only hits the running prompt; global hits whatever runs."""
        if self.running and prompt_id in (None, self.running.prompt_id):
            self.interrupt_requested = True

    # -- worker ---------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop taking prompts from the queue (the running one finishes)."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def crash(self) -> None:
        """The process dies now: the running prompt stops where it is (no end message, no history),
        nothing more runs until ``resume``. (An interrupt would not do: like the real server, a
        prompt clears the interrupt flag as it starts, so one taken a moment earlier runs to its end.)"""
        self.pause()
        if self.running and self._current:
            self.running = None
            self._current.cancel()

    async def _work(self) -> None:
        while True:
            await self._resumed.wait()
            if not self.pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            _, _, item = heapq.heappop(self.pending)
            self.running = item
            self.broadcast_status(item.prompt_id)
            self._current = asyncio.create_task(PromptRun(self, item).execute())
            try:
                entry = await self._current
            except asyncio.CancelledError:
                if self.running is not item:  # revive(restart=True) threw the prompt away
                    continue
                raise
            self._finish(item, entry)

    def _finish(self, item: QueueItem, entry: dict) -> None:
        self.history.put(item.prompt_id, entry)
        self.running = None
        self.last_node = None
        self.broadcast_status(item.prompt_id)
        if item.client_id:
            self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, route=CLIENT,
                          client_id=item.client_id, prompt_id=item.prompt_id)

    # -- execution faults -----------------------------------------------------------------
    def fail_node(self, *, class_type: str | None = None, node_id: str | None = None,
                  message: str = "injected failure", times: int = 1) -> None:
        """The next ``times`` executions of the matching node raise (→ ``execution_error``)."""
        self._node_failures.append(NodeFailureRule(class_type, node_id, message, times))

    def take_node_failure(self, node_id: str, class_type: str) -> None:
        from .nodes import NodeFailure

        for rule in self._node_failures:
            if rule.times > 0 and rule.class_type in (None, class_type) and rule.node_id in (None, node_id):
                rule.times -= 1
                raise NodeFailure("RuntimeError", rule.message)

    # -- http / network faults ------------------------------------------------------------
    def fail_http(self, route: str, *, times: int = 1, status: int = 500, method: str | None = None) -> None:
        self.http.fail(route, times=times, status=status, method=method)

    def delay(self, route: str, seconds: float, *, method: str | None = None) -> None:
        self.http.delay(route, seconds, method=method)

    def answer(self, route: str, body: Body, *, times: int = 1, status: int = 200, method: str | None = None,
               content_type: str = "application/json", chunked: bool = False) -> None:
        """The next ``times`` requests to ``route`` get ``body`` instead of the real answer."""
        self.http.answer(route, body, times=times, status=status, method=method, content_type=content_type,
                         chunked=chunked)

    def send_raw(self, payload: str | bytes | HugeFrame, *, client_id: str | None = None) -> None:
        """Send any websocket frame as it is (a ``HugeFrame`` is streamed)."""
        self.hub.send_raw(payload, client_id=client_id)

    def reject_next(self, body: dict | None = None) -> None:
        """The next POST /prompt answers 400 with ``body`` (default: a value_not_in_list error)."""
        self.http.reject_next(body)

    def drop_websockets_after(self, messages: int, prompt_id: str | None = None) -> None:
        self.hub.drop_after(messages, prompt_id)

    async def drop_websockets(self) -> None:
        await self.hub.drop_all()

    async def die(self, mode: str = "refuse") -> None:
        """Stop answering: ``refuse`` closes the port and every connection; ``hang`` never answers."""
        self.http.dead = mode
        self.hub.muted = mode == "hang"
        if mode == "refuse":
            await self.hub.drop_all()
            await self.http.stop_listening(self.server)

    async def revive(self, *, restart: bool = False) -> None:
        """Answer again; ``restart=True`` also forgets queue, running prompt and history."""
        if self.http.dead == "refuse":
            await self.http.listen_again(self.server)
        self.http.revive()
        self.hub.muted = False
        if restart:
            self.pending = []
            self.history.clear()
            if self.running and self._current:
                self.running = None
                self._current.cancel()
