"""The whole bot in-process: real client, runtime, store and flow against fake ComfyUI servers and the
offline Discord. Command sync only on change, the static commands, cancel, secrets kept out of
payloads and logs, start-up config errors, and a job that survives a restart of the bot."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from discord.webhook.async_ import async_context

from bot.app import (DisComfyBot, Redactor, ShardedDisComfyBot, client_id_for, create_bot, install_redaction,
                     run_bot)
from bot.cli import main as cli_main
from bot.config import ConfigError, Settings, load_settings
from bot.views.modals import BOOT
from engine.comfy.client import Timeouts
from engine.jobs.parts import JobSettings

from .harness import FakeDiscord, fake_discord
from .payloads import APP_ID, CHANNEL_ID, GUILD_ID, USER_ID

REPO = Path(__file__).resolve().parents[2]
LIBRARY = ("slow-canvas", "fail", "invert", "resize", "flux", "upscale")
TOKEN = "MTIz.SECRET-token.xyz"
ADMIN_ID = 900000000000000777
RUNTIME = {"health_interval": 0.1, "timeouts": Timeouts(request=2.0, connect=0.5, transfer=3.0),
           "settings": JobSettings(queue_poll=0.05, down_grace=0.5, resume_wait=2.0, cancel_wait=3.0)}
FLOW = {"edit_interval": 0.05}


@pytest.fixture
def manifests(tmp_path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    for name in LIBRARY:
        shutil.copy(REPO / "manifests" / f"{name}.yaml", folder)
    return folder


def make_settings(tmp_path: Path, manifests: Path, *servers: Any, **changes: Any) -> Settings:
    backends = [{"name": f"gpu{i}", "url": server.url} for i, server in enumerate(servers, start=1)]
    return Settings(discord_token=TOKEN, backends=backends, manifests_dir=manifests,
                    workflows_dir=REPO / "workflows", db_path=tmp_path / "jobs.sqlite3",
                    admin_user_ids=[ADMIN_ID], **changes)


@asynccontextmanager
async def booted(settings: Settings) -> AsyncIterator[FakeDiscord]:
    """The bot after ``setup_hook``, never logged in; closing it detaches unfinished jobs."""
    bot = DisComfyBot(settings, runtime_options=RUNTIME, flow_options=FLOW)
    async with fake_discord(client=bot, tree=bot.tree) as fake:
        await bot.setup_hook()
        yield fake


def syncs(fake: FakeDiscord) -> list:
    return [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]


def start(fake: FakeDiscord, payload: dict) -> set[asyncio.Task]:
    """Feed an interaction without waiting for it (its task runs the whole job); returns its tasks."""
    before = asyncio.all_tasks()
    token = async_context.set(fake.webhook)
    try:
        fake.client._connection.parse_interaction_create(payload)
    finally:
        async_context.reset(token)
    return asyncio.all_tasks() - before


async def answered(fake: FakeDiscord, payload: dict) -> None:
    """Feed an interaction and wait for its own task only (a job running meanwhile keeps spawning tasks)."""
    await asyncio.wait_for(asyncio.gather(*start(fake, payload)), 5.0)


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def eventually(condition, timeout: float = 8.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await _maybe(condition())):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    return value


async def running_job(fake: FakeDiscord, state: str = "running") -> Any:
    return next((r for r in (await fake.client.store.recent()) if r.state == state), None)


def last_embed(fake: FakeDiscord) -> dict:
    bodies = [r.payload for r in fake.requests if r.via == "webhook" and isinstance(r.payload, dict)]
    for body in reversed(bodies):
        embeds = body.get("embeds") or (body.get("data") or {}).get("embeds")
        if embeds:
            return embeds[0]
    raise AssertionError("no embed sent")


def everything_sent(fake: FakeDiscord) -> str:
    return json.dumps([r.payload for r in fake.requests], default=str)


def slow_job(fake: FakeDiscord, steps: int = 20, seconds: float = 1.0) -> dict:
    """SlowProgress takes steps × seconds × the fake's time scale (0.05)."""
    return fake.slash_payload("test slow-canvas", {"steps": steps, "seconds_per_step": seconds})


# -- boot and sync ---------------------------------------------------------------------------

async def test_commands_sync_once_and_again_only_when_the_catalog_changes(tmp_path, manifests, fake_comfy):
    settings = make_settings(tmp_path, manifests, fake_comfy)
    async with booted(settings) as first:
        [put] = syncs(first)
        assert put.path == f"/applications/{APP_ID}/commands"
        names = {c["name"] for c in put.payload}
        assert {"help", "status", "workflows", "choices", "cancel", "test", "invert", "generate"} <= names
    async with booted(settings) as second:
        assert syncs(second) == []
        assert {c.name for c in second.tree.get_commands()} == names  # still served, just not re-sent
    shutil.copy(REPO / "manifests" / "canvas.yaml", manifests)
    async with booted(settings) as third:
        [put] = syncs(third)
        assert "canvas" in {c["name"] for c in put.payload}


async def test_guild_ids_sync_to_each_guild(tmp_path, manifests, fake_comfy):
    async with booted(make_settings(tmp_path, manifests, fake_comfy, guild_ids=[GUILD_ID])) as fake:
        [put] = syncs(fake)
        assert put.path == f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
        assert "help" in {c["name"] for c in put.payload}


async def test_a_broken_manifest_is_skipped_and_logged_with_its_line(tmp_path, manifests, fake_comfy, caplog):
    (manifests / "broken.yaml").write_text("name: broken\ndescription: x\nparams:\n  a: {type: int, bind: 1}\n")
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        async with booted(make_settings(tmp_path, manifests, fake_comfy)) as fake:
            assert "broken" not in fake.client.catalog
            assert "slow-canvas" in fake.client.catalog
    assert any(r.getMessage().startswith("manifest skipped: ") and "broken.yaml:4:" in r.getMessage()
               for r in caplog.records)


def test_sharding_is_chosen_by_the_settings(tmp_path, manifests):
    server = type("Server", (), {"url": "http://127.0.0.1:1"})()
    assert type(create_bot(make_settings(tmp_path, manifests, server))) is DisComfyBot
    sharded = create_bot(make_settings(tmp_path, manifests, server, shard_count=3))
    assert isinstance(sharded, ShardedDisComfyBot) and sharded.shard_count == 3
    assert isinstance(create_bot(make_settings(tmp_path, manifests, server, sharded=True)), ShardedDisComfyBot)
    assert not create_bot(make_settings(tmp_path, manifests, server)).intents.message_content
    from_env = load_settings(env={"DISCORD_TOKEN": "t", "DISCOMFY_SHARD_COUNT": "4", "DISCOMFY_SHARDED": "true"})
    assert (from_env.shard_count, from_env.sharded) == (4, True)


def test_a_process_runs_the_shards_it_is_given_of_the_same_count(tmp_path, manifests):
    server = type("Server", (), {"url": "http://127.0.0.1:1"})()
    some = create_bot(make_settings(tmp_path, manifests, server, shard_count=4, shard_ids=[1, 3]))
    assert isinstance(some, ShardedDisComfyBot) and (some.shard_count, some.shard_ids) == (4, [1, 3])
    from_env = load_settings(env={"DISCORD_TOKEN": "t", "SHARD_COUNT": "4", "SHARD_IDS": "0, 2"})
    assert (from_env.shard_count, from_env.shard_ids) == (4, [0, 2])
    for bad in ({"SHARD_IDS": "0"}, {"SHARD_COUNT": "2", "SHARD_IDS": "2"}, {"SHARD_COUNT": "2", "SHARD_IDS": "-1"}):
        with pytest.raises(ConfigError, match="shard_ids: need shard_count"):
            load_settings(env={"DISCORD_TOKEN": "t", **bad})
    assert client_id_for(tmp_path / "db", [0, 2]) != client_id_for(tmp_path / "db", [1, 3])  # one socket each
    assert client_id_for(tmp_path / "db", [0, 2]) == client_id_for(tmp_path / "db", [0, 2])


# -- static commands -------------------------------------------------------------------------

async def test_help_lists_the_generated_commands(tmp_path, manifests, fake_comfy):
    async with booted(make_settings(tmp_path, manifests, fake_comfy)) as fake:
        await fake.slash("help")
        pages = [r.payload for r in fake.requests if r.via == "webhook" and r.method == "POST"]
    answer, followups = pages[0]["data"], pages[1:]
    assert answer["flags"] & 64 and all(f["flags"] & 64 for f in followups)  # ephemeral
    text = "\n".join(e["description"] for page in [answer, *followups] for e in page["embeds"])
    for path in ("/help", "/cancel", "/test slow-canvas", "/test fail", "/invert", "/resize", "/generate", "/upscale"):
        assert f"**{path}**" in text
    assert "• `seconds_per_step` (optional): How long each step takes" in text


async def test_status_shows_a_dead_backend_and_never_a_url(tmp_path, manifests, make_fake_comfy):
    east, west = await make_fake_comfy(), await make_fake_comfy()
    async with booted(make_settings(tmp_path, manifests, east, west)) as fake:
        await west.state.die()
        await eventually(lambda: [s.up for s in fake.client.runtime.status()] == [True, False])
        await fake.slash("status")
        user_view = last_embed(fake)
        await fake.dispatch(fake.slash_payload("status", user_id=ADMIN_ID))
        admin_view = last_embed(fake)
        sent = everything_sent(fake)
    assert user_view["title"] == "ComfyUI servers: 1 of 2 up"
    assert [f["name"] for f in user_view["fields"]] == ["Server 1", "Server 2"]
    assert "🔴 down" in user_view["fields"][1]["value"]
    assert [f["name"] for f in admin_view["fields"]] == ["gpu1", "gpu2"]
    for secret in (east.url, west.url, "127.0.0.1", TOKEN):
        assert secret not in sent


async def test_workflows_lists_each_manifest(tmp_path, manifests, fake_comfy):
    async with booted(make_settings(tmp_path, manifests, fake_comfy)) as fake:
        await fake.slash("workflows")
        text = fake.callbacks()[0]["data"]["embeds"][0]["description"]
    assert "**Slow canvas**: `/test slow-canvas` · image" in text
    assert "**Invert**: `/invert` · image" in text
    assert "image (PNG, JPEG or WebP image, required)" in text


async def test_choices_lists_the_live_values_matching_the_filter(tmp_path, manifests, fake_comfy):
    async with booted(make_settings(tmp_path, manifests, fake_comfy)) as fake:
        await fake.slash("choices", source="LoraLoaderModelOnly.lora_name", filter="FLUX/")
        embed = fake.callbacks()[0]["data"]["embeds"][0]
        suggested = await fake.autocomplete("choices", {"source": "Upscale"}, focused="source")
    assert embed["description"].splitlines() == ["`flux/anime_lines.safetensors`", "`flux/flux_realism.safetensors`",
                                                 "`flux/watercolor_style.safetensors`"]
    assert [c["value"] for c in suggested] == ["UpscaleModelLoader.model_name"]


async def test_cancel_stops_the_users_running_job(tmp_path, manifests, fake_comfy):
    async with booted(make_settings(tmp_path, manifests, fake_comfy)) as fake:
        start(fake, slow_job(fake, steps=100, seconds=2.0))
        record = await eventually(lambda: running_job(fake))
        await answered(fake, fake.autocomplete_payload("cancel", {"job": ""}, focused="job"))
        suggestions = fake.callbacks()[-1]["data"]["choices"]
        assert [c["value"] for c in suggestions] == [record.job_id]
        assert suggestions[0]["name"].startswith("Slow canvas · running")
        await answered(fake, fake.slash_payload("cancel", {"job": record.job_id}, user_id=USER_ID + 1))
        assert "no job" in fake.callbacks()[-1]["data"]["content"]
        await answered(fake, fake.slash_payload("cancel", {"job": record.job_id}))
        async def cancelled() -> bool:
            return (await fake.client.store.get(record.job_id)).state == "cancelled"

        await eventually(cancelled)
        followups = [r.payload.get("content") for r in fake.requests if r.method == "POST"
                     and r.path.startswith("/webhooks/")]
        assert "Cancelled." in followups
        await eventually(lambda: fake_comfy.state.running is None)


# -- secrets and start-up --------------------------------------------------------------------

async def test_token_and_urls_never_reach_logs(tmp_path, manifests, make_fake_comfy, caplog):
    east, west = await make_fake_comfy(), await make_fake_comfy()
    settings = make_settings(tmp_path, manifests, east, west)
    uninstall = install_redaction(Redactor.for_settings(settings))
    try:
        with caplog.at_level(logging.DEBUG):
            async with booted(settings) as fake:
                await west.state.die()
                await eventually(lambda: not fake.client.runtime.status()[1].up)
                logging.getLogger("test").warning("token %s, url %s/prompt, ws ws://%s/ws", TOKEN, east.url,
                                                  west.url.split("//")[1])
                try:
                    raise ConnectionError(f"Cannot connect to host {west.url.split('//')[1]}")
                except ConnectionError:
                    logging.getLogger("test").exception("request failed")
    finally:
        uninstall()
    text = caplog.text
    assert "<token>" in text and "<backend gpu1>/prompt" in text and "ws://<backend gpu2>/ws" in text
    assert "Cannot connect to host <backend gpu2>" in text
    for secret in (TOKEN, east.url, west.url, west.url.split("//")[1]):
        assert secret not in text


def test_config_errors_are_listed_and_exit_2_without_the_token(tmp_path, monkeypatch, capsys):
    for name in ("DISCORD_TOKEN", "DISCOMFY_CONFIG", "COMFYUI_URLS", "COMFYUI_URL", "DISCORD_GUILD_IDS"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "bot.toml"
    config.write_text('discord_token = "abc def-SECRET"\nmax_concurrent_per_user = 0\n'
                      '[[backends]]\nname = "x"\nurl = "ftp://secret-host:21"\n')
    assert run_bot(config) == 2
    assert cli_main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "discord_token: must be a single word" in err
    assert "max_concurrent_per_user" in err and "backends.0.url" in err
    assert "SECRET" not in err and "secret-host" not in err


# -- restart ---------------------------------------------------------------------------------

def _result_files(request) -> list:
    """The files of an edit other than a live preview frame (progress edits may carry one)."""
    return [f for f in request.files if f[0] != "preview.jpg"]


async def test_a_job_survives_a_restart_and_buttons_from_before_still_work(tmp_path, manifests, fake_comfy):
    settings = make_settings(tmp_path, manifests, fake_comfy)
    async with booted(settings) as first:
        await first.dispatch(slow_job(first, steps=2, seconds=0.1))
        done = await running_job(first, "done")
        assert done is not None and done.outputs
        interaction_tasks = start(first, slow_job(first, steps=20, seconds=1.0))
        slow = await eventually(lambda: running_job(first))
        client_id = first.client.runtime.client_id
    for task in interaction_tasks:  # the first process's interaction task would end with the process
        task.cancel()
    assert fake_comfy.state.running is not None  # still running on the server: not cancelled

    async with booted(settings) as second:
        assert syncs(second) == []
        message = f"/channels/{CHANNEL_ID}/messages/{slow.extra['message_id']}"
        result = await eventually(lambda: next((r for r in second.requests if r.via == "http"
                                                and r.method == "PATCH" and r.path == message and _result_files(r)), None))
        assert (await second.client.store.get(slow.job_id)).state == "done"
        assert second.client.runtime.client_id == client_id  # so the server's messages for the job reach us
        progress = [r.payload["embeds"][0] for r in second.requests if r.method == "PATCH" and r.path == message
                    and not _result_files(r)]
        assert any(e["title"] == "🎨 Slow canvas: running" and any(f["name"] == "Step" for f in e["fields"])
                   for e in progress)
        assert result.payload["embeds"][0]["title"].startswith("✅ Slow canvas")
        assert result.files[0][1][:4] == b"\x89PNG"
        assert any(c["custom_id"] == f"dc:act:{slow.job_id}:1:invert"
                   for row in result.payload["components"] for c in row["components"])

        posted = len(fake_comfy.state.posted)
        await answered(second, second.component_payload(f"dc:act:{done.job_id}:1:invert"))
        chained = await running_job(second, "done")
        assert chained.manifest == "invert" and chained.extra["source"] == {"job": done.job_id, "output": 1}
        assert len(fake_comfy.state.posted) == posted + 1
        final = [r for r in second.requests if r.via == "webhook" and r.method == "PATCH" and _result_files(r)]
        assert final and final[-1].payload["embeds"][0]["title"].startswith("✅ Invert")

        # a tweak form opened before the restart (its nonce is from another process) still submits
        stale_form = f"dc:tweak:{done.job_id}:1~{'0' if not BOOT.startswith('0') else '1'}{BOOT[1:]}beef"
        await answered(second, second.modal_payload(stale_form, {"steps": "3", "seconds_per_step": "0.1",
                                                                 "nonce": "7"}))
        tweaked = await running_job(second, "done")
        assert tweaked.manifest == "slow-canvas" and tweaked.values["steps"] == 3 and tweaked.values["nonce"] == 7

