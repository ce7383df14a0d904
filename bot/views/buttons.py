"""Persistent buttons under progress and result messages, rebuilt from their custom_id alone.

Every button is a ``discord.ui.DynamicItem`` whose custom_id (≤ 100 chars) encodes the action
and the job id, e.g. ``dc:rerun:<job>`` or ``dc:act:<job>:<output #>:<target manifest>``, so a
click works after a restart with no stored view: the app registers the classes once with
``install_buttons(client, hooks)`` (``client.add_dynamic_items(*DYNAMIC_ITEMS)``).

What a click does is the app's business: the callbacks call the ``ButtonHooks`` the app stores
on the client as ``client.discomfy_buttons`` (see ``install_buttons``); no module-level state.
Every click is checked with the access policy (``bot.access``): rerun, new seed and tweak by the
job's workflow's rules, an action by its source's and its target's, delete and cancel for the
job's owner or an admin (the hooks check again and apply rate limits). Buttons that open a modal answer with it at once (a modal
cannot follow a defer); everything else is left to the hook, which must respond within 3 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import discord

from engine import StoreError, Workflow, discord_limits as limits

from ..access import AccessPolicy, Who
from ..errors import STORE_DOWN
from .details import DetailsButton
from .modals import (FIELDS_PER_MODAL, LiveChoices, ModalId, ParamModal, from_earlier_run, new_nonce, page_title,
                     parse_modal_custom_id, raw_modal_values)

__all__ = [
    "HOOKS_ATTRIBUTE",
    "JobInfo",
    "WorkflowGone",
    "ButtonHooks",
    "install_buttons",
    "hooks_of",
    "RerunButton",
    "NewSeedButton",
    "TweakButton",
    "ActionButton",
    "DeleteButton",
    "CancelButton",
    "DYNAMIC_ITEMS",
    "tweak_params",
    "action_params",
    "tweak_modal",
    "action_modal",
    "result_view",
    "progress_view",
    "resume_modal",
]

HOOKS_ATTRIBUTE = "discomfy_buttons"
MAX_BUTTONS = 5 * 5  # five action rows of five buttons
LABEL_LIMIT = limits.MAX_BUTTON_LABEL_LENGTH
_JOB = r"(?P<job>[-_a-z0-9]{1,40})"
UNKNOWN_JOB = "I no longer know this job, so this button cannot work."
UNAVAILABLE = "This button is not available right now."
STALE_FORM = "This form was opened before the bot restarted; please open it again."


class WorkflowGone(LookupError):
    """The job's workflow was removed from the catalog (hot reload): its buttons cannot run it again."""

    def __init__(self, workflow: str):
        super().__init__(f"The workflow {workflow[:100]!r} has been removed, so this button no longer works.")


@dataclass(frozen=True)
class JobInfo:
    """What a button needs to know about a finished or running job (from the job store)."""

    owner_id: str
    workflow: Workflow
    values: Mapping[str, Any]  # the values it ran with, drawn seed and server image names included


@dataclass(frozen=True)
class ButtonHooks:
    """The app's side of the buttons. Every hook that gets an interaction must respond to it.

    - ``job(job_id)`` → the job's ``JobInfo`` or None (keep it fast: modals must open within 3 s)
    - ``workflow(name)`` → a catalog workflow or None (action targets)
    - ``run(interaction, workflow, values)`` → start a job (rerun, new seed, tweak)
    - ``action(interaction, job_id, output_index, target, values)`` → feed output #index (1-based)
      of the job into ``target``'s first param that takes its kind (``Manifest.param_taking``: an
      image, a sound), with ``values`` for its other params
    - ``cancel(interaction, job_id)`` → cancel a queued or running job
    - ``live(source)`` → the server's list for a ``choices_from`` source, for modal selects
    - ``access`` → the access policy every click is checked with
    - ``details(interaction, job_id)`` → answer the Details button (``views.details``)
    """

    job: Callable[[str], Awaitable[JobInfo | None]]
    workflow: Callable[[str], Workflow | None]
    run: Callable[[discord.Interaction, Workflow, dict[str, Any]], Awaitable[None]]
    action: Callable[[discord.Interaction, str, int, Workflow, dict[str, Any]], Awaitable[None]]
    cancel: Callable[[discord.Interaction, str], Awaitable[None]]
    access: AccessPolicy
    live: LiveChoices | None = None
    details: Callable[[discord.Interaction, str], Awaitable[None]] | None = None  # the Details button


def install_buttons(client: discord.Client, hooks: ButtonHooks) -> None:
    """Store ``hooks`` on the client and register every button class (call once, in setup_hook)."""
    setattr(client, HOOKS_ATTRIBUTE, hooks)
    client.add_dynamic_items(*DYNAMIC_ITEMS)


def hooks_of(client: discord.Client) -> ButtonHooks | None:
    return getattr(client, HOOKS_ATTRIBUTE, None)


async def _tell(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True)


async def _context(interaction: discord.Interaction, job_id: str, *, manage: bool = False
                   ) -> tuple[ButtonHooks, JobInfo] | None:
    """The hooks and the job for a click, or None after telling the user why not: the access policy
    decides (``manage``: cancel/delete — owner or admin; else the job's workflow may run here)."""
    hooks = hooks_of(interaction.client)
    if hooks is None:
        await _tell(interaction, UNAVAILABLE)
        return None
    try:
        job = await hooks.job(job_id)
    except StoreError:
        await _tell(interaction, STORE_DOWN)
        return None
    except WorkflowGone as gone:
        await _tell(interaction, str(gone))
        return None
    if job is None:
        await _tell(interaction, UNKNOWN_JOB)
        return None
    who = Who.of(interaction)
    refusal = hooks.access.manage_refusal(who, job.owner_id) if manage else hooks.access.run_refusal(who, job.workflow)
    if refusal:
        await _tell(interaction, refusal)
        return None
    return hooks, job


def _button(custom_id: str, label: str, style=discord.ButtonStyle.secondary) -> discord.ui.Button:
    return discord.ui.Button(custom_id=custom_id, label=label[:LABEL_LIMIT], style=style)


def tweak_params(workflow: Workflow) -> list[str]:
    """Params a tweak modal offers: every param but files (images, sounds: those stay), basic ones first."""
    params = workflow.manifest.params
    return [n for n in workflow.manifest.basic_params + workflow.manifest.advanced_params if not params[n].is_upload]


def action_params(target: Workflow) -> list[str]:
    """The target's basic params but files (required first, ≤ 5); [] when none is required."""
    params = target.manifest.params
    names = [n for n in target.manifest.basic_params if not params[n].is_upload]
    names.sort(key=lambda n: not params[n].required)
    return names[:FIELDS_PER_MODAL] if any(params[n].required for n in names) else []


def tweak_modal(hooks: ButtonHooks, job_id: str, job: JobInfo, page: int) -> ParamModal | None:
    """Page ``page`` of the tweak modal, prefilled with the values the job used."""
    names = tweak_params(job.workflow)
    pages = [names[i:i + FIELDS_PER_MODAL] for i in range(0, len(names), FIELDS_PER_MODAL)]
    if not 1 <= page <= len(pages):
        return None

    async def on_values(interaction: discord.Interaction, values: dict[str, Any]) -> None:
        await hooks.run(interaction, job.workflow, {**job.values, **values})

    title = page_title(f"Tweak {job.workflow.manifest.title or job.workflow.name}", page, len(pages))
    return ParamModal(job.workflow, pages[page - 1], job.values, title=title, on_values=on_values, live=hooks.live,
                      custom_id=ModalId("tweak", job_id, page, nonce=new_nonce()).to_custom_id())


def action_modal(hooks: ButtonHooks, job_id: str, job: JobInfo, index: int, target: Workflow) -> ParamModal | None:
    """The modal asking for the target's other params, prefilled from the job's same-named values."""
    names = action_params(target)
    if not names:
        return None
    params = target.manifest.params
    prefill = {n: job.values[n] for n in names
               if n in job.values and n in job.workflow.manifest.params
               and job.workflow.manifest.params[n].same_kind(params[n])}

    async def on_values(interaction: discord.Interaction, values: dict[str, Any]) -> None:
        await hooks.action(interaction, job_id, index, target, values)

    return ParamModal(target, names, prefill, title=target.manifest.title or target.name, on_values=on_values,
                      live=hooks.live, custom_id=ModalId("act", job_id, index, target.name, new_nonce()).to_custom_id())


class RerunButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"^dc:rerun:{_JOB}$"):
    """Runs the job again with the very same values, seed included."""

    ACTION, LABEL = "rerun", "🔁 Rerun"

    def __init__(self, job_id: str, label: str | None = None):
        super().__init__(_button(f"dc:{self.ACTION}:{job_id}", label or self.LABEL))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"])

    def rerun_values(self, job: JobInfo) -> dict[str, Any]:
        return dict(job.values)

    async def callback(self, interaction: discord.Interaction) -> None:
        if context := await _context(interaction, self.job_id):
            hooks, job = context
            await hooks.run(interaction, job.workflow, self.rerun_values(job))


class NewSeedButton(RerunButton, template=rf"^dc:seed:{_JOB}$"):
    """Runs the job again with the same values and fresh random seeds."""

    ACTION, LABEL = "seed", "🎲 New seed"

    def rerun_values(self, job: JobInfo) -> dict[str, Any]:
        params = job.workflow.manifest.params
        return {n: (None if n in params and params[n].is_random else v) for n, v in job.values.items()}


class TweakButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"^dc:tweak:{_JOB}:(?P<page>\d{{1,2}})$"):
    """Opens page ``page`` of the tweak modal; submitting it runs the job with the changes."""

    def __init__(self, job_id: str, page: int = 1, label: str = "🛠️ Tweak"):
        super().__init__(_button(f"dc:tweak:{job_id}:{page}", label))
        self.job_id, self.page = job_id, page

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"], int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if context := await _context(interaction, self.job_id):
            hooks, job = context
            modal = tweak_modal(hooks, self.job_id, job, self.page)
            if modal is None:
                await _tell(interaction, "This workflow changed since; there is nothing to tweak here.")
            else:
                await interaction.response.send_modal(modal)


class ActionButton(discord.ui.DynamicItem[discord.ui.Button],
                   template=rf"^dc:act:{_JOB}:(?P<index>\d{{1,2}}):(?P<target>[-_a-z0-9]{{1,32}})$"):
    """Feeds output #index into another manifest, asking for its other required params first."""

    def __init__(self, job_id: str, index: int, target: str, label: str = ""):
        super().__init__(_button(f"dc:act:{job_id}:{index}:{target}", label or target, discord.ButtonStyle.primary))
        self.job_id, self.index, self.target = job_id, index, target

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"], int(match["index"]), match["target"])

    async def callback(self, interaction: discord.Interaction) -> None:
        context = await _context(interaction, self.job_id)
        if context is None:
            return
        hooks, job = context
        target = hooks.workflow(self.target)
        if target is None or target.manifest.param_taking(job.workflow.manifest.kind) is None:
            await _tell(interaction, "This action is not available any more.")
            return
        refusal = hooks.access.run_refusal(Who.of(interaction), target)  # the source's: checked by _context
        if refusal:
            await _tell(interaction, refusal)
            return
        modal = action_modal(hooks, self.job_id, job, self.index, target)
        if modal is not None:
            await interaction.response.send_modal(modal)
        else:
            await hooks.action(interaction, self.job_id, self.index, target, {})


class DeleteButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"^dc:del:{_JOB}$"):
    """Deletes the result message (the job's owner or an admin)."""

    def __init__(self, job_id: str, label: str = "🗑️ Delete"):
        super().__init__(_button(f"dc:del:{job_id}", label, discord.ButtonStyle.danger))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if await _context(interaction, self.job_id, manage=True):
            await interaction.response.defer()
            await interaction.delete_original_response()  # the message this button is on


class CancelButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"^dc:cancel:{_JOB}$"):
    """Cancels a queued or running job (the job's owner or an admin)."""

    def __init__(self, job_id: str, label: str = "⏹️ Cancel"):
        super().__init__(_button(f"dc:cancel:{job_id}", label, discord.ButtonStyle.danger))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match, /):
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if context := await _context(interaction, self.job_id, manage=True):
            await context[0].cancel(interaction, self.job_id)


DYNAMIC_ITEMS = (RerunButton, NewSeedButton, TweakButton, ActionButton, DeleteButton, CancelButton, DetailsButton)


def _control_buttons(job_id: str, workflow: Workflow) -> list[discord.ui.Item]:
    buttons: list[discord.ui.Item] = [RerunButton(job_id)]
    if any(p.is_random for p in workflow.manifest.params.values()):
        buttons.append(NewSeedButton(job_id))
    pages = -(-len(tweak_params(workflow)) // FIELDS_PER_MODAL)
    buttons += [TweakButton(job_id, page, "🛠️ Tweak" + (f" {page}/{pages}" if pages > 1 else ""))
                for page in range(1, pages + 1)]
    return buttons


def result_view(job_id: str, workflow: Workflow, outputs_count: int,
                actions: Sequence[tuple[str, str]], *, links: Sequence[tuple[str, str]] = ()) -> discord.ui.View:
    """Buttons for a result message: rerun, new seed, tweak (per page), details and delete, the ``links``
    (``(label, url)``: "Original" links to full-quality files), then each action per output
    ("Upscale #2" when there are several) while room is left. When it fits, the controls take the
    first row(s) and each output's actions a row of their own."""
    view = discord.ui.View(timeout=None)
    controls = _control_buttons(job_id, workflow) + [DetailsButton(job_id), DeleteButton(job_id)]
    controls += [discord.ui.Button(style=discord.ButtonStyle.link, label=label[:LABEL_LIMIT], url=url)
                 for label, url in links][:MAX_BUTTONS - len(controls)]
    many = outputs_count > 1
    wanted = [ActionButton(job_id, i, name, label + (f" #{i}" if many else ""))
              for i in range(1, outputs_count + 1) for name, label in actions]
    wanted = wanted[:MAX_BUTTONS - len(controls)]
    control_rows = -(-len(controls) // 5)
    tidy = len(actions) <= 5 and control_rows + outputs_count <= 5 and len(wanted) == outputs_count * len(actions)
    for number, item in enumerate(controls):
        item.row = number // 5 if tidy else None
        view.add_item(item)
    for action in wanted:
        action.row = control_rows - 1 + action.index if tidy else None
        view.add_item(action)
    return view


def progress_view(job_id: str) -> discord.ui.View:
    """The Cancel button under a progress message."""
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


async def _rebuilt_modal(hooks: ButtonHooks, modal_id: ModalId) -> ParamModal | None:
    try:
        job = await hooks.job(modal_id.key) if modal_id.purpose in ("tweak", "act") else None
    except WorkflowGone:
        return None
    if job is None:
        return None
    if modal_id.purpose == "tweak":
        return tweak_modal(hooks, modal_id.key, job, modal_id.page)
    target = hooks.workflow(modal_id.target)
    return action_modal(hooks, modal_id.key, job, modal_id.page, target) if target else None


async def resume_modal(interaction: discord.Interaction) -> bool:
    """For the app's ``on_interaction``: answer a tweak/action modal submitted after a restart
    (discord.py drops those silently) by rebuilding it from its custom_id and the job store.
    Returns True when the interaction was ours and has been answered."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return False
    data: Mapping[str, Any] = interaction.data or {}  # a modal submit's payload (a TypedDict at runtime a dict)
    modal_id = parse_modal_custom_id(str(data.get("custom_id", "")))
    if modal_id is None or not from_earlier_run(modal_id):
        return False
    hooks = hooks_of(interaction.client)
    modal = await _rebuilt_modal(hooks, modal_id) if hooks else None
    if modal is None:
        await _tell(interaction, STALE_FORM)
    else:
        await modal.handle(interaction, raw_modal_values(interaction.data or {}))
    return True
