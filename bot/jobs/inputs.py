"""File inputs of a job (images, audio): where their bytes come from, and where they are kept for reruns.

An upload param's value reaching ``Flow.run`` is one of:

- a ``discord.Attachment`` (slash option, modal upload) — size checked before the download (the
  param's ``max_upload_bytes``); the runtime decodes every file (the param's ``check_upload``) when
  the job is submitted;
- a ``StoredInput`` — the bytes an earlier job used, from the inputs folder (rerun, tweak, new seed);
- an ``OutputSource`` — output #n of an earlier job, fetched again from the backend that made it
  (action buttons: an image result into an image param, a sound into an audio param); if that
  backend is gone the user is told so;
- a ``LinkedImage`` — an image a message shows in an embed (context menus, ``message_image``),
  streamed from Discord's media proxy within the upload cap (``media.read_media``); its bytes are
  then checked by the runtime like any other.

Every input of a submitted job is written to the ``InputFolder`` (content-addressed:
``<folder>/<sha256>``) and referenced from ``JobRecord.extra["inputs"]`` as
``{param: {"sha256", "filename"}}``, so a job can be rerun after a restart and on any backend.
``bot.retention`` prunes the folder by age (from the last use) and total size; a missing file only
means the user has to upload again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping
from urllib.parse import urlsplit

import discord

from engine import IMAGE_FORMATS, ComfyError, EngineError, ImageInput, JobRecord, ParamError, Runtime, Workflow

from .media import MediaSource, MediaTooLarge, MediaUnavailable, read_media

__all__ = ["PLACEHOLDER", "StoredInput", "LinkedImage", "OutputSource", "InputFolder", "check_upload_source",
           "message_image", "read_uploads", "result_kind", "stored_inputs"]

PLACEHOLDER = "upload.png"
NOT_KEPT = "the original file is no longer kept; please upload it again"
UNKNOWN_RESULT = "the result it should use is no longer known"
MIB = 1024 * 1024


@dataclass(frozen=True)
class StoredInput:
    """An input kept in the inputs folder; shown by its ``filename``."""

    sha256: str
    filename: str


@dataclass(frozen=True)
class LinkedImage:
    """An image a message shows in an embed, read through Discord's media proxy (never another host)."""

    url: str
    filename: str
    read: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")  # what engine.check_image accepts
DISCORD_MEDIA_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")


def message_image(message: discord.Message, media: MediaSource, *, max_bytes: int
                  ) -> discord.Attachment | LinkedImage | None:
    """The first PNG/JPEG/WebP of a message: an attachment, else an embed's image or thumbnail as
    Discord's media proxy serves it (so no other host is ever fetched, and at most ``max_bytes``
    are read); None when there is none."""
    for attachment in message.attachments:
        mime = (attachment.content_type or "").split(";")[0].strip()
        if mime in IMAGE_FORMATS.values() or (not mime and attachment.filename.lower().endswith(IMAGE_EXTENSIONS)):
            return attachment
    for embed in message.embeds:
        for image in (embed.image, embed.thumbnail):
            url = image.proxy_url or image.url or ""
            parts = urlsplit(url)
            if parts.scheme == "https" and parts.hostname in DISCORD_MEDIA_HOSTS:
                name = PurePosixPath(parts.path).name or PLACEHOLDER
                return LinkedImage(url, name, _capped_reader(media, url, max_bytes))
    return None


def _capped_reader(media: MediaSource, url: str, max_bytes: int) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        return await read_media(media, url, max_bytes=max_bytes)
    return read


@dataclass(frozen=True)
class OutputSource:
    """Output #``index`` (1-based) of job ``job_id``, to be fed into an upload param (the engine names
    the upload after its content: ``result-1.mp3`` for a sound)."""

    job_id: str
    index: int

    @property
    def filename(self) -> str:
        return f"result-{self.index}.png"


def result_kind(record: JobRecord, index: int, default: str) -> str:
    """The kind (``image``, ``audio``…) of output #``index`` of a stored job, as recorded with its
    file; ``default`` (its workflow's kind) when the record does not say."""
    outputs = record.outputs
    kept = outputs[index - 1] if 1 <= index <= len(outputs) else None
    kind = kept.get("kind") if isinstance(kept, Mapping) else None
    return kind if isinstance(kind, str) and kind else default


class InputFolder:
    """Content-addressed files: ``keep(data)`` → sha256, ``read(sha256)`` → bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def file(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.path / sha256

    def has(self, sha256: str) -> bool:
        try:
            return self.file(sha256).is_file()
        except ValueError:
            return False

    def keep(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.file(sha256)
        if not target.is_file():
            self.path.mkdir(parents=True, exist_ok=True)
            partial = self.path / f"{sha256}.{uuid.uuid4().hex[:8]}.part"
            partial.write_bytes(data)
            partial.replace(target)  # atomic: a reader never sees half a file
        else:
            with contextlib.suppress(OSError):
                os.utime(target)  # used again: retention counts age from the last use
        return sha256

    def read(self, sha256: str) -> bytes:
        return self.file(sha256).read_bytes()


def stored_inputs(extra: Mapping[str, Any], workflow: Workflow) -> dict[str, StoredInput]:
    """The ``StoredInput`` of each upload param recorded in a job's ``extra``."""
    found = {}
    inputs = extra.get("inputs")
    for name, kept in (inputs if isinstance(inputs, dict) else {}).items():  # a damaged row: nothing kept
        if name in workflow.manifest.params and isinstance(kept, dict) and kept.get("sha256"):
            found[name] = StoredInput(str(kept["sha256"]), str(kept.get("filename") or PLACEHOLDER))
    return found


async def check_upload_source(name: str, value: Any, *, runtime: Runtime, folder: InputFolder, max_bytes: int,
                              wait: float | None = None) -> None:
    """Cheap checks (no download) of an upload param's value; ``ParamError`` names the param."""
    if isinstance(value, discord.Attachment):
        if value.size > max_bytes:
            raise ParamError(name, f"the file is larger than {_human(max_bytes)}")
    elif isinstance(value, StoredInput):
        if not folder.has(value.sha256):
            raise ParamError(name, NOT_KEPT)
    elif isinstance(value, LinkedImage):
        pass  # its size is known only once read; the runtime checks the bytes before using them
    elif isinstance(value, OutputSource):
        record = await runtime.get(value.job_id, timeout=wait)
        if record is None or not 1 <= value.index <= len(record.outputs):
            raise ParamError(name, UNKNOWN_RESULT)
    elif value is not None:  # a bare server file name: it may not exist on the backend that runs the job
        raise ParamError(name, "please upload the file again")


def _human(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.3g} MiB"
    return f"{size / 1024:.3g} KiB" if size >= 1024 else f"{size} bytes"


async def read_uploads(workflow: Workflow, values: Mapping[str, Any], *, runtime: Runtime, folder: InputFolder
                       ) -> tuple[dict[str, ImageInput], dict[str, dict[str, str]]]:
    """Bytes of every upload param with a value (``runtime.start_job`` checks them by decoding).

    Returns the ``images`` for ``runtime.start_job`` and the ``inputs`` entry for the job's extra;
    ``folder.keep`` them once the job is accepted.
    """
    images, inputs = {}, {}
    for name in workflow.manifest.upload_params:
        value = values.get(name)
        if value is None:
            continue
        data = await _upload_bytes(name, value, runtime, folder)
        filename = getattr(value, "filename", None) or PLACEHOLDER
        images[name] = ImageInput(data, filename)
        inputs[name] = {"sha256": hashlib.sha256(data).hexdigest(), "filename": filename}
    return images, inputs


async def _upload_bytes(name: str, value: Any, runtime: Runtime, folder: InputFolder) -> bytes:
    if isinstance(value, discord.Attachment):
        try:
            return await value.read()
        except discord.HTTPException:
            raise ParamError(name, "the upload could not be downloaded from Discord") from None
    if isinstance(value, LinkedImage):
        try:
            return await value.read()
        except MediaTooLarge as exc:
            raise ParamError(name, f"the image is larger than {_human(exc.max_bytes)}") from None
        except MediaUnavailable:
            raise ParamError(name, "the message's image could not be downloaded from Discord") from None
    if isinstance(value, StoredInput):
        try:
            return await asyncio.to_thread(folder.read, value.sha256)
        except (OSError, ValueError):
            raise ParamError(name, NOT_KEPT) from None
    if isinstance(value, OutputSource):
        return await output_bytes(name, value, runtime)
    raise ParamError(name, "please upload the file again")


async def output_bytes(name: str, source: OutputSource, runtime: Runtime) -> bytes:
    """Fetch a previous job's output again from the backend that made it."""
    try:
        return (await runtime.output(source.job_id, source.index)).data
    except ComfyError as exc:
        raise ParamError(name, str(exc)) from None
    except EngineError:
        raise ParamError(name, UNKNOWN_RESULT) from None
