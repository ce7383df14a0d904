"""check_payload: each Discord rule on hand-made payloads, and the property that any manifest the
engine's validator accepts generates a payload Discord accepts (gaps found are pinned as xfails)."""

from __future__ import annotations

import copy
import math
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.commands.slash import build_commands, command_payload, inert_hooks
from bot.commands.payload_limits import check_payload, command_chars
from engine.manifest.catalog import Catalog, Workflow
from engine.checks.discord_payloads import command_limit_issues, manifest_limit_issues, param_limit_issues
from engine.manifest.model import MAX_SEED, Manifest
from engine.manifest.source import YamlSource

OK = {"name": "gen", "description": "Generate", "type": 1, "options": [
    {"type": 3, "name": "prompt", "description": "What to draw", "required": True, "max_length": 2000},
    {"type": 4, "name": "steps", "description": "Steps", "required": False, "min_value": 1, "max_value": 50},
    {"type": 3, "name": "sampler", "description": "Sampler", "required": False,
     "choices": [{"name": "Euler", "value": "euler"}]},
]}


def _with(change) -> list[dict]:
    command = copy.deepcopy(OK)
    change(command)
    return [command]


def test_a_valid_payload_has_no_findings():
    assert check_payload([OK]) == []


@pytest.mark.parametrize(("change", "finding"), [
    (lambda c: c.update(name="Gen"), "/Gen: name 'Gen' must be lowercase"),
    (lambda c: c.update(name="x" * 33), "must be 1–32 letters"),
    (lambda c: c.update(description=""), "/gen: description has 0 characters (1–100)"),
    (lambda c: c.update(description="d" * 101), "/gen: description has 101 characters (1–100)"),
    (lambda c: c["options"][1].update(name="two words"), "option 'two words': name 'two words' must be"),
    (lambda c: c["options"][0].update(description="x" * 101), "option 'prompt': description has 101"),
    (lambda c: c["options"].extend(copy.deepcopy(c["options"][1]) | {"name": f"o{i}"} for i in range(23)),
     "/gen: 26 options (at most 25)"),
    (lambda c: c["options"].reverse(), "/gen: a required option comes after an optional one"),
    (lambda c: c["options"][2].update(choices=[{"name": f"c{i}", "value": f"{i}"} for i in range(26)]),
     "option 'sampler': 26 choices (at most 25)"),
    (lambda c: c["options"][2]["choices"][0].update(value="v" * 101),
     "option 'sampler': choice 'Euler': string value must be text of at most 100"),
    (lambda c: c["options"][2]["choices"][0].update(name=""), "choice name has 0 characters (1–100)"),
    (lambda c: c["options"][2].update(autocomplete=True), "option 'sampler': has both choices and autocomplete"),
    (lambda c: c["options"][1].update(max_value=2**53), "option 'steps': max_value 9007199254740992 is outside the INTEGER"),
    (lambda c: c["options"][1].update(min_value=60), "option 'steps': min_value 60 is bigger than max_value 50"),
    (lambda c: c["options"][1].update(type=10, min_value=math.inf), "min_value inf is outside the NUMBER range"),
    (lambda c: c["options"][0].update(max_length=6001), "option 'prompt': max_length 6001 is outside 1–6000"),
    (lambda c: c["options"][0].update(min_length=3, max_length=2), "min_length 3 is bigger than max_length 2"),
    (lambda c: c["options"].append(copy.deepcopy(c["options"][1])), "/gen: duplicate option name 'steps'"),
    (lambda c: c["options"].append({"type": 1, "name": "sub", "description": "s", "options": []}),
     "/gen: mixes subcommands with plain options"),
    (lambda c: c.update(description="d" * 100, options=[{"type": 3, "name": "p", "description": "x" * 100,
                                                         "choices": [{"name": "n" * 100, "value": "v" * 100}] * 20}]),
     "/gen: 4204 characters in names, descriptions and choices (budget 4000)"),
])
def test_each_rule_is_reported(change, finding):
    findings = check_payload(_with(change), size_budget=4000)
    assert any(finding in f for f in findings), findings


def test_group_limits_and_command_count():
    sub = {"type": 1, "name": "s", "description": "Sub", "options": []}
    group = {"name": "grp", "description": "Group", "type": 1,
             "options": [sub | {"name": f"s{i}"} for i in range(26)]}
    assert check_payload([group]) == ["/grp: 26 subcommands (at most 25)"]
    many = [OK | {"name": f"c{i}"} for i in range(101)]
    assert check_payload(many) == ["101 top-level commands (at most 100)"]


def test_command_chars_counts_names_descriptions_and_choices():
    assert command_chars(OK) == len("gen" "Generate" "prompt" "What to draw" "steps" "Steps" "sampler" "Sampler"
                                    "Euler" "euler")


# ---- property: validator-accepted manifests give Discord-accepted payloads ----------------------------

names = st.sampled_from(["setup", "help", "gen"]) | st.text(alphabet="abcz-_09", min_size=1, max_size=32)
short_text = st.text(min_size=0, max_size=110)
common = {"description": short_text, "label": st.text(max_size=50), "advanced": st.booleans(),
          "required": st.booleans(), "bind": st.just('$["1"].inputs.x')}
floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6)
ints = st.integers(-MAX_SEED, MAX_SEED) | st.integers(-10**30, 10**30)
choice_values = st.text(min_size=1, max_size=120) | ints | st.floats(allow_nan=False)
choice_lists = st.lists(st.fixed_dictionaries({"name": st.text(min_size=1, max_size=100), "value": choice_values}),
                        min_size=1, max_size=30, unique_by=lambda c: str(c["value"]))
params = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "min_length": st.integers(0, 6000),
                           "max_length": st.integers(1, 6000), **common}),
    st.fixed_dictionaries({"type": st.just("int"), "min": ints | st.none(), "max": ints | st.none(), **common}),
    st.fixed_dictionaries({"type": st.just("float"), "min": floats | st.none(), "max": floats | st.none(), **common}),
    st.fixed_dictionaries({"type": st.sampled_from(["bool", "seed", "image"]), **common}),
    st.fixed_dictionaries({"type": st.just("choice"), "choices": choice_lists, **common}),
    st.fixed_dictionaries({"type": st.just("choice"), "choices_from": st.just("Loader.input"), **common}),
)
manifests = st.fixed_dictionaries({
    "name": names, "description": st.text(min_size=1, max_size=100), "nsfw": st.booleans(),
    "command": st.sampled_from(["gen", "edit"]) | names, "params": st.dictionaries(names, params, max_size=30),
})


def _issues(accepted: list[tuple[YamlSource, Manifest]]) -> list:
    issues = command_limit_issues(accepted)
    for src, manifest in accepted:
        issues += manifest_limit_issues(src, manifest)
        issues += [i for n, p in manifest.params.items() for i in param_limit_issues(src, n, p)]
    return issues


def _parsed(raw_manifests: list[dict]) -> list[tuple[YamlSource, Manifest]] | None:
    try:
        parsed = [(YamlSource(f"{raw['name']}.yaml", raw, ""), Manifest.model_validate(raw)) for raw in raw_manifests]
    except ValidationError:
        return None
    return parsed if len({m.name for _, m in parsed}) == len(parsed) else None


def _catalog(accepted: list[tuple[YamlSource, Manifest]]) -> Catalog:
    return Catalog(MappingProxyType({m.name: Workflow(m, MappingProxyType({}), MappingProxyType({}), src)
                                     for src, m in accepted}))


def _reachable(payload: list[dict]) -> set[str]:
    paths = set()
    for command in payload:
        subs = [o["name"] for o in command["options"] if o["type"] == 1]
        paths |= {f"{command['name']} {s}" for s in subs} if subs else {command["name"]}
    return paths


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(manifests, min_size=1, max_size=4))
def test_validator_accepted_manifests_give_discord_accepted_payloads(raw_manifests):
    accepted = _parsed(raw_manifests)
    if accepted is None or _issues(accepted):
        return
    catalog = _catalog(accepted)
    payload = command_payload(build_commands(catalog, inert_hooks()))
    assert check_payload(payload) == []
    groups = catalog.commands()
    expected = {c if len(wfs) == 1 else f"{c} {wf.name}" for c, wfs in groups.items() for wf in wfs}
    assert expected <= _reachable(payload)  # every accepted manifest can be run


# ---- shapes the bot cannot serve, which the validator must refuse (each was a gap once) ----------------

def _manifest(name: str, command: str | None = None, description: str = "d", **params) -> dict:
    raw = {"name": name, "description": description, "params": params}
    return raw | ({"command": command} if command else {})


def _long_choice(count: int) -> dict:
    return {"type": "choice", "description": "x" * 100, "bind": "$",
            "choices": [{"name": "n" * 100, "value": f"{j:02}" + "v" * 98} for j in range(count)]}


GAPS = {
    "static command name": [_manifest("help")],
    "manifest named setup in a group": [_manifest("setup", "gen"), _manifest("flux", "gen")],
    "25 manifests in a group (setup takes a slot)": [_manifest(f"m{i}", "gen") for i in range(25)],
    "96 commands (+5 static > 100)": [_manifest(f"m{i}") for i in range(96)],
    "required advanced param (no slash option)": [_manifest("m", x={"type": "int", "required": True,
                                                                    "advanced": True, "bind": "$"})],
    "int choice value over 100 characters": [_manifest("m", x={"type": "choice", "choices": [{"name": "big", "value": 10**101}],
                                                               "bind": "$"})],
    # 8039 characters once "setup", its description and the group description are counted
    "group size misses setup and group description": [
        _manifest("a", "gen", "d", p01=_long_choice(25)), _manifest("b" * 32, "gen", "d" * 100, p01=_long_choice(13))],
}


@pytest.mark.parametrize("gap", list(GAPS))
def test_validator_rejects_what_the_bot_cannot_serve(gap):
    accepted = _parsed(GAPS[gap])
    assert accepted is not None, "the schema rejects it already"
    assert _issues(accepted), f"{gap}: engine validate accepts it"
