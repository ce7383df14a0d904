"""How ``engine run`` shows a job's progress: a rich bar on a terminal, one line per visible change
otherwise (both on stderr), nothing with ``--json``."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from ..jobs.line import place_text
from ..jobs.progress import JobState, ProgressEvent

__all__ = ["ProgressView", "describe_event", "make_view", "LineView", "BarView", "QuietView"]


class ProgressView(Protocol):
    def show(self, event: ProgressEvent) -> None: ...

    def close(self) -> None: ...


def describe_event(event: ProgressEvent) -> str:
    """One line for a progress event: ``queued (3rd in line)``, ``running 35% · KSampler · step 7/20 · ETA 12 s``."""
    if event.state is JobState.QUEUED:
        place = place_text(event)
        return f"queued ({place})" if place else "queued"
    if event.state is JobState.FAILED:
        return f"failed: {event.error or 'error'}"
    if event.state is not JobState.RUNNING:
        return event.state.value
    return " · ".join([f"running {int(event.percent)}%", *_details(event)])


def _details(event: ProgressEvent) -> list[str]:
    parts = [event.phase] if event.phase else []
    if event.step is not None and event.steps:
        parts.append(f"step {event.step}/{event.steps}")
    if event.eta_seconds is not None:
        parts.append(f"ETA {event.eta_seconds:.0f} s")
    return parts


class LineView:
    """Non-terminal output: one line per visible change, on stderr."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._last = ""

    def show(self, event: ProgressEvent) -> None:
        line = describe_event(event)
        if event.state in (JobState.FAILED, JobState.CANCELLED):
            return  # the command's own error line says it
        if line != self._last:
            print(line, file=self.stream, flush=True)
            self._last = line

    def close(self) -> None:
        pass


class BarView:
    """Terminal output: a rich progress bar (queue position, percent, phase, step, ETA)."""

    def __init__(self, title: str, console: Console):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TextColumn("{task.fields[detail]}"), console=console)
        self.task = self.progress.add_task(title, total=100, detail="queued")
        self.progress.start()

    def show(self, event: ProgressEvent) -> None:
        if event.state is JobState.QUEUED:
            detail = describe_event(event)
        elif event.state is JobState.RUNNING:
            detail = " · ".join(_details(event))
        else:
            detail = describe_event(event)
        self.progress.update(self.task, completed=event.percent, detail=detail)

    def close(self) -> None:
        self.progress.stop()


class QuietView:
    def show(self, event: ProgressEvent) -> None:
        pass

    def close(self) -> None:
        pass


def make_view(title: str, quiet: bool) -> ProgressView:
    if quiet:
        return QuietView()
    console = Console(stderr=True)
    return BarView(title, console) if console.is_terminal else LineView()
