"""The committed manifest JSON Schema is current and agrees with the pydantic model.

Uses the ``jsonschema`` package (test extra) to run the schema the way editors do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from engine.manifest.model import MAX_SEED, NAME_PATTERN, Manifest
from engine.manifest.schema import manifest_schema, schema_text
from engine.manifest.source import read_yaml

ROOT = Path(__file__).parent.parent.parent
COMMITTED = ROOT / "manifests" / "manifest.schema.json"
VALIDATOR = Draft202012Validator(manifest_schema())
FILES = sorted((ROOT / "manifests").glob("*.yaml")) + sorted((Path(__file__).parent / "cases").glob("*/manifest.yaml"))


def model_accepts(data: dict, stem: str = "example") -> bool:
    try:
        Manifest.model_validate({"name": stem, **data})
    except ValidationError:
        return False
    return True


def schema_accepts(data: dict) -> bool:
    return VALIDATOR.is_valid(data)


def test_committed_schema_is_current():
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "manifests/manifest.schema.json is stale: regenerate it with "
        "`python -m engine.cli schema > manifests/manifest.schema.json`")


def test_schema_is_a_valid_2020_12_schema():
    Draft202012Validator.check_schema(manifest_schema())


def _accepted_examples() -> list[tuple[str, dict]]:
    examples = []
    for path in FILES:
        src, _ = read_yaml(path.read_text(encoding="utf-8"), str(path))
        if src is not None and isinstance(src.data, dict) and model_accepts(src.data, path.stem):
            examples.append((f"{path.parent.name}/{path.name}", src.data))
    return examples


EXAMPLES = _accepted_examples()


def test_there_are_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("data", [d for _, d in EXAMPLES], ids=[n for n, _ in EXAMPLES])
def test_every_manifest_the_model_accepts_is_valid_under_the_schema(data):
    assert [e.message for e in VALIDATOR.iter_errors(data)] == []


@pytest.mark.parametrize("where", ["top", "param", "choice"])
def test_unknown_keys_are_rejected_by_both(where):
    data = {"description": "d", "params": {"s": {"type": "choice", "choices": [{"name": "A", "value": "a"}],
                                                 "bind": "$"}}}
    assert model_accepts(data) and schema_accepts(data)
    target = {"top": data, "param": data["params"]["s"], "choice": data["params"]["s"]["choices"][0]}[where]
    target["colour"] = "blue"
    assert not model_accepts(data)
    assert not schema_accepts(data)


def test_loader_adjustments():
    plain_choices = {"description": "d", "params": {"s": {"type": "choice", "choices": ["euler", 2, 0.5], "bind": "$"}}}
    assert model_accepts(plain_choices) and schema_accepts(plain_choices)
    bad_param_name = {"description": "d", "params": {"Steps": {"type": "int", "bind": "$"}}}
    assert not model_accepts(bad_param_name) and not schema_accepts(bad_param_name)
    assert "name" not in manifest_schema()["required"]  # the loader takes it from the file name


# --- hypothesis: manifests built from the model's field types ---------------------------------

names = st.from_regex(NAME_PATTERN, fullmatch=True)
short_text = st.text(max_size=40)
binds = st.one_of(st.just('$["3"].inputs.seed'), st.lists(st.sampled_from(['$["1"].inputs.a', '$["2"].inputs.b']),
                                                          min_size=1, max_size=2))
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@st.composite
def _ranged(draw, kind: str):
    numbers = st.integers(-MAX_SEED, MAX_SEED) if kind == "int" else finite
    low, high = sorted([draw(numbers) + 0, draw(numbers) + 0])  # + 0: -0.0 becomes 0.0 (floats(0.0, -0.0) is empty)
    fields = {}
    if draw(st.booleans()):
        fields["min"] = low
    if draw(st.booleans()):
        fields["max"] = high
    if draw(st.booleans()):
        fields["default"] = draw(st.integers(low, high) if kind == "int" else st.floats(low, high))
    return fields


@st.composite
def _text(draw):
    low = draw(st.integers(0, 50))
    high = draw(st.integers(max(low, 1), 6000))
    fields = {"min_length": low, "max_length": high, "multiline": draw(st.booleans())}
    if draw(st.booleans()):
        fields["default"] = draw(st.text(min_size=low, max_size=min(high, low + 20)))
    return fields


@st.composite
def _choice(draw):
    if draw(st.booleans()):
        return {"choices_from": draw(st.sampled_from(["LoraLoader.lora_name", "UNETLoader.unet_name"])),
                **({"filter": "(?i)flux"} if draw(st.booleans()) else {})}
    values = draw(st.lists(st.one_of(st.text(min_size=1, max_size=10), st.integers(-99, 99)), min_size=1,
                           max_size=6, unique_by=str))
    choices = [{"name": str(v), "value": v} if draw(st.booleans()) else v for v in values]
    return {"choices": choices, **({"default": draw(st.sampled_from(values))} if draw(st.booleans()) else {})}


_TYPED = {
    "text": _text(),
    "int": _ranged("int"),
    "float": _ranged("float"),
    "bool": st.fixed_dictionaries({}, optional={"default": st.booleans()}),
    "choice": _choice(),
    "seed": st.fixed_dictionaries({}, optional={"default": st.integers(-1, MAX_SEED)}),
    "image": st.just({}),
    "audio": st.just({}),
}


@st.composite
def params(draw):
    kind = draw(st.sampled_from(sorted(_TYPED)))
    param = {"type": kind, "bind": draw(binds), **draw(_TYPED[kind])}
    param.update(draw(st.fixed_dictionaries({}, optional={
        "description": st.text(max_size=100), "label": st.text(max_size=45), "advanced": st.booleans(),
        "required": st.booleans()})))
    if "default" not in param and not param.get("required") and draw(st.booleans()):
        param["when_unset"] = "bypass"
    return param


manifests = st.fixed_dictionaries(
    {"description": st.text(min_size=1, max_size=100), "params": st.dictionaries(names, params(), max_size=4)},
    optional={"name": names, "title": short_text, "command": names, "workflow": short_text,
              "kind": st.sampled_from(["image", "video", "audio", "text"]), "timeout": st.integers(1, 86400),
              "nsfw": st.booleans(), "roles": st.lists(short_text, max_size=2), "outputs": st.lists(short_text, max_size=2),
              "actions": st.lists(names, max_size=2)})


@settings(max_examples=40, deadline=None)
@given(manifests)
def test_generated_manifests_are_accepted_by_both(data):
    assert model_accepts(data), "the strategy should only build valid manifests"
    assert schema_accepts(data), [e.message for e in VALIDATOR.iter_errors(data)]


@settings(max_examples=30, deadline=None)
@given(manifests, st.booleans())
def test_an_unknown_key_anywhere_is_rejected_by_both(data, in_param):
    target = next(iter(data["params"].values())) if in_param and data["params"] else data
    target["colour"] = "blue"
    assert not model_accepts(data)
    assert not schema_accepts(data)


def test_schema_name_pattern_is_the_model_pattern():
    assert manifest_schema()["properties"]["params"]["patternProperties"].keys() == {NAME_PATTERN}
    assert re.fullmatch(NAME_PATTERN, "flux-krea_2")
