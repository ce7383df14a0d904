"""``DB_URL``: the job database as a URL — PostgreSQL for several processes, an SQLite path otherwise.

The setting's parsing and secrecy, then the whole bot on each database: a job that survives a
restart, its result posted once by the process that comes back.
"""

from __future__ import annotations

import logging

import pytest

from bot.logs import Redactor
from bot.config import ConfigError, Settings, load_settings

from .payloads import CHANNEL_ID
from .test_app import _result_files, booted, eventually, make_settings, manifests, running_job, slow_job, start  # noqa: F401

PG = "postgresql://discomfy:hunter2-secret@db.internal:5432/jobs"


def test_db_url_is_read_from_the_environment_and_kept_secret():
    settings = load_settings(env={"DISCORD_TOKEN": "tok", "DB_URL": PG})
    assert settings.database_url == PG
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert load_settings(env={"DISCORD_TOKEN": "tok", "DISCOMFY_DB_URL": "/data/jobs.db"}).database_url == "/data/jobs.db"


def test_without_db_url_the_sqlite_file_is_the_database(tmp_path):
    assert Settings(db_path=tmp_path / "x.db").database_url == str(tmp_path / "x.db")


def test_a_db_url_of_another_kind_is_a_clear_problem():
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"DISCORD_TOKEN": "tok", "DB_URL": "mysql://root:pw@h/db"})
    assert caught.value.problems == ["db_url: must be postgresql://… or an SQLite file path (from environment DB_URL)"]


def test_logs_never_show_the_database_url_or_its_password():
    redactor = Redactor.for_settings(Settings(db_url=PG))
    assert redactor.redact(f"connecting to {PG}") == "connecting to <database>"
    assert redactor.redact("password hunter2-secret rejected") == "password <password> rejected"


async def test_a_job_survives_a_restart_on_each_database(tmp_path, manifests, fake_comfy, store_url, caplog):  # noqa: F811
    settings = make_settings(tmp_path, manifests, fake_comfy, db_url=store_url)
    with caplog.at_level(logging.INFO):
        async with booted(settings) as first:
            tasks = start(first, slow_job(first, steps=20, seconds=1.0))
            slow = await eventually(lambda: running_job(first))
        for task in tasks:  # the first process's interaction task ends with the process
            task.cancel()
        async with booted(settings) as second:
            message = f"/channels/{CHANNEL_ID}/messages/{slow.extra['message_id']}"
            posted = lambda: [r for r in second.requests if r.via == "http" and r.method == "PATCH"  # noqa: E731
                              and r.path == message and _result_files(r)]
            await eventually(posted)
            assert (await second.client.store.get(slow.job_id)).state == "done"
            assert await second.client.store.unfinished() == []
            assert second.client.store.db.dialect == ("postgresql" if store_url.startswith("postgres") else "sqlite")
            assert len(posted()) == 1
    assert "hunter2" not in caplog.text
