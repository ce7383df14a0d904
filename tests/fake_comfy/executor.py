"""Runs one prompt of the fake ComfyUI and emits the recorded websocket sequence (docs/comfyui-protocol.md §6.2).

Per node: ``progress_state`` (running) · ``executing`` · [steps: TEXT · ``progress_state`` ·
preview-with-metadata · ``progress`` · legacy preview] · [``executed``] · ``progress_state``
(finished). Then ``execution_success`` | ``execution_error`` | ``execution_interrupted``. Nodes
run in the real server's order: dependencies first, and among ready nodes output nodes first
(then nodes feeding an output). Nodes whose results are cached (``cache.py``) do not run: they are
listed in ``execution_cached``, and a cached output node only sends ``executed`` and its
``progress_state``.
"""

from __future__ import annotations

import asyncio
import io
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .hub import CLIENT, CLIENT_OR_ALL, preview_frame, preview_meta_frame, text_frame
from .cache import node_signatures
from .nodes import IMPLEMENTED, NodeFailure, require_model_files, run_generic
from .templates import fill, node_state_fields

if TYPE_CHECKING:
    from .state import FakeComfy

__all__ = ["QueueItem", "PromptRun", "Interrupted", "execution_order"]

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}


class Interrupted(Exception):
    """POST /interrupt hit the running prompt."""


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    graph: dict
    extra_data: dict
    outputs: list[str]

    def to_list(self) -> list:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")


def _links(node: dict) -> list[str]:
    values = node.get("inputs", {}).values()
    return list(dict.fromkeys(v[0] for v in values if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)))


def execution_order(graph: dict, outputs: list[str], is_output, cached: Collection[str] = ()) -> list[str]:
    """Node ids in the order the real server's execution list runs them (an output always; what feeds
    it unless ``cached``)."""
    pending: dict[str, None] = {}
    blocking: dict[str, list[str]] = {}
    sources = {node_id: [s for s in _links(node) if s not in cached] for node_id, node in graph.items()}

    def add(node_id: str) -> None:
        if node_id in pending:
            return
        pending[node_id] = None
        for source in sources[node_id]:
            add(source)
            blocking.setdefault(source, []).append(node_id)

    for output in outputs:
        add(output)
    blocked = {n: len(sources[n]) for n in pending}
    order: list[str] = []
    while pending:
        ready = [n for n in pending if blocked[n] == 0]
        feeds = lambda n: any(is_output(b) for b in blocking.get(n, []))  # noqa: E731
        pick = next((n for n in ready if is_output(n)), None) or next((n for n in ready if feeds(n)), ready[0])
        order.append(pick)
        del pending[pick]
        for dependent in blocking.get(pick, []):
            blocked[dependent] -= 1
    return order


def _formatted(value: object) -> object:
    """An input as the real server reports it in ``current_inputs``: JSON scalars as they are, else ``str()``."""
    return value if value is None or isinstance(value, (int, float, bool, str)) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


class PromptRun:
    """One execution of a queued prompt; also the ``NodeContext`` its nodes see."""

    def __init__(self, fake: FakeComfy, item: QueueItem):
        self.fake = fake
        self.item = item
        self.time_scale = fake.time_scale
        self.preview_side = fake.preview_side
        self.node_id = ""
        self.states: dict[str, dict] = {}
        self.executed: list[str] = []
        self.results: dict[str, tuple] = {}
        self.outputs: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.signatures: dict[str, str] = {}
        self.messages: list[list] = []

    # -- messages -------------------------------------------------------------------------
    def _send(self, event: str, data: dict, route: str = CLIENT) -> None:
        self.fake.hub.send(event, data, route=route, client_id=self.item.client_id, prompt_id=self.item.prompt_id)

    def _record(self, event: str, data: dict, route: str = CLIENT) -> None:
        self.messages.append([event, data])
        self._send(event, data, route)

    def _progress_state(self) -> None:
        self._send("progress_state", {"prompt_id": self.item.prompt_id, "nodes": dict(self.states)}, CLIENT_OR_ALL)

    def _node_state(self, node_id: str) -> dict:
        values = {"value": 0.0, "max": 1.0, "state": "running", "node_id": node_id, "prompt_id": self.item.prompt_id,
                  "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}
        return {key: values[key] for key in node_state_fields()}

    # -- NodeContext ----------------------------------------------------------------------
    async def progress(self, value: int, total: int, preview: Image.Image | None = None,
                       preview_format: str = "JPEG") -> None:
        if self.fake.interrupt_requested:
            raise Interrupted
        self.states[self.node_id] = {**self.states[self.node_id], "value": value, "max": total}
        self._progress_state()
        image = self._encode(preview, preview_format) if preview is not None else None
        client, prompt = self.item.client_id, self.item.prompt_id
        if image is not None:
            metadata = {"node_id": self.node_id, "prompt_id": prompt, "display_node_id": self.node_id,
                        "parent_node_id": None, "real_node_id": self.node_id, "image_type": _MIME[preview_format]}
            self.fake.hub.send_binary("PREVIEW_IMAGE_WITH_METADATA", preview_meta_frame(image, metadata),
                                      client_id=client, prompt_id=prompt, audience="flagged")
        self._send("progress", fill("progress", value=value, max=total, prompt_id=prompt, node=self.node_id),
                   CLIENT_OR_ALL)
        if image is not None:
            self.fake.hub.send_binary("PREVIEW_IMAGE", preview_frame(image, preview_format),
                                      client_id=client, prompt_id=prompt, audience="unflagged")

    async def text(self, text: str) -> None:
        self.fake.hub.send_binary("TEXT", text_frame(self.node_id, text), client_id=self.item.client_id,
                                  prompt_id=self.item.prompt_id)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def save(self, kind: str, prefix: str, ext: str) -> tuple[Path, dict]:
        path, filename, subfolder = self.fake.files.save_path(kind, prefix, ext)
        return path, {"filename": filename, "subfolder": subfolder, "type": kind}

    def input_path(self, name: str) -> Path | None:
        return self.fake.files.input_path(name)

    def temp_prefix(self) -> str:
        return self.fake.temp_prefix

    @staticmethod
    def _encode(image: Image.Image, fmt: str) -> bytes:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, fmt, quality=95, compress_level=1)  # as the real server encodes previews
        return buffer.getvalue()

    # -- execution ------------------------------------------------------------------------
    async def execute(self) -> dict:
        """Run the prompt; returns its history entry."""
        prompt_id = self.item.prompt_id
        self.fake.interrupt_requested = False
        self._record("execution_start", fill("execution_start", prompt_id=prompt_id, timestamp=_now_ms()))
        cached = self._begin_cache()
        self._record("execution_cached", fill("execution_cached", nodes=list(cached), prompt_id=prompt_id,
                                              timestamp=_now_ms()))
        order = execution_order(self.item.graph, self.item.outputs, self._is_output, cached)
        try:
            for node_id in order:
                if self.fake.interrupt_requested:
                    raise Interrupted
                if node_id in cached:
                    self._replay_cached(node_id, cached[node_id][1])
                else:
                    await self._run_node(node_id)
        except Interrupted:
            self._record("execution_interrupted", fill(
                "execution_interrupted", prompt_id=prompt_id, node_id=self.node_id, node_type=self._class(self.node_id),
                executed=list(self.executed), timestamp=_now_ms()), CLIENT_OR_ALL)
            return self._entry("error", False)
        except Exception as exc:  # a node failed: execution_error, like the real server
            self._record("execution_error", self._error_data(exc))
            return self._entry("error", False)
        self._record("execution_success", fill("execution_success", prompt_id=prompt_id, timestamp=_now_ms()))
        return self._entry("success", True)

    def _begin_cache(self) -> dict[str, tuple[tuple, dict | None]]:
        if not self.fake.output_cache:
            return {}
        self.signatures = node_signatures(self.item.graph, self.fake.object_info, self.fake.files.input_digest)
        cached = self.fake.cache.begin(self.item.graph, self.signatures)
        self.results.update({node_id: results for node_id, (results, _) in cached.items()})
        return cached

    def _replay_cached(self, node_id: str, ui: dict | None) -> None:
        """A cached output node: its UI output again, no ``executing``, not in ``executed``."""
        if ui is not None:
            self._record_ui(node_id, ui)
        self._send("executed", fill("executed", node=node_id, display_node=node_id, output=ui,
                                    prompt_id=self.item.prompt_id))
        self.states[node_id] = {**self._node_state(node_id), "value": 1, "max": 1, "state": "finished"}
        self._progress_state()

    def _record_ui(self, node_id: str, ui: dict) -> None:
        self.outputs[node_id] = ui
        self.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}

    def _class(self, node_id: str) -> str:
        return self.item.graph[node_id]["class_type"] if node_id else ""

    def _is_output(self, node_id: str) -> bool:
        return bool(self.fake.object_info[self._class(node_id)].get("output_node"))

    def _inputs(self, node_id: str) -> dict:
        resolved = {}
        for name, value in self.item.graph[node_id].get("inputs", {}).items():
            is_link = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            resolved[name] = self.results[value[0]][value[1]] if is_link else value
        return resolved

    async def _run_node(self, node_id: str) -> None:
        self.node_id = node_id
        self.fake.last_node = node_id
        class_type = self._class(node_id)
        self.states[node_id] = self._node_state(node_id)
        self._progress_state()
        self._send("executing", fill("executing", node=node_id, display_node=node_id, prompt_id=self.item.prompt_id))
        await self.sleep(self.fake.node_seconds.get(class_type, self.fake.node_seconds.get("*", 0.0)))
        self.fake.take_node_failure(node_id, class_type)
        inputs = self._inputs(node_id)
        require_model_files(class_type, self.fake.object_info[class_type], inputs)
        implementation = IMPLEMENTED.get(class_type)
        if implementation is not None:
            results, ui = await implementation(self, inputs)
        else:
            results, ui = await run_generic(self, class_type, self.fake.object_info[class_type], inputs)
        self.results[node_id] = results
        self.fake.cache.store(self.signatures.get(node_id), results, ui)
        if ui is not None:
            self._record_ui(node_id, ui)
            self._send("executed", fill("executed", node=node_id, display_node=node_id, output=ui,
                                        prompt_id=self.item.prompt_id))
        state = self.states[node_id]
        self.states[node_id] = {**state, "value": state["max"], "state": "finished"}
        self._progress_state()
        self.executed.append(node_id)

    def _error_data(self, exc: Exception) -> dict:
        failure = exc if isinstance(exc, NodeFailure) else NodeFailure(type(exc).__name__, str(exc))
        inputs = {name: [_formatted(value)] for name, value in self._inputs_safe().items()}
        return fill("execution_error", prompt_id=self.item.prompt_id, node_id=self.node_id,
                    node_type=self._class(self.node_id), executed=list(self.executed),
                    exception_message=f"{failure.message}\n", exception_type=failure.exception_type,
                    traceback=traceback.format_tb(exc.__traceback__)[-2:], current_inputs=inputs,
                    current_outputs=list(self.item.graph), timestamp=_now_ms())

    def _inputs_safe(self) -> dict:
        try:
            return self._inputs(self.node_id)
        except (KeyError, IndexError):
            return {}

    def _entry(self, status: str, completed: bool) -> dict:
        return {"prompt": self.item.to_list(), "outputs": self.outputs,
                "status": {"status_str": status, "completed": completed, "messages": self.messages},
                "meta": self.meta}
