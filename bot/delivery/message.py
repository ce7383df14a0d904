"""Where a job's message lives and what goes into it at the end: results fitted to Discord, or the error.

One message per job. The interaction's deferred "thinking" message becomes the progress message
and is finally edited into the result (files attached, buttons below) or into a red error / grey
"Cancelled" card — one message per job, no clutter, and the buttons' custom_ids keep working
after a restart. :class:`MessageTarget` edits that message with the interaction token while it
is safely alive (``throttle.token_alive``) and with the bot token afterwards
(``PATCH /channels/{c}/messages/{m}``), so jobs longer than 15 minutes and jobs resumed after a
restart still land. If the message is gone (deleted by a user), the result is posted anew.

Files: every output is fitted to the upload limit (``fit_file_async``: the interaction's
``filesize_limit`` on the token path, the guild's on the bot-token path, 10 MiB by default). A
batch of several images gets one grid image first, then as many originals as fit in 10 files and
the request size; what was changed or left out is said in the embed's notes. Audio results get a
waveform picture of their first track as the embed's image (the tracks play as attachments).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

import discord

from engine import DEFAULT_LIMITS, JobResult, JobState, OutputFile, Workflow

from ..views.buttons import result_view
from .audio import AudioError, waveform_png
from .fitting import FittedFile, TooLargeError, fit_file_async, make_grid
from .render import DESCRIPTION_LIMIT, STATE_COLOURS, TOTAL_LIMIT, clip, embed_size, result_embed
from .throttle import token_alive

__all__ = [
    "DEFAULT_FILESIZE_LIMIT",
    "MAX_FILES",
    "REQUEST_LIMIT",
    "MessageTarget",
    "fit_outputs",
    "result_fields",
    "failure_fields",
    "lost_fields",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_FILESIZE_LIMIT = 10 * MIB  # what a bot may upload in an unboosted guild or a DM
MAX_FILES = 10  # attachments per message
REQUEST_LIMIT = 25 * MIB  # Discord's documented cap on one message request
TEXT_OUTPUT_LIMIT = 1500
GRID_NAME = "grid.jpg"
WAVEFORM_NAME = "waveform.png"


EDIT_LIMIT_REACHED = 30046  # "Maximum number of edits to messages older than 1 hour reached"


@dataclass
class MessageTarget:
    """The job's message: ``interaction`` (None after a restart) edits it while its token lives."""

    client: discord.Client
    channel_id: int
    message_id: int
    created_at: datetime
    guild_id: int | None = None
    interaction: discord.Interaction | None = None
    clock: Callable[[], datetime] = field(default=discord.utils.utcnow)

    def uses_token(self) -> bool:
        return self._live_interaction() is not None

    def _live_interaction(self) -> discord.Interaction | None:
        """The interaction while its token is safe to use, else None (the bot token's turn)."""
        return self.interaction if self.interaction is not None and token_alive(self.created_at, self.clock()) \
            else None

    def filesize_limit(self) -> int:
        """Bytes one file may have on the path the next edit takes."""
        if interaction := self._live_interaction():
            return interaction.filesize_limit
        guild = self.client.get_guild(self.guild_id) if self.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_FILESIZE_LIMIT

    async def edit(self, **fields: Any) -> None:
        """Edit the message (``embed``/``embeds``, ``attachments``, ``view``, ``content``)."""
        if interaction := self._live_interaction():
            await interaction.edit_original_response(**fields)
            return
        channel = self.client.get_partial_messageable(self.channel_id, guild_id=self.guild_id)
        await channel.get_partial_message(self.message_id).edit(**fields)

    async def replace(self, **fields: Any) -> None:
        """Edit the message, or post a new one in the channel when it is gone or can no longer be
        edited (Discord's 30046: too many edits to a message older than an hour); ``message_id`` follows."""
        fields = dict(fields)
        try:
            await self.edit(**fields)
        except discord.HTTPException as exc:
            if not (isinstance(exc, discord.NotFound) or exc.code == EDIT_LIMIT_REACHED):
                raise
            log.info("job message %s cannot be edited (%s); posting the outcome anew", self.message_id, exc.code)
            channel = self.client.get_partial_messageable(self.channel_id, guild_id=self.guild_id)
            files = [f for f in fields.pop("attachments", ()) if isinstance(f, discord.File)]
            message = await channel.send(files=files, **fields)
            self.message_id, self.interaction = message.id, None


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.-]", "_", name.rsplit("/", 1)[-1]) or "output"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{number}_{base}"
    taken.add(candidate)
    return candidate


def _grid(outputs: Sequence[OutputFile], limit: int, max_pixels: int) -> bytes | None:
    try:
        return make_grid([o.data for o in outputs], limit=limit, max_pixels=max_pixels)
    except TooLargeError as exc:
        log.warning("no grid of %d images: %s", len(outputs), exc)
    except Exception as exc:  # a corrupt output must not cost the whole result
        log.warning("could not build a grid of %d images: %s", len(outputs), type(exc).__name__)
    return None


async def fit_outputs(outputs: Sequence[OutputFile], *, limit: int, request_limit: int = REQUEST_LIMIT,
                      max_files: int = MAX_FILES, max_pixels: int = DEFAULT_LIMITS.max_output_pixels
                      ) -> tuple[list[FittedFile], list[str]]:
    """The files to attach (a grid first for a batch of still images) and the notes about them;
    images are decoded only within ``max_pixels`` (``max_output_pixels``)."""
    files: list[FittedFile] = []
    notices: list[str] = []
    stills = [o for o in outputs if o.kind == "image" and not o.animated]
    if len(stills) > 1 and len(outputs) > 1:
        grid = await asyncio.to_thread(_grid, stills, limit, max_pixels)
        if grid is not None:
            files.append(FittedFile(grid, GRID_NAME, "image/jpeg", changed=False, notice=""))
    budget = max(request_limit, limit) - sum(len(f.data) for f in files)
    left_out = 0
    for number, output in enumerate(outputs, start=1):
        try:
            fitted = await fit_file_async(output.data, filename=output.filename, mime=output.mime, limit=limit,
                                          max_pixels=max_pixels)
        except TooLargeError as exc:
            notices.append(f"#{number}: {exc}")
            continue
        if len(files) >= max_files or len(fitted.data) > budget:
            left_out += 1
            continue
        files.append(dataclasses.replace(fitted, source=number))
        budget -= len(fitted.data)
        if fitted.notice:
            notices.append(f"#{number}: {fitted.notice}" if len(outputs) > 1 else fitted.notice)
    if left_out:
        shown = " (the grid shows them)" if files and files[0].filename == GRID_NAME else ""
        notices.append(f"{left_out} more file(s) did not fit in one message{shown}.")
    return files, notices


async def _waveform(outputs: Sequence[OutputFile]) -> bytes | None:
    """A waveform picture of the first audio output (None without audio, or when it cannot be read)."""
    audio = next((o for o in outputs if o.kind == "audio"), None)
    if audio is None:
        return None
    try:
        return await asyncio.to_thread(waveform_png, audio.data)
    except AudioError as exc:  # the track itself is still delivered (or its own notice says why not)
        log.warning("no waveform for %s: %s", audio.filename, exc)
        return None


def _with_texts(embed: discord.Embed, texts: Sequence[str]) -> discord.Embed:
    if not texts:
        return embed
    shown = clip("\n\n".join(t.strip() for t in texts if t.strip()), TEXT_OUTPUT_LIMIT)
    embed.description = clip("\n\n".join(p for p in (shown, embed.description or "") if p), DESCRIPTION_LIMIT)
    excess = embed_size(embed) - TOTAL_LIMIT
    if excess > 0:
        embed.description = clip(embed.description, max(len(embed.description) - excess, 0))
    return embed


def original_links(outputs_count: int, fitted: Sequence[FittedFile],
                   link: Callable[[int], str] | None) -> list[tuple[str, str]]:
    """``(label, url)`` of an "Original" link for every output not attached as it was (shrunk,
    re-encoded or left out); none without ``link`` (originals are off)."""
    if link is None:
        return []
    intact = {f.source for f in fitted if not f.changed}
    missing = [n for n in range(1, outputs_count + 1) if n not in intact]
    return [("Original" + (f" #{n}" if outputs_count > 1 else ""), link(n)) for n in missing]


async def result_fields(job_id: str, workflow: Workflow, result: JobResult, *, limit: int,
                        actions: Sequence[tuple[str, str]],
                        original_link: Callable[[int], str] | None = None,
                        max_pixels: int = DEFAULT_LIMITS.max_output_pixels) -> dict[str, Any]:
    """What the job's message is edited to when it is done: embed, files and buttons.

    ``original_link(n)`` gives the signed URL of output #n's original (see ``bot.originals``);
    images are decoded only within ``max_pixels`` (``max_output_pixels``)."""
    fitted, notices = await fit_outputs(result.outputs, limit=limit, max_pixels=max_pixels)
    taken: set[str] = set()
    files = [discord.File(io.BytesIO(f.data), filename=_safe_name(f.filename, taken)) for f in fitted]
    embed = result_embed(workflow, result.values, seed=workflow.manifest.seed_of(result.values),
                         backend=None,  # a backend's name is for admins: the Details button shows it to them
                         elapsed=result.seconds, notices=notices)
    embed = _with_texts(embed, result.texts)
    if files and fitted[0].mime.startswith("image/"):
        embed.set_image(url=f"attachment://{files[0].filename}")
    elif len(files) < MAX_FILES and (picture := await _waveform(result.outputs)) is not None:
        files.append(discord.File(io.BytesIO(picture), filename=_safe_name(WAVEFORM_NAME, taken)))
        embed.set_image(url=f"attachment://{files[-1].filename}")
    if not result.outputs and not result.texts:
        embed.description = clip((embed.description or "") + "\n*The workflow produced no output.*", DESCRIPTION_LIMIT)
    links = original_links(len(result.outputs), fitted, original_link)
    view = result_view(job_id, workflow, len(result.outputs), actions, links=links)
    return {"content": None, "embeds": [embed], "attachments": files, "view": view}


def lost_fields(name: str, text: str) -> dict[str, Any]:
    """The message of a job that ended without its workflow (removed while it ran): red, no
    buttons (the progress view's Cancel goes too)."""
    embed = discord.Embed(title=f"❌ {clip(name, 200)}: failed", description=clip(text, DESCRIPTION_LIMIT),
                          colour=STATE_COLOURS[JobState.FAILED])
    return {"content": None, "embeds": [embed], "attachments": [], "view": None}


def failure_fields(job_id: str, workflow: Workflow, text: str, *, cancelled: bool = False) -> dict[str, Any]:
    """The job's message when it failed (red, the mapped message) or was cancelled (grey)."""
    title = clip(workflow.manifest.title or workflow.name, 200)
    state = JobState.CANCELLED if cancelled else JobState.FAILED
    heading = f"⏹️ {title}: cancelled" if cancelled else f"❌ {title}: failed"
    embed = discord.Embed(title=heading, description=clip(text, DESCRIPTION_LIMIT), colour=STATE_COLOURS[state])
    view = result_view(job_id, workflow, 0, ())
    return {"content": None, "embeds": [embed], "attachments": [], "view": view}
