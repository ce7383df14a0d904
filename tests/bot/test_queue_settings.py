"""The bot's own queue settings: ``queue_depth`` (on by default, ``off`` for submit-at-once) and
``role_priority`` (ROLE=PRIORITY pairs), and the per-user priority the dispatcher asks for."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from bot.jobs.priority import REMEMBERED_USERS, QueuePriority


def test_the_queue_is_on_by_default_and_can_be_turned_off():
    assert load_settings(env={"DISCORD_TOKEN": "t"}).queue_depth == 1
    assert load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_QUEUE_DEPTH": "off"}).queue_depth is None
    assert load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_QUEUE_DEPTH": "3"}).queue_depth == 3
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_QUEUE_DEPTH": "-1"})
    assert "queue_depth" in caught.value.problems[0]


def test_role_priorities_are_read_as_pairs():
    settings = load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_ROLE_PRIORITY": "111=5, 222=1"})
    assert settings.role_priority == {111: 5, 222: 1}
    with pytest.raises(ConfigError):
        load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_ROLE_PRIORITY": "111=high"})


def test_a_user_counts_their_best_role_and_unknown_users_are_zero():
    priority = QueuePriority({111: 5, 222: 1})
    priority.note(7, [222, 111, 999])
    priority.note(8, [999])
    assert (priority("7"), priority("8"), priority("9")) == (5, 0, 0)


def test_the_memory_of_users_is_bounded():
    priority = QueuePriority({1: 3})
    for user in range(REMEMBERED_USERS + 10):
        priority.note(user, [1])
    assert priority("0") == 0 and priority(str(REMEMBERED_USERS + 9)) == 3
