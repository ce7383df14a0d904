"""``engine validate``'s core: every problem of a set of manifests, collected in one ``Report``.

Builds on ``catalog.inspect_manifest`` (schema, workflow file, binds, outputs) and
``catalog.catalog_of`` (duplicate names, actions), and adds Discord's limits
(``limit_checks``) and, given a server's ``/object_info``, the server checks (``server_checks``).
A manifest that fails its schema is still checked param by param, so one run reports everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from ..manifest.binding import BindError, Target, resolve_bind
from ..manifest.catalog import Inspection, catalog_of, inspect_manifest
from ..errors import Issue
from ..limits import DEFAULT_LIMITS, Limits
from .discord_payloads import command_limit_issues, manifest_limit_issues, param_limit_issues
from ..manifest.model import Manifest, Param
from ..manifest.kinds import parse_param
from .server import graph_issues, output_issues, param_issues
from ..manifest.source import YamlSource

__all__ = ["ManifestSummary", "Report", "validate_paths", "manifest_files"]


@dataclass(frozen=True)
class ManifestSummary:
    """One manifest's line in the report."""

    file: str
    name: str
    command: str
    params: int
    advanced: int
    actions: int
    issues: int

    @property
    def ok(self) -> bool:
        return self.issues == 0

    def line(self) -> str:
        head = f"{'ok  ' if self.ok else 'FAIL'} {self.name} ({self.command})"
        if not self.ok:
            return f"{head} — {_count(self.issues, 'issue')}"
        return f"{head} — {_count(self.params, 'param')}, {self.advanced} advanced, {_count(self.actions, 'action')}"

    def to_dict(self) -> dict:
        return {"file": self.file, "name": self.name, "command": self.command, "params": self.params,
                "advanced": self.advanced, "actions": self.actions, "issues": self.issues, "ok": self.ok}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Report:
    """Per manifest a summary, and every issue found, sorted by file and position."""

    manifests: tuple[ManifestSummary, ...]
    issues: tuple[Issue, ...]

    @property
    def ok(self) -> bool:
        return not self.issues

    def lines(self) -> list[str]:
        """The issues (``file:line:col: param: problem``), then one summary line per manifest."""
        return [str(i) for i in self.issues] + [m.line() for m in self.manifests]

    def to_dict(self) -> dict:
        return {"manifests": [m.to_dict() for m in self.manifests],
                "issues": [i.to_dict() for i in self.issues], "ok": self.ok}


@dataclass(frozen=True)
class _Subject:
    """What could be understood of one manifest, even a broken one."""

    source: YamlSource
    manifest: Manifest | None
    params: dict[str, Param]
    targets: dict[str, tuple[Target, ...]]
    graph: dict | None


def manifest_files(paths: Iterable[Path | str]) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files of each folder in ``paths``, and each file as given."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    return list(dict.fromkeys(files))  # a file named twice is checked once


def _neighbours(paths: Iterable[Path], files: list[Path]) -> list[Path]:
    """The other manifests in the folder of each file named on its own: a manifest's actions and
    command group are checked among the manifests it will be loaded with (only its own issues are
    reported)."""
    folders = {path.parent for path in paths if not path.is_dir()}
    return [f for f in manifest_files(sorted(folders)) if f not in files]


def _raw_params(data: Any) -> dict[str, Any]:
    params = data.get("params") if isinstance(data, dict) else None
    return {str(k): v for k, v in params.items()} if isinstance(params, dict) else {}


def _parsed_params(data: Any) -> dict[str, Param]:
    """Params that are valid on their own, when the manifest as a whole is not."""
    parsed = {name: parse_param(raw) for name, raw in _raw_params(data).items()}
    return {name: param for name, param in parsed.items() if param is not None}


def _targets(params: Mapping[str, Param], graph: dict) -> dict[str, tuple[Target, ...]]:
    targets = {}
    for name, param in params.items():
        found: list[Target] = []
        for path in param.binds:
            try:
                found += [t for t in resolve_bind(graph, path) if t not in found]
            except BindError:
                continue  # already reported by inspect_manifest
        targets[name] = tuple(found)
    return targets


def _subject(inspection: Inspection) -> _Subject | None:
    src = inspection.source
    if src is None or not isinstance(src.data, dict):
        return None
    if inspection.workflow is not None:
        wf = inspection.workflow
        return _Subject(src, wf.manifest, dict(wf.manifest.params), dict(wf.targets), inspection.graph)
    try:
        manifest = Manifest.model_validate({"name": Path(inspection.file).stem, **src.data})
    except ValidationError:
        manifest = None
    params = dict(manifest.params) if manifest else _parsed_params(src.data)
    graph = inspection.graph
    return _Subject(src, manifest, params, _targets(params, graph) if graph else {}, graph)


def _overridden(subject: _Subject) -> set[Target]:
    """Inputs whose workflow literal never reaches the server: always set from a param, or bypassed."""
    return {t for name, param in subject.params.items() for t in subject.targets.get(name, ())
            if param.required or param.default is not None or param.when_unset == "bypass"}


def _subject_issues(subject: _Subject, object_info: Mapping | None) -> list[Issue]:
    src, issues = subject.source, []
    for name, param in subject.params.items():
        issues += param_limit_issues(src, name, param)
    if subject.manifest is not None:
        issues += manifest_limit_issues(src, subject.manifest)
    if object_info is None or subject.graph is None:
        return issues
    issues += graph_issues(src, subject.graph, object_info, _overridden(subject))
    for name, param in subject.params.items():
        issues += param_issues(src, name, param, subject.targets.get(name, ()), subject.graph, object_info)
    if subject.manifest is not None:
        issues += output_issues(src, subject.graph, subject.manifest.outputs, object_info)
    return issues


def _summary(inspection: Inspection, subject: _Subject | None, issues: int) -> ManifestSummary:
    stem = Path(inspection.file).stem
    manifest = subject.manifest if subject else None
    if manifest is None:
        data = subject.source.data if subject else {}
        name = str(data.get("name") or stem)
        return ManifestSummary(inspection.file, name, str(data.get("command") or name), len(_raw_params(data)), 0, 0, issues)
    return ManifestSummary(inspection.file, manifest.name, manifest.command or manifest.name, len(manifest.params),
                           len(manifest.advanced_params), len(manifest.actions), issues)


def validate_paths(
    paths: Iterable[Path | str],
    *,
    workflows_dir: Path | str | None = None,
    object_info: Mapping[str, Any] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Report:
    """Check every manifest under ``paths`` (folders or files); never stops at the first problem.

    ``workflows_dir`` defaults to ``workflows/`` next to each manifest's folder. With
    ``object_info`` (a server's ``GET /object_info``), the server checks run too.
    """
    asked_paths = [Path(p) for p in paths]
    files = manifest_files(asked_paths)
    wf_dir = Path(workflows_dir) if workflows_dir else None
    issues: list[Issue] = []
    found: list[tuple[Inspection, _Subject | None]] = []
    for file in files:
        inspection = inspect_manifest(file, wf_dir, limits)
        subject = _subject(inspection)
        issues += inspection.issues
        if subject is not None:
            issues += _subject_issues(subject, object_info)
        found.append((inspection, subject))
    known = found + [(i, _subject(i)) for i in (inspect_manifest(f, wf_dir, limits) for f in _neighbours(asked_paths, files))]
    issues += catalog_of(i.workflow for i, _ in known if i.workflow is not None).issues
    issues += command_limit_issues((s.source, s.manifest) for _, s in known if s and s.manifest)
    asked = {str(i.file) for i, _ in found}
    unique = sorted(x for x in set(issues) if x.file in asked)
    summaries = tuple(_summary(i, s, sum(1 for x in unique if x.file == i.file)) for i, s in found)
    return Report(summaries, tuple(unique))
