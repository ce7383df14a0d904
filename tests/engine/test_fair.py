"""The pure dispatch rules: fair turns by owner, priorities, expected finish times (property tests)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backends.fair import Speeds, Turns, Waiting, best_backend, expected_finish, fair_order

owners = st.sampled_from([f"u{n}" for n in range(6)])
queues = st.lists(st.tuples(owners, st.integers(0, 2)), min_size=1, max_size=60)


def waiting_from(items) -> list[Waiting]:
    return [Waiting(f"j{n}", owner, float(n), priority) for n, (owner, priority) in enumerate(items)]


def serve(waiting: list[Waiting], turns: Turns, count: int) -> list[Waiting]:
    """Dispatch ``count`` jobs one by one as the dispatcher does: the head of the fair order each time."""
    served = []
    left = list(waiting)
    for _ in range(min(count, len(left))):
        job, round_ = fair_order(left, turns)[0]
        turns.served(job.owner, round_)
        left.remove(job)
        served.append(job)
    return served


@given(queues)
def test_each_owner_keeps_their_own_order(items):
    """Whatever the priorities (a role raised between two jobs), an owner's jobs never pass each other."""
    order = [job for job, _ in fair_order(waiting_from(items), Turns())]
    assert sorted(order, key=lambda w: w.arrived) == sorted(waiting_from(items), key=lambda w: w.arrived)
    for owner in {o for o, _ in items}:
        mine = [w for w in order if w.owner == owner]
        assert mine == sorted(mine, key=lambda w: w.arrived)


@given(st.lists(owners, min_size=1, max_size=80), st.integers(1, 80))
def test_equal_owners_take_turns(items, count):
    """In any prefix of what is served, two owners who both still had work differ by at most one job."""
    waiting = waiting_from([(owner, 0) for owner in items])
    served = serve(waiting, Turns(), count)
    have = Counter(items)
    got = Counter(job.owner for job in served)
    for a in have:
        for b in have:
            if got[a] < have[a] and got[b] < have[b]:  # both still waiting after the prefix
                assert abs(got[a] - got[b]) <= 1, (got, have)


@given(st.integers(1, 50), st.integers(0, 40), st.integers(2, 8))
def test_a_newcomer_is_served_within_one_round(backlog, already_served, heavy_users):
    """However much the heavy users queued, a new user's first job waits at most one job per other owner."""
    waiting = [Waiting(f"h{u}-{n}", f"heavy{u}", float(n)) for u in range(heavy_users) for n in range(backlog)]
    turns = Turns()
    served = serve(waiting, turns, already_served)
    left = [w for w in waiting if w not in served] + [Waiting("new", "light", 1e9)]
    order = [job.job_id for job, _ in fair_order(left, turns)]
    assert order.index("new") <= heavy_users


@given(queues)
def test_higher_priority_comes_first(items):
    """With each owner's priority from their roles (as the dispatcher asks it), higher owners go first."""
    of_owner = {owner: priority for owner, priority in items}
    order = [job for job, _ in fair_order(waiting_from([(o, of_owner[o]) for o, _ in items]), Turns())]
    priorities = [job.priority for job in order]
    assert priorities == sorted(priorities, reverse=True)


@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=20))
def test_the_moving_average_stays_within_what_was_measured(measurements):
    speeds = Speeds()
    for seconds in measurements:
        speeds.measured("b", "w", seconds)
    assert min(measurements) - 1e-9 <= speeds.duration("b", "w") <= max(measurements) + 1e-9
    speeds.measured("b", "w", float("nan"))  # ignored
    assert speeds.duration("b", "w") == speeds.duration("b", "w")


@given(st.floats(0.1, 10), st.floats(1.1, 10), st.floats(0, 5))
def test_a_faster_idle_backend_finishes_first(base, slowdown, busy):
    speeds = Speeds()
    speeds.measured("fast", "w", base)
    speeds.measured("slow", "w", base * slowdown)
    assert best_backend([("slow", 0.0), ("fast", 0.0)], "w", speeds) == "fast"
    # the slow one wins only while the fast one has more than the difference still to do
    winner = best_backend([("slow", 0.0), ("fast", busy)], "w", speeds)
    assert winner == ("fast" if busy + base < base * slowdown else "slow") or \
        abs(busy + base - base * slowdown) < 1e-9


def test_unknown_pairs_borrow_from_what_is_known():
    speeds = Speeds()
    speeds.measured("a", "w1", 2.0)
    speeds.measured("b", "w1", 4.0)
    speeds.measured("a", "w2", 1.0)
    assert speeds.duration("b", "w2") == 2.0  # w2 known on a (1.0), b is twice as slow as a
    assert speeds.duration("c", "w3") == 10.0  # nothing known: the default
    assert expected_finish(3.0, "a", "w1", speeds) == 5.0
    assert best_backend([], "w1", speeds) is None


def test_turns_forget_owners_left_behind():
    turns = Turns()
    for n in range(10_001):
        turns.served(f"u{n}", n)
    assert len(turns.next) <= 10_001 and turns.start_of("u0") == turns.current
