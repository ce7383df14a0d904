"""``engine run``: run one manifest on ComfyUI from the command line and save what it made.

``engine run MANIFEST --set key=value … [--file [PARAM=]PATH …] [--out DIR] [--server URL …]
[--timeout S] [--json]`` loads the manifest (and its workflow), checks the values before any
network traffic, runs the job through a ``Runtime`` with an in-memory job store, shows its progress
(``engine.cli.views``: a rich bar on a terminal, else one line per change, on stderr), writes the outputs
as ``DIR/<manifest>-<seed>-<n>.<ext>`` and prints the resolved values (the seed!) and the files.

Exit codes: 0 done; 1 the job failed, was rejected or cancelled, or a value is wrong; 2 usage
(bad arguments, unreadable manifest or file, server unavailable); 130 interrupted by Ctrl-C,
which also cancels the job on the server. Messages are one line, without tracebacks or URLs.
``--file`` (also spelled ``--image`` and ``--audio``) gives an upload param its file: an image or a
sound, as the param takes; the runtime checks it like a file from Discord.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import mimetypes
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from ..bounded import read_file
from ..comfy.outputs import known_extension
from ..manifest.apply import Prepared, prepare
from ..manifest.catalog import Catalog, Workflow, load_workflow
from ..errors import (ComfyTimeout, ComfyUnavailable, EngineError, ExecutionFailed, JobCancelled, LimitExceeded,
                     ManifestError, ParamError, WorkflowRejected)
from ..manifest.help import params_help
from ..jobs.job import Job
from ..jobs.parts import JobResult
from ..jobs.store import JobStore
from ..limits import Limits, limits_from_env
from .usage import UsageError
from .views import ProgressView, make_view

__all__ = ["add_parser", "run_command", "output_paths", "parse_assignments", "DEFAULT_SERVER"]

DEFAULT_SERVER = "http://127.0.0.1:8188"
CANCEL_GRACE = 5.0  # seconds allowed to cancel the job on the server after Ctrl-C or --timeout
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")  # a guessed extension is used only when plain




@dataclass
class RunRequest:
    workflow: Workflow
    values: dict[str, Any]
    prepared: Prepared  # checked before any traffic; checked again against the servers' live lists
    images: dict[str, Path]
    servers: list[tuple[str, str]]
    out_dir: Path
    timeout: float | None
    limits: Limits


@dataclass
class RunOutcome:
    job_id: str
    values: dict[str, Any]
    backend: str | None
    files: list[Path] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


# -- pure helpers ---------------------------------------------------------------------------


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["steps=20", "prompt=a = b"]`` → ``{"steps": "20", "prompt": "a = b"}``."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set needs key=value, got {item!r}")
        values[key.strip()] = value
    return values


def parse_uploads(items: list[str], upload_params: list[str]) -> dict[str, Path]:
    """``[PARAM=]PATH`` items → {param: path}; a bare PATH fills the manifest's only upload param."""
    files: dict[str, Path] = {}
    for item in items:
        key, sep, rest = item.partition("=")
        if sep and key in upload_params:
            files[key] = Path(rest)
        elif len(upload_params) == 1:
            files[upload_params[0]] = Path(item)
        else:
            wanted = ", ".join(upload_params) or "none"
            raise UsageError(f"--file needs PARAM=PATH (file params: {wanted})")
    return files


def output_paths(out_dir: Path, manifest: str, tag: str, files: list[tuple[str, str]]) -> list[Path]:
    """``DIR/<manifest>-<tag>-<n>.<ext>`` for (filename, mime) pairs; existing files are not overwritten."""
    paths, taken = [], set()
    for n, (filename, mime) in enumerate(files, 1):
        ext = _extension(filename, mime)
        path, extra = out_dir / f"{manifest}-{tag}-{n}{ext}", 1
        while path.exists() or path in taken:
            extra += 1
            path = out_dir / f"{manifest}-{tag}-{n}-{extra}{ext}"
        taken.add(path)
        paths.append(path)
    return paths


def _extension(filename: str, mime: str) -> str:
    """The file name's extension when it is an output type we know (the server chose it), else the
    MIME type's, else ``.bin``: never a separator, NUL, surrogate or a name too long for the filesystem."""
    known = known_extension(PurePosixPath(filename).name)
    if known is not None:
        return known
    guessed = mimetypes.guess_extension(mime.split(";")[0].strip()) if mime.isascii() else None
    return guessed if guessed and _EXTENSION.fullmatch(guessed) else ".bin"


def seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def seed_tag(workflow: Workflow, values: dict[str, Any], job_id: str) -> str:
    """The first seed param's value, else the start of the job id."""
    seed = workflow.manifest.seed_of(values)
    return job_id[:8] if seed is None else str(seed)


# -- running --------------------------------------------------------------------------------


def _read_files(workflow: Workflow, paths: dict[str, Path], limits: Limits) -> dict[str, Any]:
    """Each upload param's file within its byte cap (``max_image_bytes``, ``max_audio_bytes``; regular
    files only: never a FIFO or a device)."""
    from ..runtime import ImageInput

    files = {}
    for name, path in paths.items():
        param = workflow.manifest.params[name]
        try:
            data = read_file(path, max_bytes=param.max_upload_bytes(limits), limit=str(param.byte_limit),
                             what=f"{param.takes} {path}")
        except LimitExceeded as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot read {param.takes} {path} ({exc.strerror or exc})") from None
        files[name] = ImageInput(data=data, filename=path.name)
    return files


async def _follow(job: Job, view: ProgressView, timeout: float | None) -> JobResult:
    """Show the job's progress and return its result; cancel it on the server if we stop waiting.

    Only our own ``--timeout`` is reported as such: the job's own ``ComfyTimeout`` (its manifest's
    ``timeout``) is a ``TimeoutError`` too and passes through with its own message.
    """
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            async for event in job.events():
                view.show(event)
            return await job.result()
    except TimeoutError:
        if not deadline.expired():
            raise
        await _cancel(job)
        raise ComfyTimeout(f"timed out after {timeout:g} s (--timeout); the job was cancelled",
                           seconds=timeout) from None
    except asyncio.CancelledError:
        await _cancel(job)
        raise


async def _cancel(job: Job) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(job.cancel(), CANCEL_GRACE)


async def execute(request: RunRequest, view: ProgressView) -> RunOutcome:
    """Start a runtime, run the job, write its outputs; the runtime is closed whatever happens."""
    from ..runtime import Runtime

    images = _read_files(request.workflow, request.images, request.limits)
    catalog = Catalog(MappingProxyType({request.workflow.name: request.workflow}))
    store = await JobStore.open(":memory:")
    runtime = Runtime(catalog, backends=request.servers, store=store, limits=request.limits)
    try:
        await runtime.start()
        if not any(backend.up for backend in runtime.status()):
            problems = [backend.problem for backend in runtime.pool if backend.problem]
            raise ComfyUnavailable("; ".join(problems) or "no server answered")
        prepared = runtime.prepare(request.workflow, request.values, uploads=request.images)  # + live lists
        job = await runtime.start_job(prepared, images=images, owner="cli")
        result = await _follow(job, view, request.timeout)
    finally:
        view.close()
        await runtime.close()
        await store.close()
    return _save(request, job.id, result)


def _save(request: RunRequest, job_id: str, result: JobResult) -> RunOutcome:
    tag = seed_tag(request.workflow, result.values, job_id)
    outputs = list(result.outputs)
    paths = output_paths(request.out_dir, request.workflow.name, tag, [(o.filename, o.mime) for o in outputs])
    try:
        request.out_dir.mkdir(parents=True, exist_ok=True)
        for path, output in zip(paths, outputs):
            path.write_bytes(output.data)
    except OSError as exc:
        raise UsageError(f"cannot write to {request.out_dir} ({type(exc).__name__})") from None
    return RunOutcome(job_id, dict(result.values), result.backend, paths, list(result.texts))


# -- the command ----------------------------------------------------------------------------


def _servers(urls: list[str] | None) -> list[tuple[str, str]]:
    urls = urls or [os.environ.get("COMFYUI_URL") or DEFAULT_SERVER]
    if len(urls) == 1:
        return [("server", urls[0])]
    return [(f"server{i}", url) for i, url in enumerate(urls, 1)]


def _request(args: argparse.Namespace) -> RunRequest:
    path = Path(args.manifest)
    if not path.is_file():
        raise UsageError(f"no such manifest: {path}")
    try:
        limits = limits_from_env()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    workflow = load_workflow(path, Path(args.workflows) if args.workflows else None, limits)
    values = parse_assignments(args.set or [])
    images = parse_uploads(args.files or [], workflow.manifest.upload_params)
    prepared = prepare(workflow, values, uploads=images)  # the one check of the values, before any traffic
    return RunRequest(workflow, values, prepared, images, _servers(args.server), Path(args.out), args.timeout,
                      limits)


def _report(outcome: RunOutcome, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"job": outcome.job_id, "values": outcome.values, "backend": outcome.backend,
                          "outputs": [str(p) for p in outcome.files], "texts": outcome.texts},
                         ensure_ascii=False, default=str))
        return
    print("values: " + " ".join(f"{k}={v}" for k, v in outcome.values.items()))
    for text in outcome.texts:
        print(f"text: {text}")
    for path in outcome.files:
        print(f"wrote {path}")
    if not outcome.files and not outcome.texts:
        print("the job finished without outputs")


def _error_line(exc: EngineError) -> tuple[str, int]:
    if isinstance(exc, ManifestError):
        return "; ".join(str(issue) for issue in exc.issues[:5]), 2
    if isinstance(exc, ComfyUnavailable):
        return f"server unavailable ({exc})", 2
    if isinstance(exc, WorkflowRejected):
        return "rejected by the server: " + "; ".join(exc.problems or [str(exc)]), 1
    if isinstance(exc, ExecutionFailed):
        return f"failed: {exc}", 1
    if isinstance(exc, JobCancelled):
        return f"cancelled: {exc}", 1
    return str(exc), 1  # ParamError ("steps: must be ≤ 150"), ComfyTimeout, other engine errors


def run_command(args: argparse.Namespace) -> int:
    """The ``engine run`` handler; returns the exit code."""
    try:
        request = _request(args)
        view = make_view(request.workflow.manifest.title or request.workflow.name, args.json)
        outcome = asyncio.run(execute(request, view))
    except UsageError as exc:
        print(f"engine run: {exc}", file=sys.stderr)
        return 2
    except ParamError as exc:
        print(f"engine run: {exc.param}: {exc.problem}", file=sys.stderr)
        return 1
    except EngineError as exc:
        line, code = _error_line(exc)
        print(f"engine run: {line}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("engine run: interrupted; the job was cancelled", file=sys.stderr)
        return 130
    _report(outcome, args.json)
    return 0


class _ManifestHelp(argparse.Action):
    """``engine run MANIFEST --help``: the usual help plus that manifest's parameters."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        if getattr(namespace, "manifest", None):
            try:
                workflow = load_workflow(Path(namespace.manifest),
                                         Path(namespace.workflows) if getattr(namespace, "workflows", None) else None)
            except ManifestError as exc:
                print(f"\n{exc}")
            else:
                print("\n" + params_help(workflow))
        parser.exit()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``run`` to the ``engine`` command's subparsers."""
    run = subparsers.add_parser("run", help="run a manifest on ComfyUI and save its outputs", add_help=False)
    run.add_argument("-h", "--help", action=_ManifestHelp, nargs=0,
                     help="show this help, and the manifest's parameters when MANIFEST is given first")
    run.add_argument("manifest", metavar="MANIFEST", help="manifests/NAME.yaml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="a parameter value (repeatable)")
    run.add_argument("--file", "--image", "--audio", dest="files", action="append", metavar="[PARAM=]PATH",
                     help="a file to upload for a file param: an image, a sound (repeatable)")
    run.add_argument("--out", default="out", metavar="DIR", help="where to write the outputs (default: ./out)")
    run.add_argument("--server", action="append", metavar="URL",
                     help=f"ComfyUI server (repeatable; default: $COMFYUI_URL or {DEFAULT_SERVER})")
    run.add_argument("--workflows", metavar="DIR", help="workflow folder (default: workflows/ next to the manifest)")
    run.add_argument("--timeout", type=seconds, metavar="S", help="give up (and cancel the job) after S seconds")
    run.add_argument("--json", action="store_true", help="print the result as JSON, no progress")
    run.set_defaults(handler=run_command)
    return run
