"""Issue 7's memory cases, each in a process of its own under an address-space limit, with its peak
memory read from the kernel: a YAML alias bomb, a 300 MB websocket frame, 95 MB JSON answers, a
batch of decompression-bomb PNGs from the server, ``--image /dev/zero``. Each must end in one clear
line naming the limit, within a generous time bound (a hang guard, not a speed measurement: see
``bench/bench_bounds.py`` for the figures)."""

from __future__ import annotations

import pytest

from tests.bounded_process import run_bounded

from .engine.test_bounds import laughs

MB = 1000 * 1000


def test_engine_validate_refuses_a_nine_level_alias_bomb(tmp_path):
    (tmp_path / "workflows").mkdir()
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9))
    outcome = run_bounded(["-m", "engine.cli", "validate", str(bomb), "--workflows", str(tmp_path / "workflows")],
                          timeout=30)
    assert outcome.returncode == 1, outcome.stderr
    assert f"{bomb}:" in outcome.stdout and "(limit max_yaml_nodes)" in outcome.stdout
    assert "Traceback" not in outcome.stdout + outcome.stderr
    assert outcome.peak_mb < 200, outcome


def test_a_300_mb_websocket_frame_fails_the_job_naming_the_limit():
    outcome = run_bounded(["-m", "tests.memory_cases", "frame", str(300 * MB)], timeout=60)
    assert "outcome: ExecutionFailed: the server sent a websocket message larger than 32 MiB " \
           "(limit max_websocket_frame_bytes)" in outcome.stdout, outcome
    assert outcome.peak_mb < 300, outcome


@pytest.mark.parametrize("route, how, expected", [
    ("/object_info", "chunked", "outcome: up=False; backend gpu1: the answer to GET /object_info is larger than 64 MiB "
                                "(limit max_server_json_bytes)"),
    ("/object_info", "declared", "(limit max_server_json_bytes)"),
    ("/history", "chunked", "outcome: ServerLimitExceeded: backend gpu1: the answer to GET /history/"),
])
def test_a_95_mb_json_answer_is_refused_naming_the_limit(route, how, expected):
    outcome = run_bounded(["-m", "tests.memory_cases", "answer", route, str(95 * MB), how], timeout=60)
    assert expected in outcome.stdout and "max_server_json_bytes" in outcome.stdout, outcome
    assert outcome.peak_mb < 300, outcome


def test_a_batch_of_pixel_bombs_is_sent_as_is_without_decoding():
    outcome = run_bounded(["-m", "tests.memory_cases", "grid", "3", "12000"], timeout=60)
    assert "files=['0.png', '1.png', '2.png']" in outcome.stdout, outcome  # no grid.jpg: refused undecoded
    assert "too many pixels (12000×12000) to be re-encoded (limit max_output_pixels)" in outcome.stdout
    assert outcome.peak_mb < 300, outcome


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_engine_run_never_reads_a_device_or_fifo_as_an_image(tmp_path, source):
    import os

    if source == "fifo":
        source = str(tmp_path / "fifo")
        os.mkfifo(source)
    outcome = run_bounded(["-m", "engine.cli", "run", "manifests/invert.yaml", "--image", source,
                           "--server", "http://127.0.0.1:9", "--out", str(tmp_path)], timeout=30)
    assert outcome.returncode == 2 and "is not a regular file" in outcome.stderr, outcome
    assert outcome.stderr.count("\n") == 1 and outcome.peak_mb < 200


def test_the_measure_sees_what_a_case_keeps_and_the_limit_stops_it():
    kept = run_bounded(["-c", "x = bytearray(250 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1"])
    assert kept.returncode == 0 and kept.peak_mb > 250  # these tests can fail
    stopped = run_bounded(["-c", "x = bytearray(400 * 1024 * 1024)"], address_space_mb=300)
    assert stopped.returncode == 1 and "MemoryError" in stopped.stderr
