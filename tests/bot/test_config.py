"""Tests for bot.config: file and environment sources, precedence, and every problem reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import BackendConfig, ConfigError, RateLimit, Settings, env_names, load_settings

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.not-a-real-token_0123456789abcdef"


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "discomfy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    assert str(excinfo.value) == "\n".join(excinfo.value.problems)
    return excinfo.value.problems


def test_defaults_with_only_a_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={"DISCORD_TOKEN": TOKEN})
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.backends == [BackendConfig(name="local", url="http://127.0.0.1:8188")]
    assert settings.manifests_dir == tmp_path / "manifests"
    assert settings.workflows_dir == tmp_path / "workflows"
    assert settings.db_path == tmp_path / "discomfy.sqlite3"
    assert settings.rate_per_user == RateLimit(count=5, per_seconds=60)
    assert settings.guild_ids == [] and settings.admin_user_ids == []
    assert settings.progress_interval >= 1.5


def test_environment_only():
    settings = load_settings(
        env={
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_GUILD_IDS": "111, 222",
            "COMFYUI_URLS": "gpu1=http://comfyui:8188, http://10.0.0.2:8188/",
            "DISCOMFY_ADMIN_ROLE_IDS": "42",
            "DISCOMFY_RATE_PER_USER": "3/30",
            "DISCOMFY_MAX_CONCURRENT_PER_USER": "4",
            "DISCOMFY_MANIFESTS_DIR": "/srv/manifests",
            "DISCOMFY_PROGRESS_INTERVAL": "5",
        }
    )
    assert settings.guild_ids == [111, 222]
    assert settings.backends == [
        BackendConfig(name="gpu1", url="http://comfyui:8188"),
        BackendConfig(name="comfyui-2", url="http://10.0.0.2:8188"),
    ]
    assert settings.admin_role_ids == [42]
    assert settings.rate_per_user == RateLimit(count=3, per_seconds=30)
    assert settings.max_concurrent_per_user == 4
    assert settings.manifests_dir == Path("/srv/manifests")
    assert settings.progress_interval == 5


def test_old_bot_variable_names_still_work():
    settings = load_settings(
        env={
            "DISCORD_TOKEN": TOKEN,
            "DISCORD_GUILD_ID": "7",
            "COMFYUI_URL": "http://host.docker.internal:8188",
        }
    )
    assert settings.guild_ids == [7]
    assert settings.backends[0].url == "http://host.docker.internal:8188"


def test_file_only(tmp_path):
    path = write_toml(
        tmp_path,
        f"""
discord_token = "{TOKEN}"
guild_ids = [1, 2]
admin_user_ids = [9]
rate_global = {{count = 50, per_seconds = 10}}
max_upload_bytes = 1_000_000
db_path = "data/jobs.sqlite3"

[[backends]]
name = "gpu1"
url = "https://gpu1.example.org"

[[backends]]
name = "gpu2"
url = "http://gpu2:8188"
""",
    )
    settings = load_settings(path, env={})
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.guild_ids == [1, 2]
    assert settings.admin_user_ids == [9]
    assert settings.rate_global == RateLimit(count=50, per_seconds=10)
    assert settings.max_upload_bytes == 1_000_000
    assert settings.db_path == Path.cwd() / "data/jobs.sqlite3"
    assert [b.name for b in settings.backends] == ["gpu1", "gpu2"]


def test_config_path_from_the_environment(tmp_path):
    path = write_toml(tmp_path, "max_concurrent_per_user = 7\n")
    settings = load_settings(env={"DISCOMFY_CONFIG": str(path), "DISCORD_TOKEN": TOKEN})
    assert settings.max_concurrent_per_user == 7


def test_environment_overrides_the_file(tmp_path):
    path = write_toml(
        tmp_path,
        f"""
discord_token = "file-token"
rate_per_user = "1/10"
max_concurrent_per_user = 1
backends = ["http://from-file:8188"]
""",
    )
    env = {"DISCORD_TOKEN": TOKEN, "DISCOMFY_RATE_PER_USER": "9/90", "COMFYUI_URLS": "http://from-env:8188"}
    settings = load_settings(path, env=env)
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.rate_per_user == RateLimit(count=9, per_seconds=90)
    assert settings.max_concurrent_per_user == 1  # not in the environment: the file's value
    assert settings.backends == [BackendConfig(name="comfyui-1", url="http://from-env:8188")]


def test_empty_environment_variables_count_as_unset(tmp_path):
    path = write_toml(tmp_path, f'discord_token = "{TOKEN}"\nguild_ids = [5]\n')
    settings = load_settings(path, env={"DISCORD_TOKEN": "", "DISCORD_GUILD_IDS": "  "})
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.guild_ids == [5]


def test_every_problem_is_reported_one_per_line_without_the_token():
    secret = "super secret token"  # has spaces: invalid
    env = {
        "DISCORD_TOKEN": secret,
        "COMFYUI_URLS": "ftp://files.example.org, gpu=http://host:notaport, http://",
        "DISCOMFY_RATE_PER_USER": "-3/30",
        "DISCOMFY_RATE_GLOBAL": "20",
        "DISCOMFY_MAX_UPLOAD_BYTES": "-1",
        "DISCOMFY_MAX_CONCURRENT_PER_USER": "0",
        "DISCOMFY_PROGRESS_INTERVAL": "0.5",
        "DISCOMFY_GUILD_IDS": "not-a-number",
        "DISCOMFY_LOG_LEVEL": "loud",
        "DISCOMFY_NO_SUCH_THING": "1",
    }
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env=env)
    problems = problems_of(excinfo)
    expected_prefixes = [
        "DISCOMFY_NO_SUCH_THING: unknown setting",
        "discord_token: must be a single word without spaces",
        "guild_ids.0:",
        "backends.0.url: must be an http(s) URL",
        "backends.1.url: must be an http(s) URL with a valid port",
        "backends.2.url: must be an http(s) URL",
        "rate_per_user.count: Input should be greater than 0",
        'rate_global: must be written "COUNT/SECONDS"',
        "max_concurrent_per_user:",
        "max_upload_bytes:",
        "progress_interval: Input should be greater than or equal to 1.5",
        "log_level:",
    ]
    assert len(problems) == len(expected_prefixes)
    for prefix in expected_prefixes:
        assert sum(p.startswith(prefix) for p in problems) >= 1, prefix
    assert "(from environment DISCOMFY_RATE_PER_USER)" in "\n".join(problems)
    text = str(excinfo.value)
    assert "secret" not in text
    assert "files.example.org" not in text and "notaport" not in text


def test_missing_token_is_reported_when_required():
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env={"DISCOMFY_MAX_UPLOAD_BYTES": "0"})
    problems = problems_of(excinfo)
    assert problems[0].startswith("discord_token: missing; set DISCORD_TOKEN")
    assert problems[1].startswith("max_upload_bytes:")


def test_token_is_optional_for_offline_tools():
    assert load_settings(env={}, require_token=False).discord_token is None


def test_file_problems_name_the_file_and_unknown_keys(tmp_path):
    path = write_toml(
        tmp_path,
        """
colour = "blue"
max_input_pixels = 999_999_999_999
[[backends]]
name = "has space"
url = "http://ok:8188"
[[backends]]
name = "twin"
""",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={}, require_token=False)
    problems = problems_of(excinfo)
    assert {p.split(":")[0] for p in problems} == {
        "colour", "max_input_pixels", "backends.0.name", "backends.1.url"
    }
    assert all(p.endswith(f"(from config file {path})") for p in problems)
    assert any(p.startswith("colour: unknown setting") for p in problems)


def test_duplicate_backend_names_are_refused():
    with pytest.raises(ConfigError, match="repeated: gpu"):
        load_settings(env={"COMFYUI_URLS": "gpu=http://a:1,gpu=http://b:2"}, require_token=False)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})
    bad = write_toml(tmp_path, "guild_ids = [1,\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(bad, env={})


def test_secrets_and_urls_stay_out_of_repr():
    settings = load_settings(env={"DISCORD_TOKEN": TOKEN, "COMFYUI_URLS": "gpu=http://private-host:8188"})
    text = repr(settings) + str(settings)
    assert TOKEN not in text and "private-host" not in text
    assert "gpu" in text


def test_env_names():
    assert env_names("discord_token") == ("DISCORD_TOKEN", "DISCOMFY_DISCORD_TOKEN")
    assert env_names("rate_per_user") == ("DISCOMFY_RATE_PER_USER",)


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(ValueError):
        settings.max_upload_bytes = 1


def test_only_load_settings_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("DISCOMFY_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    assert Settings().max_upload_bytes != 1234  # the model itself takes explicit values only
    assert load_settings().max_upload_bytes == 1234
