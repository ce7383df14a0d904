"""docs/architecture.md stays true: every hop of "One request, hop by hop" names a file that exists
and a function, class or method defined in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
ROW = re.compile(r"^\|\s*\d+\s*\|\s*([\w/.]+\.py)\s*\|\s*`([\w.]+)`\s*\|", re.M)


def hops() -> list[tuple[str, str]]:
    return ROW.findall(DOC.read_text(encoding="utf-8"))


def defined(path: Path) -> set[str]:
    """Top-level functions and classes of ``path``, and ``Class.method`` for their methods."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_the_walk_through_is_complete():
    files = {file for file, _ in hops()}
    assert len(hops()) >= 30
    assert {"bot/commands/slash.py", "bot/jobs/flow.py", "bot/access.py", "engine/runtime.py",
            "engine/manifest/apply.py", "engine/jobs/job.py", "engine/comfy/client.py",
            "bot/delivery/message.py"} <= files


@pytest.mark.parametrize(("file", "name"), hops(), ids=[f"{f}:{n}" for f, n in hops()])
def test_every_hop_exists(file, name):
    path = ROOT / file
    assert path.is_file(), file
    assert name in defined(path), f"{file} defines no {name}"
