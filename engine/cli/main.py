"""The ``engine`` command line: ``validate``, ``schema``, ``init`` (and ``run`` from ``run_cli``).

Exit codes: 0 clean, 1 problems found (or a refused write), 2 usage (bad arguments, unreadable
files, server unreachable). Reports go to stdout, usage errors to stderr, without tracebacks or
server URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from ..bounded import parse_json, read_file
from ..comfy.client import ComfyClient, Timeouts
from ..manifest.draft import draft_manifest, draft_name
from ..errors import ComfyError, ComfyTimeout, LimitExceeded, ManifestError
from ..limits import DEFAULT_LIMITS, Limits, limits_from_env
from ..manifest.schema import schema_text
from ..checks.validate import manifest_files, validate_paths
from . import run
from .usage import UsageError

__all__ = ["main", "build_parser", "fetch_object_info", "UsageError"]

OBJECT_INFO_TIMEOUT = 60.0




async def _get_object_info(url: str, timeout: float, limits: Limits) -> Any:
    client = ComfyClient(url, client_id="engine-cli", name="server", limits=limits,
                         timeouts=Timeouts(request=timeout, connect=min(timeout, 10.0)))
    async with client:
        return await client.object_info()


def fetch_object_info(url: str, timeout: float = OBJECT_INFO_TIMEOUT, limits: Limits = DEFAULT_LIMITS) -> dict:
    """``GET /object_info`` from a ComfyUI server within ``limits``; ``UsageError`` with a one-line reason."""
    try:
        data = asyncio.run(_get_object_info(url, timeout, limits))
    except LimitExceeded as exc:
        raise UsageError(f"cannot use /object_info from the ComfyUI server: {_without_backend(exc)}") from None
    except ComfyTimeout:
        raise UsageError(f"the ComfyUI server did not answer /object_info within {timeout:.0f} s") from None
    except ComfyError as exc:
        raise UsageError(f"cannot get /object_info from the ComfyUI server ({_without_backend(exc)})") from None
    except ValueError as exc:  # a URL aiohttp cannot use
        raise UsageError(f"cannot get /object_info from the ComfyUI server ({type(exc).__name__})") from None
    if not data:
        raise UsageError("the ComfyUI server's /object_info is not a JSON object with node classes")
    return data


def _without_backend(exc: Exception) -> str:
    return str(exc).removeprefix("backend server: ")


def read_json_file(path: str, what: str, *, max_bytes: int, limit: str, limits: Limits) -> Any:
    """A local JSON file within ``max_bytes`` and ``max_json_depth``; ``UsageError`` with one line otherwise."""
    try:
        return parse_json(read_file(path, max_bytes=max_bytes, limit=limit, what=f"{what} {path}"),
                          max_depth=limits.max_json_depth, what=f"{what} {path}")
    except LimitExceeded as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise UsageError(f"cannot read {what} {path} ({type(exc).__name__})") from None


def _read_object_info(path: str, limits: Limits) -> dict:
    data = read_json_file(path, "object info", max_bytes=limits.max_server_json_bytes,
                          limit="max_server_json_bytes", limits=limits)
    if not isinstance(data, dict):
        raise UsageError(f"object info {path} is not a JSON object")
    return data


def _limits() -> Limits:
    try:
        return limits_from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _object_info(args: argparse.Namespace) -> dict | None:
    if getattr(args, "object_info", None):
        return _read_object_info(args.object_info, _limits())
    if getattr(args, "server", None):
        return fetch_object_info(args.server, limits=_limits())
    return None


def _validate(args: argparse.Namespace) -> int:
    paths = args.paths or ["manifests"]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    if not manifest_files(paths):
        raise UsageError(f"no manifests (*.yaml) in {', '.join(paths)}")
    if args.workflows and not Path(args.workflows).is_dir():
        raise UsageError(f"no such folder: {args.workflows}")
    report = validate_paths(paths, workflows_dir=args.workflows, object_info=_object_info(args), limits=_limits())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def _init(args: argparse.Namespace) -> int:
    workflow = Path(args.workflow)
    limits = _limits()
    graph = read_json_file(args.workflow, "workflow", max_bytes=limits.max_workflow_bytes, limit="max_workflow_bytes",
                           limits=limits)
    name = draft_name(args.name or workflow.stem)
    out = Path(args.out) if args.out else workflow.resolve().parent.parent / "manifests" / f"{name}.yaml"
    if out.exists() and not args.force:
        print(f"{out} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    try:
        text = draft_manifest(graph, name, _object_info(args), workflow_file=workflow.name)
    except ManifestError as exc:
        print("\n".join(f"{workflow}: {i.message}" for i in exc.issues), file=sys.stderr)
        return 1
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out} ({type(exc).__name__})") from None
    print(f"wrote {out}; review it, then run: engine validate {out}")
    return 0


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--object-info", metavar="FILE", help="a saved GET /object_info answer")
    group.add_argument("--server", metavar="URL", help="a ComfyUI server to ask for /object_info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="DisComfy workflow engine")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = subparsers.add_parser("validate", help="check manifests and their workflows, all problems at once")
    validate.add_argument("paths", nargs="*", metavar="PATH", help="manifest files or folders (default: ./manifests)")
    validate.add_argument("--workflows", metavar="DIR", help="workflow folder (default: workflows/ next to the manifests)")
    _add_server_options(validate)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(handler=_validate)

    schema = subparsers.add_parser("schema", help="print the manifest JSON Schema")
    schema.set_defaults(handler=_schema)

    init = subparsers.add_parser("init", help="write a draft manifest for an API-format workflow")
    init.add_argument("workflow", metavar="WORKFLOW", help="workflows/NAME.json (exported with \"Export (API)\")")
    init.add_argument("--out", metavar="FILE", help="where to write (default: manifests/NAME.yaml)")
    init.add_argument("--name", help="manifest name (default: from the file name)")
    init.add_argument("--force", action="store_true", help="overwrite an existing manifest")
    _add_server_options(init)
    init.set_defaults(handler=_init)

    run.add_parser(subparsers)  # adds "run" with set_defaults(handler=fn(args) -> int)
    return parser


def _printable_output() -> None:
    """Text that cannot be encoded for the terminal (a lone surrogate, an emoji on an ASCII
    console) is printed escaped instead of stopping the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``engine`` command; return its exit code."""
    _printable_output()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"engine {args.command}: {exc}", file=sys.stderr)
        return 2


