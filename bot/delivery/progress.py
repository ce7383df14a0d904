"""The progress loop: a job's events drawn into its message, throttled, until the job ends.

Each visible change (``render.progress_key``) is edited in when ``EditThrottle`` allows it; a
change held back by the throttle is flushed once the interval has passed even if the job sends
nothing new, and an unchanged message is refreshed now and then (the throttle's heartbeat) so
its elapsed time moves. The loop returns at the terminal event without drawing it: the result
(or error) edit that follows is the final one. A failed edit is logged and skipped — progress is
a courtesy, the job goes on.

Live previews: the latest preview frame is encoded off the loop (``preview.LivePreview``) and
uploaded with the next edit as ``preview.jpg``, the embed's image; edits in between keep that
attachment. The terminal event never waits for an encoding, and the result edit replaces the
attachments, so no stale preview survives into the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from typing import AsyncGenerator, Callable

import discord

from engine import Job, ProgressEvent

from ..views.buttons import progress_view
from .message import MessageTarget
from .preview import PREVIEW_NAME, LivePreview
from .render import progress_embed, progress_key
from .throttle import EditThrottle

__all__ = ["show_progress"]

log = logging.getLogger(__name__)

HEARTBEAT = 10.0


async def show_progress(job: Job, target: MessageTarget, *, title: str, prompt_preview: str | None = None,
                        interval: float = 2.0, preview_interval: float | None = None,
                        clock: Callable[[], float] = time.monotonic) -> int:
    """Draw ``job``'s progress into ``target`` until it ends; returns how many edits were sent.

    With ``preview_interval``, the latest preview frame is shown as the embed's image, uploaded
    again at most every ``preview_interval`` seconds (``LivePreview``)."""
    throttle = EditThrottle(interval, heartbeat=HEARTBEAT, clock=clock)
    live = LivePreview(preview_interval, clock=clock) if preview_interval is not None else None
    drawing = _Drawing(target, title, prompt_preview, progress_view(job.id))
    latest: ProgressEvent | None = None
    events: AsyncGenerator[ProgressEvent, None] = job.events()
    waiting = asyncio.ensure_future(anext(events))
    try:
        while True:
            done = await _wake(waiting, throttle, live)
            if waiting in done:
                try:
                    latest = waiting.result()
                except StopAsyncIteration:
                    return drawing.sent
                if latest.finished:
                    return drawing.sent  # at once: a preview being encoded is dropped, never awaited
                waiting = asyncio.ensure_future(anext(events))
                if live is not None:
                    live.offer(latest.preview)
            if live is not None and (fresh := live.poll()) is not None:
                drawing.new_image(fresh)
            if latest is not None and throttle.should_send((progress_key(latest), drawing.images)):
                await drawing.draw(latest)
    finally:
        if live is not None:
            live.close()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await waiting
        await events.aclose()


async def _wake(waiting: asyncio.Future, throttle: EditThrottle, live: LivePreview | None) -> set:
    """Wait for the next event, a finished preview encoding, or the moment an edit or an encoding is due."""
    timeouts = [throttle.wait_time() if throttle.pending else HEARTBEAT]
    tasks = {waiting}
    if live is not None:
        if live.encoding is not None:
            tasks.add(live.encoding)
        if (due := live.wait_time()) is not None:
            timeouts.append(due)
    done, _ = await asyncio.wait(tasks, timeout=min(timeouts), return_when=asyncio.FIRST_COMPLETED)
    return done


class _Drawing:
    """The progress message's edits: the embed, the Cancel button and the live preview image."""

    def __init__(self, target: MessageTarget, title: str, prompt_preview: str | None, view: discord.ui.View):
        self.target, self.title, self.prompt_preview, self.view = target, title, prompt_preview, view
        self.sent = 0
        self.images = 0  # previews handed in (part of the edit key: a new one is a visible change)
        self._image: bytes | None = None  # the newest preview, not uploaded yet
        self._uploaded = False  # the message holds a preview attachment

    def new_image(self, image: bytes) -> None:
        self._image = image
        self.images += 1

    async def draw(self, event: ProgressEvent) -> None:
        image, self._image = self._image, None
        url = f"attachment://{PREVIEW_NAME}" if image is not None or self._uploaded else None
        fields: dict = {"embed": progress_embed(self.title, event, prompt_preview=self.prompt_preview,
                                                preview_url=url), "view": self.view}
        if image is not None:  # replaces the previous preview; later edits keep it by not naming attachments
            fields["attachments"] = [discord.File(io.BytesIO(image), filename=PREVIEW_NAME)]
        try:
            await self.target.edit(**fields)
        except discord.HTTPException as exc:
            log.info("progress edit failed (%s %s); the job goes on", exc.status, type(exc).__name__)
            return
        self.sent += 1
        self._uploaded = self._uploaded or image is not None
