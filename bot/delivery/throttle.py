"""When to edit a progress message, and how long an interaction token may still be used (pure).

Discord allows only a few message edits per channel every few seconds, so ``EditThrottle``
lets an edit through only when ``min_interval`` has passed since the last one AND what the
message shows changed (callers pass a key such as ``render.progress_key(event)``). A heartbeat
refreshes an unchanged message now and then so its elapsed time moves; terminal states always
go through. ``token_alive`` says whether the 15-minute interaction token is still safe to use;
after that the flow edits and posts with the bot token instead.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Callable, Hashable

__all__ = ["EditThrottle", "TOKEN_LIFETIME", "TOKEN_MARGIN", "token_alive", "token_deadline"]

TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(minutes=1)  # a slow upload started at 14:59 must not outlive the token


class EditThrottle:
    """Decides, edit by edit, whether a progress message should be edited now.

    ``clock`` returns seconds (monotonic); inject a fake one in tests.
    """

    def __init__(self, min_interval: float = 1.5, *, heartbeat: float | None = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self._clock = clock
        self._last_at: float | None = None
        self._last_key: Hashable = object()
        self._held: Hashable | None = None  # a change we held back, still to be shown

    def should_send(self, key: Hashable, *, final: bool = False) -> bool:
        """True if the message showing ``key`` should be sent now; a True answer counts as sent."""
        now = self._clock()
        if final or self._due(key, now):
            self._last_at, self._last_key, self._held = now, key, None
            return True
        if key != self._last_key:
            self._held = key
        return False

    def _due(self, key: Hashable, now: float) -> bool:
        if self._last_at is None:
            return True
        since = now - self._last_at
        if since < self.min_interval:
            return False
        return key != self._last_key or (self.heartbeat is not None and since >= self.heartbeat)

    @property
    def pending(self) -> bool:
        """A change was held back and has not been shown yet (flush it after ``wait_time``)."""
        return self._held is not None

    def wait_time(self) -> float:
        """Seconds until an edit may go out (0 when it may go now)."""
        if self._last_at is None:
            return 0.0
        return max(self.min_interval - (self._clock() - self._last_at), 0.0)


def token_deadline(created_at: datetime, *, margin: timedelta = TOKEN_MARGIN) -> datetime:
    """The last moment the interaction token created at ``created_at`` may be used."""
    return created_at + TOKEN_LIFETIME - margin


def token_alive(created_at: datetime, now: datetime, *, margin: timedelta = TOKEN_MARGIN) -> bool:
    """Whether webhook calls with the interaction's token (followups, @original edits) are safe."""
    return now < token_deadline(created_at, margin=margin)
