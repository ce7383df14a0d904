"""Log output: plain text lines, or one JSON object per line (``LOG_FORMAT=json``).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, on every line
logged on a job's behalf (its own task or the task following it), ``job_id``, ``workflow``,
``user`` (a keyed hash of the Discord user id, never the id) and ``backend`` once it is known —
see ``engine.jobs.log_context``. Exceptions come as ``exception`` (already redacted).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from engine import current_job_fields

__all__ = ["JsonLines", "TEXT_FORMAT", "formatter_for"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "job", None) or current_job_fields()
        if fields:
            line.update({key: value for key, value in fields.items() if value is not None})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
