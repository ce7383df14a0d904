"""Param kinds whose value is a file the user uploads: ``image`` and ``audio``.

The value users give is a file; the runtime checks its bytes (``check_upload``: decoded within
``Limits``), uploads it to the backend that runs the job (``POST /upload/image``, which takes any
file into the server's input folder) and binds the server-side name it answers. The bound input
is a loader's upload combo: ``LoadImage.image`` (``image_upload``) or ``LoadAudio.audio``
(``audio_upload``). ``takes`` is the kind of result an action feeds into the param
(``Manifest.param_taking``): image results into image params, audio results into audio params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal

from ..inputs.audio import FORMAT_NAMES, check_audio
from ..inputs.images import check_image
from ..limits import Limits
from .param import ParamBase
from .values import upload_name

__all__ = ["ImageParam", "AudioParam"]


class _UploadParam(ParamBase):
    """What every upload kind shares: the value is a plain file name on the server."""

    default: None = None

    input_types = frozenset({"COMBO"})
    loader: ClassVar[tuple[str, str]]  # (class, input) of the core node that loads this kind of file
    upload_flag: ClassVar[str]  # the option the loader's input spec carries in /object_info
    mime_types: ClassVar[tuple[str, ...]]  # MIME type prefixes a file of this kind may be labelled with
    described: ClassVar[str]  # the kind of file, for people ("an image (PNG, JPEG or WebP)")

    def coerce(self, name: str, value: Any, server_list: Sequence[Any] | None = None) -> str:
        return upload_name(name, value, what=f"{self.takes} file")

    def show(self, value: Any) -> str:
        if value is None or value == "":
            return "—"
        return PurePosixPath(str(getattr(value, "filename", value))).name

    def fits(self, input_type: str, options: Mapping[str, Any] | None = None) -> bool:
        """An upload combo of this kind of file (``image_upload`` / ``audio_upload`` when the spec is known)."""
        if input_type == "*":
            return True
        return input_type == "COMBO" and (options is None or bool(options.get(self.upload_flag)))

    def mime_problem(self, mime: str) -> str | None:
        return None if not mime or mime.startswith(self.mime_types) else f"must be {self.described}"

    def loader_problem(self, class_type: str, input_name: str) -> str | None:
        cls, field = self.loader
        if input_name == field and "Load" in class_type:
            return None
        return f"{self.type} param must bind {cls}.{field}, not {class_type}.{input_name}"


class ImageParam(_UploadParam):
    """An image the user supplies: PNG, JPEG or WebP, within a byte and a pixel cap."""

    type: Literal["image"]

    takes = "image"
    loader = ("LoadImage", "image")
    upload_flag = "image_upload"
    byte_limit = "max_image_bytes"
    mime_types = ("image/",)
    described = "an image (PNG, JPEG or WebP)"

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        return "PNG, JPEG or WebP image"

    def check_upload(self, name: str, data: bytes, filename: str, limits: Limits) -> str:
        check_image(data, param=name, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
        return filename


class AudioParam(_UploadParam):
    """A sound the user supplies (``engine.audio.AUDIO_FORMATS``), within a byte and a length cap;
    uploaded under a name whose extension says its format, as LoadAudio lists files by extension."""

    type: Literal["audio"]

    takes = "audio"
    loader = ("LoadAudio", "audio")
    upload_flag = "audio_upload"
    byte_limit = "max_audio_bytes"
    mime_types = ("audio/", "video/")  # WebM and M4A sound is often labelled as video
    described = f"an audio file ({FORMAT_NAMES})"

    def _value_rule(self, server_list: Sequence[Any] | None) -> str:
        return f"audio file ({FORMAT_NAMES})"

    def check_upload(self, name: str, data: bytes, filename: str, limits: Limits) -> str:
        found = check_audio(data, param=name, max_bytes=limits.max_audio_bytes, max_seconds=limits.max_audio_seconds)
        return (PurePosixPath(filename.replace("\\", "/")).stem or "audio") + found.format.extension
