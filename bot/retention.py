"""Retention: what the bot keeps on disk stays bounded in age and size.

- Kept inputs (``<db folder>/inputs/``, content-addressed, for reruns): files older than
  ``keep_inputs_days`` go, then the oldest until the folder is within ``keep_inputs_mb``. A file
  used again is touched (``InputFolder.keep``), so age means "last used". A rerun of a job whose
  input went asks for the upload again.
- Job records: finished jobs older than ``keep_jobs_days`` are deleted (unfinished ones never),
  then the database is compacted. The buttons of a pruned job answer that the job is no longer known.

The bot keeps no output files of its own (results live in Discord, originals on the ComfyUI server),
so there is nothing else to prune. ``prune_once`` takes the time as an argument (tests pass a fake
clock); ``Retention`` runs it at start and every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import JobStore

from .config import Settings

__all__ = ["RetentionPolicy", "Pruned", "prune_folder", "prune_once", "Retention", "DAY"]

log = logging.getLogger(__name__)

DAY = 86_400.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class RetentionPolicy:
    inputs_max_age: float  # seconds
    inputs_max_bytes: int
    jobs_max_age: float  # seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.keep_inputs_days * DAY, settings.keep_inputs_mb * MIB, settings.keep_jobs_days * DAY)


@dataclass(frozen=True)
class Pruned:
    files: int = 0
    bytes: int = 0
    kept_bytes: int = 0
    jobs: int = 0


def _files(folder: Path) -> list[tuple[float, int, Path]]:
    """(last used, size, path) of every kept file, oldest first; unreadable entries are skipped."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        except OSError:
            continue
    return sorted(found)


def prune_folder(folder: Path, *, max_age: float, max_bytes: int, now: float) -> Pruned:
    """Delete files unused for ``max_age`` seconds, then the oldest until ``max_bytes`` remain.
    Blocking (file system): run it in a thread."""
    files = _files(folder)
    total = sum(size for _, size, _ in files)
    removed = freed = 0
    for used, size, path in files:
        if used > now - max_age and total <= max_bytes:
            break  # oldest first: everything after is younger, and the folder fits
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: cannot delete a kept input (%s)", exc.strerror or type(exc).__name__)
            continue
        removed, freed, total = removed + 1, freed + size, total - size
    return Pruned(files=removed, bytes=freed, kept_bytes=total)


async def prune_once(store: JobStore, inputs: Path, policy: RetentionPolicy, now: float) -> Pruned:
    """One pass: the inputs folder, then the job records (and a compaction if any went)."""
    files = await asyncio.to_thread(prune_folder, inputs, max_age=policy.inputs_max_age,
                                    max_bytes=policy.inputs_max_bytes, now=now)
    jobs = await store.prune_finished(now - policy.jobs_max_age)
    if jobs:
        await store.compact()
    if files.files or jobs:
        log.info("retention: deleted %d kept input(s) (%.1f MiB) and %d job record(s)", files.files,
                 files.bytes / MIB, jobs)
    return Pruned(files.files, files.bytes, files.kept_bytes, jobs)


class Retention:
    """``prune_once`` at start and every ``interval`` seconds, until cancelled; a failed pass is logged."""

    def __init__(self, store: JobStore, inputs: Path, policy: RetentionPolicy, *, interval: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        self.store, self.inputs, self.policy, self.interval, self.clock = store, inputs, policy, interval, clock

    async def run(self) -> None:
        while True:
            try:
                await prune_once(self.store, self.inputs, self.policy, self.clock())
            except Exception as exc:  # a busy database or a disk error: try again next time
                log.warning("retention pass failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.interval)
