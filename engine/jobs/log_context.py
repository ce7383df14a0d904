"""Which job a log line belongs to: ``job_id``, ``workflow``, a hash of the user id and the ``backend``.

A job's fields live in a ``ContextVar``: its own task runs with them (``Job._start``), and so does
whoever follows the job (``bind_job``), so every line logged on its behalf — by the engine or the
bot — can carry them (``current_job_fields``; the bot's JSON log lines do). The fields are one
mutable dict per job, so the backend shows up in every line once it is picked. The user id is
never logged as such: ``user_hash`` is a keyed hash (``set_user_salt``, e.g. the install's client id).
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar
from typing import Any

__all__ = ["JobFields", "job_fields", "bind_job", "current_job_fields", "user_hash", "set_user_salt"]

JobFields = dict[str, Any]
_CURRENT: ContextVar[JobFields | None] = ContextVar("discomfy_job", default=None)
_salt = b"discomfy"


def set_user_salt(salt: str) -> None:
    """The key of ``user_hash`` (stable per install, so one user's lines can be followed)."""
    global _salt
    _salt = salt.encode()[:64] or b"discomfy"


def user_hash(owner: str | None) -> str | None:
    if not owner:
        return None
    return hashlib.blake2b(owner.encode(), key=_salt, digest_size=6).hexdigest()


def job_fields(job_id: str, workflow: str, owner: str | None) -> JobFields:
    return {"job_id": job_id, "workflow": workflow, "user": user_hash(owner), "backend": None}


def bind_job(fields: JobFields) -> None:
    """Log the rest of the current task (and the tasks it starts) as part of this job."""
    _CURRENT.set(fields)


def current_job_fields() -> JobFields | None:
    return _CURRENT.get()
