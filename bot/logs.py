"""Log output: plain text lines, or one JSON object per line (``LOG_FORMAT=json``).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and, on every line
logged on a job's behalf (its own task or the task following it), ``job_id``, ``workflow``,
``user`` (a keyed hash of the Discord user id, never the id) and ``backend`` once it is known —
see ``engine.jobs.log_context``. Exceptions come as ``exception`` (already redacted).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from engine import current_job_fields

from .config import Settings

__all__ = ["JsonLines", "TEXT_FORMAT", "formatter_for", "Redactor", "install_redaction", "configure_logging"]

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


# -- logging without secrets -----------------------------------------------------------------

class Redactor(logging.Filter):
    """Replaces secrets (the token, backend URLs and their host:port) in a record's message,
    exception text and stack, so no handler ever gets to write them."""

    def __init__(self, replacements: Mapping[str, str]):
        super().__init__()
        self._pairs = sorted(((s, r) for s, r in replacements.items() if s), key=lambda p: -len(p[0]))

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        replacements = {}
        for backend in settings.backends:
            replacements[backend.url] = f"<backend {backend.name}>"
            replacements[urlsplit(backend.url).netloc] = f"<backend {backend.name}>"
        if settings.discord_token is not None:
            replacements[settings.discord_token.get_secret_value()] = "<token>"
        if settings.db_url is not None:  # it may carry a password
            url = settings.db_url.get_secret_value()
            replacements[url] = "<database>"
            if (password := urlsplit(url).password) and len(password) > 3:
                replacements[password] = "<password>"
        return cls(replacements)

    def redact(self, text: str) -> str:
        for secret, replacement in self._pairs:
            text = text.replace(secret, replacement)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(redactor: Redactor) -> Callable[[], None]:
    """Run ``redactor`` on every log record as it is made (any logger, any handler, pytest's too).

    Returns a function that uninstalls it."""
    previous = logging.getLogRecordFactory()

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(make_record)
    return lambda: logging.setLogRecordFactory(previous)


def configure_logging(settings: Settings) -> Callable[[], None]:
    """Log to stderr at ``settings.log_level`` with secrets redacted; returns the uninstaller."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(settings.log_format))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.getLogger("discord").setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
    uninstall = install_redaction(Redactor.for_settings(settings))

    def undo() -> None:
        uninstall()
        root.removeHandler(handler)

    return undo
