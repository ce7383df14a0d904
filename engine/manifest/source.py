"""Reading YAML with the position of every key, so each problem can point at ``file:line:col``.

Before anything is built, the document's events are counted (``yaml_bounds_issue``): alias uses,
nodes once aliases are expanded, and nesting must stay within ``Limits`` — a "billion laughs"
manifest is refused in milliseconds at the line of the alias that breaks the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

from ..errors import Issue
from ..limits import DEFAULT_LIMITS, Limits

__all__ = ["YamlSource", "read_yaml", "yaml_bounds_issue"]


@dataclass(frozen=True)
class YamlSource:
    """A parsed YAML document (plain dicts/lists); the position-keeping round-trip tree is parsed
    only when a problem needs a location (the round-trip parser is ~6× slower than the C one)."""

    file: str
    data: Any
    text: str = field(default="", repr=False)

    @cached_property
    def tree(self) -> Any:
        try:
            return YAML(typ="rt").load(self.text)
        except (YAMLError, ValueError, TypeError, RecursionError):
            return None

    def position(self, loc: tuple) -> tuple[int, int]:
        """1-based (line, col) of the deepest key of ``loc`` present in the document.

        Keys that are not in the document (pydantic's union tags, missing fields) are skipped.
        """
        node, line, col = self.tree, 1, 1
        for key in loc:
            if isinstance(node, CommentedMap) and key in node:
                line, col = node.lc.key(key)
                line, col = line + 1, col + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line, col = node.lc.item(key)
                line, col = line + 1, col + 1
                node = node[key]
        return line, col

    def issue(self, loc: tuple, param: str, message: str, code: str = "invalid") -> Issue:
        line, col = self.position(loc)
        return Issue(self.file, line, col, param, message, code)


def _plain(node: Any) -> Any:
    """Fresh dicts/lists (anchors unshared) with scalar keys only."""
    if isinstance(node, dict):
        return {k if isinstance(k, (str, int, float, bool)) else str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _bounds_problem(event: Any, state: dict[str, Any], limits: Limits) -> str | None:
    """Count one event into ``state``; the broken limit's text, if any."""
    if isinstance(event, AliasEvent):
        state["aliases"] += 1
        if state["aliases"] > limits.max_yaml_aliases:
            return f"more than {limits.max_yaml_aliases} aliases (limit max_yaml_aliases)"
        state["nodes"] += state["sizes"].get(event.anchor, 1)
    elif isinstance(event, ScalarEvent):
        state["nodes"] += 1
        if event.anchor:
            state["sizes"][event.anchor] = 1
    elif isinstance(event, CollectionStartEvent):
        state["open"].append((event.anchor, state["nodes"]))
        state["nodes"] += 1
        if len(state["open"]) > limits.max_yaml_depth:
            return f"nested more than {limits.max_yaml_depth} levels deep (limit max_yaml_depth)"
    elif isinstance(event, CollectionEndEvent):
        anchor, before = state["open"].pop()
        if anchor:
            state["sizes"][anchor] = state["nodes"] - before
    if state["nodes"] > limits.max_yaml_nodes:
        return f"expands to more than {limits.max_yaml_nodes} nodes through its aliases (limit max_yaml_nodes)"
    return None


def yaml_bounds_issue(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> Issue | None:
    """The first limit ``text`` breaks (aliases, expanded nodes, nesting), located; None if none.

    Works on parser events, so nothing is built: the cost is linear in the text. Syntax errors
    are left to the loader, which locates them.
    """
    state: dict[str, Any] = {"aliases": 0, "nodes": 0, "sizes": {}, "open": []}
    try:
        for event in YAML(typ="safe").parse(text):
            problem = _bounds_problem(event, state, limits)
            if problem:
                mark = event.start_mark
                return Issue(file, mark.line + 1, mark.column + 1, "", f"YAML: {problem}", "limit")
    except (YAMLError, ValueError, TypeError, RecursionError):
        return None
    return None


def read_yaml(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> tuple[YamlSource | None, list[Issue]]:
    """Parse ``text`` within ``limits``; on failure return ``None`` and the located problem."""
    bounds = yaml_bounds_issue(text, file, limits)
    if bounds is not None:
        return None, [bounds]
    yaml = YAML(typ="safe")  # the C parser when ruamel.yaml.clib is installed
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, [Issue(file, line, col, "", f"YAML syntax: {problem}", "yaml")]
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        return None, [Issue(file, 1, 1, "", f"YAML syntax: {type(exc).__name__}", "yaml")]
    try:
        data = _plain(tree)
    except (TypeError, RecursionError):
        return None, [Issue(file, 1, 1, "", "YAML: unsupported structure (anchors or keys)", "yaml")]
    return YamlSource(file, data, text), []
