"""DisComfy's engine: manifests, parameters, workflow graphs and the ComfyUI runtime.

Never imports discord. The public API is re-exported here; everything else is internal.
"""

from .manifest.apply import Applied, apply_params, resolve_values
from .manifest.binding import Target
from .manifest.catalog import Catalog, Workflow, load_catalog, load_workflow
from .errors import (
    ComfyError,
    ComfyTimeout,
    ComfyUnavailable,
    EngineError,
    ExecutionFailed,
    Issue,
    JobCancelled,
    ManifestError,
    ParamError,
    WorkflowRejected,
)
from .jobs.parts import ImageInput, JobResult, JobSettings
from .jobs.job import Job
from .manifest.model import Manifest, Param
from .runtime import BackendStatus, Runtime
from .manifest.values import coerce_value, live_choices

__all__ = [
    "Applied",
    "apply_params",
    "resolve_values",
    "Target",
    "Catalog",
    "Workflow",
    "load_catalog",
    "load_workflow",
    "ComfyError",
    "ComfyTimeout",
    "ComfyUnavailable",
    "EngineError",
    "ExecutionFailed",
    "Issue",
    "JobCancelled",
    "ManifestError",
    "ParamError",
    "WorkflowRejected",
    "Manifest",
    "Param",
    "Runtime",
    "Job",
    "JobResult",
    "JobSettings",
    "ImageInput",
    "BackendStatus",
    "coerce_value",
    "live_choices",
]
