"""The Details button: everything needed to reproduce a job, answered privately.

``DetailsButton`` (``dc:info:<job>``) sits on every result and failure message and calls the
app's ``ButtonHooks.details``. What it answers is built here from the job's stored record (pure):

- ``details_embed``: every value the job ran with (the drawn seed included, unset ones marked as
  the workflow's own), its state, timings (waited, ran, total, when), the backend's name for
  admins only, and the ``engine run`` command line;
- ``engine_command``: that command line, quoted for a POSIX shell, reproducing the job from a
  terminal (images by their original file names: the user has them);
- ``graph_json``: the API-format graph the job sent, rebuilt by the engine's own functions from
  the stored values (uploaded image names and drawn seeds included), attached as ``graph.json``.
"""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import discord

from engine import EngineError, JobRecord, Workflow, build_graph, resolve_values

from ..delivery.render import clip, format_duration

__all__ = ["DetailsButton", "send_details", "details_embed", "engine_command", "command_fits", "graph_json", "GRAPH_NAME",
           "COMMAND_NAME"]

GRAPH_NAME = "graph.json"
COMMAND_NAME = "engine-run.sh"  # the command line as a file, when it is too long for the embed
FIELD_LIMIT, DESCRIPTION_LIMIT = 1024, 4096
COLOUR = discord.Colour.blurple()


class DetailsButton(discord.ui.DynamicItem[discord.ui.Button], template=r"^dc:info:(?P<job>[-_a-z0-9]{1,40})$"):
    """Answers privately with the job's details (``ButtonHooks.details``)."""

    def __init__(self, job_id: str, label: str = "ℹ️ Details"):
        super().__init__(discord.ui.Button(custom_id=f"dc:info:{job_id}", label=label))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        from .buttons import UNAVAILABLE, hooks_of  # buttons imports this module

        hooks = hooks_of(interaction.client)
        if hooks is None or hooks.details is None:
            await interaction.response.send_message(UNAVAILABLE, ephemeral=True)
        else:
            await hooks.details(interaction, self.job_id)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def engine_command(workflow: Workflow, record: JobRecord, manifest_path: str, workflows_dir: str | None = None) -> str:
    """``engine run`` with every stored value (files by their original names), shell-quoted;
    ``--workflows`` when the workflow files are not in ``workflows/`` next to the manifests' folder."""
    params = workflow.manifest.params
    inputs = record.extra.get("inputs") if isinstance(record.extra.get("inputs"), Mapping) else {}
    parts = ["engine", "run", manifest_path] + (["--workflows", workflows_dir] if workflows_dir else [])
    for name, param in params.items():
        if name not in record.values:
            continue
        if param.is_upload:
            kept = inputs.get(name) if isinstance(inputs, Mapping) else None
            filename = kept.get("filename") if isinstance(kept, Mapping) else None
            parts += ["--file", f"{name}={Path(str(filename or record.values[name])).name}"]
        else:
            parts += ["--set", f"{name}={_shown(record.values[name])}"]
    return shlex.join(parts)


def graph_json(workflow: Workflow, record: JobRecord) -> bytes | None:
    """The API-format graph of the stored values (what was sent), or None when the workflow has
    changed so much since that the values no longer fit it."""
    known = {n: v for n, v in record.values.items() if n in workflow.manifest.params}
    try:
        graph = build_graph(workflow, resolve_values(workflow, known)).graph
    except (EngineError, KeyError, TypeError, ValueError):
        return None
    return json.dumps(graph, indent=2, ensure_ascii=False).encode()


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return discord.utils.format_dt(datetime.fromtimestamp(stamp, timezone.utc), "T")


def _timings(record: JobRecord) -> str:
    created, queued, started, finished = record.created_at, record.queued_at, record.started_at, record.finished_at
    lines = [f"asked {_when(created)}"]
    if started is not None:
        lines.append(f"waited {format_duration(started - (queued or created))} in the queue")
    if finished is not None:
        ran = f"ran {format_duration(finished - started)}, " if started is not None else ""
        lines.append(f"{ran}{format_duration(finished - created)} in all, ended {_when(finished)}")
    return "\n".join(lines)


def _values(workflow: Workflow, record: JobRecord) -> str:
    lines = []
    for name, param in workflow.manifest.params.items():
        shown = param.show(record.values[name]) if name in record.values else "(the workflow's own)"
        lines.append(f"**{param.label_for(name)}** (`{name}`): {clip(' '.join(str(shown).split()), 300)}")
    return "\n".join(lines) or "This workflow has no parameters."


def command_fits(command: str) -> bool:
    """Whether the command line fits the embed whole (else it goes along as ``COMMAND_NAME``)."""
    return len(command) <= FIELD_LIMIT - 12


def details_embed(workflow: Workflow, record: JobRecord, *, command: str, show_backend: bool) -> discord.Embed:
    """The private answer of the Details button (see the module docstring)."""
    embed = discord.Embed(title=clip(f"Details: {workflow.manifest.title or workflow.name}", 256), colour=COLOUR,
                          description=clip(_values(workflow, record), DESCRIPTION_LIMIT - 200))
    embed.add_field(name="Job", value=f"`{record.job_id}` · {record.state}")
    seed = workflow.manifest.seed_of(record.values)
    if seed is not None:
        embed.add_field(name="Seed", value=str(seed))
    if show_backend:
        embed.add_field(name="Backend (admins only)", value=clip(record.backend or "—", 100))
    embed.add_field(name="Timings", value=clip(_timings(record), FIELD_LIMIT), inline=False)
    fence = "```"
    shown = f"{fence}sh\n{command}\n{fence}" if command_fits(command) else f"Too long to show: see `{COMMAND_NAME}`."
    embed.add_field(name="Reproduce from a terminal", value=shown, inline=False)
    return embed


def _paths(workflow: Workflow) -> tuple[str, str | None]:
    """The manifest's file as a terminal in the bot's folder names it, and the workflow folder
    when ``engine run`` would not find it next to the manifests' folder."""
    def shown(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path.resolve())

    manifest, graph = Path(str(workflow.source.file)), Path(workflow.workflow_file)
    usual = manifest.resolve().parent.parent / "workflows"
    return shown(manifest), None if graph.resolve().parent == usual else shown(graph.parent)


async def send_details(interaction: discord.Interaction, workflow: Workflow, record: JobRecord, *,
                       show_backend: bool) -> None:
    """Answer privately with the details, ``graph.json`` and, when long, ``engine-run.sh``."""
    command = engine_command(workflow, record, *_paths(workflow))
    embed = details_embed(workflow, record, command=command, show_backend=show_backend)
    graph = graph_json(workflow, record)
    files = [discord.File(io.BytesIO(graph), filename=GRAPH_NAME)] if graph is not None else []
    if not command_fits(command):
        files.append(discord.File(io.BytesIO(command.encode() + b"\n"), filename=COMMAND_NAME))
    await interaction.response.send_message(embed=embed, files=files, ephemeral=True)
