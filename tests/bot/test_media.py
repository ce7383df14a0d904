"""bot.jobs.media: embedded images are streamed within a byte cap, from a real HTTP server."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bot.jobs.media import MediaTooLarge, MediaUnavailable, ProxyMedia, read_media

CHUNK = 64 * 1024


SENT = {"bytes": 0}


async def _endless(request: web.Request) -> web.StreamResponse:
    """A body that never ends (no Content-Length): only the reader's cap stops it."""
    response = web.StreamResponse()
    await response.prepare(request)
    while True:
        await response.write(bytes(CHUNK))
        SENT["bytes"] += CHUNK
        await asyncio.sleep(0)


async def _small(request: web.Request) -> web.Response:
    return web.Response(body=b"PNG tiny")


@pytest.fixture
async def server(aiohttp_server):
    app = web.Application()
    app.router.add_get("/endless.png", _endless)
    app.router.add_get("/small.png", _small)
    return await aiohttp_server(app)


async def test_a_body_within_the_cap_is_read_whole(server):
    media = ProxyMedia()
    try:
        assert await read_media(media, str(server.make_url("/small.png")), max_bytes=1000) == b"PNG tiny"
    finally:
        await media.close()


async def test_an_endless_body_stops_one_chunk_past_the_cap(server):
    SENT["bytes"] = 0
    media = ProxyMedia()
    try:
        with pytest.raises(MediaTooLarge) as raised:
            await asyncio.wait_for(read_media(media, str(server.make_url("/endless.png")), max_bytes=1_000_000),
                                   timeout=30)
    finally:
        await media.close()
    assert raised.value.max_bytes == 1_000_000
    assert SENT["bytes"] < 50 * 1_000_000  # the download was stopped, not read to some far bound


async def test_a_file_the_proxy_does_not_serve_is_unavailable(server):
    media = ProxyMedia()
    try:
        with pytest.raises(MediaUnavailable):
            await read_media(media, str(server.make_url("/missing.png")), max_bytes=1000)
    finally:
        await media.close()


async def test_an_unreachable_host_is_unavailable(unused_tcp_port):
    media = ProxyMedia(timeout=5)
    try:
        with pytest.raises(MediaUnavailable):
            await read_media(media, f"http://127.0.0.1:{unused_tcp_port}/x.png", max_bytes=1000)
    finally:
        await media.close()
