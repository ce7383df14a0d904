"""The progress loop: a job's events drawn into its message, throttled, until the job ends.

Each visible change (``render.progress_key``) is edited in when ``EditThrottle`` allows it; a
change held back by the throttle is flushed once the interval has passed even if the job sends
nothing new, and an unchanged message is refreshed now and then (the throttle's heartbeat) so
its elapsed time moves. The loop returns at the terminal event without drawing it: the result
(or error) edit that follows is the final one. A failed edit is logged and skipped — progress is
a courtesy, the job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncGenerator, Callable

import discord

from engine import Job, ProgressEvent

from ..views.buttons import progress_view
from .message import MessageTarget
from .render import progress_embed, progress_key
from .throttle import EditThrottle

__all__ = ["show_progress"]

log = logging.getLogger(__name__)

HEARTBEAT = 10.0


async def show_progress(job: Job, target: MessageTarget, *, title: str, prompt_preview: str | None = None,
                        interval: float = 2.0, clock: Callable[[], float] = time.monotonic) -> int:
    """Draw ``job``'s progress into ``target`` until it ends; returns how many edits were sent."""
    throttle = EditThrottle(interval, heartbeat=HEARTBEAT, clock=clock)
    view = progress_view(job.id)
    sent = 0
    latest: ProgressEvent | None = None
    events: AsyncGenerator[ProgressEvent, None] = job.events()
    waiting = asyncio.ensure_future(anext(events))
    try:
        while True:
            timeout = throttle.wait_time() if throttle.pending else HEARTBEAT
            done, _ = await asyncio.wait({waiting}, timeout=timeout)
            if waiting in done:
                try:
                    latest = waiting.result()
                except StopAsyncIteration:
                    return sent
                if latest.finished:
                    return sent
                waiting = asyncio.ensure_future(anext(events))
            if latest is not None and throttle.should_send(progress_key(latest)):
                sent += await _draw(target, title, latest, prompt_preview, view)
    finally:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await waiting
        await events.aclose()


async def _draw(target: MessageTarget, title: str, event: ProgressEvent, prompt_preview: str | None,
                view: discord.ui.View) -> int:
    try:
        await target.edit(embed=progress_embed(title, event, prompt_preview=prompt_preview), view=view)
        return 1
    except discord.HTTPException as exc:
        log.info("progress edit failed (%s %s); the job goes on", exc.status, type(exc).__name__)
        return 0
