"""The engine CLI: exit codes 0/1/2, stdout vs stderr, --json, --server, init's refusals."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest
from aiohttp import web

from engine.cli.main import main

HERE = Path(__file__).parent
CASES = HERE / "cases"
OBJECT_INFO = HERE.parent / "data" / "comfyui" / "object_info.json"
GRAPHS = HERE / "data" / "graphs"


def _case(name: str, monkeypatch) -> None:
    monkeypatch.chdir(CASES / name)


def test_clean_manifest_exits_0_with_a_summary(capsys, monkeypatch):
    _case("good_flux", monkeypatch)
    assert main(["validate", "manifest.yaml", "--workflows", ".", "--object-info", str(OBJECT_INFO)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok   flux (generate) — 6 params, 3 advanced, 0 actions\n"
    assert err == ""


def test_issues_exit_1_and_go_to_stdout(capsys, monkeypatch):
    _case("many_mistakes", monkeypatch)
    assert main(["validate", "manifest.yaml", "--workflows", ".", "--object-info", str(OBJECT_INFO)]) == 1
    out, err = capsys.readouterr()
    expected = (CASES / "many_mistakes" / "expected_errors.txt").read_text()
    assert out == expected + "FAIL sdxl (sdxl) — 4 issues\n"
    assert err == ""


def test_json_report_parses(capsys, monkeypatch):
    _case("many_mistakes", monkeypatch)
    assert main(["validate", "manifest.yaml", "--workflows", ".", "--object-info", str(OBJECT_INFO), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [m["name"] for m in report["manifests"]] == ["sdxl"]
    assert [(i["line"], i["col"], i["param"], i["code"]) for i in report["issues"]] == [
        (2, 1, "", "class_missing"), (4, 1, "", "extra_forbidden"), (9, 5, "prompt", "bind_unmatched"),
        (12, 5, "steps", "value_error")]


def test_default_path_is_manifests_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "workflows").mkdir()
    shutil.copy(CASES / "good_flux" / "workflow.json", tmp_path / "workflows" / "workflow.json")
    shutil.copy(CASES / "good_flux" / "manifest.yaml", tmp_path / "manifests" / "flux.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["validate"]) == 0
    assert "ok   flux" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["validate", "nowhere"], "no such file or folder: nowhere"),
    (["validate", "."], "no manifests (*.yaml) in ."),
    (["validate", "manifest.yaml", "--object-info", "missing.json"], "cannot read object info missing.json"),
    (["validate", "manifest.yaml", "--object-info", "manifest.yaml"], "cannot read object info manifest.yaml"),
    (["validate", "manifest.yaml", "--workflows", "nowhere"], "no such folder: nowhere"),
])
def test_usage_problems_exit_2_on_stderr(capsys, monkeypatch, argv, message):
    _case("good_flux", monkeypatch)
    if argv[1] == ".":
        monkeypatch.chdir(GRAPHS)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err and "Traceback" not in err


def test_bad_arguments_exit_2(capsys):
    assert main(["validate", "--object-info", "a.json", "--server", "http://x"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_exits_2_without_the_url(capsys, monkeypatch):
    _case("good_flux", monkeypatch)
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["validate", "manifest.yaml", "--workflows", ".", "--server", url]) == 2
    err = capsys.readouterr().err
    assert "cannot get /object_info from the ComfyUI server" in err
    assert url not in err and "127.0.0.1" not in err


@pytest.fixture
def object_info_server():
    """A tiny ComfyUI stand-in on its own thread (engine.cli.main runs its own event loop)."""
    loop = asyncio.new_event_loop()
    body = OBJECT_INFO.read_bytes()

    async def object_info(request):
        return web.Response(body=body, content_type="application/json")

    async def start(port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/object_info", object_info)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    port = _free_port()
    runner = loop.run_until_complete(start(port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_server_object_info_is_used(capsys, monkeypatch, object_info_server):
    _case("many_mistakes", monkeypatch)
    assert main(["validate", "manifest.yaml", "--workflows", ".", "--server", object_info_server]) == 1
    assert "class 'FancyUpscaler' is not installed on the server" in capsys.readouterr().out


def test_schema_prints_the_committed_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "params" in schema["properties"]


def _workflows(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name in names:
        shutil.copy(GRAPHS / f"{name}.json", folder / f"{name}.json")
    return folder


def test_init_writes_a_draft_that_validates(capsys, tmp_path):
    folder = _workflows(tmp_path, "sdxl_lora")
    assert main(["init", str(folder / "sdxl_lora.json"), "--object-info", str(OBJECT_INFO)]) == 0
    written = tmp_path / "manifests" / "sdxl_lora.yaml"
    assert f"wrote {written}" in capsys.readouterr().out
    assert main(["validate", str(written), "--object-info", str(OBJECT_INFO)]) == 0


def test_init_refuses_to_overwrite_without_force(capsys, tmp_path):
    folder = _workflows(tmp_path, "upscale")
    out = tmp_path / "mine.yaml"
    out.write_text("keep me")
    assert main(["init", str(folder / "upscale.json"), "--out", str(out)]) == 1
    assert "use --force" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["init", str(folder / "upscale.json"), "--out", str(out), "--force"]) == 0
    assert "upscale_model:" in out.read_text()


def test_init_on_a_ui_export_asks_for_the_api_export(capsys, tmp_path):
    folder = _workflows(tmp_path, "ui_export")
    assert main(["init", str(folder / "ui_export.json")]) == 1
    assert 'use "Export (API)"' in capsys.readouterr().err
    assert not (tmp_path / "manifests").exists()


def test_init_on_an_unreadable_workflow_exits_2(capsys, tmp_path):
    assert main(["init", str(tmp_path / "missing.json")]) == 2
    assert "cannot read workflow" in capsys.readouterr().err
