"""engine.checks.validate: the case folders, cross-manifest limits, and robustness on arbitrary YAML."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.checks import discord_limits as limits
from engine.errors import EngineError
from engine.checks.validate import Report, validate_paths

HERE = Path(__file__).parent
CASES = sorted(p for p in (HERE / "cases").iterdir() if p.is_dir())
OBJECT_INFO = json.loads((HERE.parent / "data" / "comfyui" / "object_info.json").read_text())
SDXL = HERE / "data" / "graphs" / "sdxl_lora.json"


def _run_case(case: Path, monkeypatch) -> Report:
    monkeypatch.chdir(case)
    return validate_paths(["manifest.yaml"], workflows_dir=".", object_info=OBJECT_INFO)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_case_reports_exactly_the_expected_lines(case, monkeypatch):
    expected = (case / "expected_errors.txt").read_text().splitlines()
    report = _run_case(case, monkeypatch)
    assert [str(i) for i in report.issues] == expected
    assert report.ok == (not expected)
    assert report.manifests[0].issues == len(expected)


def test_several_mistakes_are_all_reported_in_one_run(monkeypatch):
    report = _run_case(HERE / "cases" / "many_mistakes", monkeypatch)
    codes = {i.code for i in report.issues}
    assert {"class_missing", "extra_forbidden", "bind_unmatched", "value_error"} <= codes
    assert report.manifests[0].line() == "FAIL sdxl (sdxl) — 4 issues"


def test_clean_manifest_summary_line(monkeypatch):
    report = _run_case(HERE / "cases" / "good_flux", monkeypatch)
    assert report.lines() == ["ok   flux (generate) — 6 params, 3 advanced, 0 actions"]
    assert report.to_dict() == {"manifests": [{"file": "manifest.yaml", "name": "flux", "command": "generate",
                                               "params": 6, "advanced": 3, "actions": 0, "issues": 0, "ok": True}],
                                "issues": [], "ok": True}


def test_without_server_data_only_server_checks_are_skipped(monkeypatch):
    monkeypatch.chdir(HERE / "cases" / "many_mistakes")
    report = validate_paths(["manifest.yaml"], workflows_dir=".")
    assert [i.code for i in report.issues] == ["extra_forbidden", "bind_unmatched", "value_error"]


def test_issues_are_sorted_by_file_and_position(monkeypatch):
    report = _run_case(HERE / "cases" / "combo_values", monkeypatch)
    assert list(report.issues) == sorted(report.issues)


# --- cross-manifest limits --------------------------------------------------------------------

def _write_manifests(tmp_path: Path, count: int, command=lambda i: "generate", params: str = "") -> Path:
    (tmp_path / "workflows").mkdir()
    shutil.copy(SDXL, tmp_path / "workflows" / "sdxl.json")
    folder = tmp_path / "manifests"
    folder.mkdir()
    for i in range(count):
        (folder / f"m{i:03}.yaml").write_text(f"workflow: sdxl.json\ndescription: Manifest {i}\n"
                                               f"command: {command(i)}\n{params}")
    return folder


def test_more_than_24_manifests_in_one_command(tmp_path):
    report = validate_paths([_write_manifests(tmp_path, 25)])  # 24 + the bot's setup subcommand
    assert [(Path(i.file).name, i.line, i.message) for i in report.issues] == [
        ("m024.yaml", 3, "command 'generate' has 25 manifests; Discord allows 25 subcommands, 24 next to 'setup'")]


def test_more_than_93_commands(tmp_path):
    report = validate_paths([_write_manifests(tmp_path, 94, command=lambda i: f"c{i:03}")])
    assert [(Path(i.file).name, i.message) for i in report.issues] == [
        ("m093.yaml", "command 'c093' is number 94; Discord allows 100 commands, 93 next to the bot's built-in ones")]


def test_reserved_command_and_setup_names(tmp_path):
    folder = _write_manifests(tmp_path, 2, command=lambda i: ["help", "gen"][i])
    (folder / "setup.yaml").write_text("workflow: sdxl.json\ndescription: d\ncommand: gen\n")
    assert [(Path(i.file).name, i.line, i.message) for i in validate_paths([folder]).issues] == [
        ("m000.yaml", 3, "command 'help' is one of the bot's built-in commands (help, status, workflows, choices, "
                         "cancel, jobs, admin)"),
        ("setup.yaml", 1, "manifest 'setup' in command 'gen': 'setup' is the guided setup subcommand of every group")]


def test_required_params_must_be_slash_options(tmp_path):
    params = "params:\n  x: {type: int, required: true, advanced: true, bind: '$[\"3\"].inputs.steps'}\n" \
             "  img: {type: image, required: true, advanced: true, bind: '$[\"9\"].inputs.images'}\n"
    messages = [i.message for i in validate_paths([_write_manifests(tmp_path, 1, params=params)]).issues]
    assert "a required param must be a slash option: it cannot be advanced (the settings modal is optional)" in messages
    assert len([m for m in messages if "slash option" in m]) == 1  # images are attachments, always options


def test_command_size_budget(tmp_path):
    long = "x" * 100
    choices = "".join(f"\n      - {{name: '{long}', value: v{j}}}" for j in range(25))
    params = f"params:\n  a:\n    type: choice\n    description: '{long}'\n    choices:{choices}\n" \
             "    bind: '$[\"9\"].inputs.filename_prefix'\n"
    report = validate_paths([_write_manifests(tmp_path, 4, params=params)])
    assert len(report.issues) == 1
    assert "Discord allows 8000" in report.issues[0].message


def test_duplicate_names_and_actions_come_through(tmp_path):
    folder = _write_manifests(tmp_path, 2, params="actions: [nowhere]\n")
    (folder / "m001.yaml").write_text((folder / "m001.yaml").read_text() + "name: m000\n")
    messages = [i.message for i in validate_paths([folder]).issues]
    assert "action 'nowhere' names no manifest" in messages
    assert any(m.startswith("duplicate manifest name 'm000'") for m in messages)


def test_a_manifest_named_alone_is_checked_among_its_folder(tmp_path):
    folder = _write_manifests(tmp_path, 25)  # 25 in one command: m024 is one too many
    for name, action in (("m000", "m001"), ("m001", "nowhere")):
        (folder / f"{name}.yaml").write_text((folder / f"{name}.yaml").read_text() + f"actions: [{action}]\n")
    alone = validate_paths([folder / "m000.yaml"])
    assert [m.name for m in alone.manifests] == ["m000"]  # its action is found beside it (and checked):
    assert [i.message for i in alone.issues] == ["action 'm001' takes no image to feed the result into"]
    last = validate_paths([folder / "m024.yaml"])
    assert [(Path(i.file).name, i.line) for i in last.issues] == [("m024.yaml", 3)]  # its group counts the others
    broken = validate_paths([folder / "m001.yaml"])
    assert [i.message for i in broken.issues][:1] == ["action 'nowhere' names no manifest"]


def test_derived_texts_follow_the_documented_rules():
    from engine.manifest.model import IntParam
    param = IntParam(type="int", bind="$", label="Steps to run")
    assert param.description_for("steps") == "Steps to run"
    assert IntParam(type="int", bind="$").label_for("max_steps") == "Max steps"
    assert limits.modal_title("Flux") == "Flux settings"


# --- robustness -------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_keys = st.sampled_from(["name", "workflow", "description", "params", "type", "bind", "default", "min", "max",
                         "choices", "choices_from", "when_unset", "outputs", "actions", "command", "prompt"])
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(_keys, st.text(max_size=8)), inner, max_size=5)),
    max_leaves=20)


def _dump(data) -> str:
    from io import StringIO
    out = StringIO()
    YAML(typ="safe").dump(data, out)
    return out.getvalue()


def _check_never_crashes(tmp_path: Path, text: str) -> None:
    manifest = tmp_path / "manifests" / "x.yaml"
    manifest.parent.mkdir(exist_ok=True)
    (tmp_path / "workflows").mkdir(exist_ok=True)
    shutil.copy(SDXL, tmp_path / "workflows" / "x.json")
    manifest.write_text(text, encoding="utf-8")
    try:  # validate_paths runs inspect_manifest, then every other check
        report = validate_paths([manifest], object_info=OBJECT_INFO)
    except EngineError:
        return
    assert isinstance(report.ok, bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(tmp_path, text):
    _check_never_crashes(tmp_path, text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_documents)
def test_arbitrary_yaml_structures_never_crash(tmp_path, data):
    _check_never_crashes(tmp_path, _dump(data))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["type", "bind", "default", "min", "max", "choices", "choices_from",
                                        "advanced", "required", "when_unset", "max_length", "filter"]),
                       st.one_of(_scalars, st.sampled_from(["int", "choice", "seed", "text", "image", "bypass",
                                                            '$["3"].inputs.steps', '$["6"].inputs.text',
                                                            "LoraLoader.lora_name", "KSampler.steps"]),
                                 st.lists(_scalars, max_size=3)), max_size=8))
def test_arbitrary_params_never_crash(tmp_path, param):
    _check_never_crashes(tmp_path, _dump({"description": "d", "params": {"p": param}}))


def test_a_file_named_twice_is_checked_once(monkeypatch):
    monkeypatch.chdir(HERE / "cases" / "good_flux")
    report = validate_paths(["manifest.yaml", "manifest.yaml", "."], workflows_dir=".")
    assert report.ok and len(report.manifests) == 1


def test_multiselect_literals_are_checked_value_by_value(tmp_path):
    from engine.checks.server import graph_issues
    from engine.manifest.source import read_yaml
    src, _ = read_yaml("workflow: w.json\n", "m.yaml")
    info = {"Pick": {"input": {"required": {"tags": ["COMBO", {"multiselect": True, "options": ["a", "b"]}]}}}}
    graph = {"1": {"class_type": "Pick", "inputs": {"tags": ["a", "b"]}},
             "2": {"class_type": "Pick", "inputs": {"tags": ["a", "z"]}}}
    assert [str(i) for i in graph_issues(src, graph, info, set())] == [
        "m.yaml:1:1: node 2 (Pick) input tags: ['a', 'z'] is not available on the server"]
