"""HTTP-level faults of the fake ComfyUI: 5xx answers, slow routes, forced 400s, a dead server,
and hostile answers.

Routes are matched by path without the ``/api`` prefix: ``"/history"`` matches ``/history`` and
``/history/<id>``. A dead server either refuses (listening socket closed, open connections
aborted) or hangs (requests wait until ``revive``, then are answered in the order they came). As
on a real server, a held or slowed request that changes something (not a GET) is carried out even
when its client gave up waiting: a hung server queues a prompt once it answers again. ``held``
counts the requests waiting for ``revive``, by route, so a test can act while one is held.

Hostile answers (``answer``) replace a route's body: fixed bytes, bytes made from the request
(``body(request)``), or a ``Streamed`` body of any size written in chunks, so a 300 MB answer costs
the fake no memory; with or without a declared Content-Length.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web

from .templates import INTERNAL_ERROR_TEXT

__all__ = ["HttpFaults", "fault_middleware", "FAKE_KEY", "route_of", "Streamed", "deep_json"]

FAKE_KEY: web.AppKey = web.AppKey("fake_comfy", object)

_DEFAULT_REJECTION = {
    "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
              "details": "", "extra_info": {}},
    "node_errors": {"1": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                      "details": "injected: 'x' not in ['a']",
                                      "extra_info": {"input_name": "injected", "received_value": "x"}}],
                          "dependent_outputs": ["1"], "class_type": "Injected"}},
}


def route_of(path: str) -> str:
    return path[4:] if path == "/api" or path.startswith("/api/") else path


def _matches(route: str, method: str | None, request: web.Request) -> bool:
    path = route_of(request.path)
    route = route.rstrip("/") or "/"
    return (path == route or path.startswith(route + "/")) and method in (None, request.method)


@dataclass
class _Rule:
    route: str
    method: str | None
    times: int = 0
    status: int = 500
    seconds: float = 0.0


CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Streamed:
    """A valid JSON document (``{"pad": "xxx…"}``) of exactly ``size`` bytes, made chunk by chunk."""

    size: int

    def chunks(self) -> Iterator[bytes]:
        head, tail = b'{"pad": "', b'"}'
        yield head
        left = self.size - len(head) - len(tail)
        while left > 0:
            yield b"x" * min(CHUNK, left)
            left -= CHUNK
        yield tail


def deep_json(depth: int) -> bytes:
    """``[[[…]]]`` nested ``depth`` levels: valid JSON that Python cannot parse past its recursion limit."""
    return b"[" * depth + b"]" * depth


Body = bytes | Streamed | Callable[[web.Request], bytes]


@dataclass
class _Answer:
    route: str
    method: str | None
    body: Body
    times: int
    status: int
    content_type: str
    chunked: bool

    async def respond(self, request: web.Request) -> web.StreamResponse:
        body = self.body(request) if callable(self.body) else self.body
        chunks = body.chunks() if isinstance(body, Streamed) else iter([body])
        response = web.StreamResponse(status=self.status, headers={"Content-Type": self.content_type})
        if not self.chunked:
            response.content_length = body.size if isinstance(body, Streamed) else len(body)
        await response.prepare(request)
        try:
            for chunk in chunks:
                await response.write(chunk)  # waits while the client does not read
        except ConnectionError:  # the client gave up reading: that is the point
            return response
        await response.write_eof()
        return response


@dataclass
class HttpFaults:
    failures: list[_Rule] = field(default_factory=list)
    delays: list[_Rule] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)
    answers: list[_Answer] = field(default_factory=list)
    dead: str | None = None
    held: Counter[str] = field(default_factory=Counter)  # route → requests waiting for ``revive``
    carried_on: set[asyncio.Task] = field(default_factory=set)  # held or slowed writes, cancelled by ``stop``
    _revived: asyncio.Event = field(default_factory=asyncio.Event)

    def fail(self, route: str, *, times: int, status: int, method: str | None) -> None:
        self.failures.append(_Rule(route, method, times=times, status=status))

    def delay(self, route: str, seconds: float, *, method: str | None) -> None:
        self.delays = [r for r in self.delays if (r.route, r.method) != (route, method)]
        if seconds > 0:
            self.delays.append(_Rule(route, method, seconds=seconds))

    def answer(self, route: str, body: Body, *, times: int, status: int, method: str | None,
               content_type: str, chunked: bool) -> None:
        self.answers.append(_Answer(route, method, body, times, status, content_type, chunked))

    def take_answer(self, request: web.Request) -> _Answer | None:
        for rule in self.answers:
            if rule.times > 0 and _matches(rule.route, rule.method, request):
                rule.times -= 1
                return rule
        return None

    def reject_next(self, body: dict | None) -> None:
        self.rejections.append(body or _DEFAULT_REJECTION)

    def take_rejection(self) -> dict | None:
        return self.rejections.pop(0) if self.rejections else None

    def take_failure(self, request: web.Request) -> int | None:
        for rule in self.failures:
            if rule.times > 0 and _matches(rule.route, rule.method, request):
                rule.times -= 1
                return rule.status
        return None

    def delay_for(self, request: web.Request) -> float:
        return sum(rule.seconds for rule in self.delays if _matches(rule.route, rule.method, request))

    def stop(self) -> None:
        """The server shuts down: requests still held or slowed are dropped."""
        for task in list(self.carried_on):
            task.cancel()

    def revive(self) -> None:
        self.dead = None
        self._revived.set()
        self._revived = asyncio.Event()

    async def wait_revived(self) -> None:
        await self._revived.wait()

    @staticmethod
    async def stop_listening(server: object) -> None:
        for site in list(server.runner.sites):
            await site.stop()

    @staticmethod
    async def listen_again(server: object) -> None:
        site = web.TCPSite(server.runner, server.host, server.port, reuse_address=True)
        await site.start()


@web.middleware
async def fault_middleware(request: web.Request, handler):
    faults: HttpFaults = request.app[FAKE_KEY].http
    if faults.dead == "refuse" and request.transport is not None:
        request.transport.abort()  # refused: it never reaches the server (its handler is cancelled)
    elif request.method != "GET" and (faults.dead or faults.delay_for(request)):
        # A real ComfyUI (aiohttp's default handler_cancellation=False; TestServer turns it on) goes on
        # with a request whose client gave up: a POST /prompt held by a hung server is queued once it
        # answers again (a frozen server reads the body it already has). Read-only requests may be
        # cancelled: that changes nothing.
        await request.read()  # kept by the request: its handler reads it again after the client left
        task = asyncio.ensure_future(_faulted(faults, request, handler))
        faults.carried_on.add(task)
        task.add_done_callback(faults.carried_on.discard)
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)
    return await _faulted(faults, request, handler)


async def _faulted(faults: HttpFaults, request: web.Request, handler):
    route = route_of(request.path)
    while faults.dead:
        faults.held[route] += 1
        try:
            await faults.wait_revived()
        finally:
            faults.held[route] -= 1
    seconds = faults.delay_for(request)
    if seconds:
        await asyncio.sleep(seconds)
    status = faults.take_failure(request)
    if status is not None:
        return web.Response(status=status, text=INTERNAL_ERROR_TEXT)
    answer = faults.take_answer(request)
    if answer is not None:
        return await answer.respond(request)
    return await handler(request)


def _retrieve(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # its client may be gone: nobody else reads the outcome
