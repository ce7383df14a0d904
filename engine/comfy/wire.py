"""ComfyUI wire types: the JSON we send, and the small records parsed from what the server sends.

``PromptRequest`` is the body of ``POST /prompt`` (we build it, so its type is a promise). What
the server sends is never trusted to have a shape (docs/comfyui-protocol.md describes it): it is
read field by field with ``mapping_at`` / ``list_at`` and parsed into frozen dataclasses —
``Queued``, ``QueueSnapshot``, ``Preview``, ``ProgressText`` — that the rest of the engine uses;
``parse_binary_frame`` decodes the websocket's binary frames (§6.3). Pure code, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from ..bounded import parse_json
from ..errors import LimitExceeded
from ..limits import DEFAULT_LIMITS

__all__ = [
    "PromptRequest",
    "Queued",
    "QueueSnapshot",
    "Preview",
    "ProgressText",
    "parse_binary_frame",
    "queue_snapshot",
    "mapping_at",
    "list_at",
    "TERMINAL_EVENTS",
]

TERMINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class PromptRequest(TypedDict):
    prompt: dict[str, Any]
    client_id: str
    prompt_id: str
    front: NotRequired[bool]
    extra_data: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class Queued:
    """``POST /prompt`` accepted: the queue ``number`` and any errors of outputs that will not run."""

    prompt_id: str
    number: float
    node_errors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSnapshot:
    """``GET /queue`` as prompt ids; ``pending`` in execution order (sorted by number)."""

    running: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    def position(self, prompt_id: str) -> int | None:
        """1-based place among pending prompts; None when running or not queued."""
        return self.pending.index(prompt_id) + 1 if prompt_id in self.pending else None

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


@dataclass(frozen=True)
class Preview:
    """A preview image from a binary websocket frame (event 1 or 4; SaveImageWebsocket too).

    ``node_id`` and ``prompt_id`` are known only for event 4 (``PREVIEW_IMAGE_WITH_METADATA``).
    """

    image: bytes
    mime: str
    node_id: str | None = None
    prompt_id: str | None = None


@dataclass(frozen=True)
class ProgressText:
    """A TEXT binary frame (event 3): a node's progress text, e.g. ``"step 2/5"``."""

    node_id: str
    text: str
    prompt_id: str | None = None


def mapping_at(payload: Any, key: str) -> Mapping[str, Any]:
    """``payload[key]`` when it is a JSON object, else ``{}`` (nothing a server sends is trusted)."""
    value = payload.get(key) if isinstance(payload, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def list_at(payload: Any, key: str) -> list[Any]:
    """``payload[key]`` when it is a JSON array, else ``[]``."""
    value = payload.get(key) if isinstance(payload, Mapping) else None
    return value if isinstance(value, list) else []


def queue_snapshot(listing: Mapping[str, Any]) -> QueueSnapshot:
    """Parse ``GET /queue``; malformed items are skipped."""

    def items(key: str) -> list[list[Any]]:
        raw = listing.get(key) if isinstance(listing, Mapping) else None
        raw = raw if isinstance(raw, list) else []
        return [i for i in raw if isinstance(i, list) and len(i) >= 2 and isinstance(i[0], int | float)]

    running = tuple(str(item[1]) for item in items("queue_running"))
    pending = tuple(str(item[1]) for item in sorted(items("queue_pending"), key=lambda item: item[0]))
    return QueueSnapshot(running, pending)


_IMAGE_FORMATS = {1: "image/jpeg", 2: "image/png"}


def parse_binary_frame(frame: bytes) -> Preview | ProgressText | None:
    """Decode a binary websocket frame; None for unknown events or truncated frames."""
    if len(frame) < 8:
        return None
    event, word = struct.unpack(">II", frame[:8])
    body = frame[8:]
    if event == 1 and word in _IMAGE_FORMATS:
        return Preview(image=body, mime=_IMAGE_FORMATS[word])
    if event == 3 and word <= len(body):
        try:
            return ProgressText(node_id=body[:word].decode(), text=body[word:].decode())
        except UnicodeDecodeError:
            return None
    if event == 4 and word <= len(body):
        try:
            meta = parse_json(body[:word], max_depth=DEFAULT_LIMITS.max_json_depth, what="a preview's metadata")
        except (ValueError, LimitExceeded):
            return None
        if not isinstance(meta, dict):
            return None
        text = lambda key: str(meta[key]) if meta.get(key) is not None else None  # noqa: E731
        return Preview(image=body[word:], mime=text("image_type") or "image/jpeg",
                       node_id=text("node_id"), prompt_id=text("prompt_id"))
    return None
