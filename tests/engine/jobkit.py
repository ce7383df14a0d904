"""Test kit for jobs and the runtime: small manifests over the fake's model-free nodes, and a
factory for a ``Runtime`` wired to fake ComfyUI servers with fast timings."""

from __future__ import annotations

import asyncio
import io
import json
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from engine import Catalog, load_catalog, load_workflow
from engine.comfy.client import Timeouts
from engine.runtime import JobSettings, Runtime
from engine.jobs.store import JobStore
from engine.limits import DEFAULT_LIMITS
from tests.fake_comfy import object_info_snapshot

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("EmptyImage", "LoadImage", "ImageInvert", "ImageScale", "SlowProgress", "FailOnPurpose", "SaveImage",
           "TextOutput")
_INFO = object_info_snapshot()
SMALL_INFO = {name: _INFO[name] for name in CLASSES}
SETTINGS = JobSettings(queue_poll=0.05, down_grace=0.5, resume_wait=1.0, cancel_wait=3.0)
TIMEOUTS = Timeouts(request=1.0, connect=0.5, transfer=2.0)

_SAVE = {"class_type": "SaveImage", "_meta": {"title": "Save"}, "inputs": {"images": ["2", 0], "filename_prefix": "t"}}
_CANVAS = {"class_type": "EmptyImage", "_meta": {"title": "Canvas"},
           "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 255}}

CASES = {
    "slow": ({"1": _CANVAS,
              "2": {"class_type": "SlowProgress", "_meta": {"title": "Slow"},
                    "inputs": {"image": ["1", 0], "steps": 5, "seconds_per_step": 0.2, "preview": True,
                               "progress_text": True, "nonce": 0}},
              "3": {**_SAVE}}, """\
        description: slow test job
        timeout: {timeout}
        params:
          steps: {{type: int, default: 5, min: 1, max: 1000, bind: '$["2"].inputs.steps'}}
          seed: {{type: seed, default: 1234, bind: '$["2"].inputs.nonce'}}
        outputs: ["3"]
        """),
    "fail": ({"1": _CANVAS,
              "2": {"class_type": "FailOnPurpose", "_meta": {"title": "Breaker"},
                    "inputs": {"image": ["1", 0], "message": "boom", "nonce": 0}},
              "3": {**_SAVE}}, """\
        description: failing test job
        params:
          message: {type: text, default: boom, bind: '$["2"].inputs.message'}
        outputs: ["3"]
        """),
    "invert": ({"1": {"class_type": "LoadImage", "_meta": {"title": "Input"}, "inputs": {"image": "example.png"}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {**_SAVE}}, """\
        description: invert test job
        params:
          image: {type: image, required: true, bind: '$["1"].inputs.image'}
        outputs: ["3"]
        """),
    "scale": ({"1": _CANVAS,
               "2": {"class_type": "ImageScale", "_meta": {"title": "Scale"},
                     "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "width": 64, "height": 32,
                                "crop": "disabled"}},
               "3": {**_SAVE}}, """\
        description: scale test job
        params:
          width: {type: int, default: 64, min: 1, max: 100000, bind: '$["2"].inputs.width'}
        outputs: ["3"]
        """),
    "text": ({"1": {"class_type": "TextOutput", "inputs": {"text": "hello", "nonce": 0}}}, """\
        description: text test job
        params:
          text: {type: text, default: hello, bind: '$["1"].inputs.text'}
          nonce: {type: int, default: 0, min: 0, max: 1000000, bind: '$["1"].inputs.nonce'}
        outputs: ["1"]
        """),
    "alien": ({"1": {"class_type": "NoSuchNode", "inputs": {}}, "2": {**_SAVE, "inputs": {"images": ["1", 0]}}},
              """\
        description: needs a node nobody has
        """),
}


def write_catalog(root: Path, *, timeout: int = 60):
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    for name, (graph, manifest) in CASES.items():
        (root / "workflows" / f"{name}.json").write_text(json.dumps(graph))
        text = manifest.format(timeout=timeout) if name == "slow" else manifest
        (root / "manifests" / f"{name}.yaml").write_text(textwrap.dedent(text))
    catalog = load_catalog([root / "manifests"], root / "workflows")
    assert not catalog.issues, catalog.issues
    bundled = load_workflow(ROOT / "manifests" / "canvas.yaml")  # the shipped manifest, end to end
    return Catalog({**catalog.workflows, bundled.name: bundled})


def png(color=(10, 200, 30), size=(8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def pixel(data: bytes) -> tuple:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


async def eventually(condition, timeout: float = 5.0, interval: float = 0.01) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(interval)


async def collect(job) -> list:
    return [event async for event in job.events()]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Read-only, shared by a module's tests (loading manifests costs ~0.5 s)."""
    return write_catalog(tmp_path_factory.mktemp("lib"))


@pytest.fixture
async def fakes(make_fake_comfy):
    """``await fakes(n)`` → n fake servers serving the small object_info."""
    async def make(count: int = 1, time_scale: float = 0.05):
        return [await make_fake_comfy(time_scale=time_scale, object_info=SMALL_INFO) for _ in range(count)]
    return make


@pytest.fixture
async def start_runtime(tmp_path, catalog):
    """``await start_runtime(*fake_servers, catalog=…, store_path=…, settings=…)`` → a started Runtime."""
    runtimes: list[Runtime] = []
    stores: list[JobStore] = []

    async def start(*servers, catalog=catalog, store_path=None, settings=SETTINGS, timeouts=TIMEOUTS,
                    wait_up=True, limits=DEFAULT_LIMITS, priority_of=None) -> Runtime:
        store = await JobStore.open(str(store_path or tmp_path / "jobs.db"))
        stores.append(store)
        runtime = Runtime(catalog, [(f"b{i + 1}", s.url) for i, s in enumerate(servers)], store,
                          health_interval=0.05, health_timeout=0.5, timeouts=timeouts, settings=settings,
                          limits=limits, priority_of=priority_of)
        runtimes.append(runtime)
        await runtime.start()
        if wait_up:
            await eventually(lambda: all(status.up for status in runtime.status()))
        return runtime

    yield start
    for runtime in runtimes:
        await runtime.close()
    for store in stores:
        await store.close()
