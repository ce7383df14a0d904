"""Loading manifests and their workflow graphs into ``Workflow``s, collecting every problem at once.

``load_workflow`` checks what can be checked without a server: the manifest schema (unknown keys
included), the workflow file (exists, API format), every bind (resolves to ≥ 1 node input), and
output node ids. Files are read within ``Limits`` (bytes, YAML aliases and nesting, JSON
nesting), and ``workflow:`` must name a file inside the workflows folder. ``load_catalog`` loads a folder and adds cross-manifest checks (duplicate names,
actions pointing at manifests that take the source's kind of result: ``Manifest.param_taking``).
Server-aware checks live in ``validate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from pydantic import ValidationError

from ..bounded import parse_json, read_file
from ..comfy.object_info import input_max
from ..errors import Issue, LimitExceeded, ManifestError
from ..limits import DEFAULT_LIMITS, Limits
from .binding import BindError, Target, is_link, resolve_bind
from .model import Manifest
from .kinds import PARAM_TYPES, Param, parse_param
from .source import YamlSource, read_yaml

__all__ = ["Workflow", "Catalog", "Inspection", "inspect_manifest", "load_workflow", "load_catalog", "catalog_of",
           "default_workflows_dir"]

_HINT_KEYS = ("caption", "default", "min_length", "max_length", "min", "max", "filter", "choices_from", "choices",
              "when_unset", "bind")


@dataclass(frozen=True)
class Workflow:
    """A loaded manifest with its template graph (never mutated) and resolved bind targets."""

    manifest: Manifest
    graph: Mapping[str, Any]
    targets: Mapping[str, tuple[Target, ...]]
    source: YamlSource = field(repr=False)
    workflow_file: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    @cached_property
    def link_inputs(self) -> tuple[tuple[str, str], ...]:
        """Every (node id, input name) of the template holding a link; bypasses only rewire these."""
        return tuple((node_id, name) for node_id, node in self.graph.items()
                     for name, value in node["inputs"].items() if is_link(value))

    @cached_property
    def random_params(self) -> tuple[str, ...]:
        """Params that get a random value when unset (seeds; not those bypassed instead)."""
        return tuple(name for name, param in self.manifest.params.items()
                     if param.is_random and param.when_unset == "default")

    def output_nodes(self, object_info: Mapping[str, Any] | None = None) -> list[str]:
        """The manifest's ``outputs``, else every node whose class is an output node (needs object_info),
        else every node whose class name starts with Save/Preview."""
        if self.manifest.outputs:
            return list(self.manifest.outputs)
        nodes = []
        for node_id, node in self.graph.items():
            cls = node.get("class_type", "")
            info = (object_info or {}).get(cls)
            if info is not None and info.get("output_node") or info is None and re.match(r"(Save|Preview)", cls):
                nodes.append(node_id)
        return nodes

    def param_of_node(self, node_id: str) -> list[str]:
        """Params bound to ``node_id`` (used to map server errors back to parameters)."""
        return [name for name, targets in self.targets.items() if any(t.node_id == node_id for t in targets)]

    def input_limit(self, name: str, object_info: Mapping[str, Any] | None) -> int | None:
        """The smallest ``max`` the server (its ``object_info``) enforces on the inputs ``name`` is bound to."""
        if not object_info:
            return None
        maxes = [input_max(object_info, str(self.graph[t.node_id].get("class_type")), t.input_name)
                 for t in self.targets.get(name, ())]
        known = [int(high) for high in maxes if high is not None]
        return min(known) if known else None

    def param_of_input(self, node_id: str, input_name: str) -> str | None:
        for name, targets in self.targets.items():
            if Target(node_id, input_name) in targets:
                return name
        return None


def default_workflows_dir(manifests_dir: Path) -> Path:
    return manifests_dir.parent / "workflows"


def _schema_issues(src: YamlSource, exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        param = str(loc[1]) if len(loc) > 1 and loc[0] == "params" else ""
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            message = f"missing required key {loc[-1]!r}"
        elif err["type"] == "union_tag_invalid":
            message = f"unknown type {err.get('input', {}).get('type')!r} ({', '.join(PARAM_TYPES)})" \
                if isinstance(err.get("input"), dict) else message
        hint = next((k for k in _HINT_KEYS if message.startswith(k) or f" {k} " in f" {message} "), None)
        if hint and err["type"] == "value_error":
            loc = (*loc, hint)
        issues.append(src.issue(loc, param, message, err["type"]))
    return issues


def workflow_path(workflows_dir: Path, name: str) -> Path | None:
    """``workflows_dir / name`` when ``name`` is a relative path that stays inside the folder
    (no ``..``, not absolute); None otherwise. Symlinks the operator put there are followed."""
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or not parts:
        return None
    return workflows_dir / name


def _read_graph(path: Path | None, src: YamlSource, limits: Limits = DEFAULT_LIMITS) -> tuple[dict | None, list[Issue]]:
    loc = ("workflow",)
    if path is None:
        return None, [src.issue(loc, "", "workflow must name a file inside the workflows folder", "workflow_outside")]
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long for the filesystem, a NUL byte …
        found = False
    if not found:
        return None, [src.issue(loc, "", f"workflow file {path.name[:80]} not found", "workflow_missing")]
    try:
        raw = read_file(path, max_bytes=limits.max_workflow_bytes, limit="max_workflow_bytes",
                        what=f"workflow {path.name[:80]}")
        graph = parse_json(raw, max_depth=limits.max_json_depth, what=f"workflow {path.name[:80]}")
    except LimitExceeded as exc:
        return None, [src.issue(loc, "", str(exc), "limit")]
    except (OSError, ValueError) as exc:
        return None, [src.issue(loc, "", f"workflow {path.name[:80]} is not valid JSON ({type(exc).__name__})",
                                "workflow_json")]
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        return None, [src.issue(loc, "", f"workflow {path.name} is a UI-format export; in ComfyUI use "
                                         "\"Export (API)\" and save that file instead", "workflow_ui_format")]
    bad = [k for k, v in graph.items() if not (isinstance(v, dict) and isinstance(v.get("class_type"), str)
                                               and isinstance(v.get("inputs", {}), dict))] \
        if isinstance(graph, dict) else ["<root>"]
    if bad or not graph:
        return None, [src.issue(loc, "", f"workflow {path.name} is not an API-format graph (nodes without "
                                         f"class_type/inputs: {', '.join(map(str, bad[:5])) or 'none'})", "workflow_format")]
    for node in graph.values():
        node.setdefault("inputs", {})
    return graph, []


def _raw_params(data: dict) -> dict[str, Any]:
    """Params as written, for checking binds even when the schema check failed."""
    params = data.get("params")
    return {str(k): v for k, v in params.items() if isinstance(v, dict)} if isinstance(params, dict) else {}


def _bind_targets(name: str, bind: Any, graph: dict, src: YamlSource, workflow: str
                  ) -> tuple[tuple[Target, ...], list[Issue]]:
    """The node inputs one param's ``bind`` (a path or a list of paths) resolves to, and its problems."""
    paths = [bind] if isinstance(bind, str) else [p for p in bind if isinstance(p, str)] if isinstance(bind, list) else []
    found: list[Target] = []
    issues = []
    for i, path in enumerate(paths):
        loc = ("params", name, "bind") + ((i,) if isinstance(bind, list) else ())
        try:
            matched = resolve_bind(graph, path)
        except BindError as exc:
            issues.append(src.issue(loc, name, str(exc), "bind_invalid"))
            continue
        if not matched:
            issues.append(src.issue(loc, name, f"bind {path!r} matches no node input in {workflow}", "bind_unmatched"))
        found += [t for t in matched if t not in found]
    return tuple(found), issues


def _upload_issues(name: str, param: Param, targets: tuple[Target, ...], graph: dict, src: YamlSource) -> list[Issue]:
    """An upload param's file must reach a loader's file input (``LoadImage.image``, ``LoadAudio.audio``)."""
    problems = (param.loader_problem(graph[t.node_id]["class_type"], t.input_name) for t in targets)
    return [src.issue(("params", name, "bind"), name, problem, "bind_type") for problem in problems if problem]


def _resolve_targets(params: Mapping[str, Any], graph: dict, src: YamlSource, workflow: str) -> tuple[dict, list[Issue]]:
    """Targets of every param (parsed, or as written when the manifest failed its schema)."""
    targets, issues = {}, []
    for name, param in params.items():
        bind = param.get("bind") if isinstance(param, dict) else param.bind
        targets[name], found_issues = _bind_targets(name, bind, graph, src, workflow)
        parsed = parse_param(param) if isinstance(param, dict) else param
        if parsed is not None:
            found_issues += _upload_issues(name, parsed, targets[name], graph, src)
        issues += found_issues
    return targets, issues


def _output_issues(manifest: Manifest, graph: dict, src: YamlSource) -> list[Issue]:
    return [src.issue(("outputs", i), "", f"output node {node_id!r} is not in {manifest.workflow}", "output_missing")
            for i, node_id in enumerate(manifest.outputs) if node_id not in graph]


def _freeze(graph: dict) -> Mapping[str, Any]:
    return MappingProxyType(graph)


@dataclass(frozen=True)
class Inspection:
    """Everything learnt from one manifest file, good or bad (``engine validate`` reports it all)."""

    file: str
    workflow: Workflow | None
    graph: dict | None
    source: YamlSource | None
    issues: list[Issue]


def _read_manifest(path: Path, file: str, limits: Limits) -> tuple[str | None, list[Issue]]:
    try:
        raw = read_file(path, max_bytes=limits.max_manifest_bytes, limit="max_manifest_bytes", what="the manifest")
        return raw.decode("utf-8"), []
    except LimitExceeded as exc:
        return None, [Issue(file, 0, 0, "", str(exc), "limit")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Issue(file, 0, 0, "", f"cannot read manifest ({type(exc).__name__})", "io")]


def inspect_manifest(manifest_path: Path, workflows_dir: Path | None = None,
                     limits: Limits = DEFAULT_LIMITS) -> Inspection:
    """Load one manifest and its workflow, collecting every problem instead of stopping at the first."""
    manifest_path = Path(manifest_path)
    workflows_dir = Path(workflows_dir) if workflows_dir else default_workflows_dir(manifest_path.parent)
    file = str(manifest_path)
    text, issues = _read_manifest(manifest_path, file, limits)
    if text is None:
        return Inspection(file, None, None, None, issues)
    src, issues = read_yaml(text, file, limits)
    if src is None:
        return Inspection(file, None, None, None, issues)
    if not isinstance(src.data, dict):
        return Inspection(file, None, None, src, [Issue(file, 1, 1, "", "a manifest is a YAML mapping of keys", "schema")])
    data = {"name": manifest_path.stem, **src.data}
    manifest = None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        issues += _schema_issues(src, exc)
    workflow_name = manifest.workflow if manifest else str(data.get("workflow") or f"{data['name']}.json")
    graph, graph_issues = _read_graph(workflow_path(workflows_dir, workflow_name), src, limits)
    issues += graph_issues
    if graph is None:
        return Inspection(file, None, None, src, issues)
    targets, bind_issues = _resolve_targets(manifest.params if manifest else _raw_params(data), graph, src, workflow_name)
    issues += bind_issues
    if manifest is not None:
        issues += _output_issues(manifest, graph, src)
    workflow = None
    if manifest is not None and not issues:
        workflow = Workflow(manifest, _freeze(graph), MappingProxyType(targets), src, str(workflows_dir / workflow_name))
    return Inspection(file, workflow, graph, src, issues)


def load_workflow(manifest_path: Path, workflows_dir: Path | None = None, limits: Limits = DEFAULT_LIMITS) -> Workflow:
    """Load one manifest and its workflow; raise ``ManifestError`` with every problem found."""
    inspection = inspect_manifest(manifest_path, workflows_dir, limits)
    if inspection.workflow is None:
        raise ManifestError(inspection.issues)
    return inspection.workflow


@dataclass(frozen=True)
class Catalog:
    """Every loaded workflow by name, plus the problems of those that failed to load."""

    workflows: Mapping[str, Workflow]
    issues: tuple[Issue, ...] = ()

    def __getitem__(self, name: str) -> Workflow:
        return self.workflows[name]

    def __contains__(self, name: object) -> bool:
        return name in self.workflows

    def __iter__(self):
        return iter(self.workflows.values())

    def __len__(self) -> int:
        return len(self.workflows)

    def commands(self) -> dict[str, list[Workflow]]:
        """Workflows grouped by their slash ``command``, in name order."""
        groups: dict[str, list[Workflow]] = {}
        for wf in sorted(self.workflows.values(), key=lambda w: w.name):
            groups.setdefault(wf.manifest.command or wf.name, []).append(wf)
        return groups


def _manifest_files(paths: Iterable[Path]) -> list[Path]:
    files = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    return files


def _cross_issues(workflows: dict[str, Workflow]) -> list[Issue]:
    issues = []
    for wf in workflows.values():
        for i, action in enumerate(wf.manifest.actions):
            target = workflows.get(action)
            if target is None:
                issues.append(wf.source.issue(("actions", i), "", f"action {action!r} names no manifest", "action_missing"))
            elif target.manifest.param_taking(wf.manifest.kind) is None:
                issues.append(wf.source.issue(("actions", i), "", f"action {action!r} takes no {wf.manifest.kind} "
                                              "to feed the result into", "action_no_input"))
    return issues


def catalog_of(workflows: Iterable[Workflow], issues: Iterable[Issue] = ()) -> Catalog:
    """A catalog of already loaded workflows, with the cross-manifest checks (duplicate names, actions)."""
    by_name: dict[str, Workflow] = {}
    issues = list(issues)
    for wf in workflows:
        if wf.name in by_name:
            issues.append(wf.source.issue(("name",), "", f"duplicate manifest name {wf.name!r} (also in "
                                          f"{by_name[wf.name].source.file})", "duplicate_name"))
            continue
        by_name[wf.name] = wf
    issues += _cross_issues(by_name)
    return Catalog(MappingProxyType(by_name), tuple(sorted(issues)))


def load_catalog(paths: Iterable[Path], workflows_dir: Path | None = None, limits: Limits = DEFAULT_LIMITS) -> Catalog:
    """Load every manifest under ``paths`` (folders or files); never raises for a bad manifest."""
    workflows: list[Workflow] = []
    issues: list[Issue] = []
    for file in _manifest_files(paths):
        try:
            workflows.append(load_workflow(file, workflows_dir, limits))
        except ManifestError as exc:
            issues += exc.issues
    return catalog_of(workflows, issues)
