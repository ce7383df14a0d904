"""Files and history of the fake ComfyUI: input/output/temp folders, uploads, /view, history.

Mirrors the recorded behaviour (docs/comfyui-protocol.md §5, §7): uploads are deduplicated by content, a
different file under a taken name becomes ``name (1).png``, ``overwrite`` replaces; saved outputs
are numbered ``prefix_00001_.png`` per folder and prefix; history keeps insertion order.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import re
from pathlib import Path

from PIL import Image

__all__ = ["Files", "History", "FOLDER_TYPES", "ViewError"]

FOLDER_TYPES = ("input", "output", "temp")
_EXTRA_MIME = {".webp": "image/webp", ".webm": "video/webm", ".mp4": "video/mp4", ".png": "image/png",
               ".flac": "audio/flac", ".mp3": "audio/mpeg"}  # as recorded (captures/audio_k.json)


class ViewError(Exception):
    """A /view or /upload request the real server refuses; ``status`` is the HTTP status."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(status)


def _example_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


class Files:
    """The server's input, output and temp folders under one root directory."""

    def __init__(self, root: Path):
        self.root = root
        self._counters: dict[tuple[Path, str], int] = {}  # last number saved per folder and name
        for folder in FOLDER_TYPES:
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "input" / "example.png").write_bytes(_example_png())

    def folder(self, kind: str) -> Path:
        if kind not in FOLDER_TYPES:
            raise ViewError(400)
        return self.root / kind

    def input_names(self, kinds: tuple[str, ...] = ()) -> list[str]:
        """Sorted file names at the top of the input folder (LoadImage's choice list); with ``kinds``
        only those whose MIME type (by extension) starts with one of them (LoadAudio's: audio, video)."""
        names = sorted(p.name for p in (self.root / "input").iterdir() if p.is_file())
        return [n for n in names if not kinds or mime_of(n).startswith(kinds)]

    def input_path(self, name: str) -> Path | None:
        """The file a LoadImage ``image`` / LoadAudio ``audio`` value (``name`` or ``subfolder/name``) points at."""
        base = (self.root / "input").resolve()
        path = (base / name).resolve()
        if base not in path.parents or not path.is_file():
            return None
        return path

    def input_digest(self, name: object) -> str | None:
        """LoadImage's and LoadAudio's ``IS_CHANGED``: the SHA-256 of the file (None when there is none)."""
        path = self.input_path(name) if isinstance(name, str) else None
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None

    def upload(self, data: bytes, filename: str, *, subfolder: str = "", kind: str = "input",
               overwrite: bool = False) -> dict:
        """Store an upload like ``POST /upload/image``; returns the response body."""
        name = Path(filename).name
        if not name or ".." in subfolder or subfolder.startswith("/"):
            raise ViewError(400)
        folder = self.folder(kind) / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        stem, ext = Path(name).stem, Path(name).suffix
        path, counter = folder / name, 1
        while not overwrite and path.exists():
            if path.read_bytes() == data:
                return {"name": path.name, "subfolder": subfolder, "type": kind}
            path = folder / f"{stem} ({counter}){ext}"
            counter += 1
        path.write_bytes(data)
        return {"name": path.name, "subfolder": subfolder, "type": kind}

    def view(self, filename: str, subfolder: str, kind: str) -> tuple[Path, str]:
        """The file behind ``GET /view`` and its Content-Type; ``ViewError`` 400/404 otherwise."""
        if not filename or ".." in filename or ".." in subfolder or filename.startswith("/"):
            raise ViewError(400)
        path = self.folder(kind) / subfolder / filename
        if not path.is_file():
            raise ViewError(404)
        return path, mime_of(path.name)

    def save_path(self, kind: str, prefix: str, ext: str) -> tuple[Path, str, str]:
        """Next free ``<name>_<counter:05>_.<ext>`` for a save prefix like ``probe/invert``.

        Returns ``(path, filename, subfolder)``; the counter continues from the highest file
        already in the folder with that name, as the real server's save nodes do.
        """
        subfolder, _, name = prefix.rpartition("/")
        folder = self.folder(kind) / subfolder
        counter = self._counters.get((folder, name))
        if counter is None or (folder / f"{name}_{counter + 1:05}_.{ext}").exists():
            counter = self._highest(folder, name)  # first save here, or someone else wrote files
        filename = f"{name}_{counter + 1:05}_.{ext}"
        self._counters[(folder, name)] = counter + 1
        return folder / filename, filename, subfolder

    @staticmethod
    def _highest(folder: Path, name: str) -> int:
        """The highest ``<name>_<counter>_`` in ``folder`` (a scan, so only when the cache is unsure)."""
        folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"^{re.escape(name)}_(\d{{5}})_\.")
        return max((int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))), default=0)


def mime_of(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return _EXTRA_MIME.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


class History:
    """``prompt_id -> entry`` in insertion order; a re-used prompt id replaces its entry."""

    def __init__(self, limit: int = 10_000):
        self.entries: dict[str, dict] = {}
        self.limit = limit

    def put(self, prompt_id: str, entry: dict) -> None:
        self.entries.pop(prompt_id, None)
        self.entries[prompt_id] = entry
        while len(self.entries) > self.limit:
            self.entries.pop(next(iter(self.entries)))

    def get(self, prompt_id: str) -> dict:
        entry = self.entries.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    def listing(self, max_items: int | None, offset: int | None) -> dict:
        """``GET /history?max_items=&offset=``: oldest→newest; max_items alone = the last N."""
        items = list(self.entries.items())
        if offset is None:
            offset = max(len(items) - max_items, 0) if max_items is not None else 0
        end = None if max_items is None else offset + max_items
        return dict(items[offset:end])

    def delete(self, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            self.entries.pop(prompt_id, None)

    def clear(self) -> None:
        self.entries.clear()
