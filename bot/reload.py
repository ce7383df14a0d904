"""Hot reload: the manifest and workflow folders are watched (watchfiles), and ``/admin reload`` asks
for a reload; either way ``engine.reload_catalog`` picks the catalog to serve next.

A reload that changes nothing served does nothing (no command rebuild, no sync); otherwise the app's
``apply`` swaps the catalog in and rebuilds the commands, which are synced only when their payload
hash changed. Problems (``file:line:col: …``) go to the log and to ``notify`` (the admin channel,
when configured); the ``/admin reload`` answer shows them too. Reloads never overlap. Jobs in
flight keep the workflow object and graph they started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Mapping

from engine import DEFAULT_LIMITS, Catalog, CatalogChange, Limits, reload_catalog

__all__ = ["Reloader", "WATCH_DEBOUNCE_MS"]

log = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 400  # an editor's save is often several writes: one reload for them all


class Reloader:
    """Reloads the catalog from ``manifests_dir``/``workflows_dir`` (see the module docstring)."""

    def __init__(self, manifests_dir: Path, workflows_dir: Path, *, current: Callable[[], Catalog],
                 object_infos: Callable[[], Sequence[Mapping[str, Any]]],
                 apply: Callable[[Catalog], Awaitable[bool]],
                 notify: Callable[[list[str]], Awaitable[None]] | None = None, limits: Limits = DEFAULT_LIMITS):
        self.manifests_dir, self.workflows_dir = Path(manifests_dir), Path(workflows_dir)
        self.limits = limits
        self._current, self._object_infos, self._apply, self._notify = current, object_infos, apply, notify
        self._lock = asyncio.Lock()
        self.syncs = 0  # command syncs caused by reloads (tests: at most one per real change)

    async def reload(self, reason: str) -> CatalogChange:
        async with self._lock:
            infos = list(self._object_infos())
            catalog, change = await asyncio.to_thread(reload_catalog, self.manifests_dir, self.workflows_dir,
                                                      self._current(), infos, self.limits)
            if change.any:
                self.syncs += bool(await self._apply(catalog))
            self._report(reason, change)
            if change.problems and self._notify is not None:
                await self._safely_notify(change)
            return change

    def _report(self, reason: str, change: CatalogChange) -> None:
        summary = "; ".join(change.lines()[: 1 + (change.lines()[0] != "no change")])
        log.info("reload (%s): %s", reason, summary)
        for problem in change.problems:
            log.warning("manifest problem: %s", problem)

    async def _safely_notify(self, change: CatalogChange) -> None:
        if self._notify is None:
            return
        try:
            await self._notify(change.lines())
        except Exception as exc:  # a missing channel or permission must not break reloads
            log.warning("could not tell the admin channel about a reload (%s)", type(exc).__name__)

    async def watch(self, *, stop: asyncio.Event | None = None, force_polling: bool | None = None) -> None:
        """Reload after every burst of changes in the two folders, until cancelled or ``stop`` is set."""
        from watchfiles import awatch  # imported here: only the running bot watches

        folders = [str(p) for p in (self.manifests_dir, self.workflows_dir) if p.is_dir()]
        if not folders:
            log.warning("no manifest or workflow folder to watch; use /admin reload")
            return
        async for _changes in awatch(*folders, debounce=WATCH_DEBOUNCE_MS, step=50, stop_event=stop,
                                     recursive=False, force_polling=force_polling):
            try:
                await self.reload("files changed")
            except Exception:  # keep watching whatever one reload did
                log.exception("reload failed")
