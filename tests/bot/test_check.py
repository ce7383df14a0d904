"""``discomfy check`` and the start gate: every row from real probes — a local aiohttp fake of Discord's
REST endpoint for the token, fake ComfyUI servers, real files — and one line, never a traceback, for
every expected failure (401, refused, DNS, timeout, unwritable storage)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.app import run_bot
from bot.check import check_command, config_findings, network_reason, run_checks, start_gate
from bot.cli import main as cli_main
from bot.config import Settings

REPO = Path(__file__).resolve().parents[2]
GOOD_TOKEN = "MTIz.good-token.xyz"


class FakeDiscordRest:
    """``GET /api/v10/users/@me``: 200 for the good token, 401 otherwise; ``delay`` to time out."""

    def __init__(self) -> None:
        self.calls = 0
        self.delay = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v10/users/@me", self.me)
        return app

    async def me(self, request: web.Request) -> web.Response:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bot {GOOD_TOKEN}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return web.json_response({"id": "1234", "username": "DisComfyTest", "bot": True})


@pytest.fixture
async def discord_rest(aiohttp_server):
    fake = FakeDiscordRest()
    server = await aiohttp_server(fake.app())
    fake.api = str(server.make_url("/api/v10"))
    return fake


@pytest.fixture
def folders(tmp_path) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("canvas", "invert", "resize"):
        shutil.copy(REPO / "manifests" / f"{name}.yaml", manifests)
    return manifests


def settings_for(tmp_path: Path, manifests: Path, *urls: str, token: str = GOOD_TOKEN) -> Settings:
    return Settings(discord_token=token, backends=[{"name": f"gpu{i}", "url": u} for i, u in enumerate(urls, 1)],
                    manifests_dir=manifests, workflows_dir=REPO / "workflows", db_path=tmp_path / "data" / "jobs.db")


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def rows(findings) -> dict[str, tuple[str, str]]:
    return {f.area: (f.status, f.detail) for f in findings}


async def test_all_good_is_every_row_ok(tmp_path, folders, fake_comfy, discord_rest):
    found = rows(await run_checks(settings_for(tmp_path, folders, fake_comfy.url), api=discord_rest.api))
    assert found["discord token"] == ("ok", "accepted (bot DisComfyTest)")
    assert found["comfyui gpu1"][0] == "ok" and "ComfyUI 0." in found["comfyui gpu1"][1]
    assert found["manifest canvas"] == ("ok", "runs on gpu1") and found["manifest invert"] == ("ok", "runs on gpu1")
    assert found["database"] == ("ok", "jobs.db writable") and found["files"] == ("ok", "inputs/ writable")
    assert discord_rest.calls == 1  # one REST call for the token


async def test_a_refused_token_is_one_fatal_line(tmp_path, folders, fake_comfy, discord_rest):
    findings = await run_checks(settings_for(tmp_path, folders, fake_comfy.url, token="bad.token"), api=discord_rest.api)
    [token] = [f for f in findings if f.area == "discord token"]
    assert (token.status, token.fatal) == ("fail", True)
    assert token.line() == "discord token: Discord refused the token (401); check DISCORD_TOKEN"


async def test_comfyui_down_fails_the_check_but_is_not_fatal(tmp_path, folders, discord_rest):
    findings = await run_checks(settings_for(tmp_path, folders, closed_port_url()), api=discord_rest.api)
    found = {f.area: f for f in findings}
    assert found["comfyui gpu1"].detail == "unreachable (connection refused); the bot starts and retries"
    assert found["comfyui gpu1"].status == "fail" and not found["comfyui gpu1"].fatal
    assert found["manifests"].status == "warn" and "none reachable" in found["manifests"].detail


def object_info_without(model: str) -> dict:
    info = json.loads((REPO / "tests" / "data" / "comfyui" / "object_info.json").read_text())
    options = info["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"]
    options.remove(model)
    return info


async def test_a_manifest_needing_a_missing_model_names_it(tmp_path, folders, make_fake_comfy, discord_rest):
    text = (REPO / "manifests" / "upscale.yaml").read_text()  # default model 4x-UltraSharp.pth
    (folders / "upscale.yaml").write_text(re.sub(r"(?m)^actions: .*$", "actions: []", text))
    lacking = await make_fake_comfy(object_info=object_info_without("4x-UltraSharp.pth"))
    found = rows(await run_checks(settings_for(tmp_path, folders, lacking.url), api=discord_rest.api))
    assert found["manifest upscale"] == ("fail", "no server can run it; gpu1 lacks: default '4x-UltraSharp.pth' is "
                                                 "not in UpscaleModelLoader.model_name on the server")
    assert found["manifest canvas"][0] == "ok"


async def test_one_server_able_is_enough_and_named(tmp_path, folders, make_fake_comfy, discord_rest):
    able, bare = await make_fake_comfy(), await make_fake_comfy(object_info={})
    found = rows(await run_checks(settings_for(tmp_path, folders, able.url, bare.url), api=discord_rest.api))
    assert found["manifest canvas"] == ("ok", "runs on gpu1")


async def test_a_broken_manifest_is_reported_with_file_and_line(tmp_path, folders, fake_comfy, discord_rest):
    (folders / "bad.yaml").write_text("description: x\nparams:\n  n: {type: int, bind: '$.nope'}\n")
    found = rows(await run_checks(settings_for(tmp_path, folders, fake_comfy.url), api=discord_rest.api))
    status, detail = found["manifest bad"]
    assert status == "fail" and f"{folders / 'bad.yaml'}:" in detail


async def test_manifests_are_read_within_the_bots_own_limits(tmp_path, folders, fake_comfy, discord_rest):
    settings = settings_for(tmp_path, folders, fake_comfy.url).model_copy(update={"max_manifest_bytes": 100})
    found = rows(await run_checks(settings, api=discord_rest.api))
    status, detail = found["manifest canvas"]
    assert status == "fail" and "max_manifest_bytes" in detail


@pytest.mark.parametrize("failure", ["refused", "timeout"])
async def test_discord_unreachable_is_one_line(tmp_path, folders, fake_comfy, discord_rest, failure):
    api = closed_port_url() + "/api/v10"
    if failure == "timeout":
        discord_rest.delay, api = 5.0, discord_rest.api
    from bot.check.probes import token_findings
    [token] = await token_findings(settings_for(tmp_path, folders, fake_comfy.url), api=api, timeout=0.5)
    expected = {"refused": "connection refused", "timeout": "timed out"}[failure]
    assert token.line() == f"discord token: cannot reach Discord ({expected})" and token.fatal


def test_network_reasons_never_show_the_exception_text():
    dns = aiohttp.ClientConnectorDNSError(aiohttp.client_reqrep.ConnectionKey(
        "secret-host", 443, True, True, None, None, None), socket.gaierror(-2, "Name or service not known"))
    assert network_reason(dns) == "DNS lookup failed"
    assert network_reason(asyncio.TimeoutError()) == "timed out"
    assert network_reason(ConnectionRefusedError()) == "connection refused"
    assert network_reason(RuntimeError("http://secret-host")) == "connection failed (RuntimeError)"


async def test_unwritable_storage_is_fatal(tmp_path, folders, fake_comfy, discord_rest):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the database folder should be")
    findings = await run_checks(settings_for(tmp_path, folders, fake_comfy.url), api=discord_rest.api)
    found = {f.area: f for f in findings}
    assert found["database"].fatal and found["database"].status == "fail"
    assert found["files"].fatal and "not writable" in found["files"].detail


def test_config_problems_are_all_listed_at_once(tmp_path):
    settings, findings = config_findings(None, {"DISCOMFY_MAX_CONCURRENT_PER_USER": "0", "DISCOMFY_NOPE": "1",
                                                "COMFYUI_URLS": "ftp://x"})
    assert settings is None
    details = [f.detail for f in findings]
    assert len(details) >= 4 and all(f.fatal for f in findings)
    assert any(d.startswith("discord_token: missing") for d in details)
    assert any(d.startswith("DISCOMFY_NOPE: unknown setting") for d in details)


async def test_check_command_prints_a_table_and_exits_by_outcome(tmp_path, folders, fake_comfy, discord_rest):
    env = {"DISCORD_TOKEN": GOOD_TOKEN, "COMFYUI_URLS": f"gpu1={fake_comfy.url}", "DISCOMFY_MANIFESTS_DIR": str(folders),
           "DISCOMFY_WORKFLOWS_DIR": str(REPO / "workflows"), "DISCOMFY_DB_PATH": str(tmp_path / "jobs.db")}
    code, table = await asyncio.to_thread(check_command, None, api=discord_rest.api, env=env)
    assert code == 0 and table.endswith("all checks passed\n")
    assert table.splitlines()[0].split() == ["check", "status", "detail"]
    assert GOOD_TOKEN not in table and fake_comfy.url.split("//")[1] not in table
    code, table = await asyncio.to_thread(check_command, None, api=discord_rest.api,
                                          env={**env, "DISCORD_TOKEN": "bad.token"})
    assert code == 1 and "Discord refused the token (401)" in table and table.endswith("1 problem(s) found\n")
    quick_calls = discord_rest.calls
    code, table = await asyncio.to_thread(check_command, None, quick=True, api=discord_rest.api, env=env)
    assert code == 0 and discord_rest.calls == quick_calls and "manifest " not in table  # --quick: no token, no manifests
    code, table = await asyncio.to_thread(check_command, None, quick=True, api=discord_rest.api,
                                          env={**env, "COMFYUI_URLS": closed_port_url()})
    assert code == 0 and "unreachable (connection refused)" in table  # shown, but the healthcheck stays green


async def test_start_gate_refuses_a_bad_token_in_one_line(tmp_path, folders, fake_comfy, discord_rest, capsys):
    settings = settings_for(tmp_path, folders, fake_comfy.url, token="bad.token")
    assert await asyncio.to_thread(start_gate, settings, api=discord_rest.api) == 1
    err = capsys.readouterr().err
    assert err == "discomfy: cannot start: discord token: Discord refused the token (401); check DISCORD_TOKEN\n"


async def test_start_gate_lets_the_bot_start_with_comfyui_down(tmp_path, folders, discord_rest, caplog):
    settings = settings_for(tmp_path, folders, closed_port_url())
    with caplog.at_level(logging.WARNING):
        assert await asyncio.to_thread(start_gate, settings, api=discord_rest.api, log=logging.getLogger("t")) is None
    assert "check: comfyui gpu1: unreachable (connection refused)" in caplog.text


def test_discomfy_run_with_an_unreachable_discord_says_so_in_one_line(tmp_path, folders, capsys, monkeypatch):
    for name, value in {"DISCORD_TOKEN": GOOD_TOKEN, "COMFYUI_URLS": closed_port_url(),
                        "DISCOMFY_MANIFESTS_DIR": str(folders), "DISCOMFY_DB_PATH": str(tmp_path / "jobs.db"),
                        "DISCOMFY_WORKFLOWS_DIR": str(REPO / "workflows")}.items():
        monkeypatch.setenv(name, value)
    handlers = list(logging.getLogger().handlers)
    assert run_bot(discord_api=closed_port_url() + "/api/v10") == 1
    assert logging.getLogger().handlers == handlers  # run_bot takes its logging set-up down again
    err = capsys.readouterr().err
    assert "discomfy: cannot start: discord token: cannot reach Discord (connection refused)" in err
    assert "Traceback" not in err and GOOD_TOKEN not in err


def test_check_is_a_cli_action(capsys):
    with pytest.raises(SystemExit):
        cli_main(["check", "--help"])
    assert "--quick" in capsys.readouterr().out


async def test_the_bot_starts_with_comfyui_down_says_so_and_picks_it_up_when_it_returns(tmp_path, folders, fake_comfy):
    from .test_app import booted, eventually, make_settings, running_job

    await fake_comfy.state.die("refuse")
    async with booted(make_settings(tmp_path, folders, fake_comfy)) as fake:
        await fake.dispatch(fake.slash_payload("canvas", {}))
        told = json.dumps([r.payload for r in fake.requests if r.via == "webhook"])
        assert "No ComfyUI server is available right now" in told
        assert fake.client.runtime.status()[0].up is False
        await fake_comfy.state.revive()
        await eventually(lambda: fake.client.runtime.status()[0].up)
        await fake.dispatch(fake.slash_payload("canvas", {}))
        assert await eventually(lambda: running_job(fake, "done"))
