"""Shared fixtures: in-process fake ComfyUI servers (see tests/fake_comfy)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestServer
from tests.fake_comfy import FakeComfy, make_app


@dataclass
class FakeServer:
    """A running fake ComfyUI: ``url`` to talk to, ``state`` to inspect and inject faults."""

    url: str
    state: FakeComfy
    server: TestServer


@pytest.fixture
async def make_fake_comfy(aiohttp_server, tmp_path):
    """Factory: ``await make_fake_comfy(time_scale=0.05)`` starts one more fake server."""
    started = 0

    async def make(*, time_scale: float = 0.05, object_info: dict | None = None) -> FakeServer:
        nonlocal started
        started += 1
        fake = FakeComfy(tmp_path / f"comfy{started}", object_info=object_info, time_scale=time_scale)
        server = await aiohttp_server(make_app(fake))
        fake.attach(server)
        return FakeServer(str(server.make_url("")).rstrip("/"), fake, server)

    return make


@pytest.fixture
async def fake_comfy(make_fake_comfy) -> FakeServer:
    """One fake ComfyUI; SlowProgress steps take 5 % of their stated time."""
    return await make_fake_comfy()


from tests.storekit import pg_url, postgres_server, store_url  # noqa: E402,F401  (fixtures for every test folder)
