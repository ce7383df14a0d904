"""Outcomes another process did not get to post: a job that ended while the bot was stopping (or
crashed, or another bot process sharing the store died) has its end state in the store, but its
message still shows progress.

A job needs a process until its outcome is posted (its lease, ``engine.jobs.lease``). The process
that takes such a job over (``Runtime.take_over``: at start, or later from a process that stopped
renewing its leases) posts its outcome now, with the bot token (the interaction is gone): a
result's files are fetched again from the server that made them (a failure message says so when
that server is not available), a failure or cancel shows its stored reason, a job whose workflow
is gone its loss (``Flow.deliver_lost``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

import discord

from engine import EngineError, JobRecord, JobResult, JobState

from ..delivery.message import MessageTarget, failure_fields, result_fields

if TYPE_CHECKING:  # flow.py imports this module
    from .flow import Flow

__all__ = ["deliver_stored", "target_of"]

log = logging.getLogger(__name__)

UNREACHABLE = "This job finished while the bot restarted, and its server cannot send the result now."


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
    """Post the ended job ``record``'s outcome in its message (once: ``Flow.post_outcome``)."""
    if flow.workflow(record.manifest) is None:
        await flow.deliver_lost(client, record)
        return
    target = target_of(client, record.job_id, record.extra, flow.clock)
    if target is None:
        await flow.runtime.delivered(record.job_id)  # nowhere to post it
        return
    try:
        fields = await _fields(flow, record, target.filesize_limit())
    except EngineError as exc:
        log.warning("job %s: cannot post its outcome after a restart (%s)", record.job_id, exc)
        await flow.runtime.delivered(record.job_id, posted=False)
        return
    await flow.post_outcome(record.job_id, target, [fields])
