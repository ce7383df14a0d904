"""Outcomes a previous process did not get to post: a job that ended while the bot was stopping (or
crashed) has its end state in the store, but its message still shows progress.

Every job's extra carries ``outcome_due: True`` from the start (``Flow``); posting its outcome sets
it to False. At start the bot looks at the jobs that ended in the last ``window`` seconds with the
flag still set and posts their outcome now, with the bot token (the interaction is gone): a
result's files are fetched again from the server that made them (a failure message says so when
that server is not available), a failure or cancel shows its stored reason.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

import discord

from engine import EngineError, JobRecord, JobResult, JobState, JobStore

from ..delivery.message import MessageTarget, failure_fields, result_fields
from ..delivery.outcome import deliver

if TYPE_CHECKING:  # flow.py imports this module
    from .flow import Flow

__all__ = ["DUE", "due_outcomes", "deliver_stored", "target_of"]

log = logging.getLogger(__name__)

DUE = "outcome_due"
UNREACHABLE = "This job finished while the bot restarted, and its server cannot send the result now."


async def due_outcomes(store: JobStore, *, window: float = 86_400.0) -> list[JobRecord]:
    """Finished jobs of the last ``window`` seconds whose outcome was never posted."""
    return [r for r in await store.finished_since(time.time() - window) if r.extra.get(DUE) is True]


def target_of(client: discord.Client, job_id: str, extra: Mapping[str, Any], clock: Any) -> MessageTarget | None:
    """The job's message from its stored extra; None when there is none or the row is damaged."""
    try:
        if not extra.get("channel_id") or not extra.get("message_id"):
            return None
        created = datetime.fromtimestamp(float(extra.get("created_at") or 0), timezone.utc)
        return MessageTarget(client, int(extra["channel_id"]), int(extra["message_id"]), created,
                             int(extra["guild_id"]) if extra.get("guild_id") else None, clock=clock)
    except (TypeError, ValueError, OverflowError, OSError):
        log.warning("job %s: its stored message ids are damaged", job_id)
        return None


async def _fields(flow: Flow, record: JobRecord, limit: int) -> dict[str, Any]:
    workflow = flow.workflow(record.manifest)
    if workflow is None:
        raise EngineError(f"workflow {record.manifest} is gone")
    if record.state == JobState.CANCELLED.value:
        return failure_fields(record.job_id, workflow, "Cancelled.", cancelled=True)
    if record.state != JobState.DONE.value:
        return failure_fields(record.job_id, workflow, record.error or "The job failed.")
    try:
        outputs = [await flow.runtime.output(record.job_id, n) for n in range(1, len(record.outputs) + 1)]
    except EngineError:
        return failure_fields(record.job_id, workflow, UNREACHABLE)
    timings = {"created": record.created_at, "queued": record.queued_at, "started": record.started_at,
               "finished": record.finished_at}
    result = JobResult(outputs, [], dict(record.values), record.backend or "", timings)
    return await result_fields(record.job_id, workflow, result, limit=limit, actions=flow.actions_for(workflow))


async def deliver_stored(flow: Flow, client: discord.Client, record: JobRecord) -> None:
    """Post ``record``'s outcome in its message, then clear its flag."""
    target = target_of(client, record.job_id, record.extra, flow.clock)
    if target is None:
        return
    try:
        fields = await _fields(flow, record, target.filesize_limit())
    except EngineError as exc:
        log.warning("job %s: cannot post its outcome after a restart (%s)", record.job_id, exc)
        return
    if await deliver(target, [fields], job_id=record.job_id, delays=flow.delivery_delays):
        await flow.outcome_posted(record.job_id)
