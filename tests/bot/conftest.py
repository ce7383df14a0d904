"""Fixtures for the Discord layer: the offline Discord (``discord_fake``), recording command hooks,
and the catalogs the command tests build from (our fixture catalog and the bundled one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.access import AccessPolicy, Who
from bot.commands.slash import CommandHooks
from engine.manifest.catalog import Catalog, load_catalog

from .harness import fake_discord
from .stack import flow_catalog

DATA = Path(__file__).parent / "data"
FIXTURE_MANIFESTS = DATA / "manifests"
REPO = Path(__file__).resolve().parents[2]
BUNDLED_MANIFESTS = REPO / "manifests"


@dataclass
class RecordingHooks:
    """``CommandHooks`` that record every call as ``(hook, args...)``; autocomplete data is settable."""

    catalog: Catalog | None = None  # with it, /choices and autocomplete follow the access policy
    calls: list[tuple] = field(default_factory=list)
    live: dict[str, list[str]] = field(default_factory=dict)
    jobs: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    access: AccessPolicy = field(default_factory=AccessPolicy)

    def hooks(self) -> CommandHooks:
        def recorder(hook: str):
            async def record(interaction: Any, *args: Any) -> None:
                self.calls.append((hook, *args))
                await interaction.response.defer(thinking=True)
            return record

        return CommandHooks(run=recorder("run"), setup=recorder("setup"), help=recorder("help"),
                            status=recorder("status"), workflows=recorder("workflows"),
                            choices=recorder("choices"), cancel=recorder("cancel"),
                            live_choices=lambda source: self.live.get(source, []),
                            user_jobs=self.user_jobs, listed=lambda i, wf: self.access.may_list(Who.of(i), wf),
                            sources=self.sources)

    async def user_jobs(self, interaction: Any) -> list[tuple[str, str]]:
        return self.jobs.get(interaction.user.id, [])

    def sources(self, interaction: Any) -> list[str]:
        return self.access.sources(Who.of(interaction), self.catalog) if self.catalog else []


@pytest.fixture(scope="session")
def fixture_catalog() -> Catalog:
    catalog = load_catalog([FIXTURE_MANIFESTS])
    assert not catalog.issues, catalog.issues
    return catalog


@pytest.fixture(scope="session")
def bundled_catalog() -> Catalog:
    if not any(BUNDLED_MANIFESTS.glob("*.yaml")):
        pytest.skip("no bundled manifests yet")
    return load_catalog([BUNDLED_MANIFESTS])


@pytest.fixture
def recording_hooks(fixture_catalog) -> RecordingHooks:
    return RecordingHooks(fixture_catalog)


@pytest.fixture
async def discord_fake():
    """A started, never-logged-in client with an empty tree; add commands with ``fake.tree.add_command``."""
    async with fake_discord() as fake:
        yield fake


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    """The flow tests' catalog (``stack.flow_catalog``) in this test's own folder; a module may
    define its own ``catalog``."""
    return flow_catalog(tmp_path / "manifests")


@pytest.fixture
def db_path(tmp_path) -> Path:
    """Where a test's offline stack keeps its SQLite job store."""
    return tmp_path / "state" / "jobs.sqlite3"
