"""An image a message shows in an embed, read through Discord's media proxy within a byte cap.

discord.py's ``get_from_cdn`` reads a whole body whatever its size. An attachment's size is known
(and checked) before its download, but nothing vouches for the size of an embedded image, so its
bytes are streamed here and the read stops one chunk past ``max_bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

import aiohttp

__all__ = ["MediaSource", "ProxyMedia", "MediaUnavailable", "MediaTooLarge", "read_media"]

CHUNK = 64 * 1024


class MediaUnavailable(Exception):
    """The media proxy did not serve the file (status, network, timeout)."""


class MediaTooLarge(Exception):
    """The file is larger than the cap; ``max_bytes`` says which."""

    def __init__(self, max_bytes: int):
        super().__init__(f"larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class MediaSource(Protocol):
    """Where embedded images come from: chunks of one URL's body (``MediaUnavailable`` when it cannot)."""

    def stream(self, url: str) -> AsyncGenerator[bytes, None]: ...

    async def close(self) -> None: ...


class ProxyMedia:
    """Streams files from Discord's media hosts with one aiohttp session, opened on first use."""

    def __init__(self, *, timeout: float = 30.0, proxy: str | None = None):
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    async def stream(self, url: str) -> AsyncGenerator[bytes, None]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url, proxy=self._proxy) as response:
                if response.status != 200:
                    raise MediaUnavailable(f"status {response.status}")
                async for chunk in response.content.iter_chunked(CHUNK):
                    yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise MediaUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def read_media(source: MediaSource, url: str, *, max_bytes: int) -> bytes:
    """The whole body of ``url``; ``MediaTooLarge`` as soon as it passes ``max_bytes``."""
    data = bytearray()
    chunks = source.stream(url)
    try:
        async for chunk in chunks:
            data += chunk
            if len(data) > max_bytes:
                raise MediaTooLarge(max_bytes)
    finally:
        await chunks.aclose()  # stop the download
    return bytes(data)
