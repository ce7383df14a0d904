"""`engine run MANIFEST --help` lists the manifest's params, derived from the Param model."""

from __future__ import annotations

from pathlib import Path

from engine import load_workflow
from engine.cli.main import main
from engine.manifest.help import params_help

ROOT = Path(__file__).resolve().parents[2]


def test_every_param_appears_with_its_rule(workflow):
    text = params_help(workflow)
    for name, param in workflow.manifest.params.items():
        assert f"  {name}" in text
        assert param.rule() in text
    assert "int 1–150, default 30" in text
    assert "text, ≤ 500 characters, required" in text
    assert "from the server's LoraLoaderModelOnly.lora_name matching /^flux//, unset: node bypassed" in text
    assert "one of euler, dpmpp_2m, default euler" in text


def test_cli_help_with_a_manifest_shows_its_params(capsys):
    assert main(["run", str(ROOT / "manifests" / "canvas.yaml"), "--help"]) == 0
    out = capsys.readouterr().out
    assert "--set KEY=VALUE" in out
    assert "16711680 (Red)" in out and "int 16–2048, default 512" in out


def test_cli_help_without_a_manifest_is_plain(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "MANIFEST" in out and "parameters (--set" not in out


def test_bundled_manifests_all_have_help():
    for path in sorted((ROOT / "manifests").glob("*.yaml")):
        assert "parameters (--set NAME=VALUE):" in params_help(load_workflow(path))
