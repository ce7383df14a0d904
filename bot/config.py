"""The bot's settings: one optional TOML file, overridden by environment variables, checked at start.

Sources, later wins: built-in defaults, the TOML file (``--config`` or ``DISCOMFY_CONFIG``), the
environment. Environment names are ``DISCORD_TOKEN``, ``DISCORD_GUILD_IDS``, ``COMFYUI_URLS`` and
``DISCOMFY_<SETTING>`` for every setting (``DISCOMFY_RATE_PER_USER=5/60``). An empty variable
counts as unset. Lists in the environment are comma-separated; ``COMFYUI_URLS`` items are
``url`` or ``name=url``. Example file::

    guild_ids = [123456789012345678]          # commands sync instantly to these guilds
    rate_per_user = "5/60"                    # or {count = 5, per_seconds = 60}
    max_concurrent_per_user = 2
    [[backends]]
    name = "gpu1"
    url = "http://comfyui:8188"

:func:`load_settings` reports every problem at once in a :class:`ConfigError`, one per line,
never echoing the token or a server URL. The token is a ``SecretStr`` and backend URLs are left
out of ``repr``, so logging the settings leaks neither.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine import DEFAULT_LIMITS as LIMITS, Limits

__all__ = ["BackendConfig", "RateLimit", "Settings", "ConfigError", "load_settings", "env_names"]

MIB = 1024 * 1024
PILLOW_PIXEL_CEILING = 178_956_970  # Pillow refuses anything above 2 × Image.MAX_IMAGE_PIXELS
ENV_PREFIX = "DISCOMFY_"
SPECIAL_ENV_NAMES = {  # tried in order, before DISCOMFY_<SETTING>; the singular ones are the old bot's
    "discord_token": ("DISCORD_TOKEN",),
    "guild_ids": ("DISCORD_GUILD_IDS", "DISCORD_GUILD_ID"),
    "backends": ("COMFYUI_URLS", "COMFYUI_URL"),
    "log_format": ("LOG_FORMAT",),
    "metrics_port": ("METRICS_PORT",),
    "db_url": ("DB_URL",),
    "shard_ids": ("SHARD_IDS",), "shard_count": ("SHARD_COUNT",),
}
OTHER_ENV_NAMES = {"DISCOMFY_CONFIG"}


class ConfigError(Exception):
    """The settings are unusable; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class BackendConfig(BaseModel):
    """One ComfyUI server. ``name`` is what logs and admins see; the URL stays out of both."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: str = Field(repr=False)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise ValueError("must be an http(s) URL with a valid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8188")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return url.strip().rstrip("/")


class RateLimit(BaseModel):
    """``count`` requests per ``per_seconds``. Written ``"5/60"`` or as a table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(gt=0)
    per_seconds: float = Field(gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        count, slash, seconds = value.partition("/")
        if not slash:
            raise ValueError('must be written "COUNT/SECONDS", e.g. "5/60"')
        return {"count": count.strip(), "per_seconds": seconds.strip()}


class Settings(BaseSettings):
    """Everything the bot needs to run. Build it with :func:`load_settings`."""

    # Only explicit values: load_settings merges the file and the environment itself, so that
    # both sources are injectable in tests and every problem is reported together.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    discord_token: SecretStr | None = None
    """The bot token from the Discord developer portal (required to run)."""
    guild_ids: list[int] = []
    """Guilds whose commands sync instantly (for testing); empty: global commands."""
    backends: list[BackendConfig] = Field(
        default_factory=lambda: [BackendConfig(name="local", url="http://127.0.0.1:8188")], min_length=1
    )
    """ComfyUI servers, `url` or `name=url`, comma-separated; each job goes to the least busy one that has
    what its workflow needs."""
    manifests_dir: Path = Path("manifests")
    """Folder of workflow manifests (`NAME.yaml`); watched for changes while the bot runs."""
    workflows_dir: Path = Path("workflows")
    """Folder of ComfyUI API-format graphs (`NAME.json`) the manifests name."""
    db_path: Path = Path("discomfy.sqlite3")
    """The job database (SQLite) unless `db_url` says otherwise; kept inputs and the sync marker live next to it."""
    db_url: SecretStr | None = None
    """The job database as a URL: `postgresql://user:password@host/db` for PostgreSQL (several bot processes
    can share it), or an SQLite path; unset: `db_path`."""
    admin_user_ids: list[int] = []
    """Users allowed to administer the bot (/admin, other users' jobs)."""
    admin_role_ids: list[int] = []
    """Roles whose members are admins."""
    admin_channel_id: int | None = None
    """A channel where the bot reports manifest problems found while it runs (hot reload)."""
    keep_inputs_days: float = Field(30.0, gt=0)
    """Days a kept input image (for reruns) stays after its last use."""
    keep_inputs_mb: int = Field(2048, gt=0)
    """Most disk space the kept input images may take, in MiB; the least recently used go first."""
    keep_jobs_days: float = Field(90.0, gt=0)
    """Days a finished job's record stays; its buttons stop working after that."""
    reload_on_change: bool = True
    """Reload manifests and workflows when their files change (`/admin reload` works either way)."""
    rate_per_user: RateLimit = RateLimit(count=5, per_seconds=60)
    """Jobs one user may start per period, written `COUNT/SECONDS`."""
    rate_global: RateLimit = RateLimit(count=20, per_seconds=60)
    """Jobs everyone together may start per period."""
    max_concurrent_per_user: int = Field(2, gt=0)
    """Jobs one user may have unfinished at a time."""
    max_upload_bytes: int = Field(25 * MIB, gt=0)
    """Largest image a user may upload as a job input, in bytes."""
    max_input_pixels: int = Field(36_000_000, gt=0, le=PILLOW_PIXEL_CEILING)
    """Largest input image in pixels (width × height), checked before decoding."""
    max_audio_bytes: int = Field(LIMITS.max_audio_bytes, gt=0)
    """Largest sound a job takes as an input (an attachment, or a result fed to an action), in bytes."""
    max_audio_seconds: int = Field(LIMITS.max_audio_seconds, gt=0)
    """Longest sound a job takes as an input, in seconds: read from its header, then by decoding at most that much."""
    progress_interval: float = Field(2.0, ge=1.5)
    """Seconds between two edits of a job's progress message (Discord throttles edits)."""
    previews: bool = True
    """Show ComfyUI's live preview frames in progress messages (a manifest can turn them off with `previews: false`)."""
    preview_interval: float = Field(5.0, ge=1.5)
    """Seconds between two uploads of a live preview frame."""
    # bounds on outside data: engine.limits.Limits, defaults from there (README "Limits")
    max_manifest_bytes: int = Field(LIMITS.max_manifest_bytes, gt=0)
    """Largest manifest file, in bytes."""
    max_yaml_aliases: int = Field(LIMITS.max_yaml_aliases, gt=0)
    """Alias uses (`*name`) allowed in one manifest."""
    max_yaml_nodes: int = Field(LIMITS.max_yaml_nodes, gt=0)
    """YAML nodes of one manifest once its aliases are expanded."""
    max_yaml_depth: int = Field(LIMITS.max_yaml_depth, gt=0)
    """Nesting of one manifest."""
    max_workflow_bytes: int = Field(LIMITS.max_workflow_bytes, gt=0)
    """Largest workflow file, in bytes."""
    max_json_depth: int = Field(LIMITS.max_json_depth, gt=0)
    """Nesting of any JSON read: workflow files, server answers, websocket messages."""
    max_server_json_bytes: int = Field(LIMITS.max_server_json_bytes, gt=0)
    """Largest JSON answer of a ComfyUI server (its `/object_info` is the biggest), in bytes."""
    max_websocket_frame_bytes: int = Field(LIMITS.max_websocket_frame_bytes, gt=0)
    """Largest websocket message of a ComfyUI server (previews, websocket images), in bytes."""
    max_output_bytes: int = Field(LIMITS.max_output_bytes, gt=0)
    """All output files of one job together, in bytes."""
    max_output_files: int = Field(LIMITS.max_output_files, gt=0)
    """Output files of one job."""
    max_output_pixels: int = Field(LIMITS.max_output_pixels, gt=0, le=PILLOW_PIXEL_CEILING)
    """Largest output image decoded for a grid or to be re-encoded, in pixels; larger ones are sent as they are."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    log_format: Literal["text", "json"] = "text"
    """`text`, or `json`: one JSON object per line, with the job's id, workflow, user hash and backend."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Port of the Prometheus `/metrics` and `/healthz` endpoint; unset: off."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint listens on (`0.0.0.0` in a container)."""
    originals_url: str | None = Field(None, max_length=300)
    """Public base URL of the built-in originals endpoint (e.g. `https://bot.example.org`); set: results
    shrunk to fit Discord get an "Original" link to the full file; unset: off."""
    originals_host: str = "127.0.0.1"
    """Address the originals endpoint listens on (put a reverse proxy with TLS in front of it)."""
    originals_port: int = Field(8190, ge=0, le=65535)
    """Port the originals endpoint listens on."""
    originals_ttl_hours: float = Field(24.0, gt=0, le=24 * 30)
    """Hours an "Original" link works; the job's retention ends it earlier."""
    sharded: bool = False
    """Run every gateway shard in this process (one connection suffices below about 1000 guilds)."""
    shard_count: int | None = Field(None, ge=1)
    """Number of shards; unset: Discord's recommendation."""
    shard_ids: list[int] = []
    """Shards this process runs (of `shard_count`), comma-separated; empty: all. Processes share a PostgreSQL
    `db_url`: each takes over the jobs of one that stops or dies."""
    job_lease_seconds: float = Field(30.0, ge=1, le=600)
    """Seconds a process holds its jobs unrenewed; then another process sharing `db_url` takes them over."""
    queue_depth: int | None = Field(1, ge=0, le=16)
    """Prompts sent ahead to each ComfyUI server beyond the one it runs; other jobs wait in the bot's own queue,
    served round-robin by user to the server that will finish them first. `off`: every job is sent at once."""
    role_priority: dict[int, int] = {}
    """Role id → priority in the bot's queue, written `ROLE=PRIORITY,…`; higher goes first, a user counts their
    best role."""

    def limits(self) -> Limits:
        """The engine's ``Limits`` from these settings (input images: ``max_upload_bytes``, ``max_input_pixels``;
        input sounds: ``max_audio_bytes``, ``max_audio_seconds``)."""
        names = [item.name for item in dataclasses.fields(Limits) if item.name in type(self).model_fields]
        same = {name: getattr(self, name) for name in names}
        return Limits(**same, max_image_bytes=self.max_upload_bytes, max_image_pixels=self.max_input_pixels)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings,)

    @field_validator("discord_token", mode="before")
    @classmethod
    def _token_shape(cls, token: Any) -> Any:
        text = token.get_secret_value() if isinstance(token, SecretStr) else token
        if isinstance(text, str):
            text = text.strip()
            if not text or any(ch.isspace() for ch in text):
                raise ValueError("must be a single word without spaces")
        return text

    @field_validator("db_url", mode="before")
    @classmethod
    def _database_url(cls, url: Any) -> Any:
        text = url.get_secret_value() if isinstance(url, SecretStr) else url
        if isinstance(text, str):
            text = text.strip()
            scheme = text.partition("://")[0] if "://" in text else ""
            if scheme not in ("", "postgresql", "postgres", "sqlite"):
                raise ValueError("must be postgresql://… or an SQLite file path")
        return text or None

    @property
    def database_url(self) -> str:
        """What ``JobStore.open`` takes: ``db_url`` when set, else the ``db_path`` file."""
        return self.db_url.get_secret_value() if self.db_url is not None else str(self.db_path)

    @field_validator("queue_depth", mode="before")
    @classmethod
    def _queue_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() == "off" else value

    @field_validator("role_priority", mode="before")
    @classmethod
    def _role_pairs(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = [item.partition("=") for item in value.split(",") if item.strip()]
            return {role.strip(): priority.strip() for role, _, priority in pairs}
        return value

    @field_validator("guild_ids", "admin_user_ids", "admin_role_ids", "shard_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("backends", mode="before")
    @classmethod
    def _backend_items(cls, value: Any) -> Any:
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list):
            return items
        return [_backend_from_text(item, index) if isinstance(item, str) else item
                for index, item in enumerate(items, start=1)]

    @model_validator(mode="after")
    def _shards_within_count(self) -> Settings:
        if not all(0 <= i < (self.shard_count or 0) for i in self.shard_ids):
            raise ValueError("shard_ids: need shard_count, and each id from 0 to shard_count - 1")
        return self

    @field_validator("originals_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL without query or fragment, such as https://bot.example.org")
        return url.strip().rstrip("/")

    @field_validator("manifests_dir", "workflows_dir", "db_path")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path if path.expanduser().is_absolute() else Path.cwd() / path

    @field_validator("backends")
    @classmethod
    def _unique_names(cls, backends: list[BackendConfig]) -> list[BackendConfig]:
        names = [b.name for b in backends]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"backend names must be unique (repeated: {', '.join(duplicates)})")
        return backends


def env_names(field: str) -> tuple[str, ...]:
    """The environment variables that set ``field``, the preferred one first."""
    return (*SPECIAL_ENV_NAMES.get(field, ()), f"{ENV_PREFIX}{field.upper()}")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    require_token: bool = True,
) -> Settings:
    """Read the config file (``path``, else ``$DISCOMFY_CONFIG``, else none) and the environment.

    Args:
        path: a TOML file; missing or unreadable is an error when given.
        env: the environment to read (default ``os.environ``).
        require_token: whether a missing ``discord_token`` is a problem (not for offline tools).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    env = os.environ if env is None else env
    path = path or env.get("DISCOMFY_CONFIG") or None
    from_file = _read_toml(Path(path)) if path else {}
    from_env = _read_env(env)
    origins = {key: f"config file {path}" for key in from_file}
    origins.update({key: f"environment {name}" for key, (name, _) in from_env.items()})
    merged = {**from_file, **{key: value for key, (_, value) in from_env.items()}}
    problems = [f"{name}: unknown setting (from environment)" for name in _unknown_env_names(env)]
    settings = None
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems += [_describe(error, origins) for error in exc.errors()]
    if require_token and merged.get("discord_token") in (None, ""):
        problems.insert(0, "discord_token: missing; set DISCORD_TOKEN or discord_token in the config file")
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {path}"]) from None
    except OSError as exc:
        raise ConfigError([f"config file {path} cannot be read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path} is not valid TOML: {exc}"]) from None


def _read_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Field name → (variable name, value) for every non-empty variable we know."""
    found = {}
    for field in Settings.model_fields:
        for name in env_names(field):
            if env.get(name, "").strip():
                found[field] = (name, env[name])
                break
    return found


def _unknown_env_names(env: Mapping[str, str]) -> list[str]:
    known = {name for field in Settings.model_fields for name in env_names(field)} | OTHER_ENV_NAMES
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


def _backend_from_text(text: str, index: int) -> dict[str, str]:
    name, equals, url = text.partition("=")
    if equals and "://" not in name:
        return {"name": name.strip(), "url": url.strip()}
    return {"name": f"comfyui-{index}", "url": text.strip()}


def _describe(error: Mapping[str, Any], origins: Mapping[str, str]) -> str:
    """One line per pydantic error: where, what, and from which source. Never the input value."""
    location = ".".join(str(part) for part in error["loc"]) or "settings"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    origin = origins.get(str(error["loc"][0])) if error["loc"] else None
    return f"{location}: {message}" + (f" (from {origin})" if origin else "")
