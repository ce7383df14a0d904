"""A job's place in our own queue ("3rd in line", issue 11 §1): the place told is the order the
dispatcher really serves jobs in — round-robin by owner, priority by role — however many jobs leave
at once, and it moves up as the jobs ahead leave; plus its English wording (property tests)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import JobState, ProgressEvent, ordinal, place_text
from engine.backends.dispatch import Dispatcher
from engine.backends.fair import Turns, Waiting, fair_order, line_places, serve_in_turn
from engine.backends.routing import Requirements
from engine.errors import JobCancelled

OWNERS = [f"u{n}" for n in range(5)]
NEEDS = Requirements(frozenset(), ())

owners = st.sampled_from(OWNERS)
priorities = st.fixed_dictionaries({owner: st.integers(0, 2) for owner in OWNERS})
jobs = st.lists(owners, min_size=1, max_size=40)


def waiting_from(items: list[str], of_owner: dict[str, int], first: int = 0) -> list[Waiting]:
    return [Waiting(f"j{first + n}", owner, float(first + n), of_owner[owner]) for n, owner in enumerate(items)]


def lines_of(waiting: list[Waiting]) -> dict[str, list[Waiting]]:
    lines: dict[str, list[Waiting]] = {}
    for job in sorted(waiting, key=lambda w: w.arrived):
        lines.setdefault(job.owner, []).append(job)
    return lines


# -- the pure rule ---------------------------------------------------------------------------

@given(jobs, jobs, priorities, st.data())
def test_places_are_one_to_n_and_the_order_batches_of_any_size_are_served_in(served_before, items, of_owner, data):
    """Places are 1..n, one per job; serving the line in passes of any size (as the dispatcher does
    when several backends or slots free up at once) takes the jobs in exactly the order of the places."""
    turns = Turns()
    before = waiting_from(served_before, of_owner)
    serve_in_turn(lines_of(before), turns, lambda job, round_: True)  # a history: the turns are not fresh
    waiting = waiting_from(items, of_owner, first=len(before))
    places = line_places(waiting, turns)
    assert sorted(places.values()) == list(range(1, len(waiting) + 1))
    assert places.keys() == {job.job_id for job in waiting}
    served: list[str] = []
    while len(served) < len(waiting):
        budget = [data.draw(st.integers(1, 5), label="jobs leaving in one pass")]

        def take(job: Waiting, round_: int) -> bool:
            served.append(job.job_id)
            budget[0] -= 1
            return True

        serve_in_turn(lines_of([w for w in waiting if w.job_id not in served]), turns, take, more=lambda: budget[0] > 0)
    assert served == sorted(places, key=places.__getitem__)


@given(jobs, priorities, st.data())
def test_a_job_passed_over_keeps_its_place(items, of_owner, data):
    """A job no ready backend can take is passed over; the rest still come in the order of their places."""
    waiting = waiting_from(items, of_owner)
    places = line_places(waiting, Turns())
    unservable = data.draw(st.sets(st.sampled_from([w.job_id for w in waiting])), label="unservable")
    taken: list[str] = []
    serve_in_turn(lines_of(waiting), Turns(), lambda job, _: job.job_id not in unservable and not taken.append(job.job_id))
    assert taken == [j for j in sorted(places, key=places.__getitem__) if j not in unservable]


def test_a_newcomer_gets_a_place_in_the_current_round():
    waiting = [Waiting(f"h{n}", "heavy", float(n)) for n in range(5)] + [Waiting("new", "light", 9.0)]
    places = line_places(waiting, Turns())
    assert places["h0"] == 1 and places["new"] == 2 and places["h4"] == 6


# -- the dispatcher, as it runs --------------------------------------------------------------

@dataclass
class Slots:
    """A backend stand-in: ``free`` jobs may go to it now (the dispatcher's ``max_pending`` is 0)."""

    name: str = "b"
    up: bool = True
    object_info: dict = field(default_factory=dict)
    free: int = 0

    @property
    def occupancy(self) -> int:
        return 0 if self.free > 0 else 1

    def reserve(self) -> None:
        self.free -= 1


async def _line_scenario(items: list[str], of_owner: dict[str, int], ops: list[tuple[str, int]]) -> None:
    slots = Slots()
    dispatcher = Dispatcher([slots], max_pending=0, place_interval=0.0)  # type: ignore[list-item]
    dispatcher.priority_of = of_owner.__getitem__
    told: dict[str, int] = {}
    granted: list[str] = []

    async def wait(job_id: str, owner: str) -> None:
        with contextlib.suppress(JobCancelled):
            await dispatcher.wait_turn(job_id, owner, "w", NEEDS, on_place=lambda place: told.__setitem__(job_id, place))
            granted.append(job_id)

    tasks = [asyncio.create_task(wait(f"j{n}", owner)) for n, owner in enumerate(items)]
    await _settle()
    line = _told_line(told, dispatcher)
    assert len(line) == len(items)
    for op, size in ops + [("free", len(items))]:
        before = len(granted)
        if op == "free":
            slots.free = size
        elif line:
            assert dispatcher.withdraw(line[size % len(line)])  # a cancel while waiting
        dispatcher.wake()
        await _settle()
        assert granted[before:] == line[:len(granted) - before]  # the first in line went, in that order
        still = [job_id for job_id in line if job_id in dispatcher._entries]
        line = _told_line(told, dispatcher)
        if op == "free":
            assert line == still  # the others moved up, keeping their order
    await asyncio.gather(*tasks)
    assert not line and not dispatcher._entries


def _told_line(told: dict[str, int], dispatcher: Dispatcher) -> list[str]:
    """The waiting jobs by the place last told to each, which must be 1..m."""
    waiting = {job_id: told[job_id] for job_id in told if job_id in dispatcher._entries}
    assert sorted(waiting.values()) == list(range(1, len(waiting) + 1)), waiting  # 1..m, distinct
    return sorted(waiting, key=waiting.__getitem__)


async def _settle() -> None:
    for _ in range(5):  # the dispatch runs on the next loop turn, the granted jobs' tasks on the one after
        await asyncio.sleep(0)


@settings(max_examples=60, deadline=None)
@given(jobs, priorities, st.lists(st.tuples(st.sampled_from(["free", "free", "cancel"]), st.integers(0, 4)),
                                  max_size=12))
def test_the_dispatcher_serves_jobs_in_the_order_of_the_places_it_told(items, of_owner, ops):
    """Jobs join the real ``Dispatcher``; backend slots free up a few at a time and some waiting jobs are
    cancelled (an owner's later jobs then move up a round): after every change the places told to the
    jobs still waiting are 1..m, and the jobs granted next are the first of them, in that order."""
    asyncio.run(_line_scenario(items, of_owner, ops))


# -- the words -------------------------------------------------------------------------------

def test_english_ordinals():
    cases = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 22: "22nd",
             23: "23rd", 101: "101st", 111: "111th", 112: "112th", 1013: "1013th", 1021: "1021st"}
    assert {n: ordinal(n) for n in cases} == cases


@given(st.integers(1, 10**6))
def test_an_ordinal_is_the_number_and_its_suffix(number):
    text = ordinal(number)
    assert text[:-2] == str(number)
    teen = number % 100 in (11, 12, 13)
    assert text[-2:] == ("th" if teen else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th"))


def test_where_a_queued_job_stands_in_words():
    queued = ProgressEvent(JobState.QUEUED)
    assert place_text(queued.evolve(line_position=3)) == "3rd in line"
    assert place_text(queued.evolve(line_position=1)) == "1st in line"
    assert place_text(queued.evolve(on_server=True)) == "starting"
    assert place_text(queued.evolve(on_server=True, queue_position=1)) == "next"
    assert place_text(queued.evolve(on_server=True, queue_position=2)) == "2nd in the server's queue"
    assert place_text(queued.evolve(queue_position=12)) == "12th in the server's queue"  # no queue of ours
    assert place_text(queued) is None  # nothing known yet
    assert place_text(ProgressEvent(JobState.RUNNING, on_server=True, line_position=3)) is None
