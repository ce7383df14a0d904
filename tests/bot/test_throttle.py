"""Tests for bot.delivery.throttle: progress edit pacing (driven by a fake clock) and token lifetime."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.delivery.throttle import EditThrottle, token_alive, token_deadline


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs):
    clock = FakeClock()
    return EditThrottle(clock=clock, **kwargs), clock


def test_first_edit_goes_through():
    throttle, _ = make()
    assert throttle.should_send("a")


def test_changes_wait_for_min_interval():
    throttle, clock = make(min_interval=1.5)
    assert throttle.should_send(1)
    clock.now += 1.0
    assert not throttle.should_send(2)
    assert throttle.pending
    assert throttle.wait_time() == 0.5
    clock.now += 0.5
    assert throttle.should_send(2)
    assert not throttle.pending


def test_unchanged_content_is_not_resent_until_heartbeat():
    throttle, clock = make(min_interval=1.5, heartbeat=10)
    assert throttle.should_send("same")
    clock.now += 5
    assert not throttle.should_send("same")
    assert not throttle.pending
    clock.now += 5
    assert throttle.should_send("same")


def test_no_heartbeat_means_never_resend_same_content():
    throttle, clock = make(heartbeat=None)
    assert throttle.should_send("same")
    clock.now += 1000
    assert not throttle.should_send("same")


def test_final_always_goes_through():
    throttle, clock = make(min_interval=5)
    assert throttle.should_send("running")
    clock.now += 0.1
    assert throttle.should_send("done", final=True)
    assert throttle.should_send("done", final=True)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(min_value=0, max_value=3), st.integers(0, 3)), max_size=50))
def test_sent_edits_are_never_closer_than_min_interval(steps):
    throttle, clock = make(min_interval=1.5, heartbeat=4)
    sent_at = []
    for delta, key in steps:
        clock.now += delta
        if throttle.should_send(key):
            sent_at.append(clock.now)
    assert all(b - a >= 1.5 for a, b in zip(sent_at, sent_at[1:]))


def test_token_alive_until_fourteen_minutes():
    created = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert token_alive(created, created + timedelta(minutes=13, seconds=59))
    assert not token_alive(created, created + timedelta(minutes=14))
    assert not token_alive(created, created + timedelta(minutes=16))
    assert token_deadline(created) == created + timedelta(minutes=14)
    assert token_alive(created, created + timedelta(minutes=14, seconds=30), margin=timedelta(0))
