"""Runtime contract: the engine's jobs against the fake ComfyUI always, and against a real server
when ``COMFYUI_URL`` is set (with the test nodes installed). Covers what issue 3 asks to show on a
real server: progress and outputs, a bound size that changes the pixels, a server-side rejection
mapped to the param, and a websocket killed mid-job that still completes."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from engine import JobCancelled, WorkflowRejected, load_catalog
from engine.jobs.progress import JobState
from engine.runtime import Runtime
from engine.jobs.store import JobStore
from tests.engine.jobkit import write_catalog

from .test_contract import comfy_url  # noqa: F401  (the fake always, a real server when COMFYUI_URL is set)


@pytest.fixture
async def runtime(comfy_url, tmp_path):
    catalog = write_catalog(tmp_path / "lib")
    store = await JobStore.open(str(tmp_path / "jobs.db"))
    async with Runtime(catalog, [("contract", comfy_url)], store, health_interval=0.5) as runtime:
        yield runtime
    await store.close()


async def test_bound_width_changes_the_output_size(runtime):
    job = await runtime.submit("scale", {"width": 77})
    result = await job.result()
    image = Image.open(io.BytesIO(result.outputs[0].data))
    assert image.size == (77, 32)
    assert (await runtime.get(job.id)).state == "done"


async def test_server_rejection_is_mapped_to_the_param(runtime):
    job = await runtime.submit("scale", {"width": 99999})  # inside the manifest's range, over the node's
    with pytest.raises(WorkflowRejected) as err:
        await job.result()
    assert any(problem.startswith("width: ") and "16384" in problem for problem in err.value.problems)


async def test_websocket_killed_mid_job_still_completes(runtime):
    job = await runtime.submit("slow", {"steps": 8, "seed": random.randrange(1, 2**40)})
    killed = False
    states = []
    async for event in job.events():
        states.append(event.state)
        if not killed and event.step and event.step >= 2:
            backend = runtime.pool.get("contract")
            await backend.events._ws.close()  # the shared socket dies under the running job
            killed = True
    assert killed and states[-1] is JobState.DONE
    result = await job.result()
    assert result.outputs and result.outputs[0].kind == "image"
    assert runtime.pool.get("contract").events.reconnects >= 1


SEEDED_MANIFEST = """\
description: a seed without max, bound to TextOutput.nonce (the server allows 0 to 2**48 - 1)
params:
  seed: {type: seed, bind: '$["1"].inputs.nonce'}
outputs: ["1"]
"""


async def test_random_seeds_stay_in_the_servers_range_and_are_reported_as_sent(comfy_url, tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "seeded.json").write_text(
        json.dumps({"1": {"class_type": "TextOutput", "inputs": {"text": "seeded", "nonce": 0}}}))
    (tmp_path / "manifests" / "seeded.yaml").write_text(SEEDED_MANIFEST)
    store = await JobStore.open(str(tmp_path / "jobs.db"))
    async with Runtime(load_catalog([tmp_path / "manifests"]), [("contract", comfy_url)], store,
                       health_interval=0.5) as runtime:
        jobs = [await runtime.submit("seeded", {}) for _ in range(100)]
        for job in jobs:
            await job.result()  # raises WorkflowRejected if the server refused a drawn seed
        client = runtime.pool.get("contract").client
        for job in jobs[:10]:
            sent = (await client.history(job.prompt_id))["prompt"][2]["1"]["inputs"]["nonce"]
            assert (await runtime.get(job.id)).seed == job.values["seed"] == sent
    await store.close()
    seeds = [job.values["seed"] for job in jobs]
    assert all(0 <= seed <= 2**48 - 1 for seed in seeds) and max(seeds) > 2**47 // 2  # the range, not a corner
    assert len(set(seeds)) == 100


async def test_live_previews_are_the_running_nodes_image(runtime):
    job = await runtime.submit("slow", {"steps": 3, "seed": random.randrange(1, 2**40)})
    previews = [event.preview async for event in job.events() if event.preview is not None]
    await job.result()
    assert previews  # SlowProgress sends one preview frame per step
    image = Image.open(io.BytesIO(previews[-1]))
    # the 32×16 canvas fitted to SlowProgress' 64 px preview square: ComfyUI scales previews up as well as down
    assert (image.format, image.size) == ("JPEG", (64, 32))
    assert all(abs(got - want) <= 8 for got, want in zip(image.convert("RGB").getpixel((32, 16)), (0, 0, 255)))


async def test_cancelling_leaves_nothing_behind_on_the_server(runtime):
    running = await runtime.submit("slow", {"steps": 500, "seed": random.randrange(1, 2**40)})
    waiting = await runtime.submit("slow", {"steps": 500, "seed": random.randrange(1, 2**40)})
    async for event in running.events():
        if event.step:
            break  # the first job runs; the second waits in the server's queue behind it
    client = runtime.pool.get("contract").client
    assert waiting.prompt_id in (await client.queue()).pending
    await waiting.cancel()  # removed from the server's queue
    await running.cancel()  # interrupted
    for job in (running, waiting):
        with pytest.raises(JobCancelled):
            await job.result()
        assert (await runtime.get(job.id)).state == "cancelled"
    assert await client.history(waiting.prompt_id) is None  # it never ran
    entry = await client.history(running.prompt_id)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    snapshot = await client.queue()
    assert running.prompt_id not in snapshot and waiting.prompt_id not in snapshot
