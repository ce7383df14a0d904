"""BackendPool against several fake ComfyUIs, and the pure routing rules (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.backends.pool import BackendPool
from engine.comfy.client import Timeouts
from engine.errors import ComfyUnavailable
from engine.backends.routing import graph_requirements, missing_on, no_backend_reason, rank_backends
from engine.comfy.object_info import combo_choices
from engine.comfy.wire import QueueSnapshot
from tests.fake_comfy import object_info_snapshot

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.05
UNET = "flux1-dev.safetensors"


def canvas_graph() -> dict:
    return json.loads((ROOT / "workflows" / "canvas.json").read_text())


def unet_graph(name: str = UNET) -> dict:
    return {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": name, "weight_dtype": "default"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}


FULL_INFO = object_info_snapshot()
USED_CLASSES = ("EmptyImage", "SaveImage", "UNETLoader", "LoraLoaderModelOnly", "LoadImage")


def info_without(*, classes: tuple[str, ...] = (), unet: list[str] | None = None, loras: list[str] | None = None) -> dict:
    """The recorded object_info cut to the classes these tests use (fast to serve), then trimmed."""
    info = json.loads(json.dumps({name: FULL_INFO[name] for name in USED_CLASSES}))
    for name in classes:
        del info[name]
    if unet is not None:
        info["UNETLoader"]["input"]["required"]["unet_name"][0] = unet
    if loras is not None:
        info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0] = loras
    return info


async def eventually(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def start_pool():
    pools: list[BackendPool] = []

    async def start(*fakes, **options) -> BackendPool:
        names = [(f"b{i + 1}", fake.url) for i, fake in enumerate(fakes)]
        pool = BackendPool(names, client_id=f"pool-{uuid.uuid4().hex[:6]}", health_interval=INTERVAL,
                           health_timeout=0.5, timeouts=Timeouts(request=1.0, connect=0.5, transfer=2.0), **options)
        pools.append(pool)
        await pool.start()
        await eventually(lambda: all(b.up for b in pool))
        return pool

    yield start
    for pool in pools:
        await pool.close()


async def fill_queue(pool: BackendPool, name: str, fake, count: int) -> None:
    """Hold ``count`` prompts in ``name``'s queue (its worker paused) and wait until the pool sees them."""
    fake.state.pause()
    backend = pool.get(name)
    for _ in range(count):
        await backend.client.queue_prompt(canvas_graph(), prompt_id=uuid.uuid4().hex)
    await eventually(lambda: backend.running + backend.pending >= count)


# -- the pool against fakes ---------------------------------------------------------------


async def test_pick_prefers_the_shorter_queue(make_fake_comfy, start_pool):
    one, two = await make_fake_comfy(object_info=info_without()), await make_fake_comfy(object_info=info_without())
    pool = await start_pool(one, two)
    await fill_queue(pool, "b1", one, 3)
    assert pool.pick(canvas_graph()).name == "b2"
    await fill_queue(pool, "b2", two, 5)
    assert pool.pick(canvas_graph()).name == "b1"


async def test_picks_not_yet_submitted_count_as_load(make_fake_comfy, start_pool):
    pool = await start_pool(await make_fake_comfy(object_info=info_without()), await make_fake_comfy(object_info=info_without()))
    picked = [pool.pick(canvas_graph()).name for _ in range(6)]
    assert sorted(picked) == ["b1"] * 3 + ["b2"] * 3


async def test_pick_routes_away_from_a_backend_missing_a_model(make_fake_comfy, start_pool):
    full = await make_fake_comfy(object_info=info_without())
    no_models = await make_fake_comfy(object_info=info_without(unet=[]))
    pool = await start_pool(no_models, full)
    await fill_queue(pool, "b2", full, 4)  # the one with the model is busier, still the only choice
    assert pool.pick(unet_graph()).name == "b2"
    assert pool.pick(canvas_graph()).name == "b1"


async def test_pick_routes_away_from_a_backend_missing_a_node(make_fake_comfy, start_pool):
    pool = await start_pool(await make_fake_comfy(object_info=info_without(classes=("SaveImage",))),
                            await make_fake_comfy(object_info=info_without()))
    for _ in range(3):
        assert pool.pick(canvas_graph()).name == "b2"


async def test_pick_explains_why_no_backend_fits(make_fake_comfy, start_pool):
    pool = await start_pool(await make_fake_comfy(object_info=info_without(unet=[])),
                            await make_fake_comfy(object_info=info_without(unet=["other.safetensors"])))
    with pytest.raises(ComfyUnavailable, match=f"no server has model {UNET} for unet_name"):
        pool.pick(unet_graph())
    graph = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    with pytest.raises(ComfyUnavailable, match="no server has node NoSuchNode"):
        pool.pick(graph)
    with pytest.raises(ComfyUnavailable, match="no server is up"):
        pool.pick(canvas_graph(), exclude={"b1", "b2"})


async def test_dead_backend_goes_down_once_and_rejoins(make_fake_comfy, start_pool):
    alive, dying = await make_fake_comfy(object_info=info_without()), await make_fake_comfy(object_info=info_without())
    pool = await start_pool(alive, dying)
    downs: list[str] = []

    async def record(backend) -> None:
        downs.append(backend.name)

    pool.on_down(record)
    await dying.state.die()
    await eventually(lambda: downs)
    await asyncio.sleep(INTERVAL * 6)  # several failed polls later: still one callback
    assert downs == ["b2"]
    assert not pool.get("b2").up and pool.get("b1").up
    assert {pool.pick(canvas_graph()).name for _ in range(4)} == {"b1"}
    dying.state.object_info = info_without(loras=["flux/revived.safetensors"])
    await dying.state.revive()
    await eventually(lambda: pool.get("b2").up)
    assert "flux/revived.safetensors" in pool.choices("LoraLoaderModelOnly.lora_name")  # object_info refetched
    assert downs == ["b2"]


async def test_hung_backend_goes_down(make_fake_comfy, start_pool):
    fake = await make_fake_comfy(object_info=info_without())
    pool = await start_pool(fake)
    downs: list[str] = []

    async def record(backend) -> None:
        downs.append(backend.name)

    pool.on_down(record)
    await fake.state.die("hang")
    await eventually(lambda: downs == ["b1"])
    with pytest.raises(ComfyUnavailable, match="no server is up"):
        pool.pick(canvas_graph())
    await fake.state.revive()
    await eventually(lambda: pool.get("b1").up)


async def test_slow_health_checks_do_not_down_a_backend_whose_websocket_keeps_talking(make_fake_comfy):
    fake = await make_fake_comfy(object_info=info_without())
    pool = BackendPool([("b1", fake.url)], client_id="talking", health_interval=INTERVAL, health_timeout=0.1,
                       timeouts=Timeouts(request=2.0, connect=0.5, transfer=2.0))
    await pool.start()
    try:
        backend, downs = pool.get("b1"), []

        async def record(down) -> None:
            downs.append(down.name)

        pool.on_down(record)
        fake.state.pause()
        fake.state.delay("/queue", 0.3, method="GET")  # every check times out, as under a busy loop
        async with asyncio.timeout(5):
            while backend.slow_checks < 4:  # status broadcasts of our prompts keep the websocket busy
                await backend.client.queue_prompt(canvas_graph(), prompt_id=uuid.uuid4().hex)
                await asyncio.sleep(0.03)
        assert backend.up and downs == []
        await eventually(lambda: downs == ["b1"])  # silent and still not answering: down
    finally:
        await pool.close()


async def test_choices_union_over_up_backends(make_fake_comfy, start_pool):
    one = await make_fake_comfy(object_info=info_without(loras=["b.safetensors", "a.safetensors"]))
    two = await make_fake_comfy(object_info=info_without(loras=["c.safetensors", "b.safetensors"]))
    pool = await start_pool(one, two)
    assert pool.choices("LoraLoaderModelOnly.lora_name") == ["a.safetensors", "b.safetensors", "c.safetensors"]
    assert pool.choices("LoraLoaderModelOnly.no_such_input") == []
    assert pool.choices("NoSuchNode.lora_name") == []
    await two.state.die()
    await eventually(lambda: not pool.get("b2").up)
    assert pool.choices("LoraLoaderModelOnly.lora_name") == ["a.safetensors", "b.safetensors"]


async def test_status_names_backends_without_urls(make_fake_comfy, start_pool):
    one, two = await make_fake_comfy(object_info=info_without()), await make_fake_comfy(object_info=info_without())
    pool = await start_pool(one, two)
    await fill_queue(pool, "b1", one, 2)
    await two.state.die()
    await eventually(lambda: not pool.get("b2").up)
    status = {s.name: s for s in pool.status()}
    assert status["b1"].up and status["b1"].running + status["b1"].pending == 2
    assert status["b1"].version == "0.3.64"
    assert not status["b2"].up
    text = repr(pool.status()) + repr(list(pool))
    for fake in (one, two):
        assert fake.url not in text and str(fake.server.port) not in text


async def test_one_websocket_per_backend(make_fake_comfy, start_pool):
    fakes = [await make_fake_comfy(object_info=info_without()) for _ in range(3)]
    pool = await start_pool(*fakes)
    for fake in fakes:
        assert len(fake.state.hub.sockets) == 1
    assert len({b.client for b in pool}) == 3


async def test_note_submitted_and_finished_move_the_load(make_fake_comfy, start_pool):
    pool = await start_pool(await make_fake_comfy(object_info=info_without()))
    backend = pool.get("b1")
    base = backend.load
    pool.note_submitted(backend, "p1")
    assert backend.load == base + 1 and "p1" in backend.in_flight
    pool.note_finished(backend, "p1")
    assert "p1" not in backend.in_flight


# -- pure routing ---------------------------------------------------------------------------


def test_upload_combos_are_exempt_but_model_combos_are_checked():
    info = FULL_INFO
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "uploaded-later.png"}}, **unet_graph()}
    graph["1b"] = graph.pop("1")
    needs = graph_requirements(graph)
    assert missing_on(info, needs) is None
    assert missing_on(info, graph_requirements(unet_graph("nope.safetensors"))) == "model nope.safetensors for unet_name"


def test_combo_choices_reads_both_spellings():
    info = FULL_INFO
    assert "euler" in combo_choices(info, "KSampler", "sampler_name")
    assert combo_choices(info, "LatentCut", "dim") == ["x", "y", "t"]  # ["COMBO", {"options": [...]}]
    assert combo_choices(info, "KSampler", "steps") is None
    assert combo_choices(info, "LoadImage", "image", include_uploads=False) is None


CLASSES = ["A", "B", "C"]
MODELS = ["m1", "m2", "m3"]


@dataclass
class FakeCandidate:
    name: str
    up: bool
    load: int
    object_info: dict = field(repr=False)


def _info(classes: list[str], models: list[str]) -> dict:
    return {cls: {"input": {"required": {"model": [list(models), {}], "n": ["INT", {}]}}} for cls in classes}


candidates_strategy = st.lists(
    st.builds(lambda up, load, classes, models: (up, load, classes, models), st.booleans(),
              st.integers(0, 20), st.lists(st.sampled_from(CLASSES), unique=True),
              st.lists(st.sampled_from(MODELS), unique=True)),
    max_size=5,
).map(lambda rows: [FakeCandidate(f"s{i}", up, load, _info(classes, models))
                    for i, (up, load, classes, models) in enumerate(rows)])

graph_strategy = st.dictionaries(
    st.text("123456789", min_size=1, max_size=2),
    st.builds(lambda cls, model, n: {"class_type": cls, "inputs": {"model": model, "n": n, "link": ["1", 0]}},
              st.sampled_from(CLASSES), st.sampled_from(MODELS), st.integers(-5, 5)),
    min_size=1, max_size=4,
)


@given(candidates_strategy, graph_strategy)
def test_rank_keeps_exactly_the_qualifying_backends_shortest_queue_first(candidates, graph):
    needs = graph_requirements(graph)
    ranked = rank_backends(candidates, needs)
    for chosen in ranked:
        assert chosen.up
        assert all(cls in chosen.object_info for cls in needs.classes)
        assert all(node["inputs"]["model"] in chosen.object_info[node["class_type"]]["input"]["required"]["model"][0]
                   for node in graph.values())
    qualifying = {c.name for c in candidates if c.up and missing_on(c.object_info, needs) is None}
    assert {c.name for c in ranked} == qualifying
    assert [c.load for c in ranked] == sorted(c.load for c in ranked)
    if not ranked:
        reason = no_backend_reason(candidates, needs)
        assert reason.startswith("no server")
        if not any(c.up for c in candidates):
            assert reason == "no server is up"


async def test_lost_websocket_marks_down_then_rejoins(make_fake_comfy, start_pool):
    fake = await make_fake_comfy(object_info=info_without())
    pool = await start_pool(fake)
    downs: list[str] = []

    async def record(backend) -> None:
        downs.append(backend.name)

    pool.on_down(record)
    fake.state.fail_http("/ws", times=10_000)  # HTTP answers, the websocket cannot come back
    await fake.state.drop_websockets()
    await eventually(lambda: downs == ["b1"])
    fake.state.http.failures.clear()
    await eventually(lambda: pool.get("b1").up)
    assert downs == ["b1"] and len(fake.state.hub.sockets) == 1


async def test_one_shared_queue_snapshot_gives_every_prompt_its_position(make_fake_comfy, start_pool):
    fake = await make_fake_comfy(object_info=info_without())
    pool = await start_pool(fake)
    backend = pool.get("b1")
    fake.state.pause()
    ids = [f"p{i}" for i in range(3)]
    for prompt_id in ids:
        await backend.client.queue_prompt(canvas_graph(), prompt_id=prompt_id)
        pool.note_submitted(backend, prompt_id)
    async with asyncio.timeout(5):
        while [backend.position(p) for p in ids] != [1, 2, 3]:
            await backend.queue_changed()
    fake.state.resume()
    async with asyncio.timeout(5):
        while any(p in backend.queue for p in ids):
            await backend.queue_changed()


async def test_queue_refreshes_asked_together_share_one_request(make_fake_comfy, start_pool):
    fake = await make_fake_comfy(object_info=info_without())
    pool = await start_pool(fake)
    backend = pool.get("b1")
    fake.state.pause()
    await backend.client.queue_prompt(canvas_graph(), prompt_id="shared")
    fake.state.delay("/queue", 0.1, method="GET")  # keep the first request open while the others ask
    snapshots = await asyncio.gather(*(backend.refresh_queue() for _ in range(5)))
    assert all(snapshot is snapshots[0] for snapshot in snapshots)
    assert snapshots[0].position("shared") == 1  # (the health loop may have a newer one already)
    assert (await backend.refresh_queue()) is not snapshots[0]  # a later call asks anew


async def test_a_queue_watcher_is_called_with_snapshots_until_it_unwatches(make_fake_comfy, start_pool):
    fake = await make_fake_comfy(object_info=info_without())
    pool = await start_pool(fake)
    backend = pool.get("b1")
    fake.state.pause()
    await backend.client.queue_prompt(canvas_graph(), prompt_id="watched")
    seen: list[int | None] = []
    backend.watch_queue("key", lambda snapshot, asked_at: seen.append(snapshot.position("watched")), every=0.02)
    await eventually(lambda: 1 in seen)
    backend.unwatch_queue("key")
    count = len(seen)
    await backend.refresh_queue()
    assert len(seen) == count


async def test_an_older_queue_answer_never_replaces_a_newer_one(make_fake_comfy, start_pool):
    pool = await start_pool(await make_fake_comfy(object_info=info_without()))
    backend = pool.get("b1")
    newer, older = QueueSnapshot(("run",), ("a", "b")), QueueSnapshot((), ("b",))
    backend.report_snapshot(newer, asked_at=backend.queue_asked_at + 10)
    backend.report_snapshot(older, asked_at=backend.queue_asked_at - 1)
    assert backend.queue is newer and backend.position("b") == 2 and backend.is_running("run")
