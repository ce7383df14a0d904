"""The engine's one exception tree, shaped by what the caller does next.

- ``EngineError``
  - ``ManifestError``   the manifest author fixes a file; carries every ``Issue`` found at once
  - ``ParamError``      the user fixes a value; names the parameter (``"steps: must be ≤ 150"``)
  - ``LimitExceeded``   outside data is over one of ``engine.limits.Limits``; names the limit
  - ``ComfyError``      something on the ComfyUI side
    - ``ComfyUnavailable``   cannot reach the server (or it answered 5xx): retry elsewhere
      - ``ServerLimitExceeded`` its answer or frame broke a limit (also a ``LimitExceeded``)
    - ``ComfyTimeout``       the server or the job took too long
    - ``WorkflowRejected``   400 from ``POST /prompt``; ``problems`` are mapped to params
    - ``ExecutionFailed``    ``execution_error`` while running
    - ``JobCancelled``       interrupted or removed from the queue
  - ``StoreError``      the job database cannot be used (cannot open, a write failed)
    - ``StoreBusy``          locked by another program past the retries
    - ``StoreCorrupt``       not a database, or damaged
- ``JobHandedOver``     not a failure: another bot process took the job over (``engine.jobs.lease``)

No aiohttp, pydantic or ruamel exception escapes ``engine``: they are translated at the boundary.
Messages never contain server URLs, tokens or raw user input beyond the parameter name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Issue",
    "EngineError",
    "ManifestError",
    "ParamError",
    "LimitExceeded",
    "ComfyError",
    "ComfyUnavailable",
    "ServerLimitExceeded",
    "ComfyTimeout",
    "WorkflowRejected",
    "ExecutionFailed",
    "JobCancelled",
    "JobHandedOver",
    "StoreError",
    "StoreBusy",
    "StoreCorrupt",
]


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in a manifest, located in its file.

    ``line`` and ``col`` are 1-based (0 when unknown). ``param`` is the parameter name or "".
    """

    file: str
    line: int
    col: int
    param: str
    message: str
    code: str = field(default="invalid", compare=False)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.param}: {self.message}" if self.param else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "param": self.param,
            "code": self.code,
            "message": self.message,
        }


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class ManifestError(EngineError):
    """A manifest (or its workflow) is wrong; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid manifest")


class ParamError(EngineError, ValueError):
    """A user-supplied value is not acceptable for parameter ``param``."""

    def __init__(self, param: str, problem: str):
        self.param = param
        self.problem = problem
        super().__init__(f"{param}: {problem}")


class LimitExceeded(EngineError):
    """Data from outside is bigger (bytes, nesting, aliases, pixels) than ``limit`` allows; ``limit``
    is the ``engine.limits.Limits`` field, which is also the setting that raises it."""

    def __init__(self, message: str, limit: str):
        self.limit = limit
        super().__init__(message)


class ComfyError(EngineError):
    """Something went wrong on (or on the way to) a ComfyUI server."""


class ComfyUnavailable(ComfyError, ConnectionError):
    """The server cannot be reached, or answered with a server error."""


class ServerLimitExceeded(ComfyUnavailable, LimitExceeded):
    """A server's answer or websocket frame broke a limit: that server cannot be used for it."""

    def __init__(self, message: str, limit: str):
        LimitExceeded.__init__(self, message, limit)


class ComfyTimeout(ComfyError, TimeoutError):
    """A request or a whole job took longer than allowed: ``seconds`` (None when not one known figure)."""

    def __init__(self, message: str, seconds: float | None = None):
        self.seconds = seconds
        super().__init__(message)


class WorkflowRejected(ComfyError):
    """``POST /prompt`` answered 400. ``problems`` are short texts, each naming a param when known."""

    def __init__(self, problems: list[str], node_errors: dict | None = None, error_type: str = ""):
        self.problems = problems
        self.node_errors = node_errors or {}
        self.error_type = error_type
        super().__init__("; ".join(problems) or "the server rejected the workflow")


class ExecutionFailed(ComfyError):
    """The workflow failed while running (websocket ``execution_error``)."""

    def __init__(self, message: str, node_id: str = "", node_type: str = "", param: str = ""):
        self.node_id = node_id
        self.node_type = node_type
        self.param = param
        super().__init__(message)


class JobCancelled(ComfyError):
    """The job was interrupted while running or removed from the queue."""


class JobHandedOver(Exception):
    """Another bot process took the job over (its lease ran out here): this one delivers nothing.
    Not an ``EngineError``: the job did not fail, it goes on elsewhere."""


class StoreError(EngineError):
    """The job database cannot be used: it cannot be opened, is newer than this program, or a call failed."""


class StoreBusy(StoreError):
    """The job database stayed locked by another program past the retries."""


class StoreCorrupt(StoreError):
    """The job database file is not a database, or is damaged."""
