"""The generated command surface: payload snapshots, invocation through the offline Discord,
autocomplete, transform re-validation, static commands and the ``discomfy commands`` CLI."""

from __future__ import annotations

import json
import keyword
import os
from pathlib import Path
from types import MappingProxyType

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.commands.slash import build_commands, command_payload, inert_hooks
from bot.commands.options import make_param_option, option_params, python_names, rank_choices
from bot.commands.payload_limits import check_payload
from engine.manifest.catalog import Catalog, Workflow
from engine.checks.discord_limits import RESERVED_COMMANDS
from engine.manifest.model import FloatParam, Manifest
from engine import ParamError, resolve_values

from .conftest import BUNDLED_MANIFESTS, FIXTURE_MANIFESTS
from .harness import fake_discord
from .payloads import USER_ID, Opt, Upload

SNAPSHOTS = Path(__file__).parent / "snapshots"
PNG = b"\x89PNG\r\n\x1a\n fake image bytes"


def _matches_snapshot(name: str, payload: list[dict]) -> None:
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; create it with UPDATE_SNAPSHOTS=1"
    assert json.loads(path.read_text(encoding="utf-8")) == payload, \
        f"{path.name} differs from the generated payload (regenerate with UPDATE_SNAPSHOTS=1 if intended)"


def test_fixture_catalog_payload_matches_snapshot_and_limits(fixture_catalog):
    payload = command_payload(build_commands(fixture_catalog, inert_hooks()))
    _matches_snapshot("fixture_catalog", payload)
    assert check_payload(payload) == []


def test_bundled_catalog_payload_matches_snapshot_and_limits(bundled_catalog):
    assert not bundled_catalog.issues, bundled_catalog.issues
    payload = command_payload(build_commands(bundled_catalog, inert_hooks()))
    _matches_snapshot("bundled_catalog", payload)
    assert check_payload(payload) == []


def test_command_shape(fixture_catalog):
    payload = {c["name"]: c for c in command_payload(build_commands(fixture_catalog, inert_hooks()))}
    assert (*tuple(payload)[:6], "admin") == RESERVED_COMMANDS  # kept free by engine validate; the app adds /admin
    generate = payload["generate"]  # two manifests → a group with setup + one subcommand each
    assert [o["name"] for o in generate["options"]] == ["setup", "flux", "sdxl"]
    assert all(o["type"] == 1 for o in generate["options"])
    flux = {o["name"]: o for o in generate["options"][1]["options"]}
    assert "negative" not in flux and "steps" not in flux  # advanced → the Settings modal
    assert flux["seed"] == {**flux["seed"], "type": 4, "min_value": -1, "max_value": 2**53 - 1}
    assert flux["lora"]["autocomplete"] is True and "choices" not in flux["lora"]
    assert [c["value"] for c in flux["sampler"]["choices"]] == ["euler", "euler_ancestral", "dpmpp_2m"]
    sdxl = {o["name"]: o for o in generate["options"][2]["options"]}
    assert sdxl["size"]["autocomplete"] is True  # 30 static choices > 25
    edit = {o["name"]: o for o in payload["edit"]["options"]}  # one manifest → top-level command
    assert edit["image"]["type"] == 11 and edit["image2"]["type"] == 11  # advanced image stays an option
    assert "negative-prompt" in edit and "class" in edit
    assert [o["required"] for o in payload["edit"]["options"]] == sorted(
        [o["required"] for o in payload["edit"]["options"]], reverse=True)
    assert payload["spicy"]["nsfw"] is True and generate["nsfw"] is False


async def test_subcommand_passes_typed_values_keyed_by_param_name(fixture_catalog, recording_hooks):
    recording_hooks.live["LoraLoaderModelOnly.lora_name"] = ["flux-style.safetensors", "sd15.safetensors"]
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.slash("generate flux", prompt="a cat", cfg=Opt(10, 7.5), sampler="dpmpp_2m",
                         lora="flux-style.safetensors", seed=42)
    assert fake.errors == []
    (hook, workflow, values), = recording_hooks.calls
    assert hook == "run" and workflow.name == "flux"
    assert values == {"prompt": "a cat", "cfg": 7.5, "sampler": "dpmpp_2m", "lora": "flux-style.safetensors",
                      "seed": 42}
    assert fake.callbacks() == [{"type": 5}]


async def test_attachments_renamed_and_keyword_options_reach_run(fixture_catalog, recording_hooks):
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.dispatch(fake.slash_payload("edit", {
            "prompt": "make it blue", "image": Upload("in.png", PNG), "negative-prompt": "blurry",
            "class": 2, "fast": True}))
        (_, workflow, values), = recording_hooks.calls
        assert workflow.name == "edit-qwen"
        assert set(values) == {"prompt", "image", "negative-prompt", "class", "fast"}  # unset options dropped
        assert values["negative-prompt"] == "blurry" and values["class"] == 2 and values["fast"] is True
        assert isinstance(values["image"], discord.Attachment) and values["image"].filename == "in.png"
        assert await values["image"].read() == PNG  # served by the harness CDN


async def test_option_values_reach_the_flow_as_discord_typed_them(fixture_catalog, recording_hooks):
    """No check here: the flow checks a job's values once (``Runtime.prepare``; see test_e2e)."""
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.slash("edit", prompt="make it blue", image=Upload("in.png", PNG), steps=999)
    (_, workflow, values), = recording_hooks.calls
    assert workflow.name == "edit-qwen" and values["steps"] == 999
    assert fake.errors == []


@pytest.mark.parametrize(("options", "message"), [
    ({"size": "999"}, "size: is not one of the offered choices"),  # autocomplete: Discord does not enforce
    ({"lora": "sd15.safetensors"}, "lora: is not available on the server"),  # filtered out by (?i)flux
])
async def test_free_autocomplete_values_pass_to_the_one_check(fixture_catalog, recording_hooks, options, message):
    recording_hooks.live["LoraLoaderModelOnly.lora_name"] = ["flux-style.safetensors", "sd15.safetensors"]
    command = "generate sdxl" if "size" in options else "generate flux"
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.slash(command, prompt="a cat", **options)
    (_, workflow, values), = recording_hooks.calls
    with pytest.raises(ParamError) as refused:  # what the flow's one check says about them
        resolve_values(workflow, values, live=recording_hooks.live)
    assert str(refused.value) == message


async def test_non_image_attachment_is_rejected(fixture_catalog, recording_hooks):
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.slash("upscale", image=Upload("notes.txt", b"hello", "text/plain"))
    assert recording_hooks.calls == []
    assert [str(e) for e in fake.errors] == ["image: must be an image (PNG, JPEG or WebP)"]


async def test_autocomplete_static_choices_ranks_prefix_first(fixture_catalog, recording_hooks):
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        suggestions = await fake.autocomplete("generate sdxl", {"prompt": "x", "size": "12"}, focused="size")
    assert [s["value"] for s in suggestions] == ["1216", "1280", "512", "2112"]


async def test_autocomplete_live_list_is_filtered_and_capped(fixture_catalog, recording_hooks):
    recording_hooks.live["LoraLoaderModelOnly.lora_name"] = (
        [f"flux-{i:03}.safetensors" for i in range(60)] + ["sdxl-anime.safetensors", "x" * 120 + "flux"])
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        everything = await fake.autocomplete("generate flux", {"lora": ""}, focused="lora")
        narrowed = await fake.autocomplete("generate flux", {"lora": "FLUX-05"}, focused="lora")
    assert len(everything) == 25 and all("flux" in s["value"] for s in everything)
    assert [s["value"] for s in narrowed] == [f"flux-05{i}.safetensors" for i in range(10)]


async def test_setup_subcommand_calls_the_setup_hook(fixture_catalog, recording_hooks):
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        await fake.slash("generate setup")
    assert recording_hooks.calls == [("setup", "generate")]


async def test_static_commands_delegate_to_hooks(fixture_catalog, recording_hooks):
    recording_hooks.jobs[USER_ID] = [("abc123", "flux: a cat (running)"), ("def456", "sdxl: a dog (queued)")]
    async with fake_discord(build_commands(fixture_catalog, recording_hooks.hooks())) as fake:
        for name in ("help", "status", "workflows"):
            await fake.slash(name)
        sources = await fake.autocomplete("choices", {"source": "upscale"}, focused="source")
        await fake.slash("choices", source="UpscaleModelLoader.model_name", filter="4x")
        jobs = await fake.autocomplete("cancel", {"job": "dog"}, focused="job")
        await fake.slash("cancel", job="def456")
        await fake.slash("choices", source="Nope.input")
    assert [s["value"] for s in sources] == ["UpscaleModelLoader.model_name"]
    assert jobs == [{"name": "sdxl: a dog (queued)", "value": "def456"}]
    assert recording_hooks.calls == [("help",), ("status",), ("workflows",),
                                     ("choices", "UpscaleModelLoader.model_name", "4x"), ("cancel", "def456")]
    assert [str(e) for e in fake.errors] == ["source: is not a list any workflow uses"]


async def test_sync_puts_exactly_the_generated_payload(fixture_catalog):
    commands = build_commands(fixture_catalog, inert_hooks())
    expected = command_payload(commands)
    async with fake_discord(commands) as fake:
        await fake.tree.sync()
    (put,) = [r for r in fake.sent("http") if r.method == "PUT"]
    assert put.path.endswith("/commands") and put.payload == expected


def test_cli_prints_the_sync_payload(capsys, fixture_catalog):
    assert main(["commands", "--json", "--manifests", str(FIXTURE_MANIFESTS)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == command_payload(build_commands(fixture_catalog, inert_hooks()))


def test_cli_fails_on_a_payload_over_the_size_budget(capsys, tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "w.json").write_text(json.dumps({"1": {"class_type": "X", "inputs": {"v": "a"}}}))
    choices = "".join(f"\n      - {{name: {'n' * 98}{i:02}, value: {'v' * 98}{i:02}}}" for i in range(25))
    (tmp_path / "manifests" / "big.yaml").write_text(
        f"description: {'d' * 100}\nworkflow: w.json\nparams:\n  v:\n    type: choice\n"
        f"    bind: '$[\"1\"].inputs.v'\n    choices:{choices}\n")
    assert main(["commands", "--manifests", str(tmp_path / "manifests")]) == 0  # 5105 ≤ 8000
    assert main(["commands", "--manifests", str(tmp_path / "manifests"), "--budget", "4000"]) == 1
    err = capsys.readouterr().err
    assert "discord limit: /big: 5105 characters in names, descriptions and choices (budget 4000)" in err


def test_cli_reads_manifests_within_the_limits_the_environment_sets(capsys, monkeypatch):
    monkeypatch.setenv("DISCOMFY_MAX_MANIFEST_BYTES", "100")
    assert main(["commands", "--manifests", str(FIXTURE_MANIFESTS)]) == 1
    assert "max_manifest_bytes" in capsys.readouterr().err
    monkeypatch.setenv("DISCOMFY_MAX_MANIFEST_BYTES", "lots")
    assert main(["commands", "--manifests", str(FIXTURE_MANIFESTS)]) == 2
    assert "DISCOMFY_MAX_MANIFEST_BYTES must be a whole number" in capsys.readouterr().err


def test_cli_outline_lists_bundled_commands(capsys):
    if not any(BUNDLED_MANIFESTS.glob("*.yaml")):
        pytest.skip("no bundled manifests yet")
    main(["commands"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == ["/help", "/status", "/workflows", "/choices source filter?", "/cancel job"]


# ---- option derivation (pure) -------------------------------------------------------------------

@given(st.lists(st.text(alphabet="abz-_09", min_size=1, max_size=32) | st.sampled_from(
    ["class", "interaction", "negative-prompt", "negative_prompt", "2x", "def"]), unique=True, max_size=30))
def test_python_names_are_distinct_identifiers(names):
    idents = python_names(names)
    assert list(idents) == names
    assert len(set(idents.values())) == len(names) and "interaction" not in idents.values()
    assert all(i.isidentifier() and not keyword.iskeyword(i) for i in idents.values())


@given(st.lists(st.text(max_size=120), max_size=80), st.text(max_size=5))
def test_rank_choices_filters_caps_and_puts_prefixes_first(candidates, typed):
    ranked = rank_choices(((c, c) for c in candidates), typed)
    needle = typed.strip().casefold()
    assert len(ranked) <= 25
    assert all(needle in c.name.casefold() and len(c.value) <= 100 for c in ranked)
    prefixes = [c.name.casefold().startswith(needle) for c in ranked]
    assert prefixes == sorted(prefixes, reverse=True)
    eligible = [c for c in candidates if needle in c.casefold() and len(c) <= 100]
    assert len(ranked) == min(25, len(eligible))


async def test_bounds_discord_cannot_carry_are_left_to_the_engine():
    param = FloatParam(type="float", min=-1e300, max=1e20, bind="$")
    option = make_param_option("v", param, lambda _: [])
    assert (option.min_value, option.max_value) == (None, None)  # 1e20 > 2**53 - 1
    assert await option.transform(None, 2e20) == 2e20  # passed on as given ...
    with pytest.raises(ParamError, match=r"^v: must be ≤ 1e\+20$"):  # ... and refused by the one check
        param.read("v", 2e20)
    assert param.read("v", 3) == 3.0


def test_option_params_are_basic_params_plus_images(fixture_catalog):
    assert option_params(fixture_catalog["edit-qwen"].manifest) == [
        "prompt", "image", "image2", "negative-prompt", "class", "steps", "fast"]


def test_what_discord_cannot_hold_is_skipped_not_fatal(caplog):
    def manifest(name: str, command: str) -> Workflow:
        m = Manifest.model_validate({"name": name, "command": command, "description": "d", "params": {}})
        return Workflow(m, MappingProxyType({}), MappingProxyType({}), None)

    wfs = [manifest("help", "help"), manifest("setup", "gen"), *(manifest(f"g{i:02}", "gen") for i in range(25)),
           *(manifest(f"z{i:02}", f"z{i:02}") for i in range(96))]
    payload = command_payload(build_commands(Catalog(MappingProxyType({w.name: w for w in wfs})), inert_hooks()))
    assert len(payload) == 100 and check_payload(payload) == []
    gen = next(c for c in payload if c["name"] == "gen")
    assert [o["name"] for o in gen["options"]] == ["setup"] + [f"g{i:02}" for i in range(24)]
    assert [c["name"] for c in payload].count("help") == 1
    assert "z92" in [c["name"] for c in payload] and "z93" not in [c["name"] for c in payload]
    assert "skipping" in caplog.text
