"""The shared websocket of one backend: routes ComfyUI messages to the prompts that wait for them.

One ``EventStream`` per backend and client id, shared by all jobs. ``subscribe(prompt_id)``
(call it *before* ``queue_prompt``) returns an ``asyncio.Queue`` that receives that prompt's
text messages as dicts ``{"type", "data"}`` and its binary frames (``Preview``, ``ProgressText``).
``status`` broadcasts are not copied to every prompt (with hundreds queued that is the main cost):
they go to the ``statuses()`` listeners (the pool, which keeps one shared queue snapshot).
Routing is by ``data.prompt_id``; messages and frames without one (``executing`` after a
reconnect, legacy previews, TEXT frames) belong to the prompt of ours that is running, tracked
from ``execution_start`` / ``executing``.

Consumer contract: a prompt is finished when its queue yields ``executing`` with ``node: None``
and its prompt_id; history is then guaranteed. Nothing is delivered for it afterwards.

The socket reconnects with capped exponential backoff and jitter. After every reconnect each
unfinished subscription is reconciled: if ``/history`` has it, its terminal message
(``execution_success`` / ``execution_error`` / ``execution_interrupted``) is replayed from
``status.messages`` followed by ``executing null`` (both with ``"reconciled": True`` in data);
if it is queued or running, live messages continue; if the server knows it nowhere for
``lost_after`` seconds, an ``execution_error`` "lost by the server" ends it.

Frames are bounded (``Limits``): a message larger than ``max_websocket_frame_bytes`` is refused
from its header (the socket closes and reconnects) and ends the prompt that is running with an
``execution_error`` naming the limit; a text message nested deeper than ``max_json_depth`` is
dropped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..bounded import parse_json
from ..errors import ComfyError, LimitExceeded
from ..limits import human_size
from .client import ComfyClient
from .wire import TERMINAL_EVENTS, Preview, ProgressText, list_at, mapping_at, parse_binary_frame

__all__ = ["EventStream", "Message", "LOST_MESSAGE"]

log = logging.getLogger(__name__)

Message = dict[str, Any] | Preview | ProgressText
LOST_MESSAGE = "lost by the server"
_FLAGS = {"type": "feature_flags", "data": {"supports_preview_metadata": True}}


@dataclass
class _Subscription:
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    terminal_seen: bool = False
    done: bool = False


def _too_big(error: Any) -> bool:
    return isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


def _is_finish(message: dict[str, Any], prompt_id: str) -> bool:
    data = message.get("data") or {}
    return message.get("type") == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id


class EventStream:
    """One websocket per backend, shared by all jobs (see module docstring)."""

    def __init__(self, client: ComfyClient, *, backoff_base: float = 0.25, backoff_cap: float = 10.0,
                 lost_after: float = 30.0, recheck_interval: float = 0.5, heartbeat: float | None = 30.0,
                 preview_metadata: bool = True, rng: random.Random | None = None):
        self.client = client
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lost_after = lost_after
        self.recheck_interval = recheck_interval
        self.heartbeat = heartbeat
        self.preview_metadata = preview_metadata
        self.connected = False
        self.reconnects = 0
        self.queue_remaining: int | None = None
        self.last_message_at = float("-inf")  # monotonic time of the last frame received
        self._rng = rng or random.Random()
        self._subscriptions: dict[str, _Subscription] = {}
        self._status_listeners: list[asyncio.Queue] = []
        self._running: str | None = None
        self._ever_connected = False
        self._connected_event = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._reconcilers: set[asyncio.Task] = set()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.on_stray_start: Callable[[str], None] | None = None  # a prompt nobody here follows started

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background (see ``wait_connected``)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"events-{self.client.name}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._connected_event.wait()

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._reconcilers) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        if self._ws is not None:
            await self._ws.close()
        self.connected = False

    async def __aenter__(self) -> EventStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(self, prompt_id: str) -> asyncio.Queue:
        """The queue of ``prompt_id``'s messages; subscribe before queueing the prompt."""
        return self._subscriptions.setdefault(prompt_id, _Subscription()).queue

    def unsubscribe(self, prompt_id: str) -> None:
        self._subscriptions.pop(prompt_id, None)

    def finished(self, prompt_id: str) -> bool:
        subscription = self._subscriptions.get(prompt_id)
        return subscription is not None and subscription.done

    def statuses(self) -> asyncio.Queue:
        """A queue of ``queue_remaining`` values from every ``status`` broadcast."""
        listener: asyncio.Queue = asyncio.Queue()
        self._status_listeners.append(listener)
        return listener

    def stop_statuses(self, listener: asyncio.Queue) -> None:
        with contextlib.suppress(ValueError):
            self._status_listeners.remove(listener)

    # -- connection -----------------------------------------------------------------------
    async def reconnect(self) -> None:
        """Drop the current socket (open but silent): the stream connects again and reconciles every
        unfinished subscription from ``/history``."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    def backoff(self, attempt: int) -> float:
        """Seconds before reconnect ``attempt`` (1-based): capped exponential, jittered to 50–100 %."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return delay * self._rng.uniform(0.5, 1.0)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                self._ws = await self.client.connect_websocket(heartbeat=self.heartbeat)
            except ComfyError:
                attempt += 1
                await asyncio.sleep(self.backoff(attempt))
                continue
            self._on_connected()
            attempt = 1
            try:
                await self._listen(self._ws)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                log.info("backend %s: websocket failed (%s)", self.client.name, type(exc).__name__)
            except Exception:  # a bug of ours on an odd message: reconnect rather than go deaf for good
                log.exception("backend %s: websocket reader crashed; reconnecting", self.client.name)
            finally:
                self.connected = False
                self._connected_event.clear()
                with contextlib.suppress(Exception):
                    await self._ws.close()
            log.info("backend %s: websocket closed, reconnecting", self.client.name)
            await asyncio.sleep(self.backoff(attempt))

    def _on_connected(self) -> None:
        self.connected = True
        self._connected_event.set()
        if self._ever_connected:
            self.reconnects += 1  # self._running is kept: a reconnect message "executing" has no prompt_id
            for prompt_id, subscription in list(self._subscriptions.items()):
                if not subscription.done:
                    task = asyncio.create_task(self._reconcile(prompt_id))
                    self._reconcilers.add(task)
                    task.add_done_callback(self._reconcilers.discard)
        self._ever_connected = True

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        if self.preview_metadata:
            await ws.send_json(_FLAGS)
        async for frame in ws:
            self.last_message_at = time.monotonic()
            if frame.type == aiohttp.WSMsgType.TEXT:
                message = self._parse(frame.data)
                if isinstance(message, dict):
                    self._on_text(message)
            elif frame.type == aiohttp.WSMsgType.BINARY:
                self._on_binary(frame.data)
            elif frame.type == aiohttp.WSMsgType.ERROR and _too_big(frame.data):
                self._on_frame_too_big()

    def _parse(self, text: str) -> Any:
        try:
            return parse_json(text, max_depth=self.client.limits.max_json_depth, what="a websocket message")
        except ValueError:
            return None
        except LimitExceeded as exc:
            log.warning("backend %s: dropped %s", self.client.name, exc)
            return None

    def _on_frame_too_big(self) -> None:
        """The server sent a message over ``max_websocket_frame_bytes``: it is lost, and with it
        (most likely) an output or preview of the prompt running now, which therefore fails."""
        limit = self.client.limits.max_websocket_frame_bytes
        text = f"the server sent a websocket message larger than {human_size(limit)} (limit max_websocket_frame_bytes)"
        log.warning("backend %s: %s", self.client.name, text)
        if self._running is not None:
            data = {**self._lost_data(self._running), "exception_message": text, "exception_type": "LimitExceeded"}
            self._finish_synthetic(self._running, "execution_error", data)

    # -- routing --------------------------------------------------------------------------
    def _on_text(self, message: dict[str, Any]) -> None:
        kind, data = message.get("type"), message.get("data")
        if not isinstance(data, dict):
            return
        if kind == "status":
            self._on_status(data)
            return
        prompt_id = data.get("prompt_id")
        if kind == "execution_start" and isinstance(prompt_id, str):
            self._running = prompt_id
            if prompt_id not in self._subscriptions and self.on_stray_start is not None:
                self.on_stray_start(prompt_id)
        prompt_id = prompt_id if isinstance(prompt_id, str) else self._running
        if prompt_id is not None:
            self._deliver(prompt_id, message)
        if kind == "executing" and data.get("node") is None and prompt_id == self._running:
            self._running = None

    def _on_status(self, data: dict[str, Any]) -> None:
        status = data.get("status")
        exec_info = status.get("exec_info") if isinstance(status, dict) else None
        remaining = exec_info.get("queue_remaining") if isinstance(exec_info, dict) else None
        if not isinstance(remaining, int) or isinstance(remaining, bool):
            return
        self.queue_remaining = remaining
        for listener in self._status_listeners:
            listener.put_nowait(remaining)

    def _on_binary(self, frame: bytes) -> None:
        parsed = parse_binary_frame(frame)
        if parsed is None:
            return
        prompt_id = parsed.prompt_id or self._running
        if prompt_id is not None:
            self._deliver(prompt_id, dataclasses.replace(parsed, prompt_id=prompt_id))

    def _deliver(self, prompt_id: str, message: Message) -> None:
        subscription = self._subscriptions.get(prompt_id)
        if subscription is None or subscription.done:
            return
        subscription.queue.put_nowait(message)
        if isinstance(message, dict):
            subscription.terminal_seen |= message.get("type") in TERMINAL_EVENTS
            if _is_finish(message, prompt_id):
                subscription.done = True
                if self._running == prompt_id:
                    self._running = None

    # -- reconcile ------------------------------------------------------------------------
    async def _reconcile(self, prompt_id: str) -> None:
        """After a reconnect: replay the outcome from history, keep waiting, or declare it lost."""
        deadline = asyncio.get_running_loop().time() + self.lost_after
        while not self.finished(prompt_id) and prompt_id in self._subscriptions:
            try:
                entry = await self.client.history(prompt_id)
                if entry is not None:
                    self._replay(prompt_id, entry)
                    return
                snapshot = await self.client.queue()
            except ComfyError:
                await asyncio.sleep(self.recheck_interval)  # cannot tell yet: not evidence of loss
                continue
            if prompt_id in snapshot:
                if prompt_id in snapshot.running:
                    self._running = prompt_id
                return
            if asyncio.get_running_loop().time() >= deadline:
                self._finish_synthetic(prompt_id, "execution_error", self._lost_data(prompt_id))
                return
            await asyncio.sleep(self.recheck_interval)

    def _replay(self, prompt_id: str, entry: dict[str, Any]) -> None:
        status = mapping_at(entry, "status")
        messages = [m for m in list_at(status, "messages") if isinstance(m, list) and len(m) == 2]
        terminal = [m for m in messages if m[0] in TERMINAL_EVENTS and isinstance(m[1], dict)]
        if terminal:
            event, data = terminal[-1]
        elif status.get("status_str") == "success":
            event, data = "execution_success", {"prompt_id": prompt_id}
        else:
            event, data = "execution_error", {**self._lost_data(prompt_id), "exception_message": "failed"}
        self._finish_synthetic(prompt_id, event, data)

    def _finish_synthetic(self, prompt_id: str, event: str, data: dict[str, Any]) -> None:
        subscription = self._subscriptions.get(prompt_id)
        if subscription is None or subscription.done:
            return
        if not subscription.terminal_seen:
            self._deliver(prompt_id, {"type": event, "data": {**data, "reconciled": True}})
        self._deliver(prompt_id, {"type": "executing",
                                  "data": {"node": None, "prompt_id": prompt_id, "reconciled": True}})

    @staticmethod
    def _lost_data(prompt_id: str) -> dict[str, Any]:
        return {"prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": [],
                "exception_message": LOST_MESSAGE, "exception_type": "PromptLost", "traceback": [],
                "current_inputs": {}, "current_outputs": [], "timestamp": int(time.time() * 1000)}
