"""apply_params: values land on every bound input, nothing else changes, the template stays intact."""

from __future__ import annotations

import copy
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ParamError, apply_params
from engine.manifest.binding import is_link
from engine.manifest.model import MAX_SEED

LORAS = ["flux/detail.safetensors", "flux/anime.safetensors", "hidream/x.safetensors"]
LIVE = {"LoraLoaderModelOnly.lora_name": LORAS}

values_strategy = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=500).filter(lambda s: s.strip())},
    optional={
        "steps": st.integers(1, 150),
        "cfg": st.floats(0, 30, allow_nan=False),
        "size": st.integers(64, 4096),
        "sampler": st.sampled_from(["euler", "dpmpp_2m"]),
        "lora": st.sampled_from(LORAS[:2]),
        "seed": st.integers(-1, MAX_SEED),
    },
)


def _bound(workflow):
    return {(t.node_id, t.input_name) for targets in workflow.targets.values() for t in targets}


@settings(max_examples=150, deadline=None)
@given(values=values_strategy)
def test_bound_paths_read_back_resolved_values_and_nothing_else_changes(workflow, values):
    template = copy.deepcopy(dict(workflow.graph))
    applied = apply_params(workflow, values, live=LIVE)

    for name, value in applied.values.items():
        for target in workflow.targets[name]:
            assert target.read(applied.graph) == value
    bound = _bound(workflow)
    for node_id, node in applied.graph.items():
        for input_name, value in node["inputs"].items():
            if (node_id, input_name) not in bound and not is_link(value):
                assert value == template[node_id]["inputs"][input_name]
    assert dict(workflow.graph) == template  # the template is never mutated
    json.dumps(applied.graph)  # plain JSON values only


@settings(max_examples=60, deadline=None)
@given(values=values_strategy)
def test_every_link_points_at_an_existing_node(workflow, values):
    graph = apply_params(workflow, values, live=LIVE).graph
    for node in graph.values():
        for value in node["inputs"].values():
            if is_link(value):
                assert value[0] in graph


def test_defaults_fill_and_random_seed_is_reported(workflow):
    applied = apply_params(workflow, {"prompt": "a cat"}, rng=random.Random(3))
    assert applied.values["steps"] == 30
    assert applied.values["sampler"] == "euler"
    assert 0 <= applied.values["seed"] <= MAX_SEED
    assert applied.graph["4"]["inputs"]["seed"] == applied.values["seed"]
    assert "cfg" not in applied.values  # unset without default: the workflow's own value stays
    assert applied.graph["4"]["inputs"]["cfg"] == 3.5


def test_explicit_seed_is_kept_and_minus_one_is_random(workflow):
    assert apply_params(workflow, {"prompt": "x", "seed": 42}).values["seed"] == 42
    drawn = {apply_params(workflow, {"prompt": "x", "seed": -1}).values["seed"] for _ in range(5)}
    assert len(drawn) > 1


def test_fan_out_sets_every_bound_input(workflow):
    graph = apply_params(workflow, {"prompt": "x", "size": 768}).graph
    assert graph["5"]["inputs"]["width"] == graph["5"]["inputs"]["height"] == 768


def test_unset_bypass_param_splices_node_and_rewires_model(workflow):
    applied = apply_params(workflow, {"prompt": "x"})
    assert "2" not in applied.graph
    assert applied.graph["4"]["inputs"]["model"] == ["1", 0]
    assert applied.bypassed == ("2",)
    assert "2" in workflow.graph  # template keeps its node


def test_set_bypass_param_keeps_node(workflow):
    applied = apply_params(workflow, {"prompt": "x", "lora": "flux/anime.safetensors"}, live=LIVE)
    assert applied.graph["2"]["inputs"]["lora_name"] == "flux/anime.safetensors"
    assert applied.graph["4"]["inputs"]["model"] == ["2", 0]


@pytest.mark.parametrize(
    ("values", "param", "problem"),
    [
        ({}, "prompt", "is required"),
        ({"prompt": "  "}, "prompt", "is required"),
        ({"prompt": "x", "steps": 999}, "steps", "must be ≤ 150"),
        ({"prompt": "x", "steps": 0}, "steps", "must be ≥ 1"),
        ({"prompt": "x", "steps": True}, "steps", "must be a whole number"),
        ({"prompt": "x", "steps": "ten"}, "steps", "must be a whole number"),
        ({"prompt": "x", "cfg": "nan"}, "cfg", "must be a number"),
        ({"prompt": "x" * 501}, "prompt", "must be at most 500 characters"),
        ({"prompt": "x", "sampler": "heun"}, "sampler", "is not one of the offered choices"),
        ({"prompt": "x", "lora": "hidream/x.safetensors"}, "lora", "is not available on the server"),
        ({"prompt": "x", "bogus": 1}, "bogus", "is not a parameter of this workflow"),
    ],
)
def test_bad_values_name_the_param(workflow, values, param, problem):
    with pytest.raises(ParamError) as err:
        apply_params(workflow, values, live=LIVE)
    assert (err.value.param, err.value.problem) == (param, problem)
    assert str(err.value) == f"{param}: {problem}"


def test_text_values_from_cli_or_modal_are_coerced(workflow):
    applied = apply_params(workflow, {"prompt": "x", "steps": "12", "cfg": "4.5", "sampler": "dpmpp_2m"})
    assert (applied.values["steps"], applied.values["cfg"]) == (12, 4.5)


def test_prompt_text_is_a_json_value_not_a_template(workflow):
    evil = 'a"}, "5": {"class_type": "Evil'
    graph = apply_params(workflow, {"prompt": evil}).graph
    assert graph["3"]["inputs"]["text"] == evil
    assert json.loads(json.dumps(graph))["5"]["class_type"] == "EmptySD3LatentImage"
