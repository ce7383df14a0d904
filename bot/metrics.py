"""Prometheus metrics, off unless ``metrics_port`` (``METRICS_PORT``) is set: ``/metrics`` and ``/healthz``
served by aiohttp on the bot's own event loop.

- ``discomfy_jobs{workflow,state}`` — jobs in flight now; ``discomfy_jobs_finished_total{workflow,state}``
  — jobs whose outcome was delivered (done, failed, cancelled);
- ``discomfy_backend_up{backend}`` and ``discomfy_backend_queue{backend,place}`` (running, pending);
- ``discomfy_job_wait_seconds{workflow}`` — submitted → started on a server;
- ``discomfy_delivery_seconds{workflow}`` — finished on the server → outcome posted in Discord;
- ``discomfy_fitting_seconds{kind}`` — fitting one output to the upload limit (image, video …).

Gauges are read from the runtime at scrape time; the rest is observed where it happens through
``observe_delivered`` / ``observe_fitting``, which do nothing while metrics are off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from engine import Job

__all__ = ["Metrics", "activate", "observe_delivered", "observe_fitting"]

_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_FAST = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30)


class _Live:
    """Gauges computed from the runtime at each scrape (no bookkeeping to drift)."""

    def __init__(self, runtime: Callable[[], Any]):
        self._runtime = runtime

    def collect(self):
        jobs = GaugeMetricFamily("discomfy_jobs", "Jobs in flight", labels=["workflow", "state"])
        up = GaugeMetricFamily("discomfy_backend_up", "1 when the backend is up", labels=["backend"])
        queue = GaugeMetricFamily("discomfy_backend_queue", "Prompts on the backend", labels=["backend", "place"])
        runtime = self._runtime()
        if runtime is not None:
            counts: dict[tuple[str, str], int] = {}
            for job in runtime.jobs_in_flight():
                key = (job.workflow.name, job.state.value)
                counts[key] = counts.get(key, 0) + 1
            for (workflow, state), count in sorted(counts.items()):
                jobs.add_metric([workflow, state], count)
            for status in runtime.status():
                up.add_metric([status.name], 1 if status.up else 0)
                queue.add_metric([status.name, "running"], status.running)
                queue.add_metric([status.name, "pending"], status.pending)
        return [jobs, up, queue]


class Metrics:
    """The registry and its HTTP endpoint (see the module docstring)."""

    def __init__(self, runtime: Callable[[], Any]):
        self.registry = CollectorRegistry()
        self.finished = Counter("discomfy_jobs_finished", "Jobs whose outcome was delivered",
                                ["workflow", "state"], registry=self.registry)
        self.wait = Histogram("discomfy_job_wait_seconds", "Submitted to started on a server", ["workflow"],
                              buckets=_LATENCY, registry=self.registry)
        self.delivery = Histogram("discomfy_delivery_seconds", "Finished on the server to posted in Discord",
                                  ["workflow"], buckets=_FAST, registry=self.registry)
        self.fitting = Histogram("discomfy_fitting_seconds", "Fitting one output to the upload limit", ["kind"],
                                 buckets=_FAST, registry=self.registry)
        self.registry.register(_Live(runtime))
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def delivered(self, job: Job, now: float | None = None) -> None:
        now = time.time() if now is None else now
        workflow = job.workflow.name
        created, started, finished = (job.timings.get(key) for key in ("created", "started", "finished"))
        self.finished.labels(workflow, job.state.value).inc()
        if started and created:
            self.wait.labels(workflow).observe(max(0.0, started - created))
        if finished:
            self.delivery.labels(workflow).observe(max(0.0, now - finished))

    async def serve(self, host: str, port: int) -> int:
        """Start ``/metrics`` and ``/healthz`` on ``host:port`` (0: any free port); returns the port."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port when 0 was asked for
        return self.port

    async def _scrape(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


_active: Metrics | None = None


def activate(metrics: Metrics | None) -> None:
    """Make ``metrics`` the one that ``observe_*`` feed (None: metrics off)."""
    global _active
    _active = metrics


def observe_delivered(job: Job) -> None:
    if _active is not None:
        _active.delivered(job)


def observe_fitting(kind: str, seconds: float) -> None:
    if _active is not None:
        _active.fitting.labels(kind).observe(seconds)
