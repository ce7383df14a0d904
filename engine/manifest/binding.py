"""Resolving ``bind`` JSONPaths to concrete node inputs, once, when a manifest is loaded.

A path may address a node by id (``$["6"].inputs.text``) or by a filter on its title or class
(``$[?(@._meta.title == "Negative Prompt")].inputs.text``). The template graph never changes after
loading, so every path is parsed and resolved here and ``apply_params`` only writes to the
resulting ``Target``s — no JSONPath work per job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import Child, Fields, Index, Root
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse

__all__ = ["Target", "BindError", "resolve_bind", "is_link"]


@dataclass(frozen=True)
class Target:
    """One node input a parameter writes to: ``graph[node_id]["inputs"][input_name]``."""

    node_id: str
    input_name: str

    def read(self, graph: dict) -> Any:
        return graph[self.node_id]["inputs"][self.input_name]


class BindError(ValueError):
    """A bind path that is malformed or does not address a node input."""


def is_link(value: Any) -> bool:
    """True for a ComfyUI link ``[source_node_id, output_index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


@lru_cache(maxsize=4096)
def _compile(path: str):
    try:
        return parse(path)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # jsonpath-ng raises bare Exception too
        raise BindError(f"bind {path!r} is not a valid JSONPath ({type(exc).__name__})") from None


def _steps(path_node) -> list:
    """Flatten a jsonpath-ng full_path into its atomic steps (Fields / Index)."""
    if isinstance(path_node, Child):
        return _steps(path_node.left) + _steps(path_node.right)
    if isinstance(path_node, Root):
        return []
    return [path_node]


def _keys(graph: dict, full_path) -> list[str]:
    """Concrete keys from the root for a match. jsonpath-ng's filters report a dict's members by
    position (``[i]``), so positions are mapped back to the dict's keys here."""
    keys: list = []
    node: Any = graph
    for step in _steps(full_path):
        key: Any
        if isinstance(step, Fields) and len(step.fields) == 1:
            key = step.fields[0]
        elif isinstance(step, Index) and len(step.indices) == 1 and isinstance(node, dict):
            key = list(node.keys())[step.indices[0]]
        elif isinstance(step, Index) and len(step.indices) == 1 and isinstance(node, list):
            key = step.indices[0]
        else:
            raise BindError("bind must address single node inputs (no wildcards over inputs)")
        keys.append(key)
        node = node[key]
    return keys


def resolve_bind(graph: dict, path: str) -> list[Target]:
    """All node inputs ``path`` addresses in ``graph`` (possibly none)."""
    expr = _compile(path)
    try:
        matches = expr.find(graph)  # filters rewrite only their own wrappers, never the data (tested)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as exc:
        raise BindError(f"bind {path!r} cannot be evaluated ({type(exc).__name__})") from None
    targets = []
    for match in matches:
        keys = _keys(graph, match.full_path)
        if len(keys) != 3 or keys[1] != "inputs" or not isinstance(graph.get(keys[0]), dict):
            raise BindError(f"bind {path!r} must end at a node input: $[\"<id>\"].inputs.<name>")
        target = Target(str(keys[0]), str(keys[2]))
        if is_link(target.read(graph)):
            raise BindError(f"bind {path!r} points at input {target.input_name!r} of node {target.node_id}, "
                            "which is a link to another node, not a value")
        if target not in targets:
            targets.append(target)
    return targets
