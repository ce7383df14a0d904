"""How often and how much a user may start: rate limits and per-user job caps (who may, and where:
``bot.access``).

Pure logic with an injected clock, so it is tested without sleeping. The bot asks these guards
before queueing a job and shows the returned refusal text (short, ephemeral) when one says no.
Everything here is in memory and per process: a restart forgets the counts, which is fine for
spam protection.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..config import Settings

__all__ = [
    "Guards",
    "RateLimiter",
    "ConcurrencyCap",
    "check_rate",
    "EVERYONE",
]

EVERYONE = "*"  # the key under which a global RateLimiter counts every request


class RateLimiter:
    """At most ``count`` hits per key in any sliding window of ``per_seconds`` seconds.

    A hit at time ``t`` counts until ``t + per_seconds`` (exclusive).
    """

    def __init__(self, count: int, per_seconds: float, *, clock: Callable[[], float] = time.monotonic):
        if count < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs count >= 1 and per_seconds > 0")
        self.count = count
        self.per_seconds = per_seconds
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = defaultdict(deque)
        self._last_sweep = clock()

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may hit again; 0.0 if it may hit now. Records nothing."""
        now = self._clock()
        hits = self._recent(key, now)
        if len(hits) < self.count:
            return 0.0
        return hits[len(hits) - self.count] + self.per_seconds - now

    def record(self, key: Hashable) -> None:
        """Count one hit for ``key`` now, whether or not it was allowed."""
        now = self._clock()
        self._recent(key, now).append(now)
        self._sweep(now)

    def hit(self, key: Hashable) -> float | None:
        """Count a hit if allowed and return None; otherwise return the seconds to wait."""
        wait = self.retry_after(key)
        if wait > 0:
            return wait
        self.record(key)
        return None

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        hits = self._hits[key]
        while hits and hits[0] <= now - self.per_seconds:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        # Forget keys whose hits all expired, at most once per window, so memory stays bounded.
        if now - self._last_sweep < self.per_seconds:
            return
        self._last_sweep = now
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.per_seconds]:
            del self._hits[key]


def check_rate(user_id: int, *, per_user: RateLimiter, overall: RateLimiter | None = None) -> str | None:
    """Count one request by ``user_id`` against both limits; return a refusal text or None.

    Nothing is counted when either limit refuses, so a refused request never uses up a slot.
    """
    wait = per_user.retry_after(user_id)
    if wait > 0:
        return f"Slow down: try again in {_seconds(wait)}."
    if overall is not None:
        wait = overall.retry_after(EVERYONE)
        if wait > 0:
            return f"The bot is busy right now: try again in {_seconds(wait)}."
        overall.record(EVERYONE)
    per_user.record(user_id)
    return None


class ConcurrencyCap:
    """At most ``max_per_user`` jobs running per user, tracked by job id."""

    def __init__(self, max_per_user: int):
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self.max_per_user = max_per_user
        self._running: dict[int, set[str]] = {}

    def acquire(self, user_id: int, job_id: str) -> bool:
        """Take a slot for ``job_id``; False when the user is at the cap. Re-acquiring is a no-op."""
        jobs = self._running.setdefault(user_id, set())
        if job_id in jobs:
            return True
        if len(jobs) >= self.max_per_user:
            return False
        jobs.add(job_id)
        return True

    def hold(self, user_id: int, job_id: str) -> None:
        """Count ``job_id`` whatever the cap (a job found running after a restart is running)."""
        self._running.setdefault(user_id, set()).add(job_id)

    def release(self, user_id: int, job_id: str) -> None:
        """Free the slot of ``job_id``. Releasing twice, or an unknown job, does nothing."""
        jobs = self._running.get(user_id)
        if jobs is None:
            return
        jobs.discard(job_id)
        if not jobs:
            del self._running[user_id]

    def running(self, user_id: int) -> int:
        """How many jobs ``user_id`` has running."""
        return len(self._running.get(user_id, ()))

    def refusal(self) -> str:
        """The text shown to a user at the cap."""
        jobs = "job" if self.max_per_user == 1 else "jobs"
        return f"You already have {self.max_per_user} {jobs} running: wait for one to finish."


def _seconds(wait: float) -> str:
    return f"{max(1, math.ceil(wait))} s"


@dataclass(frozen=True)
class Guards:
    """Who may start how much: per-user and global rate limits, running jobs per user."""

    per_user: RateLimiter
    overall: RateLimiter
    cap: ConcurrencyCap

    @classmethod
    def from_settings(cls, settings: Settings) -> Guards:
        return cls(RateLimiter(settings.rate_per_user.count, settings.rate_per_user.per_seconds),
                   RateLimiter(settings.rate_global.count, settings.rate_global.per_seconds),
                   ConcurrencyCap(settings.max_concurrent_per_user))
