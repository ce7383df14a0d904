"""HTTP client for one ComfyUI server: verbs only, every failure translated to ``ComfyError``.

One ``aiohttp.ClientSession`` per backend for the process lifetime (``async with`` or
``close()``). ``_translate`` is the single place where aiohttp/OSError/timeouts become
``ComfyUnavailable`` / ``ComfyTimeout``; a 5xx answer is ``ComfyUnavailable``, a 400 from
``POST /prompt`` is ``WorkflowRejected``. Messages name the backend (``backend <name>``), never
its URL, and never include the text of the underlying exception (it may contain the URL).

Every answer is read within ``Limits``: JSON answers up to ``max_server_json_bytes`` and
``max_json_depth`` (parsed in a thread when big), ``GET /view`` downloads up to the byte budget the
caller passes, websocket messages up to ``max_websocket_frame_bytes`` (refused by aiohttp from the
frame header, before the payload is buffered). Past a limit: ``ServerLimitExceeded`` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..bounded import parse_json
from ..errors import ComfyError, ComfyTimeout, ComfyUnavailable, LimitExceeded, ServerLimitExceeded, WorkflowRejected
from ..limits import DEFAULT_LIMITS, Limits, human_size
from .wire import PromptRequest, Queued, QueueSnapshot, list_at, mapping_at, queue_snapshot

__all__ = ["ComfyClient", "Timeouts", "rejection_problems", "never_sent"]

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
PARSE_IN_THREAD = 1024 * 1024  # JSON answers larger than this are parsed off the event loop


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per request (``request``), to connect, and for uploads/downloads (``transfer``)."""

    request: float = 30.0
    connect: float = 5.0
    transfer: float = 120.0

    def client_timeout(self, total: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total or self.request, sock_connect=self.connect)


def rejection_problems(body: Mapping[str, Any]) -> list[str]:
    """Short human texts from a 400 ``POST /prompt`` body (node ids kept; params are mapped later)."""
    problems = []
    for node_id, entry in mapping_at(body, "node_errors").items():
        class_type = entry.get("class_type", "?") if isinstance(entry, Mapping) else "?"
        for error in list_at(entry, "errors"):
            if isinstance(error, Mapping):
                details = f": {error.get('details')}" if error.get("details") else ""
                problems.append(f"node {node_id} ({class_type}): {error.get('message', 'invalid')}{details}")
    error = mapping_at(body, "error")
    if not problems:
        details = f" ({error['details']})" if error.get("details") else ""
        problems.append(f"{error.get('message') or 'the workflow was rejected'}{details}")
    return problems


def never_sent(error: BaseException) -> bool:
    """The request that failed with ``error`` never reached the server: no connection could be opened
    (refused, no route). Any other failure — a 5xx, a connection dropped mid-request — may come
    after the server acted on it."""
    return isinstance(error.__cause__, aiohttp.ClientConnectorError)


class ComfyClient:
    """The verbs DisComfy needs from one ComfyUI server (see module docstring)."""

    def __init__(self, base_url: str, *, client_id: str, name: str = "comfyui",
                 session: aiohttp.ClientSession | None = None, timeouts: Timeouts | None = None,
                 limits: Limits = DEFAULT_LIMITS):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.name = name
        self.timeouts = timeouts or Timeouts()
        self.limits = limits
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> ComfyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise ComfyUnavailable(f"backend {self.name}: the client was closed")
            self._session = aiohttp.ClientSession(timeout=self.timeouts.client_timeout())
        return self._session

    # -- plumbing --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _translate(self, what: str, seconds: float | None = None) -> AsyncIterator[None]:
        """The one place where transport failures become ``ComfyError``s (``seconds``: the time allowed,
        default the request timeout)."""
        try:
            yield
        except ComfyError:
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            log.info("backend %s: %s timed out", self.name, what)
            allowed = self.timeouts.request if seconds is None else seconds
            raise ComfyTimeout(f"backend {self.name}: {what} timed out", seconds=allowed) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.info("backend %s: %s failed (%s)", self.name, what, type(exc).__name__)
            raise ComfyUnavailable(f"backend {self.name}: {what} failed ({type(exc).__name__})") from exc

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _check(self, status: int, what: str) -> None:
        if status >= 500:
            raise ComfyUnavailable(f"backend {self.name}: {what} answered HTTP {status}")
        if status >= 400:
            raise ComfyError(f"backend {self.name}: {what} answered HTTP {status}")

    async def _body(self, response: aiohttp.ClientResponse, what: str, max_bytes: int, limit: str) -> bytes:
        """The whole body, refused as soon as it proves larger than ``max_bytes`` (declared or read)."""
        if response.content_length is not None and response.content_length > max_bytes:
            raise self._over(what, max_bytes, limit)
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            if len(body) + len(chunk) > max_bytes:
                raise self._over(what, max_bytes, limit)
            body += chunk
        return bytes(body)

    def _over(self, what: str, max_bytes: int, limit: str) -> ServerLimitExceeded:
        return ServerLimitExceeded(f"backend {self.name}: {what} is larger than {human_size(max_bytes)} "
                                   f"(limit {limit})", limit)

    async def _read_json(self, response: aiohttp.ClientResponse, request: str) -> Any:
        """The body as JSON (None when empty) within ``max_server_json_bytes`` and ``max_json_depth``."""
        what = f"the answer to {request}"
        raw = await self._body(response, what, self.limits.max_server_json_bytes, "max_server_json_bytes")
        if not raw:
            return None
        try:
            if len(raw) > PARSE_IN_THREAD:
                return await asyncio.to_thread(parse_json, raw, max_depth=self.limits.max_json_depth, what=what)
            return parse_json(raw, max_depth=self.limits.max_json_depth, what=what)
        except LimitExceeded as exc:
            raise ServerLimitExceeded(f"backend {self.name}: {exc}", exc.limit) from None

    async def _json(self, method: str, path: str, what: str, *, body: Any = None,
                    params: Mapping[str, str] | None = None) -> Any:
        async with self._translate(what):
            async with self.session.request(method, self._url(path), json=body, params=params,
                                            timeout=self.timeouts.client_timeout()) as response:
                self._check(response.status, what)
                return await self._read_json(response, f"{method} {path.partition('?')[0]}")

    # -- verbs -----------------------------------------------------------------------------
    async def upload_image(self, data: bytes, filename: str, *, subfolder: str = "",
                           overwrite: bool = False) -> str:
        """Upload an input file; returns the name to bind (``subfolder/name`` when in a subfolder).

        Images and audio alike: the server's ``/upload/image`` stores any file in its input folder,
        where LoadImage and LoadAudio read (ComfyUI's own frontend uploads audio there too)."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        form.add_field("type", "input")
        if subfolder:
            form.add_field("subfolder", subfolder)
        if overwrite:
            form.add_field("overwrite", "true")
        what = "image upload"
        async with self._translate(what, self.timeouts.transfer):
            async with self.session.post(self._url("/upload/image"), data=form,
                                         timeout=self.timeouts.client_timeout(self.timeouts.transfer)) as response:
                self._check(response.status, what)
                answer = await self._read_json(response, "POST /upload/image")
        name = str(answer["name"]) if isinstance(answer, dict) and answer.get("name") else None
        if name is None:
            raise ComfyUnavailable(f"backend {self.name}: {what} gave no file name")
        return f"{answer['subfolder']}/{name}" if answer.get("subfolder") else name

    async def queue_prompt(self, graph: Mapping[str, Any], *, prompt_id: str, front: bool = False,
                           extra_data: Mapping[str, Any] | None = None) -> Queued:
        """``POST /prompt`` with our own prompt_id; ``WorkflowRejected`` on 400."""
        body: PromptRequest = {"prompt": dict(graph), "client_id": self.client_id, "prompt_id": prompt_id}
        if front:
            body["front"] = True
        if extra_data:
            body["extra_data"] = dict(extra_data)
        what = "queueing a prompt"
        async with self._translate(what):
            async with self.session.post(self._url("/prompt"), json=body,
                                         timeout=self.timeouts.client_timeout()) as response:
                if response.status == 400:
                    self._reject(await self._rejection_body(response))
                self._check(response.status, what)
                answer = await self._read_json(response, "POST /prompt")
        if not isinstance(answer, dict):
            raise ComfyUnavailable(f"backend {self.name}: {what} gave no prompt id")
        return Queued(str(answer.get("prompt_id", prompt_id)), answer.get("number", 0), answer.get("node_errors") or {})

    async def _rejection_body(self, response: aiohttp.ClientResponse) -> Any:
        try:
            return await self._read_json(response, "POST /prompt")
        except ValueError:  # not JSON: rejected all the same
            return None

    def _reject(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise WorkflowRejected([f"backend {self.name} rejected the workflow"])
        node_errors = dict(mapping_at(body, "node_errors"))
        raise WorkflowRejected(rejection_problems(body), node_errors, str(mapping_at(body, "error").get("type", "")))

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of ``prompt_id``, or None while it is unknown/not finished."""
        answer = await self._json("GET", f"/history/{prompt_id}", "reading history")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    async def queue(self) -> QueueSnapshot:
        return queue_snapshot(await self._json("GET", "/queue", "reading the queue") or {})

    async def view(self, filename: str, subfolder: str = "", type: str = "output", *,
                   max_bytes: int | None = None) -> tuple[bytes, str]:
        """Bytes and MIME type of an output file (``GET /view``), at most ``max_bytes``
        (default: the whole ``max_output_bytes``; a job passes what is left of it)."""
        what = "downloading an output"
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        cap = self.limits.max_output_bytes if max_bytes is None else max_bytes
        async with self._translate(what, self.timeouts.transfer):
            async with self.session.get(self._url("/view"), params=params,
                                        timeout=self.timeouts.client_timeout(self.timeouts.transfer)) as response:
                self._check(response.status, what)
                return await self._body(response, "an output file", cap, "max_output_bytes"), response.content_type

    async def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        path = f"/object_info/{class_type}" if class_type else "/object_info"
        answer = await self._json("GET", path, "reading object_info")
        return answer if isinstance(answer, dict) else {}

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt ``prompt_id`` if it is running (the server ignores it otherwise)."""
        await self._json("POST", "/interrupt", "interrupting", body={"prompt_id": prompt_id} if prompt_id else {})

    async def delete_queued(self, prompt_ids: Iterable[str]) -> None:
        await self._json("POST", "/queue", "removing from the queue", body={"delete": list(prompt_ids)})

    async def system_stats(self) -> dict[str, Any]:
        answer = await self._json("GET", "/system_stats", "reading system stats")
        return answer if isinstance(answer, dict) else {}

    async def connect_websocket(self, *, heartbeat: float | None = 30.0) -> aiohttp.ClientWebSocketResponse:
        """Open ``/ws`` for this client id (used by ``EventStream``)."""
        url = self._url(f"/ws?clientId={self.client_id}").replace("http", "ws", 1)
        async with self._translate("opening the websocket", self.timeouts.connect):
            return await self.session.ws_connect(url, heartbeat=heartbeat, timeout=aiohttp.ClientWSTimeout(
                ws_receive=None, ws_close=self.timeouts.connect), max_msg_size=self.limits.max_websocket_frame_bytes)
