"""Websocket side of the fake ComfyUI: sockets by client id, routing, binary frames, drops.

Every outgoing message goes through one queue drained by one sender task, so all sockets see
the server's order (docs/comfyui-protocol.md §6). Routing (§6.1): ``ALL`` for ``status``; ``CLIENT`` for
execution messages (only the prompt's client_id socket, nothing without client_id);
``CLIENT_OR_ALL`` for progress, previews, text and ``execution_interrupted`` (everyone when the
prompt has no client_id). Binary frames follow §6.3.

Hostile frames (``send_raw``): any text or bytes as they are, or a ``HugeFrame`` of any size whose
header goes out first and whose payload is streamed in chunks (the fake never holds it whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["Hub", "ALL", "CLIENT", "CLIENT_OR_ALL", "HugeFrame", "preview_frame", "preview_meta_frame",
           "text_frame"]

ALL, CLIENT, CLIENT_OR_ALL = "all", "client", "client_or_all"
_FORMATS = {"JPEG": 1, "PNG": 2}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class HugeFrame:
    """A websocket message of ``size`` bytes of zeros (binary) or spaces (text), streamed."""

    size: int
    binary: bool = True


async def _stream_frame(ws: web.WebSocketResponse, frame: HugeFrame) -> None:
    """Write ``frame`` straight to the socket's transport: the header first, then the payload while
    the peer reads (it stops when the peer closes the connection, as a bounded client does)."""
    transport = ws._writer.transport  # aiohttp only sends whole messages; this one must not exist whole
    transport.write(struct.pack("!BBQ", 0x80 | (0x2 if frame.binary else 0x1), 127, frame.size))
    left = frame.size
    while left > 0 and not transport.is_closing():
        transport.write((b"\0" if frame.binary else b" ") * min(_CHUNK, left))
        left -= _CHUNK
        while transport.get_write_buffer_size() > 4 * _CHUNK and not transport.is_closing():
            await asyncio.sleep(0.001)


def preview_frame(image: bytes, fmt: str) -> bytes:
    """Event 1 PREVIEW_IMAGE: u32 type, u32 format (1 JPEG, 2 PNG), image bytes."""
    return struct.pack(">II", 1, _FORMATS[fmt]) + image


def preview_meta_frame(image: bytes, metadata: dict) -> bytes:
    """Event 4 PREVIEW_IMAGE_WITH_METADATA: u32 type, u32 json length, json, image bytes."""
    blob = json.dumps(metadata).encode()
    return struct.pack(">II", 4, len(blob)) + blob + image


def text_frame(node_id: str, text: str) -> bytes:
    """Event 3 TEXT: u32 type, u32 node-id length, node id, UTF-8 text."""
    node = node_id.encode()
    return struct.pack(">II", 3, len(node)) + node + text.encode()


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    preview_metadata: bool = False


@dataclass
class _Outgoing:
    route: str
    client_id: str | None
    prompt_id: str | None
    event: str
    payload: str | bytes | HugeFrame
    audience: str = "any"  # "any" | "flagged" | "unflagged" (feature flag supports_preview_metadata)


@dataclass
class _DropRule:
    after: int
    prompt_id: str | None
    seen: int = 0


@dataclass
class Hub:
    """Open sockets keyed by client id, plus the single ordered outbox."""

    sockets: dict[str, _Socket] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)  # (event, prompt_id) as sent
    _outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    _sender: asyncio.Task | None = None
    _drop: _DropRule | None = None
    _all_ws: set = field(default_factory=set)
    muted: bool = False  # a hung server: queued messages are never delivered

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())

    async def stop(self) -> None:
        if self._sender:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        await self.drop_all()

    def register(self, sid: str, ws: web.WebSocketResponse) -> None:
        """A new socket with the same client id replaces the old one (which stays open, unrouted)."""
        self.sockets[sid] = _Socket(ws)
        self._all_ws.add(ws)

    def unregister(self, sid: str, ws: web.WebSocketResponse) -> None:
        self._all_ws.discard(ws)
        if sid in self.sockets and self.sockets[sid].ws is ws:
            del self.sockets[sid]

    def set_preview_metadata(self, sid: str, ws: web.WebSocketResponse) -> None:
        if sid in self.sockets and self.sockets[sid].ws is ws:
            self.sockets[sid].preview_metadata = True

    def drop_after(self, messages: int, prompt_id: str | None = None) -> None:
        """Close every socket right after ``messages`` more messages of ``prompt_id`` (any prompt if None)."""
        self._drop = _DropRule(messages, prompt_id)

    async def drop_all(self) -> None:
        """The server closes every websocket now."""
        sockets = list(self._all_ws)
        self.sockets.clear()
        self._all_ws.clear()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()

    def send(self, event: str, data: dict, *, route: str, client_id: str | None = None,
             prompt_id: str | None = None) -> None:
        text = json.dumps({"type": event, "data": data})
        self._outbox.put_nowait(_Outgoing(route, client_id, prompt_id, event, text))

    def send_binary(self, name: str, frame: bytes, *, client_id: str | None, prompt_id: str | None,
                    audience: str = "any") -> None:
        self._outbox.put_nowait(_Outgoing(CLIENT_OR_ALL, client_id, prompt_id, name, frame, audience))

    def send_raw(self, payload: str | bytes | HugeFrame, *, client_id: str | None = None) -> None:
        """A hostile frame, in order with everything else, to every socket (or ``client_id``'s)."""
        route = ALL if client_id is None else CLIENT
        self._outbox.put_nowait(_Outgoing(route, client_id, None, "raw", payload))

    async def flush(self) -> None:
        """Wait until everything queued so far was sent (used before dropping 'at a moment')."""
        while not self._outbox.empty():
            await asyncio.sleep(0.001)

    def _targets(self, item: _Outgoing) -> list[_Socket]:
        if item.route == ALL or (item.route == CLIENT_OR_ALL and item.client_id is None):
            targets = list(self.sockets.values())
        else:
            socket = self.sockets.get(item.client_id) if item.client_id else None
            targets = [socket] if socket else []
        if item.audience == "any":
            return targets
        flagged = item.audience == "flagged"
        return [s for s in targets if s.preview_metadata == flagged]

    async def _send_loop(self) -> None:
        while True:
            item: _Outgoing = await self._outbox.get()
            for socket in [] if self.muted else self._targets(item):
                with contextlib.suppress(Exception):
                    if isinstance(item.payload, HugeFrame):
                        await _stream_frame(socket.ws, item.payload)
                    elif isinstance(item.payload, bytes):
                        await socket.ws.send_bytes(item.payload)
                    else:
                        await socket.ws.send_str(item.payload)
            self.log.append((item.event, item.prompt_id))
            await self._maybe_drop(item)

    async def _maybe_drop(self, item: _Outgoing) -> None:
        rule = self._drop
        if rule is None or item.prompt_id is None or rule.prompt_id not in (None, item.prompt_id):
            return
        rule.seen += 1
        if rule.seen >= rule.after:
            self._drop = None
            await self.drop_all()
