"""Embeds for progress and results (pure: data in, ``discord.Embed`` out, no I/O).

``progress_embed`` draws one ``ProgressEvent``: a 20-block bar, percent, phase, step, place in
line (the engine's ``place_text``: "3rd in line", "next"), ETA and elapsed time, coloured by state. ``result_embed`` lists every value a job ran
with (the drawn seed included; each shown by its param) so a result can be reproduced, plus the
fitting notices.
Everything is clipped to Discord's embed limits (title 256, description 4096, field 1024,
footer 2048, 25 fields, 6000 in total); ``embed_size``/``embed_problems`` check them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import discord

from engine import JobState, ProgressEvent, Workflow, place_text

__all__ = [
    "BAR_BLOCKS",
    "STATE_COLOURS",
    "clip",
    "progress_bar",
    "format_duration",
    "progress_embed",
    "progress_key",
    "result_embed",
    "embed_size",
    "embed_problems",
]

BAR_BLOCKS = 20
TITLE_LIMIT, DESCRIPTION_LIMIT, FIELD_NAME_LIMIT, FIELD_VALUE_LIMIT = 256, 4096, 256, 1024
FOOTER_LIMIT, FIELD_COUNT_LIMIT, TOTAL_LIMIT = 2048, 25, 6000
PROMPT_PREVIEW_LIMIT = 300
TEXT_BUDGET = 3500  # description share for text params; leaves room for fields within 6000

STATE_COLOURS = {
    JobState.QUEUED: discord.Colour.orange(),
    JobState.RUNNING: discord.Colour.blue(),
    JobState.DONE: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.CANCELLED: discord.Colour.light_grey(),
}
_STATE_TITLES = {
    JobState.QUEUED: "⏳ {title}: queued",
    JobState.RUNNING: "🎨 {title}: running",
    JobState.DONE: "✅ {title}: done",
    JobState.FAILED: "❌ {title}: failed",
    JobState.CANCELLED: "⏹️ {title}: cancelled",
}


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def progress_bar(percent: float) -> str:
    filled = min(max(round(percent / 100 * BAR_BLOCKS), 0), BAR_BLOCKS)
    return "█" * filled + "░" * (BAR_BLOCKS - filled)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    total = max(int(round(seconds)), 0)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def progress_key(event: ProgressEvent | None) -> tuple:
    """What a progress message shows, minus the ticking clocks: equal keys need no edit."""
    if event is None:
        return ("starting",)
    return (event.state, event.queue_position, event.line_position, event.on_server, int(event.percent), event.phase,
            event.step, event.steps, event.error)


def _progress_fields(embed: discord.Embed, event: ProgressEvent, elapsed: float) -> None:
    if (place := place_text(event)) is not None:  # "3rd in line", "next", ...
        embed.add_field(name="Queue", value=place)
    if event.phase and event.state is JobState.RUNNING:
        embed.add_field(name="Phase", value=clip(event.phase, 100))
    if event.step is not None and event.steps:
        embed.add_field(name="Step", value=f"{event.step}/{event.steps}")
    if event.eta_seconds is not None and not event.finished:
        embed.add_field(name="ETA", value=f"~{format_duration(event.eta_seconds)}")
    embed.add_field(name="Elapsed", value=format_duration(elapsed))
    if event.state is JobState.FAILED:
        embed.add_field(name="Error", value=clip(event.error or "the workflow failed", FIELD_VALUE_LIMIT), inline=False)


def progress_embed(
    workflow_title: str,
    event: ProgressEvent | None,
    *,
    prompt_preview: str | None = None,
    elapsed: float | None = None,
    preview_url: str | None = None,
) -> discord.Embed:
    """The progress message for one job; ``event`` None means "submitted, nothing heard yet".

    ``preview_url`` shows a live preview, e.g. ``"attachment://preview.jpg"`` for ``event.preview``
    sent as a file with the edit."""
    title = clip(workflow_title, 200)
    lines = [f"> {clip(' '.join(prompt_preview.split()), PROMPT_PREVIEW_LIMIT)}"] if prompt_preview else []
    if event is None:
        lines.append("Joining the queue…")  # our own queue first (queue_depth), else the server's
        return discord.Embed(title=f"⏳ {title}: starting", description="\n".join(lines),
                             colour=STATE_COLOURS[JobState.QUEUED])
    percent = 100.0 if event.state is JobState.DONE else event.percent
    lines.append(f"`{progress_bar(percent)}` {percent:.0f}%")
    embed = discord.Embed(title=_STATE_TITLES[event.state].format(title=title), description="\n".join(lines),
                          colour=STATE_COLOURS[event.state])
    _progress_fields(embed, event, event.elapsed if elapsed is None else elapsed)
    if preview_url and not event.finished:
        embed.set_image(url=preview_url)
    return embed


def _text_lines(workflow: Workflow, values: Mapping[str, Any]) -> list[str]:
    """Text values as paragraphs, the job's caption first."""
    caption = workflow.manifest.caption_param
    texts = sorted(((n, p) for n, p in workflow.manifest.params.items() if p.is_text and values.get(n)),
                   key=lambda item: item[0] != caption)
    share = TEXT_BUDGET // max(len(texts), 1)
    return [f"**{p.label or n}**\n{clip(str(values[n]), max(share - len(p.label or n) - 8, 40))}" for n, p in texts]


def _value_fields(workflow: Workflow, values: Mapping[str, Any], seed: int | None) -> list[tuple[str, str]]:
    fields = []
    for name, param in workflow.manifest.params.items():
        if not param.is_text and name in values:
            fields.append((param.label or name, param.show(values[name])))
    has_seed = any(p.is_random and n in values for n, p in workflow.manifest.params.items())
    if seed is not None and not has_seed:
        fields.append(("Seed", str(seed)))
    return fields


def result_embed(
    workflow: Workflow,
    values: Mapping[str, Any],
    *,
    seed: int | None = None,
    backend: str | None = None,
    elapsed: float | None = None,
    notices: Sequence[str] = (),
    index: int = 1,
    total: int = 1,
) -> discord.Embed:
    """The card under one output: text params in the description, every other value as a field."""
    title = f"✅ {workflow.manifest.title or workflow.name}" + (f" #{index}/{total}" if total > 1 else "")
    embed = discord.Embed(title=clip(title, TITLE_LIMIT), description="\n".join(_text_lines(workflow, values)),
                          colour=STATE_COLOURS[JobState.DONE])
    fields = _value_fields(workflow, values, seed)
    room = FIELD_COUNT_LIMIT - (1 if notices else 0)
    if len(fields) > room:  # fold the overflow into one field rather than dropping values
        folded = ", ".join(f"{k}: {v}" for k, v in fields[room - 1:])
        fields = fields[: room - 1] + [("More", folded)]
    for name, value in fields:
        embed.add_field(name=clip(name, FIELD_NAME_LIMIT), value=clip(value, FIELD_VALUE_LIMIT))
    if notices:
        embed.add_field(name="Notes", value=clip("\n".join(notices), FIELD_VALUE_LIMIT), inline=False)
    footer = [part for part in (backend and f"on {backend}", elapsed is not None and format_duration(elapsed)) if part]
    if footer:
        embed.set_footer(text=clip(" · ".join(footer), FOOTER_LIMIT))
    return _fit_total(embed)


def _fit_total(embed: discord.Embed) -> discord.Embed:
    """Shrink the description until the whole embed is within the 6000-character total."""
    excess = embed_size(embed) - TOTAL_LIMIT
    if excess > 0 and embed.description:
        embed.description = clip(embed.description, max(len(embed.description) - excess, 0))
    return embed


def embed_size(embed: discord.Embed) -> int:
    """Characters Discord counts towards the 6000 total: title, description, fields, footer, author."""
    data = embed.to_dict()
    parts = [data.get("title", ""), data.get("description", ""), data.get("footer", {}).get("text", ""),
             data.get("author", {}).get("name", "")]
    parts += [f["name"] + f["value"] for f in data.get("fields", [])]
    return sum(len(p) for p in parts)


def embed_problems(embed: discord.Embed) -> list[str]:
    """Every Discord embed limit ``embed`` breaks (empty when it can be sent)."""
    data, problems = embed.to_dict(), []
    checks = [("title", len(data.get("title", "")), TITLE_LIMIT),
              ("description", len(data.get("description", "")), DESCRIPTION_LIMIT),
              ("footer", len(data.get("footer", {}).get("text", "")), FOOTER_LIMIT),
              ("fields", len(data.get("fields", [])), FIELD_COUNT_LIMIT),
              ("total", embed_size(embed), TOTAL_LIMIT)]
    for field in data.get("fields", []):
        checks += [("field name", len(field["name"]), FIELD_NAME_LIMIT),
                   ("field value", len(field["value"]), FIELD_VALUE_LIMIT)]
        if not field["value"]:
            problems.append("empty field value")
    problems += [f"{what} {size} > {limit}" for what, size, limit in checks if size > limit]
    return problems
