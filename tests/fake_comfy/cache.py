"""The real server's output cache (ComfyUI's default "classic" cache), as the fake replays it.

A node's signature is its class, its literal inputs and the signatures of the nodes it links to,
plus its id when it has a hidden ``UNIQUE_ID`` input (SlowProgress) and the file's digest for
LoadImage and LoadAudio (their ``IS_CHANGED``). SaveImageWebsocket is never cached (its ``IS_CHANGED`` is the
time), nor is anything fed by it. Before a prompt runs, results whose signature the prompt does not
use are dropped; a node whose signature is still cached does not run. Checked on a live server:
an identical resubmit lists every node in ``execution_cached``, sends no ``executing`` or
``progress`` for them, and each cached output node sends ``executed`` with its cached UI output
(same file names) and a ``progress_state`` of value/max ``1``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

__all__ = ["OutputCache", "node_signatures"]

NEVER_CACHED = frozenset({"SaveImageWebsocket"})
FILE_INPUTS = {"LoadImage": "image", "LoadAudio": "audio"}  # loaders whose IS_CHANGED hashes their file


def _is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def node_signatures(graph: dict, object_info: dict, file_digest: Callable[[object], str | None]) -> dict[str, str]:
    """Signature of every cacheable node of a validated ``graph`` (uncacheable nodes are left out)."""
    signatures: dict[str, str | None] = {}

    def sign(node_id: str) -> str | None:
        if node_id not in signatures:
            signatures[node_id] = None  # a cycle (never in a validated graph) stays uncacheable
            node = graph[node_id]
            class_type = node["class_type"]
            parts: list = [class_type]
            if "UNIQUE_ID" in (object_info[class_type]["input"].get("hidden") or {}).values():
                parts.append(node_id)
            if class_type in FILE_INPUTS:
                parts.append(file_digest(node["inputs"].get(FILE_INPUTS[class_type])))
            for name, value in sorted(node.get("inputs", {}).items()):
                parts.append([name, [sign(value[0]), value[1]] if _is_link(value) else value])
            cacheable = class_type not in NEVER_CACHED and all(
                signatures[value[0]] is not None for value in node.get("inputs", {}).values() if _is_link(value))
            signatures[node_id] = json.dumps(parts, sort_keys=True, default=str) if cacheable else None
        return signatures[node_id]

    for node_id in graph:
        sign(node_id)
    return {node_id: signature for node_id, signature in signatures.items() if signature is not None}


class OutputCache:
    """Results (node outputs and UI output) by signature, kept while prompts still use them."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple, dict | None]] = {}

    def begin(self, graph: dict, signatures: dict[str, str]) -> dict[str, tuple[tuple, dict | None]]:
        """Drop what this prompt does not use; the cached results of its nodes, in the prompt's order."""
        used = set(signatures.values())
        self.entries = {key: entry for key, entry in self.entries.items() if key in used}
        return {node_id: self.entries[signatures[node_id]] for node_id in graph
                if signatures.get(node_id) in self.entries}

    def store(self, signature: str | None, results: tuple, ui: dict | None) -> None:
        if signature is not None:
            self.entries[signature] = (results, ui)
