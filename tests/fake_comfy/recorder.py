"""Test helper: post a prompt and record every websocket message until it is done.

Works against the fake and against a real server (the contract tests use it too).
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass, field

import aiohttp

__all__ = ["Recording", "record_prompt", "message_kinds", "capture_kinds", "BINARY_NAMES"]

BINARY_NAMES = {1: "PREVIEW_IMAGE", 3: "TEXT", 4: "PREVIEW_IMAGE_WITH_METADATA"}


@dataclass
class Recording:
    status: int
    answer: dict | str
    messages: list[dict | bytes] = field(default_factory=list)

    @property
    def prompt_id(self) -> str:
        return self.answer["prompt_id"]

    def of_type(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.messages if isinstance(m, dict) and m["type"] == kind]


def message_kinds(messages: list[dict | bytes]) -> list[str]:
    """``type`` of text messages, the event name of binary frames."""
    return [m["type"] if isinstance(m, dict) else BINARY_NAMES[struct.unpack(">I", m[:4])[0]] for m in messages]


def capture_kinds(captured: list[dict]) -> list[str]:
    return [m.get("type") or m["event_name"] for m in captured]


def _done(message: dict | bytes, prompt_id: str) -> bool:
    return (isinstance(message, dict) and message["type"] == "executing"
            and message["data"].get("node") is None and message["data"].get("prompt_id") == prompt_id)


async def record_prompt(session: aiohttp.ClientSession, url: str, graph: dict, *, client_id: str,
                        flags: bool = False, timeout: float = 30.0, **body: object) -> Recording:
    """Connect ``/ws``, post ``graph``, collect messages until ``executing null`` (or the 400)."""
    ws = await session.ws_connect(f"{url}/ws?clientId={client_id}")
    try:
        await ws.receive_json(timeout=timeout)  # the initial status with sid
        if flags:
            await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            await ws.receive_json(timeout=timeout)
        response = await session.post(f"{url}/prompt", json={"prompt": graph, "client_id": client_id, **body})
        answer = await response.json() if response.content_type == "application/json" else await response.text()
        recording = Recording(response.status, answer)
        if response.status != 200:
            return recording
        async with asyncio.timeout(timeout):
            while not recording.messages or not _done(recording.messages[-1], recording.prompt_id):
                frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    recording.messages.append(json.loads(frame.data))
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    recording.messages.append(frame.data)
                else:
                    raise ConnectionError(f"websocket closed: {frame.type}")
        return recording
    finally:
        await ws.close()
