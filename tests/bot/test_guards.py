"""Tests for bot.jobs.guards: sliding-window rate limits, per-user job caps, access rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs.guards import EVERYONE, ConcurrencyCap, RateLimiter, check_rate


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- RateLimiter ------------------------------------------------------------------------------


def test_limiter_allows_count_hits_then_says_how_long_to_wait():
    clock = FakeClock()
    limiter = RateLimiter(3, 60, clock=clock)
    assert [limiter.hit("u"), limiter.hit("u"), limiter.hit("u")] == [None, None, None]
    clock.now += 10
    assert limiter.hit("u") == pytest.approx(50)


def test_limiter_window_slides():
    clock = FakeClock()
    limiter = RateLimiter(2, 10, clock=clock)
    limiter.hit("u")
    clock.now += 6
    limiter.hit("u")
    clock.now += 3
    assert limiter.hit("u") == pytest.approx(1)
    clock.now += 1  # the first hit is exactly per_seconds old: it no longer counts
    assert limiter.hit("u") is None
    assert limiter.hit("u") == pytest.approx(6 + 10 - 10)


def test_limiter_keys_are_independent():
    limiter = RateLimiter(1, 60, clock=FakeClock())
    assert limiter.hit(1) is None
    assert limiter.hit(2) is None
    assert limiter.hit(1) is not None


def test_refused_hits_are_not_counted():
    clock = FakeClock()
    limiter = RateLimiter(1, 10, clock=clock)
    limiter.hit("u")
    for _ in range(5):
        clock.now += 1
        assert limiter.hit("u") is not None
    clock.now += 5
    assert limiter.hit("u") is None


def test_limiter_forgets_idle_keys():
    clock = FakeClock()
    limiter = RateLimiter(1, 10, clock=clock)
    for user in range(100):
        limiter.hit(user)
    clock.now += 11
    limiter.hit("late")
    assert set(limiter._hits) == {"late"}


@pytest.mark.parametrize(("count", "per"), [(0, 10), (1, 0), (-1, 5)])
def test_limiter_rejects_nonsense_limits(count, per):
    with pytest.raises(ValueError):
        RateLimiter(count, per)


@given(
    count=st.integers(1, 5),
    per=st.integers(1, 30),
    gaps=st.lists(st.sampled_from([0, 0.5, 1, 2, 3, 7, 13]), min_size=1, max_size=60),
)
def test_limiter_never_allows_more_than_count_in_any_window(count, per, gaps):
    clock = FakeClock(0.0)
    limiter = RateLimiter(count, per, clock=clock)
    allowed = []
    for gap in gaps:
        clock.now += gap
        if limiter.hit("u") is None:
            allowed.append(clock.now)
    for start in allowed:
        assert sum(start <= t < start + per for t in allowed) <= count


@given(
    count=st.integers(1, 5),
    per=st.integers(1, 30),
    gaps=st.lists(st.sampled_from([0, 0.25, 1, 4, 9]), min_size=1, max_size=40),
)
def test_waiting_retry_after_is_always_enough(count, per, gaps):
    clock = FakeClock(0.0)
    limiter = RateLimiter(count, per, clock=clock)
    for gap in gaps:
        clock.now += gap
        wait = limiter.hit("u")
        if wait is not None:
            assert 0 < wait <= per
            clock.now += wait
            assert limiter.hit("u") is None


@given(count=st.integers(1, 6), per=st.integers(1, 30))
def test_limiter_is_not_stricter_than_needed(count, per):
    clock = FakeClock(0.0)
    limiter = RateLimiter(count, per, clock=clock)
    assert all(limiter.hit("u") is None for _ in range(count))
    assert limiter.hit("u") is not None


# --- check_rate -------------------------------------------------------------------------------


def test_check_rate_refuses_with_whole_seconds():
    clock = FakeClock()
    per_user = RateLimiter(1, 60, clock=clock)
    assert check_rate(7, per_user=per_user) is None
    clock.now += 48.2
    assert check_rate(7, per_user=per_user) == "Slow down: try again in 12 s."


def test_check_rate_global_limit_refuses_without_spending_the_users_slot():
    clock = FakeClock()
    per_user = RateLimiter(1, 60, clock=clock)
    overall = RateLimiter(1, 30, clock=clock)
    assert check_rate(1, per_user=per_user, overall=overall) is None
    busy = "The bot is busy right now: try again in 30 s."
    assert check_rate(2, per_user=per_user, overall=overall) == busy
    clock.now += 30
    assert check_rate(2, per_user=per_user, overall=overall) is None


def test_check_rate_user_refusal_does_not_spend_a_global_slot():
    clock = FakeClock()
    per_user = RateLimiter(1, 60, clock=clock)
    overall = RateLimiter(2, 60, clock=clock)
    check_rate(1, per_user=per_user, overall=overall)
    assert check_rate(1, per_user=per_user, overall=overall) is not None
    assert check_rate(2, per_user=per_user, overall=overall) is None
    assert overall.retry_after(EVERYONE) > 0


def test_check_rate_never_says_zero_seconds():
    clock = FakeClock()
    per_user = RateLimiter(1, 10, clock=clock)
    check_rate(1, per_user=per_user)
    clock.now += 9.999
    assert check_rate(1, per_user=per_user) == "Slow down: try again in 1 s."


# --- ConcurrencyCap ---------------------------------------------------------------------------


def test_cap_refuses_past_max_and_frees_on_release():
    cap = ConcurrencyCap(2)
    assert cap.acquire(1, "a") and cap.acquire(1, "b")
    assert not cap.acquire(1, "c")
    assert cap.acquire(2, "x")  # other users are unaffected
    cap.release(1, "a")
    assert cap.acquire(1, "c")
    assert cap.running(1) == 2


def test_cap_release_is_idempotent_and_reacquire_is_a_no_op():
    cap = ConcurrencyCap(1)
    assert cap.acquire(1, "a")
    assert cap.acquire(1, "a")
    assert cap.running(1) == 1
    cap.release(1, "a")
    cap.release(1, "a")
    cap.release(1, "never-acquired")
    cap.release(99, "unknown-user")
    assert cap.running(1) == 0
    assert cap.acquire(1, "b")


def test_cap_refusal_text():
    assert ConcurrencyCap(1).refusal() == "You already have 1 job running: wait for one to finish."
    assert ConcurrencyCap(3).refusal() == "You already have 3 jobs running: wait for one to finish."


@given(
    max_per_user=st.integers(1, 4),
    ops=st.lists(st.tuples(st.booleans(), st.integers(1, 3), st.sampled_from("abcdef")), max_size=80),
)
def test_cap_never_exceeds_max_and_counts_match_a_model(max_per_user, ops):
    cap = ConcurrencyCap(max_per_user)
    model: dict[int, set[str]] = {}
    for is_acquire, user, job in ops:
        jobs = model.setdefault(user, set())
        if is_acquire:
            expected = job in jobs or len(jobs) < max_per_user
            assert cap.acquire(user, job) == expected
            if expected:
                jobs.add(job)
        else:
            cap.release(user, job)
            jobs.discard(job)
        assert cap.running(user) == len(jobs) <= max_per_user
