"""DisComfy's engine: manifests, parameters, workflow graphs and the ComfyUI runtime.

Never imports discord. This is the engine's public face: the bot and the CLIs use the names in
``__all__`` and nothing else (``tests/test_layers.py`` checks it); the modules behind them are
internal and may change. ``discord_limits`` is re-exported as a namespace of Discord's numbers
and the rules ``engine validate`` checks, so that what is validated is what the bot builds.
"""

from .checks import discord_limits
from .checks.reload import CatalogChange, reload_catalog
from .checks.validate import Report, validate_paths
from .comfy.client import ComfyClient, Timeouts
from .comfy.outputs import OutputFile, OutputRef
from .errors import (
    ComfyError,
    ComfyTimeout,
    ComfyUnavailable,
    EngineError,
    ExecutionFailed,
    Issue,
    JobCancelled,
    JobHandedOver,
    LimitExceeded,
    ManifestError,
    ParamError,
    ServerLimitExceeded,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    WorkflowRejected,
)
from .inputs.audio import AUDIO_FORMATS, FfmpegTimeout, header_seconds, run_ffmpeg
from .inputs.images import IMAGE_FORMATS, human_size
from .jobs.job import Job
from .jobs.line import ordinal, place_text
from .jobs.lease import Leases
from .jobs.log_context import bind_job, current_job_fields, set_user_salt, user_hash
from .jobs.parts import ImageInput, JobResult, JobSettings
from .jobs.progress import JobState, ProgressEvent
from .jobs.store import JobRecord, JobStore
from .limits import DEFAULT_LIMITS, Limits, limits_from_env
from .manifest.apply import Applied, Prepared, apply_params, build_graph, draw_seeds, prepare, resolve_values
from .manifest.binding import Target
from .manifest.catalog import Catalog, Workflow, load_catalog, load_workflow
from .manifest.model import (
    MAX_SEED,
    BoolParam,
    ChoiceParam,
    AudioParam,
    FloatParam,
    ImageParam,
    IntParam,
    Manifest,
    Param,
    SeedParam,
    TextParam,
)
from .runtime import BackendStatus, Runtime

__all__ = [
    # manifests and their params
    "Manifest",
    "Param",
    "TextParam",
    "IntParam",
    "FloatParam",
    "BoolParam",
    "ChoiceParam",
    "SeedParam",
    "ImageParam",
    "AudioParam",
    "MAX_SEED",
    "Workflow",
    "Catalog",
    "Target",
    "load_catalog",
    "load_workflow",
    "resolve_values",
    "prepare",
    "Prepared",
    "draw_seeds",
    "build_graph",
    "apply_params",
    "Applied",
    # checks
    "validate_paths",
    "reload_catalog",
    "CatalogChange",
    "Report",
    "discord_limits",
    # running jobs
    "Runtime",
    "Job",
    "JobResult",
    "JobSettings",
    "JobState",
    "ProgressEvent",
    "place_text",
    "ordinal",
    "ImageInput",
    "BackendStatus",
    "JobStore",
    "JobRecord",
    "Leases",
    "OutputFile",
    "OutputRef",
    "ComfyClient",
    "Timeouts",
    "IMAGE_FORMATS",
    "AUDIO_FORMATS",
    "human_size",
    # ffmpeg (the binary moviepy ships), for sound
    "run_ffmpeg",
    "FfmpegTimeout",
    "header_seconds",
    # bounds on outside data
    "Limits",
    "DEFAULT_LIMITS",
    "limits_from_env",
    # errors
    "EngineError",
    "StoreError",
    "StoreBusy",
    "StoreCorrupt",
    "Issue",
    "ManifestError",
    "ParamError",
    "ComfyError",
    "ComfyUnavailable",
    "ComfyTimeout",
    "WorkflowRejected",
    "ExecutionFailed",
    "JobCancelled",
    "JobHandedOver",
    "LimitExceeded",
    "ServerLimitExceeded",
    # log lines of a job
    "bind_job",
    "current_job_fields",
    "set_user_salt",
    "user_hash",
]
