"""The README's set-up commands are the ones CI runs."""

import re
from pathlib import Path

from bot.config import Settings
from bot.config_reference import with_reference

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = "python3 -m pip install -q -e '.[test]' && python3 -m pytest -q"
    assert test_command in readme
    assert test_command in ci.splitlines()


def test_the_two_set_up_commands_come_first():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.+?)\n```", readme, flags=re.S)
    assert blocks[0].startswith("python3 -m pip install . && ") and blocks[0].endswith("discomfy run")
    assert blocks[1] == "python3 -m pip install -q -e '.[test]' && python3 -m pytest -q"
    assert re.findall(r"\n## ([^\n]+)", readme)[0] == "Set up"  # the first section, before anything else
    assert readme.index("## Set up") < readme.index("```bash")


def test_the_configuration_reference_is_generated_from_the_settings_model():
    readme = (ROOT / "README.md").read_text()
    assert with_reference(readme) == readme, "run: python -m bot.config_reference README.md"
    for name in Settings.model_fields:
        assert f"| `{name}` |" in readme


def test_every_engine_limit_is_a_setting_and_is_explained():
    import dataclasses

    from engine import DEFAULT_LIMITS, Limits

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    bot_names = {"max_image_bytes": "max_upload_bytes", "max_image_pixels": "max_input_pixels"}
    for field in dataclasses.fields(Limits):
        setting = bot_names.get(field.name, field.name)
        assert setting in Settings.model_fields and f"`{setting}`" in section, setting
        if setting == field.name:  # the bot's default is the engine's, not a second copy
            assert Settings.model_fields[setting].default == getattr(DEFAULT_LIMITS, field.name)
