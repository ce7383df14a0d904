"""The job flow from a Discord interaction to a result message: the hooks behind commands and buttons.

``Flow(runtime, settings, catalog)`` provides ``run`` / ``setup`` for the generated commands and
``job`` / ``run`` / ``action`` / ``cancel`` / ``live`` for the buttons (``command_hooks``,
``button_hooks``). ``run`` is one path for every way a job starts (slash command, setup view,
rerun, new seed, tweak, action):

1. cheap checks, answered ephemerally without starting anything: access (``bot.access``: the
   manifest's nsfw, roles and channels — of the source too for an action; buttons bypass
   Discord's own command flags), the values (``runtime.prepare``: their
   one check; file values (images, audio) only by size and source, before any download), the per-user job cap,
   rate limits;
2. ``defer(thinking=True)`` — a public message that becomes the job's message (see ``delivery``);
3. file inputs read after the defer (``bot.jobs.inputs``: attachment download + decode check, a stored
   input, or a previous job's output fetched again from its backend), kept by content hash in
   ``<db folder>/inputs/`` and referenced from ``JobRecord.extra["inputs"]`` — so rerun, tweak and
   actions work after a restart and on any backend;
4. ``runtime.start_job`` with the prepared job; an error before the job exists replaces the "thinking" message with its
   text (nothing else is sent); then progress edits and the one outcome (``delivery``).

Every job ends in exactly one delivered outcome whatever fails around it: keeping its inputs
(a full disk only costs the reruns, and says so under the result), drawing its progress, fitting
its result, Discord itself (``delivery.outcome``: retries, then a short failure text); an outcome
that cannot be delivered is logged with the job id and recorded with the job. The user's job
slot is held for as long as the job runs — after a restart too — not as long as this coroutine.
A job whose workflow was removed while the bot was down gets its failure in its message. With
several bot processes an outcome is posted only by the process holding the job's lease
(``post_outcome``: claimed right before, the lease ended right after), so it is posted once.

``JobRecord.extra`` holds channel_id, message_id, guild_id, created_at and inputs — never a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import discord

from engine import (
    Catalog, ImageInput, Job, JobCancelled, JobRecord, JobState, ParamError, Prepared, Runtime, StoreError, Workflow,
    bind_job,
)

from ..access import AccessPolicy, Who
from ..views.buttons import UNKNOWN_JOB, ButtonHooks, JobInfo, WorkflowGone
from ..views.details import send_details
from ..commands.slash import CommandHooks
from ..config import Settings
from ..delivery.message import MessageTarget, failure_fields, lost_fields, result_fields
from ..delivery.outcome import RETRY_DELAYS, deliver
from ..metrics import observe_delivered
from ..errors import ANSWER_WAIT, user_message
from .guards import Guards, check_rate
from .redeliver import target_of
from .media import MediaSource, ProxyMedia
from .menu import open_menu
from .inputs import InputFolder, OutputSource, check_upload_source, read_uploads, result_kind, stored_inputs
from ..delivery.progress import show_progress
from ..views.setup import SetupView

__all__ = ["Flow"]

log = logging.getLogger(__name__)

Interaction = discord.Interaction
NOT_RUNNING = "This job is not running any more."
NOTHING_HERE = "None of these workflows is available here."
NOT_SAVED = "⚠️ This job could not be saved in the bot's job database; its buttons may not work after a restart."
NOT_KEPT = "⚠️ The input file could not be kept: rerun and tweak will ask for it again."
UPLOAD_REFUSED = "The result could not be uploaded to Discord."


async def _tell(interaction: Interaction, text: str) -> None:
    await interaction.response.send_message(text[:2000], ephemeral=True)


class Flow:
    """The app's job hooks; see the module docstring. ``edit_interval`` overrides the settings'."""

    def __init__(self, runtime: Runtime, settings: Settings, catalog: Catalog, *, guards: Guards | None = None,
                 edit_interval: float | None = None, now: Callable[[], datetime] = discord.utils.utcnow,
                 original_link: Callable[[str, int], str] | None = None, media: MediaSource | None = None):
        self.runtime, self.settings, self.catalog = runtime, settings, catalog
        self.media = media or ProxyMedia()  # embedded images of context menus
        self.original_link = original_link  # (job id, output #) → signed URL; None: originals are off
        self.preview_interval = settings.preview_interval
        self.guards = guards or Guards.from_settings(settings)
        self.access = AccessPolicy(settings.admin_user_ids, settings.admin_role_ids)
        self.edit_interval = settings.progress_interval if edit_interval is None else edit_interval
        self.inputs = InputFolder(Path(settings.db_path).parent / "inputs")
        self.delivery_delays = RETRY_DELAYS
        self._now = now

    # ---- hooks for the app -------------------------------------------------------------------
    def command_hooks(self, *, help, status, workflows, choices, user_jobs, cancel=None) -> CommandHooks:
        """``CommandHooks`` with run/setup/live choices and what may be listed (and by default cancel)
        from here."""
        return CommandHooks(run=self.run, setup=self.setup, help=help, status=status, workflows=workflows,
                            choices=choices, cancel=cancel or self.cancel, live_choices=self.live,
                            user_jobs=user_jobs, listed=self.listed, sources=self.sources,
                            menu=self.menu)

    def button_hooks(self) -> ButtonHooks:
        return ButtonHooks(job=self.job_info, workflow=self.workflow, run=self.run, action=self.action,
                           cancel=self.cancel, access=self.access, live=self.live, details=self.details)

    def listed(self, interaction: Interaction, workflow: Workflow) -> bool:
        """Whether ``workflow``'s choice lists may be offered here (autocomplete)."""
        return self.access.may_list(Who.of(interaction), workflow)

    def sources(self, interaction: Interaction) -> list[str]:
        """The live lists ``/choices`` may show here: those of the workflows this user may run."""
        return self.access.sources(Who.of(interaction), self.catalog)

    def workflow(self, name: str) -> Workflow | None:
        return self.catalog.workflows.get(name)

    def live(self, source: str) -> list[str]:
        return [str(v) for v in self.runtime.choices(source)]

    async def job_info(self, job_id: str) -> JobInfo | None:
        """A stored job as buttons see it: upload params hold their ``StoredInput``."""
        record = await self.runtime.get(job_id, timeout=ANSWER_WAIT)
        if record is None:
            return None
        workflow = self.workflow(record.manifest)
        if workflow is None:
            raise WorkflowGone(record.manifest)
        values = {n: v for n, v in record.values.items() if n in workflow.manifest.params}
        return JobInfo(record.owner or "", workflow, {**values, **stored_inputs(record.extra, workflow)})

    def actions_for(self, workflow: Workflow) -> list[tuple[str, str]]:
        """``(manifest, label)`` of the workflow's actions that exist and take its kind of result."""
        targets = [self.workflow(name) for name in workflow.manifest.actions]
        return [(t.name, t.manifest.title or t.name) for t in targets
                if t is not None and t.manifest.param_taking(workflow.manifest.kind)]

    # ---- starting jobs -----------------------------------------------------------------------
    async def run(self, interaction: Interaction, workflow: Workflow, values: dict[str, Any]) -> None:
        """Start ``workflow`` with ``values`` for this interaction and see it through to the result."""
        await self._start(interaction, workflow, values, {})

    async def action(self, interaction: Interaction, job_id: str, index: int, target: Workflow,
                     values: dict[str, Any]) -> None:
        """Feed output #``index`` of ``job_id`` into ``target``'s first param that takes its kind (an
        image, a sound), then run it: the rules of both workflows apply (the source's too: a result
        is not a way around them)."""
        record = await self.runtime.get(job_id, timeout=ANSWER_WAIT)
        source = self.workflow(record.manifest) if record is not None else None
        if record is None or source is None:
            return await _tell(interaction, str(WorkflowGone(record.manifest)) if record else UNKNOWN_JOB)
        kind = result_kind(record, index, source.manifest.kind)
        if (param := target.manifest.param_taking(kind)) is None:
            return await _tell(interaction, f"{target.manifest.title or target.name} takes no {kind} for this result.")
        await self._start(interaction, target, {**values, param: OutputSource(job_id, index)},
                          {"source": {"job": job_id, "output": index}}, source=source)

    async def _start(self, interaction: Interaction, workflow: Workflow, values: dict[str, Any],
                     extra: dict[str, Any], *, source: Workflow | None = None) -> None:
        refusal = self.access.refusal(Who.of(interaction), source, workflow)
        prepared = None if refusal else await self._prepare(workflow, values)
        if not isinstance(prepared, Prepared):
            await _tell(interaction, refusal or prepared or "")
            return
        user, ticket = interaction.user.id, uuid.uuid4().hex
        if not self.guards.cap.acquire(user, ticket):
            await _tell(interaction, self.guards.cap.refusal())
            return
        job = None
        try:
            refusal = check_rate(user, per_user=self.guards.per_user, overall=self.guards.overall)
            if refusal:
                await _tell(interaction, refusal)
                return
            await interaction.response.defer(thinking=True)
            target = await self._target(interaction, workflow)
            job, images = await self._submit(interaction, target, prepared, values, extra)
        finally:
            self._hold_slot(user, ticket, job)
        if job is not None:
            await self.follow(job, target, notes=await self._keep_inputs(job, images))

    def _hold_slot(self, user: int, ticket: str, job: Job | None) -> None:
        """The user's job slot stays taken until ``job`` ends (freed now when there is no job)."""
        if job is None:
            self.guards.cap.release(user, ticket)
        else:
            job.add_done_callback(lambda _job: self.guards.cap.release(user, ticket))

    async def _prepare(self, workflow: Workflow, values: Mapping[str, Any]) -> Prepared | str:
        """The job prepared (``runtime.prepare``: the one check of its values), or the first problem.

        File values are only looked at here (size, still kept, known result): their bytes are read
        after the defer, and decoded by the runtime when the job starts."""
        plain, uploads = {}, []
        try:
            for name, value in values.items():
                param = workflow.manifest.params.get(name)
                if param is not None and param.is_upload:
                    await check_upload_source(name, value, runtime=self.runtime, folder=self.inputs,
                                              max_bytes=param.max_upload_bytes(self.settings.limits()), wait=ANSWER_WAIT)
                    uploads += [name] if value is not None else []
                else:
                    plain[name] = value
            return self.runtime.prepare(workflow, plain, uploads=uploads)
        except (ParamError, StoreError) as exc:
            return user_message(exc)

    async def _target(self, interaction: Interaction, workflow: Workflow) -> MessageTarget:
        message = await interaction.original_response()
        return MessageTarget(interaction.client, message.channel.id, message.id, interaction.created_at,
                             interaction.guild_id, interaction, clock=self._now)

    async def _submit(self, interaction: Interaction, target: MessageTarget, prepared: Prepared,
                      values: dict[str, Any], extra: dict[str, Any]) -> tuple[Job | None, dict[str, ImageInput]]:
        """The started job and its files; (None, {}) when it could not start (its message says why)."""
        try:
            images, inputs = await read_uploads(prepared.workflow, values, runtime=self.runtime, folder=self.inputs)
            job = await self.runtime.start_job(prepared, images=images, owner=str(interaction.user.id),
                                               extra={**self._target_extra(target), "inputs": inputs, **extra})
        except Exception as exc:  # the job does not exist: its message becomes the short reason
            text = user_message(exc)
            if not await deliver(target, [{"content": text, "embeds": [], "attachments": [], "view": None}],
                                 job_id="(not started)", delays=self.delivery_delays):
                log.error("a job that could not start could not say so either: %s", text)
            return None, {}
        return job, images

    async def _keep_inputs(self, job: Job, images: dict[str, ImageInput]) -> list[str]:
        """Keep the job's accepted files for reruns (off the loop); the notes to show when that fails."""
        try:
            for image in images.values():
                await asyncio.to_thread(self.inputs.keep, image.data)
        except OSError as exc:  # a full disk or an unwritable folder costs the reruns, never the result
            log.error("job %s: its inputs could not be kept for reruns (%s)", job.id, exc.strerror or exc)
            return [NOT_KEPT]
        return []

    @staticmethod
    def _target_extra(target: MessageTarget) -> dict[str, Any]:
        return {"channel_id": target.channel_id, "message_id": target.message_id, "guild_id": target.guild_id,
                "created_at": target.created_at.timestamp()}

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._now

    async def post_outcome(self, job_id: str, target: MessageTarget, candidates: Sequence[dict[str, Any]]) -> bool:
        """Post the job's one outcome (the first of ``candidates`` Discord takes) when this process
        still holds the job — no other process nor a restart posts it again; True when posted."""
        if not await self.runtime.claim_delivery(job_id):
            log.info("job %s: another bot process has it now and posts its outcome", job_id)
            return False
        posted = await deliver(target, candidates, job_id=job_id, delays=self.delivery_delays)
        if not posted:
            await self._record(job_id, {"undelivered": True})
        await self.runtime.delivered(job_id, posted=posted)
        return posted

    # ---- following a job ---------------------------------------------------------------------
    async def follow(self, job: Job, target: MessageTarget, notes: Sequence[str] = ()) -> None:
        """Show ``job``'s progress in ``target``, then deliver its one outcome (see the module
        docstring); ``notes`` are shown above it."""
        bind_job(job.log_fields)  # this task's log lines are the job's
        await self._show_progress(job, target)
        notes = [*notes, *([NOT_SAVED] if job.unsaved else [])]
        fields = await self._outcome(job, target)
        fallback = failure_fields(job.id, job.workflow, UPLOAD_REFUSED)
        candidates = [fields, fallback] if fields.get("attachments") else [fields]
        for candidate in candidates:
            candidate["content"] = "\n".join(notes) or None
        message_id = target.message_id
        if await self.post_outcome(job.id, target, candidates):
            observe_delivered(job)
        if target.message_id != message_id:  # posted anew: buttons and restarts should find the new one
            await self._record(job.id, {"message_id": target.message_id})

    async def _show_progress(self, job: Job, target: MessageTarget) -> None:
        """The progress edits; a failure of our own drawing them costs the progress, never the outcome."""
        workflow = job.workflow
        previews = self.settings.previews and workflow.manifest.previews
        try:
            await show_progress(job, target, title=self._title(workflow.name), interval=self.edit_interval,
                                prompt_preview=workflow.manifest.caption_of(job.values),
                                preview_interval=self.preview_interval if previews else None)
        except Exception:
            log.exception("job %s: its progress could not be shown; its outcome follows", job.id)

    async def _outcome(self, job: Job, target: MessageTarget) -> dict[str, Any]:
        """The message fields of the job's end: its result, or what went wrong (never raises)."""
        workflow = job.workflow
        try:
            result = await job.result()
            sign = self.original_link
            link = (lambda n: sign(job.id, n)) if sign else None
            return await result_fields(job.id, workflow, result, limit=target.filesize_limit(),
                                       actions=self.actions_for(workflow), original_link=link,
                                       max_pixels=self.settings.max_output_pixels)
        except JobCancelled:
            return failure_fields(job.id, workflow, "Cancelled.", cancelled=True)
        except Exception as exc:  # EngineError, TooLargeError; a bug of ours is logged with the job id
            return failure_fields(job.id, workflow, user_message(exc, job_id=job.id))

    async def _record(self, job_id: str, extra: dict[str, Any]) -> None:
        """Note ``extra`` with the job; a store that cannot take it is logged, never the end of anything."""
        try:
            await self.runtime.attach(job_id, extra)
        except Exception as exc:
            log.error("job %s: cannot save %s (%s: %s)", job_id, ", ".join(extra), type(exc).__name__, exc)

    async def follow_resumed(self, client: discord.Client, job: Job) -> None:
        """After a restart: finish ``job``'s message with the bot token (the interaction is gone); the
        job takes its owner's slot again until it ends."""
        if job.owner and job.owner.isdigit():
            owner = int(job.owner)
            self.guards.cap.hold(owner, job.id)
            job.add_done_callback(lambda done: self.guards.cap.release(owner, done.id))
        target = self._stored_target(client, job.id, job.extra)
        if target is None:
            log.info("job %s has no message to update; following it silently", job.id)
            with contextlib.suppress(Exception):  # its end is in the store: there is nowhere to post it
                await job.result()
            await self.runtime.delivered(job.id)
            return
        await self.follow(job, target)

    async def deliver_lost(self, client: discord.Client, record: JobRecord) -> None:
        """After a restart: a job that could not be resumed (its workflow is gone) gets its failure in
        its message — the progress bar and the Cancel button go."""
        target = self._stored_target(client, record.job_id, record.extra)
        if target is None:
            await self.runtime.delivered(record.job_id)  # nowhere to post it
            return
        fields = lost_fields(record.manifest, record.error or "lost during a restart")
        await self.post_outcome(record.job_id, target, [fields])

    def _stored_target(self, client: discord.Client, job_id: str, extra: Mapping[str, Any]) -> MessageTarget | None:
        """The job's message from its stored extra; None when there is none or the row is damaged."""
        return target_of(client, job_id, extra, self._now)

    # ---- other hooks -------------------------------------------------------------------------
    async def cancel(self, interaction: Interaction, job_id: str) -> None:
        """Cancel a queued or running job (its owner or an admin)."""
        record = await self.runtime.get(job_id, timeout=ANSWER_WAIT)
        if record is None:
            await _tell(interaction, UNKNOWN_JOB)
            return
        refusal = self.access.manage_refusal(Who.of(interaction), record.owner)
        if refusal:
            await _tell(interaction, refusal)
            return
        job = self.runtime.job(job_id)
        if job is None or job.finished:
            await _tell(interaction, NOT_RUNNING)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await job.cancel()
        done = job.state is JobState.CANCELLED
        await interaction.followup.send("Cancelled." if done else "The job ended before it could be cancelled.",
                                        ephemeral=True)

    async def details(self, interaction: Interaction, job_id: str) -> None:
        """The Details button (``views.details``); the backend's name only for admins (the access policy)."""
        record = await self.runtime.get(job_id, timeout=ANSWER_WAIT)
        workflow = self.workflow(record.manifest) if record is not None else None
        if record is None or workflow is None:
            return await _tell(interaction, UNKNOWN_JOB)
        await send_details(interaction, workflow, record, show_backend=self.access.is_admin(Who.of(interaction)))

    async def menu(self, interaction: Interaction, workflow: Workflow, message: discord.Message) -> None:
        """A message context menu (``jobs.menu``), once the access policy allows the workflow here."""
        if refusal := self.access.run_refusal(Who.of(interaction), workflow):
            return await _tell(interaction, refusal)
        await open_menu(interaction, workflow, message, run=self.run, live=self.live, media=self.media,
                        max_bytes=self.settings.max_upload_bytes)

    async def setup(self, interaction: Interaction, command: str) -> None:
        """Open the guided setup for ``command``'s workflows (those usable here)."""
        workflows = self.access.runnable(Who.of(interaction), self.catalog.commands().get(command, []))
        if not workflows:
            await _tell(interaction, NOTHING_HERE)
            return
        view = SetupView(workflows, owner_id=interaction.user.id, run=self.run, live=self.live, command=command)
        await interaction.response.send_message(embed=view.embed(), view=view, ephemeral=True)
        view.message = await interaction.original_response()

    def _title(self, name: str) -> str:
        workflow = self.workflow(name)
        return (workflow.manifest.title or name) if workflow is not None else name
