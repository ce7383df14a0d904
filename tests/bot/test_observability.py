"""Observability on the offline stack: JSON log lines carry the job's fields, and the Prometheus endpoint,
scraped over HTTP, counts jobs, backends and latencies. Both off by default."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from pathlib import Path

import aiohttp

from bot.app import DisComfyBot
from bot.config import Settings, load_settings
from bot.logs import JsonLines
from engine.jobs.log_context import user_hash

from .payloads import USER_ID
from .test_app import FLOW, REPO, RUNTIME, booted, eventually, make_settings, running_job, slow_job


def folder(tmp_path: Path) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("canvas", "invert", "resize", "slow-canvas", "fail"):
        shutil.copy(REPO / "manifests" / f"{name}.yaml", manifests)
    return manifests


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_json_lines_carry_job_id_user_hash_workflow_and_backend(tmp_path, fake_comfy):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with booted(make_settings(tmp_path, folder(tmp_path), fake_comfy)) as fake:
            await fake.dispatch(fake.slash_payload("test fail", {}))
            job = await eventually(lambda: running_job(fake, "failed"))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = json_lines(stream)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about_job = [line for line in lines if job.job_id in line["message"] or line.get("job_id") == job.job_id]
    assert len(about_job) >= 2
    for line in about_job:
        assert line["job_id"] == job.job_id and line["workflow"] == "fail", line
        assert line["user"] == user_hash(str(USER_ID)) and line["backend"] == "gpu1", line
    assert str(USER_ID) not in stream.getvalue()  # the id itself never


def test_log_format_and_metrics_port_are_settings_named_as_documented():
    settings = load_settings(None, {"DISCORD_TOKEN": "x.y.z", "LOG_FORMAT": "json", "METRICS_PORT": "9108"})
    assert settings.log_format == "json" and settings.metrics_port == 9108
    defaults = Settings()
    assert defaults.log_format == "text" and defaults.metrics_port is None  # off by default


async def scrape(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_endpoint_counts_jobs_backends_and_latencies(tmp_path, make_fake_comfy):
    up, down = await make_fake_comfy(), await make_fake_comfy()
    await down.state.die("refuse")
    settings = make_settings(tmp_path, folder(tmp_path), up, down, metrics_port=0)
    async with booted(settings) as fake:
        port = fake.client.metrics.port
        await fake.dispatch(fake.slash_payload("canvas", {}))
        await fake.dispatch(fake.slash_payload("test fail", {}))
        start = fake.client.loop.create_task(fake.dispatch(slow_job(fake, steps=40, seconds=1.0), timeout=30))
        slow = await eventually(lambda: running_job(fake))
        for _ in range(100):  # the queue count follows the server's status broadcasts
            samples = await scrape(port)
            if samples.get('discomfy_backend_queue{backend="gpu1",place="running"}') == 1:
                break
            await asyncio.sleep(0.05)
        assert samples['discomfy_jobs{state="running",workflow="slow-canvas"}'] == 1
        assert samples['discomfy_jobs_finished_total{state="done",workflow="canvas"}'] == 1
        assert samples['discomfy_jobs_finished_total{state="failed",workflow="fail"}'] == 1
        assert samples['discomfy_backend_up{backend="gpu1"}'] == 1 and samples['discomfy_backend_up{backend="gpu2"}'] == 0
        assert samples['discomfy_backend_queue{backend="gpu1",place="running"}'] == 1
        assert samples['discomfy_job_wait_seconds_count{workflow="canvas"}'] == 1
        assert samples['discomfy_delivery_seconds_count{workflow="canvas"}'] == 1
        assert samples['discomfy_delivery_seconds_bucket{le="+Inf",workflow="canvas"}'] == 1
        assert samples['discomfy_fitting_seconds_count{kind="image"}'] >= 1
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
        await fake.client.runtime.job(slow.job_id).cancel()
        await start
        samples = await scrape(port)
        assert samples['discomfy_jobs_finished_total{state="cancelled",workflow="slow-canvas"}'] == 1
        assert 'discomfy_jobs{state="running",workflow="slow-canvas"}' not in samples


async def test_no_metrics_endpoint_unless_asked(tmp_path, fake_comfy):
    async with booted(make_settings(tmp_path, folder(tmp_path), fake_comfy)) as fake:
        assert fake.client.metrics is None
