"""The Details button: every value, seed, timings, the backend for admins only, the exact `engine run`
command line (run here against the fake ComfyUI) and the graph that was sent."""

from __future__ import annotations

import asyncio
import json
import shlex

import pytest

from bot.views.buttons import UNKNOWN_JOB
from bot.views.details import COMMAND_NAME, GRAPH_NAME
from engine.cli.main import main as engine_main

from .payloads import USER_ID, Upload
from .stack import flow_catalog, png, running_stack

ADMIN = USER_ID + 99


@pytest.fixture
async def stack(fake_comfy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the command line names the manifest relative to the bot's folder
    async with running_stack(fake_comfy.url, tmp_path / "db" / "jobs.sqlite3", flow_catalog(tmp_path / "m"),
                             admin_user_ids=[ADMIN]) as stack:
        yield stack


async def _details(stack, job_id: str, user_id: int = USER_ID) -> tuple[dict, dict[str, bytes]]:
    await stack.dispatch(stack.fake.component_payload(f"dc:info:{job_id}", user_id=user_id))
    answer = [r for r in stack.fake.requests if r.path.endswith("/callback")][-1]
    assert answer.payload["type"] == 4 and answer.payload["data"]["flags"] & 64  # ephemeral
    return answer.payload["data"], dict(answer.files)


def _fields(data: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in data["embeds"][0]["fields"]}


async def test_the_result_has_a_details_button_and_no_public_backend_name(stack):
    await stack.slash("seeded", steps=2)
    (job,) = await stack.jobs()
    final = stack.result_edits()[-1].payload
    ids = [b.get("custom_id") for row in final["components"] for b in row["components"]]
    assert f"dc:info:{job.job_id}" in ids
    assert "local" not in json.dumps(final["embeds"])


async def test_details_show_values_seed_timings_and_the_graph_sent_but_no_backend_for_users(stack, fake_comfy):
    await stack.slash("seeded", steps=3)
    (job,) = await stack.jobs()
    data, files = await _details(stack, job.job_id)
    fields, description = _fields(data), data["embeds"][0]["description"]

    assert fields["Seed"] == str(job.values["seed"]) and not any("Backend" in name for name in fields)
    assert "(`steps`): 3" in description and "(`seconds_per_step`)" in description
    assert "waited" in fields["Timings"] and "in all" in fields["Timings"]
    assert json.loads(files[GRAPH_NAME]) == fake_comfy.state.posted[-1]["prompt"]  # exactly what was sent


async def test_admins_also_see_the_backend(stack):
    await stack.slash("seeded", steps=2)
    (job,) = await stack.jobs()
    data, _ = await _details(stack, job.job_id, user_id=ADMIN)
    assert _fields(data)["Backend (admins only)"] == "local"


def _command(data: dict, files: dict[str, bytes]) -> list[str]:
    shown = _fields(data)["Reproduce from a terminal"]
    text = files[COMMAND_NAME].decode() if COMMAND_NAME in files else shown.split("\n", 1)[1].rsplit("\n", 1)[0]
    return shlex.split(text)


async def test_the_command_line_reproduces_the_job_from_a_terminal(stack, fake_comfy, tmp_path):
    picture = png(20, 12, (0, 200, 100))
    await stack.slash("invert", image=Upload("my cat.png", picture))
    (job,) = await stack.jobs()
    data, files = await _details(stack, job.job_id)
    argv = _command(data, files)
    assert argv[:3] == ["engine", "run", "m/invert.yaml"] and "image=my cat.png" in argv
    (tmp_path / "my cat.png").write_bytes(picture)  # the user has their image

    code = await asyncio.to_thread(engine_main, [*argv[1:], "--server", fake_comfy.url, "--out",
                                                 str(tmp_path / "out"), "--json"])
    assert code == 0
    first, again = fake_comfy.state.posted[-2:]
    assert again["prompt"] == first["prompt"]


async def test_a_command_line_too_long_for_the_embed_comes_as_a_file(stack):
    await stack.slash("test fail")
    (job,) = await stack.jobs()
    data, files = await _details(stack, job.job_id)
    assert job.state == "failed" and COMMAND_NAME not in files  # failures have details too
    await stack.store.set(job.job_id, values={**job.values, "message": "y" * 1100 + " 'quoted'; spaced"})
    data, files = await _details(stack, job.job_id)
    assert COMMAND_NAME in files and COMMAND_NAME in _fields(data)["Reproduce from a terminal"]
    assert "message=" + "y" * 1100 + " 'quoted'; spaced" in _command(data, files)


async def test_an_unknown_job_is_answered_clearly(stack):
    await stack.dispatch(stack.fake.component_payload("dc:info:" + "0" * 32))
    assert stack.ephemeral_texts() == [UNKNOWN_JOB]
