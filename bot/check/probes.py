"""What ``discomfy check`` looks at, one probe per thing that can be wrong, each a list of ``Finding``s.

Every expected failure (DNS, refused, timeout, an HTTP status) becomes one short ``Finding`` line;
no probe raises for them, and no line shows the token or a server URL (backends go by name).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from engine import ComfyClient, ComfyError, ComfyTimeout, JobStore, Limits, StoreError, Timeouts, validate_paths

from ..config import BackendConfig, Settings

__all__ = ["Finding", "DISCORD_API", "network_reason", "token_findings", "backend_findings",
           "manifest_findings", "storage_findings"]

DISCORD_API = "https://discord.com/api/v10"
Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One row of the check: what was looked at, how it went, one line of detail.

    ``fatal`` findings refuse a start (bad token, unwritable database); the rest only warn there."""

    area: str
    status: Status
    detail: str
    fatal: bool = False

    def line(self) -> str:
        return f"{self.area}: {self.detail}"


def network_reason(exc: BaseException) -> str:
    """A few words for why a connection failed, never the exception's text (it may hold a URL)."""
    while isinstance(exc, ComfyError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError, ComfyTimeout)):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(getattr(exc, "os_error", None), socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "TLS handshake failed"
    if isinstance(exc, (ConnectionRefusedError, aiohttp.ClientConnectorError)):
        return "connection refused"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return f"connection failed ({type(exc).__name__})"


# -- Discord ---------------------------------------------------------------------------------

async def token_findings(settings: Settings, *, api: str = DISCORD_API, timeout: float = 10.0) -> list[Finding]:
    """One REST call (``GET /users/@me``) with the token: accepted, refused (401) or unreachable."""
    if settings.discord_token is None:
        return [Finding("discord token", "fail", "missing; set DISCORD_TOKEN", fatal=True)]
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}",
               "User-Agent": "DiscordBot (https://github.com/discomfy, 3) discomfy-check"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(f"{api}/users/@me", headers=headers) as response:
                body = await response.json(content_type=None) if response.status == 200 else None
                status = response.status
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
        return [Finding("discord token", "fail", f"cannot reach Discord ({network_reason(exc)})", fatal=True)]
    if status == 200:
        name = body.get("username") if isinstance(body, Mapping) else None
        return [Finding("discord token", "ok", f"accepted (bot {str(name)[:32]})" if name else "accepted")]
    if status == 401:
        return [Finding("discord token", "fail", "Discord refused the token (401); check DISCORD_TOKEN", fatal=True)]
    return [Finding("discord token", "fail", f"Discord answered HTTP {status}", fatal=status < 500 and status != 429)]


# -- ComfyUI ---------------------------------------------------------------------------------

async def _probe_backend(backend: BackendConfig, *, quick: bool, timeouts: Timeouts, limits: Limits
                         ) -> tuple[Finding, dict[str, Any] | None]:
    area = f"comfyui {backend.name}"
    client = ComfyClient(backend.url, client_id=f"discomfy-check-{uuid.uuid4().hex[:8]}", name=backend.name,
                         timeouts=timeouts, limits=limits)
    try:
        stats = await client.system_stats()
        info = None if quick else await client.object_info()
    except ComfyError as exc:
        return Finding(area, "fail", f"unreachable ({network_reason(exc)}); the bot starts and retries"), None
    finally:
        await client.close()
    system = stats.get("system")
    version = str((system if isinstance(system, Mapping) else {}).get("comfyui_version") or "unknown version")[:40]
    nodes = "" if info is None else f", {len(info)} node classes"
    return Finding(area, "ok", f"reachable, ComfyUI {version}{nodes}"), info


async def backend_findings(settings: Settings, *, quick: bool = False, timeouts: Timeouts | None = None
                           ) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Each backend: reachable and its version; also its ``object_info`` (by name) unless ``quick``."""
    timeouts = timeouts or Timeouts(request=15.0, connect=5.0)
    probed = await asyncio.gather(*(_probe_backend(b, quick=quick, timeouts=timeouts, limits=settings.limits())
                                    for b in settings.backends))
    infos = {b.name: info for b, (_, info) in zip(settings.backends, probed) if info is not None}
    return [finding for finding, _ in probed], infos


def manifest_findings(settings: Settings, infos: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """Per manifest, what the live servers lack (the validator's server checks against each
    ``object_info``): ok when at least one server can run it. Blocking: run it in a thread."""
    limits = settings.limits()  # the caps the bot itself applies, so check reads what the bot would
    offline = validate_paths([settings.manifests_dir], workflows_dir=settings.workflows_dir, limits=limits)
    if not infos:
        loaded = sum(1 for s in offline.manifests if s.ok)
        return [Finding("manifests", "warn", f"{loaded} of {len(offline.manifests)} load; not checked against a "
                        "server (none reachable)")] + _broken(offline)
    broken = {s.file for s in offline.manifests if not s.ok}
    per_server = {name: validate_paths([settings.manifests_dir], workflows_dir=settings.workflows_dir,
                                       object_info=info, limits=limits) for name, info in infos.items()}
    findings = _broken(offline)
    for summary in offline.manifests:
        if summary.file in broken:
            continue
        area = f"manifest {summary.name}"
        lacking = {name: [i for i in report.issues if i.file == summary.file] for name, report in per_server.items()}
        able = sorted(name for name, issues in lacking.items() if not issues)
        if able:
            findings.append(Finding(area, "ok", f"runs on {', '.join(able)}"))
        else:
            server, issues = sorted(lacking.items())[0]
            findings.append(Finding(area, "fail", f"no server can run it; {server} lacks: "
                                    f"{issues[0].message}" + (f" (+{len(issues) - 1} more)" if len(issues) > 1 else "")))
    return findings


def _broken(report) -> list[Finding]:
    """Manifests that do not load at all (schema, workflow file, binds): the first problem with file:line."""
    findings = []
    for summary in report.manifests:
        if not summary.ok:
            first = next(i for i in report.issues if i.file == summary.file)
            more = f" (+{summary.issues - 1} more)" if summary.issues > 1 else ""
            findings.append(Finding(f"manifest {summary.name}", "fail", f"{first}{more}"))
    return findings


# -- files ---------------------------------------------------------------------------------

def _database_usable(settings: Settings) -> Finding:
    """Open the job store the bot would open (SQLite file or PostgreSQL), migrations included."""
    url = settings.database_url
    name = "PostgreSQL" if url.startswith(("postgresql://", "postgres://")) else Path(url).name
    try:
        if name != "PostgreSQL":
            Path(url).parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(_open_and_close(url))
    except (StoreError, OSError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
        return Finding("database", "fail", f"{name} is not usable ({reason})", fatal=True)
    return Finding("database", "ok", f"{name} writable")


async def _open_and_close(url: str) -> None:
    store = await JobStore.open(url, retry_for=2.0)
    await store.close()


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def _folder_writable(area: str, folder: Path) -> Finding:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".discomfy-check-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Finding(area, "fail", f"{folder.name}/ is not writable ({exc.strerror or type(exc).__name__})", fatal=True)
    return Finding(area, "ok", f"{folder.name}/ writable")


def storage_findings(settings: Settings) -> list[Finding]:
    """The database and the folder of kept files (inputs) are writable. Blocking: run it in a thread."""
    return [_database_usable(settings), _folder_writable("files", settings.db_path.parent / "inputs")]
