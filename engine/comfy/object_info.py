"""Reading a server's ``GET /object_info`` (pure): the one place that knows how input specs look.

``object_info`` maps a node class to its entry; an entry's ``input.required`` / ``input.optional``
map input names to a spec ``[type, options]`` (docs/comfyui-protocol.md §8). Combos come in two spellings:
``[[value, ...], {...}]`` and v3's ``["COMBO", {"options": [...]}]``. Upload combos
(``LoadImage.image``: ``{"image_upload": true}``) list files that change with every upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ObjectInfo",
    "class_input",
    "combo_choices",
    "combo_values",
    "input_max",
    "input_spec",
    "is_optional",
    "is_output_node",
    "spec_options",
    "spec_type",
]

ObjectInfo = Mapping[str, Any]  # class name → entry, as the server sends it


def input_spec(entry: Mapping[str, Any] | None, input_name: str) -> list[Any] | None:
    """The ``[type, options]`` spec of a required or optional input of one class ``entry``."""
    inputs = entry.get("input") if isinstance(entry, Mapping) else None
    for group in ("required", "optional"):
        specs = inputs.get(group) if isinstance(inputs, Mapping) else None
        spec = specs.get(input_name) if isinstance(specs, Mapping) else None
        if isinstance(spec, (list, tuple)) and spec:
            return list(spec)
    return None


def class_input(object_info: ObjectInfo, class_type: str, input_name: str) -> list[Any] | None:
    """The spec of ``class_type.input_name``, or None when the class or input is unknown."""
    return input_spec(object_info.get(class_type), input_name)


def spec_type(spec: list[Any]) -> str:
    """``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO``, ``MODEL``… (old-style combos are lists)."""
    return "COMBO" if isinstance(spec[0], list) else str(spec[0])


def spec_options(spec: list[Any]) -> Mapping[str, Any]:
    """The options dict of a spec (``min``, ``max``, ``multiline``, ``image_upload``…), or ``{}``."""
    return spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}


def combo_values(spec: list[Any]) -> list[Any] | None:
    """The values a combo input accepts, or ``None`` when the input is not a combo."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return list(spec_options(spec).get("options") or [])
    return None


def _is_upload(options: Mapping[str, Any]) -> bool:
    return any(key.endswith("_upload") and bool(flag) for key, flag in options.items()) or "remote" in options


def combo_choices(object_info: ObjectInfo, class_type: str, input_name: str,
                  *, include_uploads: bool = True) -> list[Any] | None:
    """The single values ``class_type.input_name`` accepts, or None if it is not a checkable combo
    (not a combo, a multiselect, or with ``include_uploads=False`` an upload combo)."""
    spec = class_input(object_info, class_type, input_name)
    if spec is None:
        return None
    options = spec_options(spec)
    if options.get("multiselect") or not include_uploads and _is_upload(options):
        return None
    return combo_values(spec)


def input_max(object_info: ObjectInfo, class_type: str, input_name: str) -> int | float | None:
    """The ``max`` the server enforces on a number input, or None when unknown."""
    spec = class_input(object_info, class_type, input_name)
    high = spec_options(spec).get("max") if spec is not None else None
    return high if isinstance(high, (int, float)) and not isinstance(high, bool) else None


def is_optional(entry: Mapping[str, Any] | None, input_name: str) -> bool:
    inputs = entry.get("input") if isinstance(entry, Mapping) else None
    optional = inputs.get("optional") if isinstance(inputs, Mapping) else None
    return isinstance(optional, Mapping) and input_name in optional


def is_output_node(entry: Mapping[str, Any] | None) -> bool:
    return isinstance(entry, Mapping) and bool(entry.get("output_node"))
