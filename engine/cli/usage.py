"""The ``engine`` command's one usage error: a problem with the command line or its inputs."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad arguments, or inputs that cannot be used (unreadable files, no server): one line on
    stderr, exit code 2, no traceback."""
