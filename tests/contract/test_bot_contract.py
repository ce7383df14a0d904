"""The whole bot (offline Discord, real ``Runtime``) against the fake ComfyUI always, and against a real
server when ``COMFYUI_URL`` is set: a slash command to its result, live preview frames in the progress
message, a rerun of the same values (answered from the server's output cache), an action button
that uploads a result back to the server, and ``discomfy check``'s probes."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

from bot.check import run_checks
from bot.delivery.preview import PREVIEW_NAME
from engine.jobs.progress import JobState
from tests.bot.stack import MODEL_FREE, REPO, flow_catalog, running_stack
from tests.bot.test_check import FakeDiscordRest, settings_for

from .test_contract import comfy_url  # noqa: F401  (the fake always, a real server when COMFYUI_URL is set)


@pytest.fixture
async def stack(comfy_url, tmp_path):
    async with running_stack(comfy_url, tmp_path / "db" / "jobs.sqlite3", flow_catalog(tmp_path / "m")) as stack:
        stack.flow.preview_interval = 0.4
        yield stack


def _files(edit) -> dict[str, bytes]:
    return dict(edit.files)


async def test_slash_command_with_live_previews_to_its_result(stack):
    await stack.dispatch(stack.fake.slash_payload("seeded", {"steps": 8}), timeout=30)
    (job,) = await stack.jobs()
    assert job.state == JobState.DONE
    previews = [_files(e)[PREVIEW_NAME] for e in stack.webhook_edits() if PREVIEW_NAME in _files(e)]
    assert previews  # 8 steps of 0.2 s, a frame each, uploaded at most every 0.4 s
    assert Image.open(io.BytesIO(previews[-1])).format == "JPEG"
    (final,) = stack.result_edits()
    ((name, data),) = final.files
    assert Image.open(io.BytesIO(data)).size == (256, 256)
    assert {"name": "seed", "value": str(job.values["seed"]), "inline": True} in final.payload["embeds"][0]["fields"]


async def test_rerun_of_the_same_values_is_delivered_from_the_servers_cache(stack):
    await stack.slash("seeded", steps=2)
    (first,) = await stack.jobs()
    await stack.dispatch(stack.fake.component_payload(f"dc:rerun:{first.job_id}"), timeout=30)
    rerun = next(r for r in await stack.jobs() if r.job_id != first.job_id)
    assert rerun.state == JobState.DONE and rerun.values == first.values
    [(_, before)], [(_, after)] = (edit.files for edit in stack.result_edits())
    assert after == before  # the same file, answered without running anything


async def test_an_action_button_uploads_the_result_to_the_server(stack):
    await stack.slash("canvas", color="16711680", width=48, height=40)
    (source,) = await stack.jobs()
    await stack.dispatch(stack.fake.component_payload(f"dc:act:{source.job_id}:1:invert"), timeout=30)
    chained = next(r for r in await stack.jobs() if r.manifest == "invert")
    assert chained.state == JobState.DONE
    ((_, data),) = stack.result_edits()[-1].files
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (48, 40) and image.convert("RGB").getpixel((0, 0)) == (0, 255, 255)


async def test_discomfy_check_finds_the_server_and_the_model_free_manifests_ready(comfy_url, tmp_path, aiohttp_server):
    rest = FakeDiscordRest()
    api = str((await aiohttp_server(rest.app())).make_url("/api/v10"))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in MODEL_FREE:
        shutil.copy(REPO / "manifests" / f"{name}.yaml", manifests)
    found = {f.area: (f.status, f.detail) for f in await run_checks(settings_for(tmp_path, manifests, comfy_url),
                                                                   api=api)}
    assert found["comfyui gpu1"][0] == "ok" and "ComfyUI 0.3." in found["comfyui gpu1"][1]
    assert {found[f"manifest {name}"] for name in MODEL_FREE} == {("ok", "runs on gpu1")}
    assert all(status == "ok" for status, _ in found.values()), found
