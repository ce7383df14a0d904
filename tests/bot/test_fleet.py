"""Several bot processes on one PostgreSQL job store (issue 11 §3): two real OS processes, each the
whole bot (``DisComfyBot``) on the offline Discord and its own shard, sharing a fake ComfyUI served
by this test. One starts jobs and is killed with SIGKILL while one of them runs, one waits on the
server and one waits in our own queue; the other process takes them over once their leases ran
out and posts each outcome exactly once (counted on both processes' Discord sides), and no prompt
reaches ComfyUI twice (counted on the fake). Every wait is bounded generously; nothing is timed."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from engine.jobs.store import JobStore

from .fleet_process import LEASE_SECONDS

REPO = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds: bounds every wait on another process (a loaded machine), measures nothing
OUTCOME = re.compile(r"dc:del:([0-9a-f]{32})")  # only a job's outcome carries its delete button
QUICK, SLOW = 2, 60  # SlowProgress steps of 1 s at the fake's time scale (0.05): 0.1 s and 3 s
JOBS = (QUICK, SLOW, SLOW + 1, SLOW + 2)  # different values: the server's output cache runs each one


class BotProcess:
    """``python -m tests.bot.fleet_process`` and the Discord requests it logged."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, errors: Path):
        self.process, self.log, self.errors = process, log, errors

    @classmethod
    async def start(cls, folder: Path, name: str, *, db_url: str, comfy_url: str, shard: int,
                    jobs: tuple[int, ...] = ()) -> BotProcess:
        log, errors = folder / f"{name}.jsonl", folder / f"{name}.stderr"
        with errors.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bot.fleet_process", "--db-url", db_url, "--comfy-url", comfy_url,
                "--folder", str(folder / name), "--shard", str(shard), "--jobs", ",".join(map(str, jobs)),
                "--log", str(log), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=stderr)
        started = cls(process, log, errors)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), WAIT)
        except TimeoutError:
            line = b""
        assert line.strip() == b"READY", f"{name} did not start:\n{errors.read_text()[-3000:]}"
        return started

    @property
    def pid(self) -> int:
        return self.process.pid

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.endswith("}")]

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), WAIT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def outcomes(*processes: BotProcess) -> list[tuple[str, int]]:
    """(job id, pid) for every outcome posted or edited in, by any of ``processes``."""
    return [(job_id, request["pid"]) for process in processes for request in process.requests()
            if request["method"] in ("POST", "PATCH") for job_id in set(OUTCOME.findall(request["payload"]))]


async def until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)
    return value


async def test_a_killed_process_s_jobs_are_taken_over_and_each_delivered_once(tmp_path, pg_url, fake_comfy):
    store = await JobStore.open(pg_url)
    taker = starter = None
    try:
        taker = await BotProcess.start(tmp_path, "taker", db_url=pg_url, comfy_url=fake_comfy.url, shard=1)
        starter = await BotProcess.start(tmp_path, "starter", db_url=pg_url, comfy_url=fake_comfy.url, shard=0,
                                         jobs=JOBS)

        async def quick_posted_and_next_running():
            jobs = sorted(await store.recent(limit=10), key=lambda record: record.created_at)
            states = [record.state for record in jobs]
            quick_posted = jobs and (jobs[0].job_id, starter.pid) in outcomes(starter)
            return len(jobs) == 4 and quick_posted and states[1] == "running" and jobs
        jobs = await until(quick_posted_and_next_running, "the starter posts its quick job and runs the next")
        assert [record.lease_holder for record in jobs[1:]].count(None) == 0  # held by the starter
        assert outcomes(taker) == []  # the starter renews its leases: nothing of it is taken while it lives

        starter.process.send_signal(signal.SIGKILL)  # mid-job: no goodbye, its leases just stop being renewed
        await starter.process.wait()
        killed, before = time.monotonic(), len(taker.requests())

        async def taker_edits() -> bool:
            return len(taker.requests()) > before
        await until(taker_edits, "the taker shows the jobs it took over")
        taken_after = time.monotonic() - killed
        ids = [record.job_id for record in jobs]
        await until(lambda: _all_posted(ids, starter, taker), "every job's outcome is posted")
        posted_after = time.monotonic() - killed
        await asyncio.sleep(3 * LEASE_SECONDS)  # room for a second delivery, were there one
        await taker.stop()  # graceful

        posted = Counter(job_id for job_id, _ in outcomes(starter, taker))
        assert posted == Counter(ids)  # every job's outcome exactly once …
        by = dict(outcomes(starter, taker))
        assert by[ids[0]] == starter.pid and {by[job_id] for job_id in ids[1:]} == {taker.pid}  # … by its holder
        final = {record.job_id: record for record in await store.recent(limit=10)}
        assert [final[job_id].state for job_id in ids] == ["done"] * 4
        assert all(final[job_id].lease_until is None for job_id in ids)  # delivered: no process needed

        prompts = Counter(body["prompt_id"] for body in fake_comfy.state.posted)
        assert sorted(prompts.values()) == [1, 1, 1, 1]  # each job's prompt reached ComfyUI once …
        assert set(prompts) == {final[job_id].prompt_id for job_id in ids}  # … and it is the one the job ran
        print(f"\nlease {LEASE_SECONDS} s: taken over {taken_after:.1f} s after the kill, all posted after {posted_after:.1f} s")
    finally:
        for process in (starter, taker):
            if process is not None:
                await process.stop(signal.SIGKILL)
        await store.close()


async def _all_posted(ids: list[str], *processes: BotProcess) -> bool:
    return set(ids) <= {job_id for job_id, _ in outcomes(*processes)}
