"""Payload templates for the fake ComfyUI, taken from the recorded captures (never hand-typed).

The captures under ``tests/data/comfyui/captures`` hold what a real server sent; this module
loads them once and hands out fresh copies: the ``/system_stats``, ``/features`` and ``/models``
bodies, and the exact field sets of websocket messages, so the fake fills the same keys in the
same order as the real server.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "load_capture",
    "object_info_snapshot",
    "info_body",
    "message_fields",
    "fill",
    "node_state_fields",
    "INTERNAL_ERROR_TEXT",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "comfyui"
INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


@functools.cache
def _capture(name: str) -> dict:
    return json.loads((DATA_DIR / "captures" / f"{name}.json").read_text())


def load_capture(name: str) -> dict:
    """A fresh copy of ``captures/<name>.json``."""
    return copy.deepcopy(_capture(name))


@functools.cache
def _object_info() -> dict:
    return json.loads((DATA_DIR / "object_info.json").read_text())


def object_info_snapshot(*, shared: bool = False) -> dict:
    """The recorded ``GET /object_info``: a fresh copy, or the shared read-only one (fast)."""
    return _object_info() if shared else copy.deepcopy(_object_info())


def info_body(route: str) -> object:
    """The recorded JSON body of a plain GET route (``/system_stats``, ``/features``, ``/models``)."""
    return copy.deepcopy(_capture("info")[route]["json"])


@functools.cache
def _recorded_messages() -> dict[str, dict]:
    """First recorded ``data`` of every websocket message type, from the scenario captures."""
    found: dict[str, dict] = {}
    streams = [
        _capture("progress_b")["no_feature_flags"]["ws_messages"],
        _capture("fail_c")["ws_messages"],
        _capture("interrupt")["ws_messages"],
        _capture("video_e")["ws_messages"],
    ]
    for stream in streams:
        for message in stream:
            if "type" in message:
                found.setdefault(message["type"], message["data"])
    return found


def message_fields(event: str) -> tuple[str, ...]:
    """The keys, in the recorded order, of a websocket message ``event``'s ``data``."""
    return tuple(_recorded_messages()[event])


def node_state_fields() -> tuple[str, ...]:
    """The keys of one node entry inside a recorded ``progress_state`` message."""
    nodes = _recorded_messages()["progress_state"]["nodes"]
    return tuple(next(iter(nodes.values())))


def fill(event: str, **values: object) -> dict:
    """Build the ``data`` of ``event`` with exactly the recorded keys; a missing value is a bug."""
    fields = message_fields(event)
    unknown = set(values) - set(fields)
    missing = set(fields) - set(values)
    if unknown or missing:
        raise KeyError(f"{event}: unknown {sorted(unknown)}, missing {sorted(missing)}")
    return {key: values[key] for key in fields}
