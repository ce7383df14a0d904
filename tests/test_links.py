"""Every relative link in the repository's Markdown files, docstrings and comments resolves.

- Markdown: ``[text](target)``, ``![alt](target)`` and ``[ref]: target`` whose target is not a URL
  name a file relative to the Markdown file; a ``#fragment`` must name one of its headings.
- Everywhere (Markdown, Python, pyproject.toml): a path of this repository written out —
  ``docs/architecture.md``, ``engine/manifest/kinds.py``, ``tests/data/comfyui/captures/…`` — or a
  bare ``NAME.md`` must exist (relative to the repository, or to the file that names it).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "venv", "build", "dist", ".mypy_cache", ".pytest_cache", ".hypothesis", "node_modules",
        "__pycache__"}
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
TOP = r"(?:engine|bot|tests|bench|docs|manifests|workflows|\.ci)"
REPO_PATH = re.compile(rf"(?<![\w/.-]){TOP}/[\w/.-]*[\w-]\.(?:py|md|json|yaml|toml|txt)\b"
                       r"|(?<![\w/.-])(?:[\w.-]+/)*[\w.-]+\.md\b")
PLACEHOLDER = re.compile(r"\b(?:NAME|PATH|FILE|DIR)\b")  # manifests/NAME.yaml: a pattern, not a file


def _files(*patterns: str) -> list[Path]:
    found = []
    for pattern in patterns:
        found += [p for p in ROOT.rglob(pattern) if not SKIP.intersection(p.relative_to(ROOT).parts)]
    return sorted(set(found))


MARKDOWN = _files("*.md")
SOURCES = [p for p in _files("*.py", "*.md", "pyproject.toml") if p != Path(__file__).resolve()]  # not its examples


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def _is_url(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_resolve(path):
    broken = []
    for match in MARKDOWN_LINK.finditer(path.read_text(encoding="utf-8")):
        target = match.group(1) or match.group(2)
        if _is_url(target):
            continue
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    assert not broken


def prose(path: Path) -> str:
    """What people read in ``path``: a Python file's docstrings and comments, any other file whole."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text
    tree = ast.parse(text)
    docs = [ast.get_docstring(node) or "" for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    comments = [tok.string for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT]
    return "\n".join(docs + comments)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_in_text_exist(path):
    text = prose(path)
    missing = sorted({name for name in REPO_PATH.findall(text) if not PLACEHOLDER.search(name)
                      and not (ROOT / name).exists() and not (path.parent / name).exists()})
    assert not missing


def test_the_checks_catch_what_they_should(tmp_path):
    assert slug("## 6.2 The order of `executing` messages!".lstrip("# ")) == "62-the-order-of-executing-messages"
    links = [m.group(1) or m.group(2) for m in MARKDOWN_LINK.finditer(
        "see [the notes](docs/x.md#a-b) and ![img](pic.png \"t\")\n[ref]: ../up.md\n[web](https://x.y)")]
    assert links == ["docs/x.md#a-b", "pic.png", "../up.md", "https://x.y"]
    assert REPO_PATH.findall("read docs/comfyui-protocol.md §6 and engine/manifest/kinds.py, not x/docs/a.py") == [
        "docs/comfyui-protocol.md", "engine/manifest/kinds.py"]
    assert REPO_PATH.findall("see runtime_api.md and research/discord.md, not https://x.org/a/README.md") == [
        "runtime_api.md", "research/discord.md"]
    assert PLACEHOLDER.search("manifests/NAME.yaml") and not PLACEHOLDER.search("docs/README.md")
