"""Which waiting job goes next, and to which backend (pure, no I/O): fair turns and expected finish times.

Fairness (round-robin by owner): each owner's jobs keep their order; across owners, jobs are served
in *rounds* — an owner's k-th waiting job belongs to round ``start + k``, where ``start`` is the
owner's next turn (one past the round of their last served job) but never behind the round being
served now (``Turns.current``). So a user with fifty jobs gets one per round like everyone else,
and a newcomer joins the current round instead of queueing behind a backlog. Among owners' next
jobs a higher ``priority`` (from roles, in the config) is served first; ties go to the earlier
arrival. An owner's own jobs never pass each other (a role raised later does not reorder them).
``serve_in_turn`` is that rule as the dispatcher applies it, job by job; ``fair_order`` runs it on
a copy of the turns, so a job's place in line ("3rd in line") is the order it will be dispatched in.

Expected finish (``expected_finish``): when a backend could start the job (the work it already
has, at its measured speed) plus how long it takes this workflow there (``Speeds``: a moving
average per backend and workflow; unknown pairs borrow the workflow's average elsewhere scaled by
the backend's relative speed, else a default). ``best_backend`` picks the earliest among those
ready and able, so a fast backend takes work a slow one would keep.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Waiting", "Turns", "fair_order", "line_places", "serve_in_turn", "Speeds", "expected_finish", "best_backend"]

DEFAULT_SECONDS = 10.0  # a job's duration before anything was measured
SMOOTHING = 0.3  # weight of the newest measurement in the moving average


@dataclass(frozen=True)
class Waiting:
    """A job waiting in our queue: ``arrived`` orders jobs (a sequence number or a time)."""

    job_id: str
    owner: str
    arrived: float
    priority: int = 0


@dataclass
class Turns:
    """Per-owner turn counters: ``next[owner]`` is the owner's next round, ``current`` the round served now."""

    next: dict[str, int] = field(default_factory=dict)
    current: int = 0

    def start_of(self, owner: str) -> int:
        return max(self.next.get(owner, 0), self.current)

    def served(self, owner: str, round_: int) -> None:
        """``owner``'s job of round ``round_`` was dispatched."""
        self.current = max(self.current, round_)
        self.next[owner] = round_ + 1
        if len(self.next) > 10_000:  # forget owners who are behind the current round: they start there anyway
            self.next = {o: r for o, r in self.next.items() if r > self.current}


def fair_order(waiting: Iterable[Waiting], turns: Turns) -> list[tuple[Waiting, int]]:
    """Every waiting job with its round, in the order the dispatcher serves them when each is taken as
    offered (``serve_in_turn`` on a copy of ``turns``): a job's place in line is its index here, plus one."""
    lines: dict[str, list[Waiting]] = {}
    for job in sorted(waiting, key=lambda w: (w.arrived, w.job_id)):
        lines.setdefault(job.owner, []).append(job)
    copy = Turns({owner: turns.next[owner] for owner in lines if owner in turns.next}, turns.current)
    order: list[tuple[Waiting, int]] = []

    def take(job: Waiting, round_: int) -> bool:
        order.append((job, round_))
        return True

    serve_in_turn(lines, copy, take)
    return order


def line_places(waiting: Iterable[Waiting], turns: Turns) -> dict[str, int]:
    """Each waiting job's place in line by id: 1 is dispatched next, then 2, ... (``fair_order``)."""
    return {job.job_id: place for place, (job, _) in enumerate(fair_order(waiting, turns), 1)}


def serve_in_turn(lines: Mapping[str, Sequence[Waiting]], turns: Turns, take: Callable[[Waiting, int], bool],
                  more: Callable[[], bool] = lambda: True) -> None:
    """Offer the jobs of ``lines`` (each owner's, in arrival order) to ``take`` in fair order while ``more()``.

    A job ``take`` accepts (True) is served on ``turns`` before the next offer, so the order is the same
    whether jobs leave one per dispatch or many at once (serving a high-priority job may move the current
    round, and with it other owners' next one). A job it declines (no ready backend can run it) stays
    waiting but its round is passed as if served, so the jobs taken keep the order of their places.
    Each owner's next job is kept in a heap; a popped key that ``turns`` has since moved on (rounds
    only grow) is pushed back with its fresh key, so the smallest fresh key is always the one served."""
    index = dict.fromkeys(lines, 0)
    after = dict.fromkeys(lines, 0)  # the owner's next job is in this round or a later one

    def key(owner: str) -> tuple:
        job = lines[owner][index[owner]]
        return (-job.priority, max(turns.start_of(owner), after[owner]), job.arrived, job.job_id)

    heads = [(key(owner), owner) for owner in lines if lines[owner]]
    heapq.heapify(heads)
    while heads and more():
        stale, owner = heapq.heappop(heads)
        fresh = key(owner)
        if fresh != stale:
            heapq.heappush(heads, (fresh, owner))
            continue
        job, round_ = lines[owner][index[owner]], fresh[1]
        if take(job, round_):
            turns.served(owner, round_)
        else:
            turns.current = max(turns.current, round_)
        index[owner], after[owner] = index[owner] + 1, round_ + 1
        if index[owner] < len(lines[owner]):
            heapq.heappush(heads, (key(owner), owner))


@dataclass
class Speeds:
    """Measured seconds per (backend, workflow), as moving averages."""

    seconds: dict[tuple[str, str], float] = field(default_factory=dict)

    def measured(self, backend: str, workflow: str, seconds: float) -> None:
        if not seconds >= 0:  # NaN or negative: a clock oddity, not a measurement
            return
        key = (backend, workflow)
        old = self.seconds.get(key)
        self.seconds[key] = seconds if old is None else (1 - SMOOTHING) * old + SMOOTHING * seconds

    def duration(self, backend: str, workflow: str) -> float:
        """Expected seconds of ``workflow`` on ``backend``."""
        known = self.seconds.get((backend, workflow))
        if known is not None:
            return known
        others = [s for (b, w), s in self.seconds.items() if w == workflow]
        base = sum(others) / len(others) if others else DEFAULT_SECONDS
        return base * self.relative_speed(backend)

    def relative_speed(self, backend: str) -> float:
        """How much longer than the others ``backend`` takes the same workflows (1.0: as fast; unknown: 1.0)."""
        ratios = []
        for (b, w), mine in self.seconds.items():
            if b != backend:
                continue
            others = [s for (ob, ow), s in self.seconds.items() if ow == w and ob != backend]
            if others and sum(others) > 0:
                ratios.append(mine / (sum(others) / len(others)))
        return sum(ratios) / len(ratios) if ratios else 1.0


def expected_finish(busy_seconds: float, backend: str, workflow: str, speeds: Speeds) -> float:
    """Seconds from now until ``workflow`` would be done on ``backend``, which has ``busy_seconds`` of work."""
    return max(busy_seconds, 0.0) + speeds.duration(backend, workflow)


def best_backend(ready: Sequence[tuple[str, float]], workflow: str, speeds: Speeds) -> str | None:
    """The name among ``ready`` ``(name, busy_seconds)`` that would finish ``workflow`` first (ties: by name)."""
    if not ready:
        return None
    return min(ready, key=lambda nb: (expected_finish(nb[1], nb[0], workflow, speeds), nb[0]))[0]

