"""The engine's bounds on everything that comes from outside, in one place: ``Limits``.

Every reader of outside data takes its cap from a ``Limits`` (``DEFAULT_LIMITS`` unless the caller
passes its own) and checks it *before* parsing or decoding: manifest files (bytes, YAML aliases,
nesting), workflow and object_info files, ComfyUI's JSON answers and websocket frames, output
files and their pixels, input images and audio. Past a limit the error names it by its field name, which is
also the bot's setting (``DISCOMFY_MAX_SERVER_JSON_BYTES`` …) and the ``engine`` CLI's environment
variable, so whoever reads the message knows what to raise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

__all__ = ["Limits", "DEFAULT_LIMITS", "ENV_PREFIX", "human_size", "limits_from_env"]

KIB = 1024
MIB = 1024 * KIB
ENV_PREFIX = "DISCOMFY_"


@dataclass(frozen=True)
class Limits:
    """Caps on outside data (bytes unless the name says otherwise); each field name is its setting."""

    max_manifest_bytes: int = 256 * KIB  # one manifest file (the bundled ones are ~2 KiB)
    max_yaml_aliases: int = 100  # alias uses (*name) in one manifest
    max_yaml_nodes: int = 20_000  # YAML nodes once every alias is expanded ("billion laughs")
    max_yaml_depth: int = 32  # nesting of mappings and lists in a manifest
    max_workflow_bytes: int = 16 * MIB  # one workflow file (API graphs are ~10–200 KiB)
    max_json_depth: int = 64  # nesting of any JSON document read (files, answers, frames)
    max_server_json_bytes: int = 64 * MIB  # one JSON answer of a server; /object_info is the biggest
    max_websocket_frame_bytes: int = 32 * MIB  # one websocket message (previews, websocket images)
    max_output_bytes: int = 512 * MIB  # every output file of one job together (GET /view downloads)
    max_output_files: int = 100  # output files of one job
    max_output_pixels: int = 67_108_864  # an output image decoded for a grid or re-encoding (8192²)
    max_image_bytes: int = 100 * MIB  # one input image (ComfyUI's own max_upload_size)
    max_image_pixels: int = 64_000_000  # one input image (8000 × 8000)
    max_audio_bytes: int = 100 * MIB  # one input audio file (ComfyUI's own max_upload_size)
    max_audio_seconds: int = 600  # one input audio file's length, from its header and then by decoding

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{item.name} must be a whole number ≥ 1")


DEFAULT_LIMITS = Limits()


def human_size(size: int) -> str:
    """``10 MiB``, ``1.5 MiB``, ``300 KiB``, ``12 bytes``."""
    if size >= MIB:
        return f"{size // MIB} MiB" if size % MIB == 0 else f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size / KIB:.0f} KiB"
    return f"{size} bytes"


def limits_from_env(env: Mapping[str, str] | None = None, base: Limits = DEFAULT_LIMITS) -> Limits:
    """``base`` with every ``DISCOMFY_<FIELD>`` set in ``env`` (the ``engine`` CLI's way to raise a
    limit). ``ValueError`` names the variable when a value is not a whole number ≥ 1."""
    env = os.environ if env is None else env
    changes = {}
    for item in fields(Limits):
        name = ENV_PREFIX + item.name.upper()
        text = env.get(name, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1")
            changes[item.name] = int(text)
    return replace(base, **changes)
