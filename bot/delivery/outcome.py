"""Delivering a job's one outcome into its message, whatever fails around it.

``deliver`` edits the outcome in (``MessageTarget.replace``: posted anew when the message is gone)
and retries what may pass on a later try — Discord's 5xx and 429 once discord.py's own retries
are spent, a dropped connection, a timeout — after short pauses. The candidates are tried in
order: a result Discord refuses outright (too large, a bad attachment) falls back to the next,
a short failure text, so the user always learns how the job ended. Only when nothing can be sent
is the outcome lost to Discord: ``deliver`` returns False, having logged it at ERROR with the job
id, and the caller records it with the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import discord

from .message import MessageTarget

__all__ = ["RETRY_DELAYS", "deliver"]

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 4.0)  # seconds before the 2nd and 3rd try of one candidate


def _transient(exc: discord.HTTPException) -> bool:
    return exc.status >= 500 or exc.status == 429


def _rewind(fields: dict[str, Any]) -> None:
    """Files read by a failed try are read again from their start."""
    for item in fields.get("attachments") or ():
        if isinstance(item, discord.File):
            item.reset()


async def _send(target: MessageTarget, fields: dict[str, Any], job_id: str, delays: Sequence[float],
                sleep: Callable[[float], Awaitable[Any]]) -> bool:
    for delay in (*delays, None):
        _rewind(fields)
        try:
            await target.replace(**fields)
            return True
        except discord.HTTPException as exc:
            if not _transient(exc):
                log.warning("job %s: Discord refused its outcome (%s, code %s)", job_id, exc.status, exc.code)
                return False
            reason = f"HTTP {exc.status}"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            reason = type(exc).__name__
        if delay is None:
            log.warning("job %s: its outcome could not be sent (%s), %d tries", job_id, reason, len(delays) + 1)
            return False
        log.info("job %s: sending its outcome failed (%s); again in %g s", job_id, reason, delay)
        await sleep(delay)
    return False


async def deliver(target: MessageTarget, candidates: Sequence[dict[str, Any]], *, job_id: str,
                  delays: Sequence[float] = RETRY_DELAYS,
                  sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> bool:
    """Edit the first of ``candidates`` Discord takes into the job's message; False when none
    could be delivered (logged at ERROR with ``job_id``)."""
    for fields in candidates:
        if await _send(target, fields, job_id, delays, sleep):
            return True
    log.error("job %s: its outcome could not be delivered to Discord", job_id)
    return False
