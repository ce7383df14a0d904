"""The layers, checked statically (every import statement, top-level or inside a function).

- ``engine`` never imports ``discord`` or ``bot``.
- Inside ``engine`` imports only go down: errors/limits/bounded/inputs → comfy → manifest → checks → backends
  → jobs → runtime → cli and the package's public face (``engine/__init__.py``).
- ``bot`` uses the engine's public face only: ``from engine import …`` (names in ``engine.__all__``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import engine

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {  # first dotted part below engine → rank; an import may only reach the same rank or lower
    "errors": 0, "limits": 0, "bounded": 0, "inputs": 0, "comfy": 1, "manifest": 2, "checks": 3, "backends": 4, "jobs": 5, "runtime": 6,
    "cli": 7, "": 7,
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _rank(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path):
    source = ROOT / "engine" / "jobs" / "job.py"
    found = imports(source)
    assert any(module == "engine.manifest.apply" for _, module, _ in found)
    assert any(module == "engine.jobs.progress" for _, module, _ in found)


@pytest.mark.parametrize("path", _modules("engine"), ids=lambda p: _dotted(p))
def test_engine_never_imports_discord_or_bot(path):
    bad = [f"{path.name}:{line}: {module}" for line, module, _ in imports(path)
           if module.split(".")[0] in ("discord", "bot")]
    assert not bad


@pytest.mark.parametrize("path", _modules("engine"), ids=lambda p: _dotted(p))
def test_engine_imports_only_go_down(path):
    own = _rank(_dotted(path))
    upward = [f"{path.name}:{line}: {module}" for line, module, _ in imports(path)
              if module.startswith("engine.") and _rank(module) > own]
    assert not upward


@pytest.mark.parametrize("path", _modules("bot"), ids=lambda p: _dotted(p))
def test_bot_uses_only_the_public_face_of_engine(path):
    public = set(engine.__all__)
    bad = []
    for line, module, names in imports(path):
        if module.startswith("engine."):
            bad.append(f"{path.name}:{line}: from {module} import …")
        elif module == "engine":
            bad += [f"{path.name}:{line}: engine.{name} is not in engine.__all__" for name in names
                    if name not in public]
    assert not bad


def test_the_public_face_names_only_what_exists():
    missing = [name for name in engine.__all__ if not hasattr(engine, name)]
    assert not missing
    assert len(engine.__all__) == len(set(engine.__all__))


def test_engine_keeps_at_most_six_modules_at_its_top():
    top = [p.name for p in (ROOT / "engine").glob("*.py")]
    assert len(top) <= 6, top


KIND_HOMES = {"engine/manifest/param.py", "engine/manifest/kinds.py", "engine/manifest/upload_kinds.py",
              "engine/manifest/model.py", "bot/widgets.py"}
_KINDS = r"[\"'](?:text|int|float|bool|choice|seed|image|audio)[\"']"
KIND_BRANCH = re.compile("|".join([
    rf"\.type\s*(?:==|!=)\s*(?:{_KINDS}|[\w.\[\]\"']+\.type\b)",  # p.type == "seed", a.type != b.type
    rf"\.type\s+(?:not\s+)?in\s*[(\[{{]\s*{_KINDS}",  # p.type in ("int", "float")
    r"\bmatch\s+[\w.\[\]\"']*\.type\b",  # match param.type:
    rf"\bcase\s+{_KINDS}",  # case "image":
    r"isinstance\([^)]*\b(?:Text|Int|Float|Bool|Choice|Seed|Image|Audio)Param\b",
]))


def test_kind_branching_lives_in_the_param_model_and_the_widget_table():
    """Consumers ask the param; only the param model and ``bot/widgets.py`` look at its kind."""
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _modules("engine") + _modules("bot") if str(path.relative_to(ROOT)) not in KIND_HOMES
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if KIND_BRANCH.search(line)]
    assert len(found) <= 5, found


def test_the_kind_branch_pattern_catches_the_usual_spellings():
    for line in ('if param.type == "seed":', "match param.type:", 'case "image":', "isinstance(p, ChoiceParam)",
                 'if p.type in ("int", "float"):', "old.params[n].type != param.type"):
        assert KIND_BRANCH.search(line), line
    assert not KIND_BRANCH.search("if frame.type == aiohttp.WSMsgType.TEXT")


SIZED = _modules("engine") + _modules("bot")


@pytest.mark.parametrize("path", SIZED, ids=lambda p: _dotted(p))
def test_modules_and_functions_stay_small(path):
    """Modules of at most 400 lines, functions (and methods) of at most 40."""
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 40]
    assert not long
