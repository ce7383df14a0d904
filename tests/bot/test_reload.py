"""Hot reload on the offline stack: add, change, break, fix and remove a manifest while jobs run —
commands and buttons follow, the previous good version keeps serving, no job is lost, and there is
at most one command sync per real change. Both ways in: the folder watcher and ``/admin reload``."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from bot.commands.admin import NOT_ADMIN

from .test_app import ADMIN_ID, REPO, answered, booted, eventually, make_settings, running_job, slow_job, start, syncs

ADMIN_CHANNEL = 700000000000000042
TINT = """name: tint
title: Tint
description: {description}
workflow: canvas.json
timeout: 60
params:
  width: {{type: int, default: 64, min: 16, max: 512, bind: '$[?(@._meta.title == "Canvas")].inputs.width'}}
outputs: ["2"]
"""
BROKEN = TINT.format(description="Broken on purpose").replace(
    'outputs: ["2"]', "  height: {type: int, bind: '$.nowhere'}\noutputs: [\"2\"]")


@pytest.fixture
def folder(tmp_path) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("canvas", "invert", "resize", "slow-canvas", "fail"):
        shutil.copy(REPO / "manifests" / f"{name}.yaml", manifests)
    return manifests


def command(fake, name: str):
    return next((c for c in fake.client.tree.get_commands() if c.name == name), None)


def texts(fake) -> str:
    return "\n".join(str(r.payload) for r in fake.requests)


async def done_job(fake, workflow: str):
    return next((r for r in await fake.client.store.recent() if r.manifest == workflow and r.state == "done"), None)


async def test_add_change_break_fix_remove_while_jobs_run(tmp_path, folder, fake_comfy):
    settings = make_settings(tmp_path, folder, fake_comfy, admin_channel_id=ADMIN_CHANNEL)
    async with booted(settings) as fake:
        bot = fake.client
        base = len(syncs(fake))
        slow_tasks = start(fake, slow_job(fake, steps=30, seconds=1.0))  # runs through every reload
        slow = await eventually(lambda: running_job(fake))
        tint = folder / "tint.yaml"

        tint.write_text(TINT.format(description="A tinted canvas"))  # add: the watcher picks it up
        await eventually(lambda: command(fake, "tint"), timeout=15)
        await eventually(lambda: len(syncs(fake)) == base + 1)
        await answered(fake, fake.slash_payload("tint", {"width": 32}))
        tinted = await eventually(lambda: done_job(fake, "tint"))

        tint.write_text(TINT.format(description="A tinted canvas, changed"))  # change
        change = await bot.reloader.reload("test")
        await eventually(lambda: command(fake, "tint").description == "A tinted canvas, changed", timeout=15)
        assert change.changed == ("tint",) or bot.reloader.syncs >= 2  # the watcher may have been first
        assert len(syncs(fake)) == base + 2

        tint.write_text(BROKEN)  # break: reported with file:line, the previous version keeps serving
        change = await bot.reloader.reload("test")
        assert change.kept == ("tint",) and not change.any
        assert any(p.startswith(f"{tint}:8:") and "$.nowhere" in p for p in change.problems), change.problems
        assert command(fake, "tint").description == "A tinted canvas, changed"
        await eventually(lambda: f"/channels/{ADMIN_CHANNEL}/messages" in [r.path for r in fake.requests])
        assert "$.nowhere" in texts(fake)

        tint.write_text(TINT.format(description="A tinted canvas, changed"))  # fix back to what serves
        change = await bot.reloader.reload("test")
        assert not change.any and not change.problems

        tint.unlink()  # remove: the command goes, its buttons say why they no longer work
        change = await bot.reloader.reload("test")
        assert change.removed == ("tint",) or command(fake, "tint") is None
        await eventually(lambda: command(fake, "tint") is None, timeout=15)
        await answered(fake, fake.component_payload(f"dc:rerun:{tinted.job_id}"))
        assert "The workflow 'tint' has been removed, so this button no longer works." in texts(fake)

        await asyncio.sleep(1.0)  # let a late watcher reload land: it must find nothing to sync
        assert len(syncs(fake)) == base + 3  # add, change, remove: one sync each, none for break or fix
        await asyncio.wait_for(asyncio.gather(*slow_tasks), 20)
        assert (await bot.store.get(slow.job_id)).state == "done"  # the job in flight kept its graph
        states = {r.job_id: r.state for r in await bot.store.recent(limit=100)}
        assert set(states.values()) == {"done"} and len(states) == 2


async def test_admin_reload_answers_admins_only(tmp_path, folder, fake_comfy):
    settings = make_settings(tmp_path, folder, fake_comfy, reload_on_change=False)
    async with booted(settings) as fake:
        (folder / "tint.yaml").write_text(TINT.format(description="A tinted canvas"))
        await fake.dispatch(fake.slash_payload("admin reload", {}))
        assert NOT_ADMIN in texts(fake) and command(fake, "tint") is None
        await fake.dispatch(fake.slash_payload("admin reload", {}, user_id=ADMIN_ID))
        assert "added: tint" in texts(fake) and command(fake, "tint") is not None
        (folder / "tint.yaml").write_text(BROKEN)
        (folder / "other.yaml").write_text("name: [unclosed\n")
        await fake.dispatch(fake.slash_payload("admin reload", {}, user_id=ADMIN_ID))
        sent = texts(fake)
        assert "broken, previous version kept: tint" in sent and "broken, not loaded: other" in sent
        assert f"{folder / 'other.yaml'}:2:1: YAML syntax" in sent


async def test_a_manifest_no_live_server_can_run_is_refused(tmp_path, folder, fake_comfy):
    settings = make_settings(tmp_path, folder, fake_comfy, reload_on_change=False)
    async with booted(settings) as fake:
        text = TINT.format(description="Needs a node").replace("canvas.json", "upscale.json")
        text = text.replace("params:\n  width: {type: int, default: 64, min: 16, max: 512, bind: "
                            "'$[?(@._meta.title == \"Canvas\")].inputs.width'}\n", "params: {}\n").replace('["2"]', '["5"]')
        (folder / "tint.yaml").write_text(text)
        for backend in fake.client.runtime.pool:  # the live server lacks the upscaler's node class
            backend.object_info = {k: v for k, v in backend.object_info.items() if k != "UpscaleModelLoader"}
        change = await fake.client.reloader.reload("test")
        assert change.refused == ("tint",) and command(fake, "tint") is None
        assert any("UpscaleModelLoader" in p and "not installed" in p for p in change.problems), change.problems
