"""The next catalog while the bot runs: changed manifests are checked like ``engine validate`` (against
the live ``object_info`` of the backends), and a broken one keeps its previous good version serving.

``reload_catalog`` is pure apart from reading the files (run it in a thread). A manifest file is
*changed* when its manifest or workflow graph differs from what is served (a fingerprint of both),
so saving a file unchanged, or fixing a file back to the served version, changes nothing. A
changed manifest is *broken* when ``engine validate`` finds a problem in it offline, or when every
backend that answered lacks something it needs (no backend up: offline checks only).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import Issue
from ..limits import DEFAULT_LIMITS, Limits
from ..manifest.catalog import Catalog, Workflow, catalog_of, inspect_manifest
from .validate import manifest_files, validate_paths

__all__ = ["CatalogChange", "reload_catalog", "fingerprint"]


@dataclass(frozen=True)
class CatalogChange:
    """What a reload did; ``problems`` are ``file:line:col: param: problem`` lines."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()  # broken now, previous good version still serving
    refused: tuple[str, ...] = ()  # broken and new: not loaded
    problems: tuple[str, ...] = field(default=())

    @property
    def any(self) -> bool:
        """The served catalog changed."""
        return bool(self.added or self.changed or self.removed)

    def lines(self) -> list[str]:
        parts = [f"{label}: {', '.join(names)}" for label, names in (
            ("added", self.added), ("changed", self.changed), ("removed", self.removed),
            ("broken, previous version kept", self.kept), ("broken, not loaded", self.refused)) if names]
        return (parts or ["no change"]) + list(self.problems)


def fingerprint(workflow: Workflow) -> str:
    """Manifest and graph as served: equal fingerprints run the same jobs."""
    text = workflow.manifest.model_dump_json() + json.dumps(workflow.graph, sort_keys=True, default=dict)
    return hashlib.sha256(text.encode()).hexdigest()


def _server_issues(file: Path, workflows_dir: Path | None, infos: Sequence[Mapping[str, Any]],
                   limits: Limits) -> list[Issue]:
    """Nothing when some backend can run it; else the first backend's problems."""
    found = []
    for info in infos:
        issues = list(validate_paths([file], workflows_dir=workflows_dir, object_info=info, limits=limits).issues)
        if not issues:
            return []
        found.append(issues)
    return found[0] if found else []


def reload_catalog(manifests_dir: Path, workflows_dir: Path | None, current: Catalog,
                   object_infos: Sequence[Mapping[str, Any]] = (),
                   limits: Limits = DEFAULT_LIMITS) -> tuple[Catalog, CatalogChange]:
    """The catalog to serve next and what changed (see the module docstring)."""
    served = {str(wf.source.file): wf for wf in current}
    chosen: list[Workflow] = []
    added: list[str] = []
    changed: list[str] = []
    kept: list[str] = []
    refused: list[str] = []
    problems: list[str] = []
    for file in manifest_files([manifests_dir]) if Path(manifests_dir).is_dir() else []:
        before = served.get(str(file))
        inspection = inspect_manifest(file, workflows_dir, limits)
        new = inspection.workflow
        if new is not None and before is not None and fingerprint(new) == fingerprint(before):
            chosen.append(before)  # unchanged: keep the very object (jobs and buttons hold it)
            continue
        issues = list(inspection.issues) if new is None else _server_issues(file, workflows_dir, object_infos, limits)
        if new is not None and not issues:
            chosen.append(new)
            (changed if before is not None else added).append(new.name)
            continue
        problems += [str(issue) for issue in issues]
        if before is not None:
            chosen.append(before)
            kept.append(before.name)
        else:
            refused.append(Path(file).stem)
    catalog = catalog_of(chosen)
    problems += [str(issue) for issue in catalog.issues]
    removed = sorted(set(current.workflows) - set(catalog.workflows))
    return catalog, CatalogChange(tuple(added), tuple(changed), tuple(removed), tuple(kept), tuple(refused),
                                  tuple(dict.fromkeys(problems)))
