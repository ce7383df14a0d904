"""``/jobs``: a user's recent jobs, and for admins everyone's queued and running ones, with cancelling.

The answer is private: ten jobs a page (state, workflow, age, a jump link to the job's message;
owners too in the admin view), ◀ ▶ buttons to page, and a menu of the jobs on the page that this
user may cancel — the access policy decides (``manage_refusal``: the owner or an admin), and the
flow's cancel does it (a queued job leaves ComfyUI's queue without interrupting the running one;
a job still waiting in the engine's own line never reached ComfyUI). Only the user who asked
may use the buttons; they expire after five minutes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import discord

from engine import Catalog, JobRecord, JobStore

from ..access import AccessPolicy, Who
from ..delivery.render import clip, format_duration

__all__ = ["JobsCommand", "JobsView", "jobs_embed", "job_line", "jump_link", "PAGE_SIZE"]

PAGE_SIZE = 10
RECENT = 50
VIEW_TIMEOUT = 300.0
NOT_YOURS_VIEW = "This list belongs to someone else; use /jobs yourself."
STATE_ICONS = {"queued": "⏳", "running": "🎨", "done": "✅", "failed": "❌", "cancelled": "⏹️"}

Cancel = Callable[[discord.Interaction, str], Awaitable[None]]


def jump_link(record: JobRecord) -> str | None:
    """The URL of the job's message, when it is known."""
    extra = record.extra
    channel, message = extra.get("channel_id"), extra.get("message_id")
    if not channel or not message:
        return None
    return f"https://discord.com/channels/{extra.get('guild_id') or '@me'}/{channel}/{message}"


def job_line(record: JobRecord, catalog: Catalog, now: float, *, with_owner: bool) -> str:
    """``⏳ **Flux** · queued · 3m 05s ago · [message](link) · `a1b2c3d4``` (and ``<@owner>``)."""
    workflow = catalog.workflows.get(record.manifest)
    title = workflow.manifest.title if workflow is not None and workflow.manifest.title else record.manifest
    parts = [f"{STATE_ICONS.get(record.state, '•')} **{clip(title, 60)}**", record.state,
             f"{format_duration(now - record.created_at)} ago"]
    link = jump_link(record)
    if link:
        parts.append(f"[message]({link})")
    parts.append(f"`{record.job_id[:8]}`")
    if with_owner and record.owner:
        parts.append(f"<@{record.owner}>")
    return " · ".join(parts)


def jobs_embed(records: Sequence[JobRecord], catalog: Catalog, *, now: float, page: int, everyone: bool) -> discord.Embed:
    """Page ``page`` (0-based) of ``records``."""
    pages = max(-(-len(records) // PAGE_SIZE), 1)
    shown = records[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    title = "Jobs: everyone's queued and running, then yours" if everyone else "Your recent jobs"
    lines = [job_line(r, catalog, now, with_owner=everyone) for r in shown]
    embed = discord.Embed(title=title, colour=discord.Colour.blurple(),
                          description="\n".join(lines) if lines else "No jobs to show.")
    embed.set_footer(text=f"page {page + 1}/{pages} · {len(records)} job(s)")
    return embed


class JobsView(discord.ui.View):
    """◀ ▶ and "cancel a job" for one user's /jobs answer."""

    def __init__(self, records: list[JobRecord], catalog: Catalog, *, who: Who, access: AccessPolicy,
                 cancel: Cancel, everyone: bool, clock: Callable[[], float] = time.time):
        super().__init__(timeout=VIEW_TIMEOUT)
        self.records, self.catalog, self.who, self.access = records, catalog, who, access
        self.cancel, self.everyone, self.clock = cancel, everyone, clock
        self.page = 0
        self.pages = max(-(-len(records) // PAGE_SIZE), 1)
        self._build()

    def embed(self) -> discord.Embed:
        return jobs_embed(self.records, self.catalog, now=self.clock(), page=self.page, everyone=self.everyone)

    def cancellable(self) -> list[JobRecord]:
        """The page's unfinished jobs this user may cancel (the access policy's rule)."""
        page = self.records[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]
        return [r for r in page if not r.finished and self.access.manage_refusal(self.who, r.owner) is None]

    def _build(self) -> None:
        self.clear_items()
        self.add_item(_PageButton(self, -1, "◀", disabled=self.page == 0))
        self.add_item(_PageButton(self, 1, "▶", disabled=self.page >= self.pages - 1))
        options = [discord.SelectOption(label=clip(f"{r.manifest} · {r.state} · {r.job_id[:8]}", 100), value=r.job_id)
                   for r in self.cancellable()]
        if options:
            self.add_item(_CancelSelect(self, options))

    async def turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self._build()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.who.user_id:
            return True
        await interaction.response.send_message(NOT_YOURS_VIEW, ephemeral=True)
        return False


class _PageButton(discord.ui.Button["JobsView"]):
    def __init__(self, owner: JobsView, step: int, label: str, *, disabled: bool):
        super().__init__(label=label, style=discord.ButtonStyle.secondary, disabled=disabled)
        self.owner, self.step = owner, step

    async def callback(self, interaction: discord.Interaction) -> None:
        await self.owner.turn(interaction, self.step)


class _CancelSelect(discord.ui.Select["JobsView"]):
    def __init__(self, owner: JobsView, options: list[discord.SelectOption]):
        super().__init__(placeholder="Cancel a job…", options=options, row=1)
        self.owner = owner

    async def callback(self, interaction: discord.Interaction) -> None:
        await self.owner.cancel(interaction, self.values[0])  # the flow checks the access policy again


class JobsCommand:
    """The ``/jobs`` handler: which jobs to list (the access policy says who sees everyone's)."""

    def __init__(self, *, store: JobStore, catalog: Callable[[], Catalog], access: AccessPolicy, cancel: Cancel):
        self.store, self.catalog, self.access, self.cancel = store, catalog, access, cancel

    async def records(self, who: Who) -> tuple[list[JobRecord], bool]:
        """Everyone's unfinished jobs then the admin's own, or the user's own recent jobs; and whether
        the list covers everyone."""
        own = await self.store.recent(owner=str(who.user_id), limit=RECENT)
        if not self.access.is_admin(who):
            return own, False
        unfinished = sorted(await self.store.unfinished(), key=lambda r: r.created_at)
        seen = {r.job_id for r in unfinished}
        return unfinished + [r for r in own if r.job_id not in seen], True

    async def show(self, interaction: discord.Interaction) -> None:
        who = Who.of(interaction)
        records, everyone = await self.records(who)
        view = JobsView(records, self.catalog(), who=who, access=self.access, cancel=self.cancel, everyone=everyone)
        await interaction.response.send_message(embed=view.embed(), view=view, ephemeral=True)
