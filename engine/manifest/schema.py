"""The manifest JSON Schema, generated from ``engine.manifest.Manifest`` (never written by hand).

Two adjustments make the schema describe files as the loader reads them:
- ``name`` is optional in a file (the loader defaults it to the file's stem);
- param names must match the name pattern (the model rejects others; ``patternProperties``
  alone would let them through).
(Each param kind adjusts its own schema: plain static ``choices`` come from ``ChoiceParam``.)

Regenerate the committed copy with ``engine schema > manifests/manifest.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from .model import Manifest

__all__ = ["manifest_schema", "schema_text"]


def _loader_view(schema: dict[str, Any]) -> dict[str, Any]:
    schema["required"] = [key for key in schema.get("required", []) if key != "name"]
    schema["properties"]["params"]["additionalProperties"] = False
    return schema


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a manifest file."""
    schema = _loader_view(Manifest.model_json_schema())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "DisComfy workflow manifest",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    """The schema as the committed file holds it (stable key order, trailing newline)."""
    return json.dumps(manifest_schema(), indent=2, ensure_ascii=False) + "\n"
