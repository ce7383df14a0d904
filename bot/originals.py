"""Full-quality originals behind signed, expiring links: a small HTTP endpoint and the links to it.

When an output had to be shrunk (or left out) to fit Discord's upload limit and the admin set a
public base URL (``originals_url``), the result gets an "Original" link button per such output.
The link is ``<base>/o/<job>/<output #>/<expires>/<signature>``: ``signature`` is an HMAC-SHA256
of the other three with a key kept next to the job database (``key_for``), so nobody can make
or alter a link. The endpoint has that one route (no listing, nothing else answers): a bad
signature is 403; an expired link, a job the store no longer knows (retention), an output it
never had are 404; the file comes from the job's stored output reference, fetched again from the
backend that made it (503 while that backend is down). Nothing is copied to disk here: a file
lives as long as its job record and the server's output folder do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from aiohttp import web

from engine import ComfyError, EngineError, OutputFile, Runtime

__all__ = ["LinkSigner", "OriginalsServer", "key_for", "ROUTE"]

log = logging.getLogger(__name__)

ROUTE = "/o/{job}/{index}/{expires}/{signature}"
_JOB = re.compile(r"^[-_a-z0-9]{1,40}$")
_SIGNATURE_BYTES = 32
MAX_INDEX = 1000


def key_for(db_path: Path) -> bytes:
    """The HMAC key of this install, created once next to the database (owner-only) and kept, so
    links survive a restart; delete the file to revoke every link at once."""
    path = db_path.with_name(db_path.name + ".originals-key")
    try:
        kept = path.read_bytes().strip()
    except OSError:
        kept = b""
    if len(kept) >= 32:
        return kept
    key = secrets.token_hex(32).encode()
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key


@dataclass(frozen=True)
class LinkSigner:
    """Makes and checks links; ``ttl`` seconds from now is how long a new link works."""

    key: bytes
    base_url: str
    ttl: float
    clock: Callable[[], float] = time.time

    def _signature(self, job_id: str, index: int, expires: int) -> str:
        digest = hmac.new(self.key, f"{job_id}:{index}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def link(self, job_id: str, index: int) -> str:
        """The signed URL of output #``index`` of ``job_id``, valid for ``ttl`` seconds."""
        expires = int(self.clock() + self.ttl)
        path = f"/o/{quote(job_id)}/{index}/{expires}/{self._signature(job_id, index, expires)}"
        return self.base_url.rstrip("/") + path

    def check(self, job_id: str, index: str, expires: str, signature: str) -> int | None:
        """None when the link is good, else the HTTP status to answer (403 forged, 404 expired)."""
        if not (_JOB.match(job_id) and index.isdigit() and expires.isdigit()) or len(index) > 4 or len(expires) > 12:
            return 404
        expected = self._signature(job_id, int(index), int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return 403
        return 404 if int(expires) < self.clock() else None


class OriginalsServer:
    """The endpoint, on the bot's event loop. ``runtime`` finds jobs and their backends."""

    def __init__(self, signer: LinkSigner, runtime: Runtime):
        self.signer = signer
        self.runtime = runtime
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ROUTE, self._serve)
        return app

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); returns the bound port."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port when 0 was asked for
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        refusal = self.signer.check(m["job"], m["index"], m["expires"], m["signature"])
        if refusal is not None:
            return web.Response(status=refusal)
        found = await self._original(m["job"], int(m["index"]))
        if isinstance(found, int):
            return web.Response(status=found)
        name = re.sub(r"[^\w.-]", "_", Path(found.filename).name) or "original"
        headers = {"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, max-age=3600",
                   "X-Content-Type-Options": "nosniff"}
        return web.Response(body=found.data, content_type=found.mime, headers=headers)

    async def _original(self, job_id: str, index: int) -> OutputFile | int:
        """Output #``index`` of the job, fetched again from the server that made it (``Runtime.output``),
        or the HTTP status saying why not: 404 unknown, 503 its server is down or cannot send it."""
        if not 1 <= index <= MAX_INDEX:
            return 404
        try:
            return await self.runtime.output(job_id, index)
        except ComfyError as exc:
            log.info("original %s #%d could not be fetched (%s)", job_id, index, type(exc).__name__)
            return 503
        except EngineError:
            return 404
