"""Reading YAML with the position of every key, so each problem can point at ``file:line:col``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import Issue

__all__ = ["YamlSource", "read_yaml"]


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


def read_yaml(text: str, file: str) -> tuple[YamlSource | None, list[Issue]]:
    """Parse ``text``; on failure return ``None`` and the located syntax problem."""
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
