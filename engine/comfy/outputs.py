"""What a finished prompt produced, read from its ``/history/{id}`` entry (pure, no I/O).

A history entry's ``outputs`` maps node ids to the node's UI output (docs/comfyui-protocol.md §7). Every list
of dicts with a ``filename`` is a file: ``images`` (also videos and animations, flagged by
``"animated": [true]``), ``gifs``, ``videos``, ``audio``, and whatever a custom node invents.
``text`` lists are text outputs. The same parsing applies to a websocket ``executed`` payload.

- ``OutputRef``   a file on the server (fetch it with ``GET /view`` and ``ref.view_params()``)
- ``OutputText``  a text output
- ``OutputFile``  a downloaded file (the client does the download)
- ``HistoryStatus`` the entry's status; ``failure_text`` turns an ``execution_error`` into a
  short message for users (no traceback, no inputs)
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .wire import list_at, mapping_at

__all__ = [
    "HistoryStatus",
    "OutputFile",
    "OutputRef",
    "OutputText",
    "failure_text",
    "history_entry",
    "kind_of",
    "known_extension",
    "mime_of",
    "node_title",
    "output_refs",
    "output_texts",
    "parse_status",
    "refs_from_node",
    "texts_from_node",
]

# extension -> mime; our own table so the answer does not depend on the host's mime database
_MIME_BY_EXTENSION = {
    "png": "image/png",
    "apng": "image/apng",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/opus",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "txt": "text/plain",
    "json": "application/json",
}
_KIND_BY_LIST_KEY = {"images": "image", "gifs": "video", "videos": "video", "video": "video", "audio": "audio"}
ERROR_TEXT_LIMIT = 300
_ANIMATABLE_MIMES = frozenset({"image/webp", "image/png", "image/apng", "image/gif"})


@dataclass(frozen=True)
class OutputRef:
    """A file a node wrote on the server.

    ``kind`` is one of ``image``, ``video``, ``audio``, ``text``; ``animated`` is true for a video
    or for an image the server flagged as animated (animated WebP/PNG, GIF).
    """

    node_id: str
    filename: str
    subfolder: str
    type: str
    kind: str
    mime: str
    animated: bool = False

    def view_params(self) -> dict[str, str]:
        """Query parameters for ``GET /view``."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "filename": self.filename,
            "subfolder": self.subfolder,
            "type": self.type,
            "kind": self.kind,
            "mime": self.mime,
            "animated": self.animated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputRef:
        return cls(
            node_id=str(data["node_id"]),
            filename=str(data["filename"]),
            subfolder=str(data.get("subfolder") or ""),
            type=str(data.get("type") or "output"),
            kind=str(data.get("kind") or "image"),
            mime=str(data.get("mime") or "application/octet-stream"),
            animated=bool(data.get("animated", False)),
        )


@dataclass(frozen=True)
class OutputText:
    node_id: str
    text: str


@dataclass(frozen=True)
class OutputFile:
    """A downloaded output."""

    data: bytes
    mime: str
    kind: str
    filename: str
    node_id: str
    animated: bool = False

    @classmethod
    def from_ref(cls, ref: OutputRef, data: bytes, mime: str | None = None) -> OutputFile:
        """Pair downloaded bytes with their ref; ``mime`` (the server's Content-Type) wins if given."""
        mime = (mime or "").split(";")[0].strip() or ref.mime
        return cls(data, mime, ref.kind, ref.filename, ref.node_id, animated=ref.animated)


@dataclass(frozen=True)
class HistoryStatus:
    """``status`` of a history entry; ``last_type``/``last_data`` are its final message."""

    status_str: str
    completed: bool
    last_type: str | None
    last_data: Mapping[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.status_str == "success" and self.completed


def history_entry(response: Any, prompt_id: str) -> dict[str, Any] | None:
    """The entry for ``prompt_id`` in a ``GET /history/{id}`` answer (``{}`` when unknown)."""
    entry = response.get(prompt_id) if isinstance(response, Mapping) else None
    return entry if isinstance(entry, dict) else None


def mime_of(filename: str, hint: str | None = None) -> str:
    """The mime type for ``filename``; ``hint`` (e.g. a ``format`` field like ``video/h264-mp4``) as fallback."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _MIME_BY_EXTENSION:
        return _MIME_BY_EXTENSION[extension]
    if hint and "/" in hint:
        return hint
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def known_extension(filename: str) -> str | None:
    """``.png`` for ``x.PNG``: the file name's extension when it is one of the output types we know."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f".{extension}" if extension in _MIME_BY_EXTENSION else None


def kind_of(mime: str, list_key: str = "images") -> str:
    """``image``/``video``/``audio``/``text`` from the mime type, else from the output list's key."""
    major = mime.split("/", 1)[0]
    if major in ("image", "video", "audio", "text"):
        return major
    if mime == "application/json":
        return "text"
    return _KIND_BY_LIST_KEY.get(list_key, "image")


def refs_from_node(node_id: str, ui_output: Any) -> list[OutputRef]:
    """Every file in one node's UI output (a history ``outputs`` value or an ``executed`` output)."""
    if not isinstance(ui_output, Mapping):
        return []
    animated = _flag(ui_output.get("animated"))
    refs: list[OutputRef] = []
    for key, items in ui_output.items():
        if not isinstance(items, list):
            continue
        refs.extend(_ref(str(node_id), key, item, animated) for item in items if _is_file(item))
    return refs


def texts_from_node(node_id: str, ui_output: Any) -> list[OutputText]:
    """Every text in one node's UI output (``{"text": [...]}``)."""
    texts = ui_output.get("text") if isinstance(ui_output, Mapping) else None
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list):
        return []
    return [OutputText(str(node_id), text) for text in texts if isinstance(text, str)]


def output_refs(entry: Mapping[str, Any], nodes: Iterable[str] | None = None) -> list[OutputRef]:
    """Every file of a history entry, in history order or in the order of ``nodes`` if given."""
    return [ref for node_id, ui in _node_outputs(entry, nodes) for ref in refs_from_node(node_id, ui)]


def output_texts(entry: Mapping[str, Any], nodes: Iterable[str] | None = None) -> list[OutputText]:
    """Every text output of a history entry, ordered like ``output_refs``."""
    return [text for node_id, ui in _node_outputs(entry, nodes) for text in texts_from_node(node_id, ui)]


def parse_status(entry: Mapping[str, Any]) -> HistoryStatus:
    """The entry's status; tolerant of missing or malformed fields."""
    status = mapping_at(entry, "status")
    last_type: str | None = None
    last_data: Mapping[str, Any] = {}
    for message in list_at(status, "messages"):
        if isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[0], str):
            last_type = message[0]
            last_data = message[1] if isinstance(message[1], Mapping) else {}
    return HistoryStatus(
        status_str=str(status.get("status_str") or ""),
        completed=status.get("completed") is True,
        last_type=last_type,
        last_data=last_data,
    )


def node_title(graph: Mapping[str, Any], node_id: str | None) -> str | None:
    """The node's ``_meta.title``, else its class_type, else None."""
    node = graph.get(str(node_id)) if node_id is not None else None
    if not isinstance(node, Mapping):
        return None
    meta = node.get("_meta")
    title = meta.get("title") if isinstance(meta, Mapping) else None
    return str(title or node.get("class_type") or "") or None


def failure_text(data: Mapping[str, Any], graph: Mapping[str, Any] | None = None) -> str:
    """A short text for an ``execution_error`` payload: the message and the node, no traceback."""
    message = " ".join(str(data.get("exception_message") or "").split())
    message = message or str(data.get("exception_type") or "error")
    if len(message) > ERROR_TEXT_LIMIT:
        message = message[: ERROR_TEXT_LIMIT - 1] + "…"
    node_id = data.get("node_id")
    where = node_title(graph or {}, str(node_id)) if node_id is not None else None
    where = where or data.get("node_type")
    return f"{where}: {message}" if where else message


def _node_outputs(entry: Mapping[str, Any], nodes: Iterable[str] | None) -> list[tuple[str, Any]]:
    outputs = entry.get("outputs") if isinstance(entry, Mapping) else None
    if not isinstance(outputs, Mapping):
        return []
    if nodes is None:
        return [(str(node_id), ui) for node_id, ui in outputs.items()]
    by_id = {str(node_id): ui for node_id, ui in outputs.items()}
    return [(str(node_id), by_id[str(node_id)]) for node_id in nodes if str(node_id) in by_id]


def _is_file(item: Any) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("filename"), str) and bool(item["filename"])


def _flag(value: Any) -> bool:
    if isinstance(value, list):
        return any(v is True for v in value)
    return value is True


def _ref(node_id: str, list_key: str, item: Mapping[str, Any], animated: bool) -> OutputRef:
    filename = item["filename"]
    hint = item.get("format") if isinstance(item.get("format"), str) else None
    mime = mime_of(filename, hint)
    kind = kind_of(mime, list_key)
    return OutputRef(
        node_id=node_id,
        filename=filename,
        subfolder=str(item.get("subfolder") or ""),
        type=str(item.get("type") or "output"),
        kind=kind,
        mime=mime,
        animated=kind == "video" or (animated and mime in _ANIMATABLE_MIMES) or list_key == "gifs",
    )
