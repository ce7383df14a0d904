"""The ``engine`` CLI against hostile servers, files and arguments (issue 7 §4, §5): every expected
failure is one line on stderr with exit 1 or 2, never a traceback; what a server names is never
trusted as a file name; values and files that point outside where they belong are refused."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.cli.main import main
from engine.cli.run import output_paths
from tests.fake_comfy import deep_json

from .jobkit import png
from .test_run_cli import MANIFESTS, engine

ROOT = MANIFESTS.parent


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def history(filenames: list[str], texts: list[str] = ()):
    def body(request) -> bytes:
        prompt_id = request.path.rsplit("/", 1)[-1]
        ui = {"images": [{"filename": name, "subfolder": "", "type": "output"} for name in filenames],
              "text": list(texts)}
        entry = {"outputs": {str(node): ui for node in range(1, 20)}, "status": {"status_str": "success", "completed": True, "messages": []}}
        return json.dumps({prompt_id: entry}).encode()
    return body


HOSTILE_NAMES = ["x.p\x00ng", "x.\ud800", "x." + "e" * 300, "../../evil.png", "/abs/evil.png", ".png",
                 "a/b\\..\\..\\c.png", "x.png\n.sh", "x" * 5000, "ok.png"]


async def test_server_chosen_file_names_never_leave_the_out_folder(fake_comfy, tmp_path, capsys):
    fake_comfy.state.answer("/history", history(HOSTILE_NAMES), times=20)
    fake_comfy.state.answer("/view", png(), times=len(HOSTILE_NAMES), content_type="image/png")
    out = tmp_path / "out"
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--server", fake_comfy.url, "--out", str(out))
    stdout, err = capsys.readouterr()
    assert code == 0, err
    written = sorted(out.iterdir())
    assert len(written) == len(HOSTILE_NAMES) and not list(tmp_path.parent.rglob("evil*"))
    assert all(p.parent == out and len(p.name) < 64 and p.name.isprintable() for p in written)
    assert {p.suffix for p in written} == {".png"}  # the rest fall back to the MIME type's
    assert stdout.count("wrote ") == len(HOSTILE_NAMES)


@given(st.text(), st.text(max_size=40))
def test_output_paths_are_plain_names_inside_the_folder(filename, mime):
    [path] = output_paths(Path("/out"), "canvas", "42", [(filename, mime)])
    assert path.parent == Path("/out") and path.name.startswith("canvas-42-1.")
    assert len(path.name) <= 64 and path.name.isprintable() and "/" not in path.name
    path.name.encode("ascii")


async def test_text_outputs_with_odd_characters_print_on_any_console(fake_comfy, tmp_path, capsys, monkeypatch):
    fake_comfy.state.answer("/history", history([], ["caf\udce9 ☕ \ud83d"]), times=5)
    console = io.TextIOWrapper(io.BytesIO(), encoding="ascii")  # a console that cannot show them
    monkeypatch.setattr(sys, "stdout", console)
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--server", fake_comfy.url, "--out", str(tmp_path))
    console.flush()
    printed = console.buffer.getvalue().decode("ascii")
    assert code == 0, capsys.readouterr().err
    assert "text: caf\\ufffd \\u2615 \\ufffd" in printed


async def test_deep_json_from_the_server_is_one_line(fake_comfy, tmp_path, capsys):
    fake_comfy.state.answer("/object_info", deep_json(200_000), times=1000)
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--server", fake_comfy.url, "--out", str(tmp_path))
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "GET /object_info is nested more than 64 levels deep (limit max_json_depth)" in line
    code = await engine("validate", str(MANIFESTS / "canvas.yaml"), "--server", fake_comfy.url)
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "max_json_depth" in line and fake_comfy.url not in line


@pytest.mark.parametrize("command", ["init", "validate"])
def test_deep_or_huge_local_json_is_one_line(tmp_path, capsys, command):
    deep = tmp_path / "deep.json"
    deep.write_bytes(deep_json(100_000))
    argv = ["init", str(deep), "--out", str(tmp_path / "m.yaml")] if command == "init" else \
        ["validate", str(MANIFESTS / "canvas.yaml"), "--object-info", str(deep)]
    assert main(argv) == 2
    assert "max_json_depth" in one_line(capsys.readouterr().err)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISCOMFY_MAX_WORKFLOW_BYTES", "100")
        patch.setenv("DISCOMFY_MAX_SERVER_JSON_BYTES", "100")
        deep.write_text(json.dumps({"1": {"class_type": "X", "inputs": {"text": "x" * 200}}}))
        assert main(argv) == 2
        assert "larger than 100 bytes (limit max_" in one_line(capsys.readouterr().err)
        patch.setenv("DISCOMFY_MAX_JSON_DEPTH", "many")
        assert main(argv) == 2
        assert "DISCOMFY_MAX_JSON_DEPTH must be a whole number" in one_line(capsys.readouterr().err)


def slow_manifest(folder: Path, timeout: int) -> Path:
    text = (MANIFESTS / "slow-canvas.yaml").read_text().replace("timeout: 300", f"timeout: {timeout}")
    path = folder / "slow.yaml"
    path.write_text(text.replace("name: slow-canvas\n", "name: slow\nworkflow: slow-canvas.json\n"))
    return path


@pytest.mark.parametrize("flag, expected", [
    ((), "engine run: the job took longer than 1 s"),  # no --timeout: no TypeError formatting None
    (("--timeout", "30"), "engine run: the job took longer than 1 s"),  # the manifest's, not ours
])
async def test_the_manifest_timeout_is_reported_as_itself(fake_comfy, tmp_path, capsys, flag, expected):
    manifest = slow_manifest(tmp_path, timeout=1)
    code = await engine("run", str(manifest), "--workflows", str(ROOT / "workflows"), "--set", "steps=100",
                        "--server", fake_comfy.url, "--out", str(tmp_path), "--json", *flag)
    assert code == 1 and one_line(capsys.readouterr().err) == expected


async def test_our_own_timeout_is_reported_as_ours(fake_comfy, tmp_path, capsys):
    manifest = slow_manifest(tmp_path, timeout=300)
    code = await engine("run", str(manifest), "--workflows", str(ROOT / "workflows"), "--set", "steps=100",
                        "--server", fake_comfy.url, "--out", str(tmp_path), "--timeout", "0.5", "--json")
    assert code == 1
    assert one_line(capsys.readouterr().err) == "engine run: timed out after 0.5 s (--timeout); the job was cancelled"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "abc", "1e999", ""])
def test_timeouts_that_could_never_fire_are_usage_errors(value, capsys):
    assert main(["run", str(MANIFESTS / "canvas.yaml"), f"--timeout={value}"]) == 2
    assert "--timeout: must be a positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["/etc/passwd", "../../../etc/passwd", "sub/x.png", "x.png [output]",
                                   "..\\..\\x.png", ".hidden", "x\x00.png", "x\ud800.png", " "])
async def test_an_image_value_is_a_plain_upload_name(fake_comfy, tmp_path, capsys, value):
    code = await engine("run", str(MANIFESTS / "invert.yaml"), "--set", f"image={value}",
                        "--server", fake_comfy.url, "--out", str(tmp_path))
    line = one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("engine run: image: ")
    assert fake_comfy.state.posted == []


async def test_a_plain_upload_name_already_on_the_server_is_used(fake_comfy, tmp_path, capsys):
    code = await engine("run", str(MANIFESTS / "invert.yaml"), "--set", "image=example.png",
                        "--server", fake_comfy.url, "--out", str(tmp_path))
    assert code == 0, capsys.readouterr().err
    assert fake_comfy.state.posted[0]["prompt"]["1"]["inputs"]["image"] == "example.png"


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff"])
def test_text_with_lone_surrogates_names_the_param(tmp_path, capsys, text):
    code = main(["run", str(MANIFESTS / "flux.yaml"), "--set", f"prompt={text}", "--server", "http://127.0.0.1:9"])
    assert code == 1 and one_line(capsys.readouterr().err) == "engine run: prompt: contains characters that " \
                                                              "are not valid text"


def test_an_image_over_its_limit_is_refused_before_reading_it_all(tmp_path, capsys, monkeypatch):
    image = tmp_path / "big.png"
    image.write_bytes(png(size=(64, 64)))
    monkeypatch.setenv("DISCOMFY_MAX_IMAGE_BYTES", "100")
    assert main(["run", str(MANIFESTS / "invert.yaml"), "--image", str(image), "--server", "http://127.0.0.1:9"]) == 2
    assert one_line(capsys.readouterr().err).endswith("is larger than 100 bytes (limit max_image_bytes)")


def test_a_manifest_naming_a_file_outside_the_workflows_folder_is_refused(tmp_path, capsys):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("description: x\nworkflow: ../../../../../../../../etc/passwd\n")
    assert main(["validate", str(manifest), "--workflows", str(ROOT / "workflows")]) == 1
    out = capsys.readouterr().out
    assert f"{manifest}:2:" in out and "workflow must name a file inside the workflows folder" in out
    assert main(["run", str(manifest), "--workflows", str(ROOT / "workflows")]) == 2
    assert "inside the workflows folder" in one_line(capsys.readouterr().err)
