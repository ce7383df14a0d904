"""The static commands: ``/help``, ``/status``, ``/workflows``, ``/choices`` and ``/cancel``.

Every answer is ephemeral and built by a pure function of its data (``help_pages``,
``status_embed``, ``workflow_pages``, ``choices_embed``, ``job_label``), so the texts are tested
without Discord. ``InfoCommands`` holds the few references the handlers need and hands them to
``CommandHooks`` (``help``, ``status``, ``workflows``, ``choices``, ``cancel``,
``user_jobs``). Nobody ever sees a server URL or a token here: backends are known by name, and
only admins see those names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Awaitable

import discord
from discord import app_commands

from engine import BackendStatus, Catalog, JobRecord, JobStore, Param, Runtime, StoreError, Workflow

from ..access import AccessPolicy, Who
from ..errors import ANSWER_WAIT
from .options import option_params
from ..delivery.render import DESCRIPTION_LIMIT, clip, format_duration

__all__ = [
    "InfoCommands",
    "help_pages",
    "status_embed",
    "workflow_pages",
    "param_summary",
    "choices_embed",
    "job_label",
    "paginate",
]

AppCommand = app_commands.Command | app_commands.Group
TreeCommand = AppCommand | app_commands.ContextMenu  # what a command tree holds (context menus have no help)
log = logging.getLogger(__name__)

PAGE_LIMIT = DESCRIPTION_LIMIT - 96  # room for a "page 2/3" line and clipping slack
MAX_PAGES = 5  # one response + four followups, then the user is pointed elsewhere
LABEL_LIMIT = 100  # autocomplete choice names
RECENT_JOBS = 50
NO_SUCH_JOB = "You have no job with that id."
COLOUR = discord.Colour.blurple()


# -- pure text builders ----------------------------------------------------------------------

def paginate(blocks: Iterable[str], limit: int = PAGE_LIMIT) -> list[str]:
    """Join ``blocks`` with blank lines into pages of at most ``limit`` characters (a block too
    long for one page is clipped); never splits a block over two pages."""
    pages: list[str] = []
    current = ""
    for block in blocks:
        block = clip(block, limit)
        joined = f"{current}\n\n{block}" if current else block
        if len(joined) <= limit:
            current = joined
        else:
            pages.append(current)
            current = block
    if current or not pages:
        pages.append(current)
    return pages


def _option_line(parameter: app_commands.Parameter) -> str:
    mark = "" if parameter.required else " (optional)"
    return f"• `{parameter.display_name}`{mark}: {parameter.description}"


def _leaf_block(command: app_commands.Command, catalog: Catalog) -> str:
    lines = [f"**/{command.qualified_name}**: {command.description}"]
    lines += [_option_line(p) for p in command.parameters]
    workflow = catalog.workflows.get(command.extras.get("workflow", ""))
    if workflow is not None:
        shown = set(option_params(workflow.manifest))
        more = [n for n, p in workflow.manifest.params.items() if n not in shown]
        if more:
            lines.append(f"• settings: {', '.join(more)} (via the Tweak button or setup)")
    return "\n".join(lines)


def help_pages(commands: Iterable[TreeCommand], catalog: Catalog) -> list[str]:
    """Every command and subcommand with its description and options, as embed pages."""
    blocks = []
    for command in commands:
        leaves = command.walk_commands() if isinstance(command, app_commands.Group) else [command]
        blocks += [_leaf_block(leaf, catalog) for leaf in leaves if isinstance(leaf, app_commands.Command)]
    return paginate(blocks)


def status_embed(statuses: Sequence[BackendStatus], *, show_names: bool) -> discord.Embed:
    """Backends up/down with their queues and versions; names only when ``show_names``."""
    up = sum(1 for s in statuses if s.up)
    embed = discord.Embed(title=f"ComfyUI servers: {up} of {len(statuses)} up",
                          colour=discord.Colour.green() if up else discord.Colour.red())
    for number, status in enumerate(statuses[:25], start=1):
        name = status.name if show_names else f"Server {number}"
        if status.up:
            value = f"🟢 up · {status.running} running · {status.pending} queued"
        else:
            value = "🔴 down"
        if status.version:
            value += f"\nComfyUI {clip(status.version, 40)}"
        embed.add_field(name=clip(name, 100), value=value)
    if not statuses:
        embed.description = "No servers are configured."
    return embed


def param_summary(name: str, param: Param) -> str:
    """One param in a few words: ``steps (int 1–50, default 30)`` (its rule; live lists point at /choices)."""
    source = f"; see /choices {param.live_source}" if param.live_source else ""
    return f"{name} ({param.rule()}{source})"


def _command_path(workflow: Workflow, catalog: Catalog) -> str:
    command = workflow.manifest.command or workflow.name
    alone = len(catalog.commands().get(command, ())) == 1
    return f"/{command}" if alone else f"/{command} {workflow.name}"


def _workflow_block(workflow: Workflow, catalog: Catalog) -> str:
    manifest = workflow.manifest
    head = f"**{manifest.title or workflow.name}**: `{_command_path(workflow, catalog)}` · {manifest.kind}"
    lines = [head + (" · NSFW" if manifest.nsfw else ""), manifest.description]
    if manifest.params:
        lines.append("Options: " + " · ".join(param_summary(n, p) for n, p in manifest.params.items()))
    return "\n".join(lines)


def workflow_pages(catalog: Catalog) -> list[str]:
    """Each manifest: title, command, kind, description and a summary of its params."""
    ordered = sorted(catalog, key=lambda wf: (wf.manifest.command or wf.name, wf.name))
    return paginate(_workflow_block(wf, catalog) for wf in ordered) if ordered else ["No workflows are loaded."]


def choices_embed(source: str, values: Sequence[Any], typed: str | None) -> discord.Embed:
    """The values of a live list containing ``typed`` (case-insensitive), as many as fit one embed."""
    needle = (typed or "").strip().casefold()
    matching = [str(v) for v in values if needle in str(v).casefold()]
    lines, used = [], 0
    for value in matching:
        line = f"`{clip(value, 200)}`"
        if used + len(line) + 1 > PAGE_LIMIT:
            break
        lines.append(line)
        used += len(line) + 1
    title = clip(f"{source}" + (f" containing “{(typed or '').strip()}”" if needle else ""), 256)
    embed = discord.Embed(title=title, description="\n".join(lines) or "Nothing matches.", colour=COLOUR)
    if not values:
        embed.description = "No server currently offers this list (is a server down?)."
    footer = f"{len(lines)} of {len(matching)} shown"
    if len(lines) < len(matching):
        footer += "; add a filter to narrow the list"
    embed.set_footer(text=footer)
    return embed


def job_label(record: JobRecord, catalog: Catalog, now: float) -> str:
    """What ``/cancel`` suggests for a job: workflow, state, age and the start of its prompt."""
    workflow = catalog.workflows.get(record.manifest)
    title = workflow.manifest.title if workflow is not None and workflow.manifest.title else record.manifest
    parts = [title, record.state, f"{format_duration(now - record.created_at)} ago"]
    text = workflow.manifest.caption_of(record.values) if workflow is not None else None
    if text:
        parts.append(" ".join(text.split()))
    return clip(" · ".join(parts), LABEL_LIMIT)


# -- the handlers ----------------------------------------------------------------------------

CancelHook = Callable[[discord.Interaction, str], Awaitable[None]]


class InfoCommands:
    """The static commands' handlers; ``cancel`` asks the access policy, then delegates to the flow."""

    def __init__(self, *, catalog: Catalog, runtime: Runtime, store: JobStore, access: AccessPolicy,
                 cancel: CancelHook, commands: Callable[[], Iterable[TreeCommand]]):
        self._catalog = catalog
        self._runtime = runtime
        self._store = store
        self._access = access
        self._cancel = cancel
        self._commands = commands

    async def help(self, interaction: discord.Interaction) -> None:
        await _send_pages(interaction, "DisComfy commands", help_pages(self._commands(), self._catalog))

    async def status(self, interaction: discord.Interaction) -> None:
        embed = status_embed(self._runtime.status(), show_names=self._access.is_admin(Who.of(interaction)))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def workflows(self, interaction: discord.Interaction) -> None:
        await _send_pages(interaction, "Workflows", workflow_pages(self._catalog))

    async def choices(self, interaction: discord.Interaction, source: str, typed: str | None) -> None:
        embed = choices_embed(source, self._runtime.choices(source), typed)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        record = await self._runtime.get(job_id, timeout=ANSWER_WAIT)
        if record is None or self._access.manage_refusal(Who.of(interaction), record.owner):
            await interaction.response.send_message(NO_SUCH_JOB, ephemeral=True)  # others' jobs are not shown
        elif record.finished:
            await interaction.response.send_message(f"That job has already ended ({record.state}).", ephemeral=True)
        else:
            await self._cancel(interaction, job_id)

    async def user_jobs(self, interaction: discord.Interaction) -> list[tuple[str, str]]:
        """``(job_id, label)`` of the queued and running jobs this user may cancel (an admin: everyone's),
        newest first (none while the job database is unavailable: autocomplete must answer within 3 s)."""
        now = time.time()
        who = Who.of(interaction)
        owner = None if self._access.is_admin(who) else str(who.user_id)
        try:
            records = await self._store.recent(owner=owner, limit=RECENT_JOBS, timeout=ANSWER_WAIT)
        except StoreError as exc:
            log.warning("cannot list the jobs of a user for autocomplete (%s)", exc)
            return []
        return [(r.job_id, job_label(r, self._catalog, now)) for r in records
                if not r.finished]


async def _send_pages(interaction: discord.Interaction, title: str, pages: list[str]) -> None:
    shown = pages[:MAX_PAGES]
    for number, page in enumerate(shown, start=1):
        heading = title + (f" ({number}/{len(shown)})" if len(shown) > 1 else "")
        embed = discord.Embed(title=heading, description=page, colour=COLOUR)
        if number == len(shown) and len(pages) > len(shown):
            embed.set_footer(text=f"{len(pages) - len(shown)} more pages not shown")
        if number == 1:
            await interaction.response.send_message(embed=embed, ephemeral=True)
        else:
            await interaction.followup.send(embed=embed, ephemeral=True)
