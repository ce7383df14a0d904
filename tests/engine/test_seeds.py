"""Seeds fit their inputs: a random seed is drawn within what every bound input accepts on the server
that runs the job, ``engine validate`` needs no ``max`` from the author, and the seed sent is the
seed reported and stored.

``TextOutput.nonce`` (a custom test node, like many real ones) accepts at most 2**48 - 1; drawn up
to 2**53 - 1, 31 seeds in 32 would be refused by the server (the fake enforces ranges like it).
"""

from __future__ import annotations

import asyncio
import json
import random
import textwrap

import pytest

from engine import Catalog, apply_params, load_catalog
from engine.checks.validate import validate_paths
from engine.comfy.client import Timeouts
from engine.jobs.progress import JobState

from .jobkit import SMALL_INFO, catalog, fakes, start_runtime  # noqa: F401

NONCE_MAX = 281474976710655  # 2**48 - 1
GRAPH = {"1": {"class_type": "TextOutput", "inputs": {"text": "hello", "nonce": 0}}}


def manifest(seed: str = "{type: seed, bind: '$[\"1\"].inputs.nonce'}") -> str:
    return textwrap.dedent(f"""\
        description: a seed bound to an input with max 2**48 - 1
        params:
          seed: {seed}
        outputs: ["1"]
        """)


@pytest.fixture
def write(tmp_path):
    def make(text: str = manifest()):
        (tmp_path / "manifests").mkdir(exist_ok=True)
        (tmp_path / "workflows").mkdir(exist_ok=True)
        (tmp_path / "workflows" / "seeded.json").write_text(json.dumps(GRAPH))
        (tmp_path / "manifests" / "seeded.yaml").write_text(text)
        return tmp_path / "manifests"
    return make


def test_a_seed_without_max_validates_against_an_input_with_a_smaller_max(write):
    report = validate_paths([write()], object_info=SMALL_INFO)
    assert report.ok, report.lines()


@pytest.mark.parametrize(("seed", "key"), [
    (f"{{type: seed, max: {2**50}, bind: '$[\"1\"].inputs.nonce'}}", "max"),
    (f"{{type: seed, default: {2**49}, bind: '$[\"1\"].inputs.nonce'}}", "default"),
])
def test_only_an_explicit_max_or_default_beyond_the_input_is_an_error(write, seed, key):
    (issue,) = validate_paths([write(manifest(seed))], object_info=SMALL_INFO).issues
    assert issue.param == "seed" and issue.code == "range"
    assert issue.message.startswith(f"{key} ") and f"TextOutput.nonce's range 0–{NONCE_MAX}" in issue.message


def test_the_draw_takes_the_smallest_max_of_the_inputs_and_the_manifest(write):
    workflow = load_catalog([write()])["seeded"]
    assert workflow.input_limit("seed", SMALL_INFO) == NONCE_MAX
    rng = random.Random(7)
    drawn = [apply_params(workflow, {}, rng=rng, object_info=SMALL_INFO).values["seed"] for _ in range(2000)]
    assert all(0 <= seed <= NONCE_MAX for seed in drawn)
    assert max(drawn) > NONCE_MAX // 2  # the whole range is used, not a corner of it
    small = load_catalog([write(manifest("{type: seed, max: 9, bind: '$[\"1\"].inputs.nonce'}"))])["seeded"]
    assert {apply_params(small, {}, rng=rng, object_info=SMALL_INFO).values["seed"] for _ in range(200)} \
        <= set(range(10))


async def test_two_hundred_runs_on_the_fake_are_never_refused_and_report_the_seed_sent(write, fakes,
                                                                                        start_runtime):
    [fake] = await fakes()
    catalog = load_catalog([write()])
    # generous request timeouts: 50 prompts at once on a loaded machine must not fail for slowness
    runtime = await start_runtime(fake, catalog=Catalog(catalog.workflows), timeouts=Timeouts(request=30.0))
    jobs = []
    for batch in range(4):
        jobs += await asyncio.gather(*(runtime.submit("seeded", {}) for _ in range(50)))
        await asyncio.gather(*(job.result() for job in jobs[-50:]))  # raises if the server refused one
    assert all(job.state is JobState.DONE for job in jobs) and len(jobs) == 200
    client = runtime.pool.get("b1").client
    for job in jobs[:20] + jobs[-20:]:
        record = await runtime.get(job.id)
        entry = await client.history(job.prompt_id)
        sent = entry["prompt"][2]["1"]["inputs"]["nonce"]
        assert record.seed == record.values["seed"] == job.values["seed"] == sent <= NONCE_MAX
    assert len({job.values["seed"] for job in jobs}) > 190  # random, not one value


async def test_a_given_seed_is_sent_as_given(write, fakes, start_runtime):
    [fake] = await fakes()
    runtime = await start_runtime(fake, catalog=Catalog(load_catalog([write()]).workflows))
    job = await runtime.submit("seeded", {"seed": 42})
    await job.result()
    assert (await runtime.get(job.id)).seed == 42
