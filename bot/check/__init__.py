"""``discomfy check``: everything that would stop the bot or a workflow, looked at once, as a table.

Config problems (all at once), the token (one REST call), each backend (reachable, version), per
manifest what the live servers lack, the database and the files folder writable. ``discomfy
check`` prints the table and exits 1 when any row failed; ``--quick`` (the container healthcheck)
skips the token and the manifests. ``discomfy run`` runs the same checks first (``start_gate``):
fatal findings (bad or unusable token, unwritable storage) print one line each and refuse the start;
the rest are logged and the bot starts (an unreachable ComfyUI is marked down and retried).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..config import ConfigError, Settings, load_settings
from .probes import (DISCORD_API, Finding, backend_findings, manifest_findings, network_reason, storage_findings,
                     token_findings)

__all__ = ["Finding", "run_checks", "config_findings", "render_table", "check_command", "network_reason",
           "DISCORD_API"]

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def config_findings(config_path: str | Path | None, env: Mapping[str, str] | None = None
                    ) -> tuple[Settings | None, list[Finding]]:
    """The settings, or one fatal finding per problem (every one at once)."""
    try:
        settings = load_settings(config_path, env)
    except ConfigError as exc:
        return None, [Finding("config", "fail", problem, fatal=True) for problem in exc.problems]
    return settings, [Finding("config", "ok", f"{len(settings.backends)} backend(s), manifests in "
                              f"{settings.manifests_dir.name}/")]


async def run_checks(settings: Settings, *, quick: bool = False, api: str = DISCORD_API) -> list[Finding]:
    """Every probe, concurrently where they wait on the network; never raises for an expected failure."""
    storage = asyncio.create_task(asyncio.to_thread(storage_findings, settings))
    token = [] if quick else await token_findings(settings, api=api)
    backends, infos = await backend_findings(settings, quick=quick)
    manifests = [] if quick else await asyncio.to_thread(manifest_findings, settings, infos)
    return token + backends + manifests + await storage


def render_table(findings: list[Finding], *, color: bool = False) -> str:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(finding.area, f"[{_STYLE[finding.status]}]{finding.status}[/]", finding.detail)
    out = io.StringIO()
    Console(file=out, width=120, force_terminal=color, no_color=not color, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def check_command(config_path: str | Path | None, *, quick: bool = False, api: str = DISCORD_API,
                  env: Mapping[str, str] | None = None, color: bool = False) -> tuple[int, str]:
    """``discomfy check``: (exit code, the table). 0 when nothing failed, 1 otherwise; with ``quick``
    (the container healthcheck) only fatal findings count: a ComfyUI that is down is not the bot's ill."""
    settings, findings = config_findings(config_path, env)
    if settings is not None:
        findings += asyncio.run(run_checks(settings, quick=quick, api=api))
    failed = sum(1 for f in findings if f.status == "fail" and (f.fatal or not quick))
    summary = f"{failed} problem(s) found" if failed else "all checks passed"
    return (1 if failed else 0), render_table(findings, color=color) + summary + "\n"


def start_gate(settings: Settings, *, api: str = DISCORD_API, log=None) -> int | None:
    """The checks ``discomfy run`` does first: fatal findings print one line each on stderr and give
    exit code 1; the others are logged as warnings and the bot starts. None: go ahead."""
    import sys

    findings = asyncio.run(run_checks(settings, api=api))
    fatal = [f for f in findings if f.fatal and f.status == "fail"]
    for finding in fatal:
        print(f"discomfy: cannot start: {finding.line()}", file=sys.stderr)
    if fatal:
        return 1
    for finding in findings:
        if finding.status != "ok" and log is not None:
            log.warning("check: %s", finding.line())
    return None
