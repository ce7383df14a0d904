"""Param kinds answer everything about themselves: reading values, the unset rule, rules for people,
display, input types, bounds — and the manifest's caption."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine import ParamError
from engine.manifest.kinds import parse_param
from engine.manifest.model import MAX_SEED, Manifest

from .test_schema import params as param_dicts


def one(**fields):
    param = parse_param(fields)
    assert param is not None, fields
    return param


@settings(max_examples=150, deadline=None)
@given(param_dicts(), st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 5), st.booleans(), st.floats()))
def test_every_kind_answers_every_question(raw, value):
    param = one(**raw)
    assert isinstance(param.rule(), str) and param.rule()
    assert isinstance(param.show(value), str)
    assert isinstance(param.show_unset(), str)
    assert isinstance(param.fits("INT"), bool) and param.fits("*")
    assert all(isinstance(v, (int, float)) for v in param.bounds().values())
    try:
        read = param.read("p", value)
    except ParamError as exc:
        assert exc.param == "p"
        assert param.is_given(value) or exc.problem == "is required"
        return
    if not param.is_given(value):
        assert read is None and not param.required
    elif read is not None:
        assert param.coerce("p", read) == read  # a read value reads back as itself


@pytest.mark.parametrize(("raw", "value", "expected"), [
    ({"type": "text"}, "", ""),  # an emptied optional text is a value (an empty negative prompt)
    ({"type": "text", "required": True}, "  ", ParamError),
    ({"type": "text", "default": "x"}, None, "x"),
    ({"type": "int", "default": 3}, "", 3),
    ({"type": "int", "min": 1, "max": 5}, " 4 ", 4),
    ({"type": "float"}, "2.5", 2.5),
    ({"type": "bool"}, "yes", True),
    ({"type": "seed"}, -1, None),  # random
    ({"type": "seed", "default": 7}, None, 7),
    ({"type": "seed", "default": 7}, "-1", None),  # an explicit -1 is random even with a default
    ({"type": "choice", "choices": [{"name": "Red", "value": 1}]}, "red", 1),
    ({"type": "image"}, "../x.png", ParamError),
    ({"type": "audio"}, "../x.mp3", ParamError),
    ({"type": "audio"}, "take.mp3", "take.mp3"),
])
def test_resolve_applies_each_kinds_unset_rule(raw, value, expected):
    param = one(bind="$", **raw)
    if expected is ParamError:
        with pytest.raises(ParamError):
            param.resolve("p", value)
    else:
        assert param.resolve("p", value) == expected


@pytest.mark.parametrize(("raw", "rule"), [
    ({"type": "int", "min": 1, "max": 150, "default": 30}, "int 1–150, default 30"),
    ({"type": "int", "min": 1}, "int ≥ 1"),
    ({"type": "float", "max": 2.5}, "float ≤ 2.5"),
    ({"type": "text", "max_length": 500, "required": True}, "text, ≤ 500 characters, required"),
    ({"type": "bool", "default": False}, "true or false, default no"),
    ({"type": "seed"}, f"seed 0–{MAX_SEED}, blank or -1: random"),
    ({"type": "seed", "max": 99}, "seed 0–99, blank or -1: random"),
    ({"type": "choice", "choices": [{"name": "Red", "value": 1}, "x"]}, "one of 1 (Red), x"),
    ({"type": "choice", "choices_from": "A.b", "filter": "f", "when_unset": "bypass"},
     "from the server's A.b matching /f/, unset: node bypassed"),
    ({"type": "image", "required": True}, "PNG, JPEG or WebP image, required"),
    ({"type": "audio"}, "audio file (MP3, FLAC, WAV, Ogg, M4A, WebM, AIFF, AAC)"),
])
def test_one_rule_for_people(raw, rule):
    assert one(bind="$", **raw).rule() == rule


def test_a_live_list_rule_names_the_offered_values_and_cuts_long_lists():
    param = one(type="choice", choices_from="A.b", filter="^f", bind="$")
    assert param.rule(["fa", "gb", "fc"]) == "one of fa, fc"
    assert param.rule([f"f{i}" for i in range(20)]).endswith("f11, …")


@pytest.mark.parametrize(("raw", "value", "shown"), [
    ({"type": "bool"}, False, "no"),
    ({"type": "float"}, 3.50, "3.5"),
    ({"type": "image"}, "discomfy/in_abc.png", "in_abc.png"),
    ({"type": "text"}, "", "—"),
    ({"type": "seed"}, None, "—"),
])
def test_show(raw, value, shown):
    assert one(bind="$", **raw).show(value) == shown


def test_show_unset_says_random_for_seeds_and_the_default_otherwise():
    assert one(type="seed", bind="$").show_unset() == "random"
    assert one(type="int", default=3, bind="$").show_unset() == "3 (default)"
    assert one(type="int", bind="$").show_unset() == "—"


@pytest.mark.parametrize(("raw", "fits", "not_fits"), [
    ({"type": "int"}, ["INT", "FLOAT"], ["STRING", "COMBO"]),
    ({"type": "seed"}, ["INT"], ["FLOAT"]),
    ({"type": "choice", "choices": [1, 2]}, ["COMBO", "INT", "FLOAT"], ["STRING"]),
    ({"type": "choice", "choices_from": "A.b"}, ["COMBO", "STRING"], ["INT"]),
    ({"type": "image"}, ["COMBO"], ["IMAGE"]),
    ({"type": "audio"}, ["COMBO"], ["AUDIO", "STRING"]),
])
def test_fits_input_types(raw, fits, not_fits):
    param = one(bind="$", **raw)
    assert all(param.fits(t) for t in fits) and not any(param.fits(t) for t in not_fits)


def test_seed_bounds_only_name_what_the_author_wrote():
    assert one(type="seed", bind="$").bounds() == {}
    assert one(type="seed", default=-1, bind="$").bounds() == {}
    assert one(type="seed", max=10, default=3, bind="$").bounds() == {"max": 10, "default": 3}


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MAX_SEED), st.none() | st.integers(0, 2**64), st.integers(0, 2**32))
def test_seeds_are_drawn_within_the_manifest_max_and_the_input_limit(high, limit, salt):
    param = one(type="seed", max=high, bind="$")
    seed = param.draw(random.Random(salt), limit)
    assert 0 <= seed <= high and (limit is None or seed <= limit)


def _manifest(caption=None, **params):
    data = {"name": "m", "description": "d", "params": params}
    if caption is not None:
        data["caption"] = caption
    return Manifest.model_validate(data)


def test_the_caption_is_the_first_required_text_unless_named():
    text = {"type": "text", "bind": "$"}
    manifest = _manifest(negative=text, prompt={**text, "required": True})
    assert manifest.caption_param == "prompt"
    assert manifest.caption_of({"prompt": "a cat", "negative": "dogs"}) == "a cat"
    assert manifest.caption_of({"prompt": "  "}) is None
    named = _manifest("negative", negative=text, prompt={**text, "required": True})
    assert named.caption_of({"prompt": "a cat", "negative": "dogs"}) == "dogs"
    assert _manifest(steps={"type": "int", "bind": "$"}).caption_param is None


@pytest.mark.parametrize("caption", ["steps", "missing"])
def test_a_caption_must_name_a_text_param(caption):
    with pytest.raises(ValidationError, match="caption"):
        _manifest(caption, steps={"type": "int", "bind": "$"})


@settings(max_examples=200, deadline=None)
@given(param_dicts())
def test_an_unset_value_resolves_to_the_default_read_as_a_given_value(raw):
    """The default is coerced once (``ready_default``); a job that leaves the param unset gets what
    reading the default as a given value gives, or the same error."""
    param = parse_param(raw)
    def outcome(call):
        try:
            return ("ok", call())
        except ParamError as exc:
            return ("error", str(exc))
    expected = outcome(lambda: param.read("p", param.default)) if param.default is not None else None
    if expected is not None:
        assert outcome(lambda: param.resolve("p", None)) == expected
