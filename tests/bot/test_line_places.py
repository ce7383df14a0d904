"""Progress messages tell a job's place in the bot's own queue (issue 11 §1), on the full offline stack
(fake ComfyUI behind our fair queue, queue depth 1, real Runtime, offline Discord): several users'
jobs wait behind one busy backend; each message shows "Nth in line" as the dispatcher will serve
them (round-robin by user), "next" once the job waits in ComfyUI's own queue, and moves up as the
jobs ahead leave. No timing is asserted; the waits are generous bounds against hangs."""

from __future__ import annotations

import asyncio
import re

from engine.jobs.progress import JobState

from .payloads import USER_ID
from .stack import running_stack

WAIT = 60.0  # generous: a loaded 2-core box
LONG = {"steps": 20, "seconds_per_step": 5.0}  # 100 s at the fake's real pace: it is cancelled long before
SHORT = {"steps": 1, "seconds_per_step": 0.0}
BUSY, ANN, BOB, CAT = USER_ID, USER_ID + 1, USER_ID + 2, USER_ID + 3
PLACE = re.compile(r"^(\d+)(st|nd|rd|th) in line$")


class Messages:
    """Each submitted job's progress message, known by its interaction token."""

    def __init__(self, stack):
        self.stack = stack
        self.tokens: dict[str, str] = {}  # name → token
        self.tasks: list[asyncio.Task] = []

    async def submit(self, name: str, user_id: int, values: dict) -> None:
        payload = self.stack.fake.slash_payload("seeded", values, user_id=user_id)
        self.tokens[name] = payload["token"]
        self.tasks.append(asyncio.create_task(self.stack.dispatch(payload, timeout=4 * WAIT)))

    def shown(self, name: str) -> list[str | None]:
        """The Queue field of every progress edit of ``name``'s message, in order (None: no such field)."""
        token = self.tokens[name]
        edits = [r.payload for r in self.stack.webhook_edits() if f"/{token}/" in r.path]
        return [_queue_field(edit) for edit in edits if edit.get("embeds")]

    def places(self, name: str) -> list[str]:
        """What ``name``'s message said about its place, each change once."""
        said = [text for text in self.shown(name) if text is not None]
        return [text for n, text in enumerate(said) if n == 0 or said[n - 1] != text]

    async def until(self, **expected: str) -> None:
        """Until each named message shows the expected place (its latest edit)."""
        async with asyncio.timeout(WAIT):
            while any((self.shown(name) or [None])[-1] != text for name, text in expected.items()):
                await asyncio.sleep(0.02)


def _queue_field(payload: dict) -> str | None:
    fields = payload["embeds"][0].get("fields", [])
    return next((field["value"] for field in fields if field["name"] == "Queue"), None)


async def _running(stack, owner: int) -> None:
    async with asyncio.timeout(WAIT):
        while not any(r.state == JobState.RUNNING and r.owner == str(owner) for r in await stack.jobs()):
            await asyncio.sleep(0.02)


async def _cancel_busy(stack) -> None:
    """Cancel the busy user's oldest unfinished job (the line moves)."""
    jobs = sorted((job for job in stack.runtime.jobs_in_flight() if job.owner == str(BUSY) and not job.finished),
                  key=lambda job: job.created_at)
    await jobs[0].cancel()


async def test_waiting_users_see_their_place_in_line_move_up(fake_comfy, tmp_path, catalog):
    fake_comfy.state.time_scale = 1.0
    async with running_stack(fake_comfy.url, tmp_path / "state" / "jobs.sqlite3", catalog, queue_depth=1) as stack:
        messages = Messages(stack)
        await messages.submit("busy1", BUSY, LONG)
        await _running(stack, BUSY)
        await messages.submit("busy2", BUSY, LONG)  # sent too (queue depth 1): it waits in ComfyUI's queue
        await messages.until(busy2="next")
        await messages.submit("ann1", ANN, SHORT)
        await messages.until(ann1="1st in line")
        await messages.submit("ann2", ANN, SHORT)
        await messages.until(ann2="2nd in line")
        await messages.submit("bob1", BOB, SHORT)  # joins the current round: before Ann's second job
        await messages.until(bob1="2nd in line", ann2="3rd in line")
        await messages.submit("cat1", CAT, SHORT)
        await messages.until(ann1="1st in line", bob1="2nd in line", cat1="3rd in line", ann2="4th in line")

        await _cancel_busy(stack)  # busy2 runs; Ann's first job goes to ComfyUI and waits behind it
        await messages.until(ann1="next", bob1="1st in line", cat1="2nd in line", ann2="3rd in line")
        await _cancel_busy(stack)  # the line runs out
        async with asyncio.timeout(4 * WAIT):
            await asyncio.gather(*messages.tasks)

        assert messages.places("ann2")[:4] == ["2nd in line", "3rd in line", "4th in line", "3rd in line"]
        assert messages.places("cat1")[:2] == ["3rd in line", "2nd in line"]
        for name in ("ann1", "ann2", "bob1", "cat1"):
            _moves_only_forward(messages.places(name), arrivals=name == "ann2")
        records = {r.owner: r.state for r in await stack.jobs() if r.owner != str(BUSY)}
        assert set(records.values()) == {"done"}


def _moves_only_forward(places: list[str], *, arrivals: bool) -> None:
    """Once in line, a place only gets smaller (a later arrival may pass it only while it waits, as
    ``ann2``'s did), and once the job left our line no "in line" comes back."""
    numbers = [int(match.group(1)) for text in places if (match := PLACE.match(text))]
    in_line = [n for n, text in enumerate(places) if PLACE.match(text)]
    assert in_line == list(range(len(in_line))), places  # "in line" first, then server wording only
    moving = numbers[numbers.index(max(numbers)):] if arrivals else numbers
    assert moving == sorted(moving, reverse=True), places
    assert all(text in ("next", "starting") for text in places[len(in_line):]), places
