"""What the job store keeps: ``JobRecord``, and its conversion to and from a database row (pure).

A row is the record with the JSON fields (``values``, ``outputs``, ``extra``) as JSON text and the
seed as text (ComfyUI seeds go up to 2**64 - 1, past a 64-bit INTEGER). Writing never fails on a
value the database cannot encode: a lone surrogate (from a server's file name or a user's text)
survives inside JSON as a ``\\udXXX`` escape, and is replaced by U+FFFD in plain text columns, as
is NUL (PostgreSQL's text cannot hold it). Reading never crashes on a damaged row: a JSON column
that does not decode to the right kind comes back empty, a bad seed or time as None.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .progress import TERMINAL_STATES, JobState

__all__ = ["JobRecord", "FIELDS", "COLUMNS", "FINISHED_STATES", "to_row", "from_row", "check_changes", "clean_text"]

log = logging.getLogger(__name__)


@dataclass
class JobRecord:
    """One job as stored. Times are Unix seconds; ``state`` is a ``JobState`` value or a runner's own."""

    job_id: str
    manifest: str
    values: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    backend: str | None = None
    prompt_id: str | None = None
    client_id: str | None = None
    state: str = JobState.QUEUED.value
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    lease_holder: str | None = None  # the bot process acting on the job (``engine.jobs.lease``)
    lease_until: float | None = None  # others may take the job over after this; None: nobody needs to

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


FIELDS = tuple(f.name for f in fields(JobRecord))
_JSON_FIELDS = {"values": dict, "outputs": list, "extra": dict}
_TIMES = ("created_at", "queued_at", "started_at", "finished_at", "lease_until")
COLUMNS = {name: f"{name}_json" if name in _JSON_FIELDS else name for name in FIELDS}
FINISHED_STATES = tuple(sorted(str(state) for state in TERMINAL_STATES))


def check_changes(changes: Mapping[str, Any]) -> None:
    """``TypeError`` for fields an update may not set (unknown ones, or the key)."""
    unknown = set(changes) - set(FIELDS) | ({"job_id"} & set(changes))
    if unknown:
        raise TypeError(f"cannot update {', '.join(sorted(unknown))}")


def to_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """Record fields → column values, every text encodable as UTF-8 without NUL."""
    row = {}
    for name, value in values.items():
        if name in _JSON_FIELDS:
            value = _dump(value)
        elif name == "seed":
            value = None if value is None else str(int(value))
        elif name in _TIMES:
            value = None if value is None else float(value)
        elif value is not None:
            value = clean_text(str(value))
        row[COLUMNS[name]] = value
    return row


def from_row(row: Mapping[str, Any]) -> JobRecord:
    """A column mapping → a record; damaged values become empty/None (logged), never an exception."""
    job_id = clean_text(str(row.get("job_id")))
    values: dict[str, Any] = {"job_id": job_id}
    for name in FIELDS[1:]:
        raw = row.get(COLUMNS[name])
        if name in _JSON_FIELDS:
            values[name] = _load(raw, _JSON_FIELDS[name], job_id, name)
        elif name == "seed":
            values[name] = _number(raw, int)
        elif name in _TIMES:
            values[name] = _number(raw, float)
        else:
            values[name] = None if raw is None else clean_text(str(raw))
    values["manifest"] = values["manifest"] or ""
    values["state"] = values["state"] or JobState.FAILED.value
    values["created_at"] = values["created_at"] if values["created_at"] is not None else 0.0
    return JobRecord(**values)


def clean_text(text: str) -> str:
    """``text`` with lone surrogates and NUL replaced by U+FFFD (cheap when it is plain ASCII)."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.replace("\x00", "\ufffd")


def _dump(value: Any) -> str:
    # default=str: an odd value (a Path, a datetime) is stored as text rather than failing the job
    text = json.dumps(value, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it exactly, as a JSON escape
            text = json.dumps(value, ensure_ascii=True, default=str)
    return text


def _load(text: Any, kind: type, job_id: str, name: str) -> Any:
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        if text is not None:
            log.warning("job %s: unreadable %s column, using an empty value", job_id, name)
        return kind()
    return value


def _number(raw: Any, kind: type) -> Any:
    try:
        return None if raw is None or isinstance(raw, bytes) else kind(raw)
    except (TypeError, ValueError, OverflowError):
        return None
