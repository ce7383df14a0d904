"""``engine run`` end to end against the fake ComfyUI, plus its pure helpers."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from PIL import Image

from engine.cli.main import main
from engine.jobs.progress import JobState, ProgressEvent
from engine.cli.run import output_paths, parse_assignments, parse_uploads
from engine.cli.views import describe_event
from engine.cli.usage import UsageError

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


async def engine(*argv: str) -> int:
    """``engine ...`` in a thread, so the fake keeps serving on this test's loop."""
    return await asyncio.to_thread(main, list(argv))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- end to end -----------------------------------------------------------------------------


async def test_canvas_is_written_with_the_size_set(fake_comfy, tmp_path, capsys):
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--set", "width=64", "--set", "height=48",
                        "--server", fake_comfy.url, "--out", str(tmp_path / "out"))
    out, err = capsys.readouterr()
    assert code == 0, err
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 1 and files[0].name.startswith("canvas-") and files[0].suffix == ".png"
    assert Image.open(files[0]).size == (64, 48)
    assert "width=64" in out and f"wrote {files[0]}" in out
    assert "done" in err.splitlines()[-1]  # not a terminal: one line per change, last one the end
    assert fake_comfy.url not in out + err


async def test_image_param_is_uploaded_and_scaled(fake_comfy, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(source)
    code = await engine("run", str(MANIFESTS / "resize.yaml"), "--image", str(source), "--set", "scale=0.5",
                        "--server", fake_comfy.url, "--out", str(tmp_path / "out"), "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["values"]["scale"] == 0.5
    [written] = report["outputs"]
    assert Image.open(written).size == (20, 10)


async def test_a_model_the_servers_lack_is_the_params_error_not_an_unavailable_server(fake_comfy, tmp_path,
                                                                                      capsys):
    source = tmp_path / "in.png"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(source)
    code = await engine("run", str(MANIFESTS / "upscale.yaml"), "--set", "model=nope.pth", "--image", str(source),
                        "--server", fake_comfy.url, "--out", str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == "engine run: model: is not available on the server"
    assert not (tmp_path / "out").exists()


async def test_a_sound_is_uploaded_and_trimmed(fake_comfy, tmp_path, capsys):
    from tests.engine.test_library import flac

    source = tmp_path / "take.flac"
    source.write_bytes(flac(3.0))
    code = await engine("run", str(MANIFESTS / "trim.yaml"), "--audio", str(source), "--set", "length=1.25",
                        "--server", fake_comfy.url, "--out", str(tmp_path / "out"), "--json")
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["values"]["audio"] == "take.flac" and report["values"]["length"] == 1.25
    [written] = report["outputs"]
    assert written.endswith(".flac")
    from tests.engine.test_library_media import _seconds

    assert _seconds(Path(written).read_bytes()) == pytest.approx(1.25, abs=0.05)


async def test_a_file_that_is_not_a_sound_is_refused_naming_the_param(fake_comfy, tmp_path, capsys):
    source = tmp_path / "take.mp3"
    Image.new("RGB", (4, 4)).save(source, "PNG")
    code = await engine("run", str(MANIFESTS / "trim.yaml"), "--file", f"audio={source}", "--set", "length=1",
                        "--server", fake_comfy.url, "--out", str(tmp_path / "out"))
    assert code == 1
    assert capsys.readouterr().err.strip() == \
        "engine run: audio: must be an audio file (MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC)"


async def test_bad_value_is_a_param_error_before_any_server_is_asked(tmp_path, capsys):
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--set", "width=99999",
                        "--server", closed_port_url(), "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == "engine run: width: must be ≤ 2048"


async def test_unknown_param_and_missing_image_are_param_errors(tmp_path, capsys):
    assert await engine("run", str(MANIFESTS / "canvas.yaml"), "--set", "colour=1") == 1
    assert "colour: is not a parameter" in capsys.readouterr().err
    assert await engine("run", str(MANIFESTS / "resize.yaml"), "--out", str(tmp_path)) == 1
    assert "image: is required" in capsys.readouterr().err


async def test_unreachable_server_exits_2_without_the_url(tmp_path, capsys):
    url = closed_port_url()
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--server", url, "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert "server unavailable" in err and url not in err and len(err.strip().splitlines()) == 1


async def test_failing_job_exits_1_with_the_reason(fake_comfy, tmp_path, capsys):
    code = await engine("run", str(MANIFESTS / "fail.yaml"), "--server", fake_comfy.url, "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 1
    assert "engine run: failed:" in err and "Traceback" not in err


async def test_timeout_cancels_the_job_on_the_server(fake_comfy, tmp_path, capsys):
    fake_comfy.state.pause()  # the job stays queued
    code = await engine("run", str(MANIFESTS / "canvas.yaml"), "--server", fake_comfy.url,
                        "--timeout", "0.5", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 1 and "timed out after 0.5 s" in err
    assert len(fake_comfy.state.posted) == 1 and fake_comfy.state.pending == []  # removed from the queue


async def test_usage_errors_exit_2(tmp_path, capsys):
    assert await engine("run", str(tmp_path / "nope.yaml")) == 2
    assert "no such manifest" in capsys.readouterr().err
    assert await engine("run", str(MANIFESTS / "canvas.yaml"), "--set", "width") == 2
    assert "--set needs key=value" in capsys.readouterr().err
    assert await engine("run") == 2


# -- pure helpers ---------------------------------------------------------------------------


def test_parse_assignments_keeps_equals_in_values():
    assert parse_assignments(["prompt=a = b", "steps=20"]) == {"prompt": "a = b", "steps": "20"}
    with pytest.raises(UsageError):
        parse_assignments(["=3"])


def test_parse_uploads_names_or_infers_the_param():
    assert parse_uploads(["x=y.png"], ["image"]) == {"image": Path("x=y.png")}
    assert parse_uploads(["mask=m.png", "image=i.png"], ["image", "mask"]) == {"mask": Path("m.png"),
                                                                               "image": Path("i.png")}
    with pytest.raises(UsageError, match="file params: image, mask"):
        parse_uploads(["i.png"], ["image", "mask"])


def test_describe_event_shows_position_percent_phase_step_eta():
    assert describe_event(ProgressEvent(JobState.QUEUED, line_position=3)) == "queued (3rd in line)"
    assert describe_event(ProgressEvent(JobState.QUEUED, on_server=True, queue_position=1)) == "queued (next)"
    assert describe_event(ProgressEvent(JobState.QUEUED)) == "queued"
    running = ProgressEvent(JobState.RUNNING, percent=35.7, phase="KSampler", step=7, steps=20, eta_seconds=12.2)
    assert describe_event(running) == "running 35% · KSampler · step 7/20 · ETA 12 s"
    assert describe_event(ProgressEvent(JobState.FAILED, error="boom")) == "failed: boom"
    assert describe_event(ProgressEvent(JobState.DONE, percent=100)) == "done"


def test_output_paths_are_numbered_and_never_overwrite(tmp_path):
    (tmp_path / "flux-42-1.png").write_bytes(b"old")
    paths = output_paths(tmp_path, "flux", "42", [("a_00001_.png", "image/png"), ("v.mp4", "video/mp4"),
                                                  ("noext", "image/webp")])
    assert [p.name for p in paths] == ["flux-42-1-2.png", "flux-42-2.mp4", "flux-42-3.webp"]


def test_help_lists_run(capsys):
    assert main(["run", "--help"]) == 0
    assert "--set" in capsys.readouterr().out
