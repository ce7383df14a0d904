"""errormap: server errors become short texts naming params (or titled nodes), never raw dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from engine import load_workflow
from engine.comfy.error_map import map_execution_error, map_node_errors, map_rejection, map_top_error
from engine.errors import WorkflowRejected
from tests.fake_comfy.validate import validate_prompt
from tests.fake_comfy.templates import object_info_snapshot

from .builders import GRAPH

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def _err(kind, message, details="", **extra):
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _node(class_type, *errors):
    return {"errors": list(errors), "dependent_outputs": ["6"], "class_type": class_type}


def test_bigger_than_max_names_the_param(workflow):
    errors = {"4": _node("KSampler", _err("value_bigger_than_max", "Value 999 bigger than max of 150", "steps",
                                          input_name="steps", input_config=["INT", {"min": 1, "max": 150}],
                                          received_value=999))}
    assert map_node_errors(workflow, GRAPH, errors) == ["steps: value 999 bigger than max 150"]


def test_smaller_than_min_without_input_config_reads_the_message(workflow):
    errors = {"4": _node("KSampler", _err("value_smaller_than_min", "Value -1 smaller than min of 0", "cfg",
                                          received_value=-1))}
    assert map_node_errors(workflow, GRAPH, errors) == ["cfg: value -1 smaller than min 0"]


def test_fan_out_bind_maps_both_nodes_to_one_problem(workflow):
    error = _err("value_bigger_than_max", "Value 99999 bigger than max of 16384", "width", input_name="width",
                 input_config=["INT", {"max": 16384}], received_value=99999)
    height = {**error, "details": "height", "extra_info": {**error["extra_info"], "input_name": "height"}}
    problems = map_node_errors(workflow, GRAPH, {"5": _node("EmptySD3LatentImage", error, height)})
    assert problems == ["size: value 99999 bigger than max 16384"]


def test_unbound_input_names_node_id_and_title(workflow):
    errors = {"4": _node("KSampler", _err("value_not_in_list", "Value not in list",
                                          "scheduler: 'x' not in ['simple', 'karras']", input_name="scheduler",
                                          input_config=[["simple", "karras"], {}], received_value="x"))}
    assert map_node_errors(workflow, GRAPH, errors) == ["node 4 (Sampler) scheduler: 'x' not in list (simple, karras)"]


def test_node_without_title_uses_class_type_and_model_list_empty(workflow):
    errors = {"1": _node("UNETLoader", _err("value_not_in_list", "Value not in list",
                                            "unet_name: 'flux1-dev.safetensors' not in []"))}
    assert map_node_errors(workflow, GRAPH, errors) == [
        "node 1 (UNETLoader) unet_name: 'flux1-dev.safetensors' not in list (the server has none installed)"]


def test_long_lists_and_values_are_clipped(workflow):
    choices = [f"model_{i}.safetensors" for i in range(200)]
    errors = {"4": _node("KSampler", _err("value_not_in_list", "Value not in list", "sampler_name: ...",
                                          input_name="sampler_name", input_config=[choices, {}],
                                          received_value="y" * 500))}
    [problem] = map_node_errors(workflow, GRAPH, errors)
    assert problem.startswith("sampler: 'yyyy") and problem.endswith("not in list")
    assert len(problem) < 100 and "model_1" not in problem


def test_invalid_type_and_missing_input(workflow):
    errors = {"4": _node("KSampler",
                         _err("invalid_input_type", "Failed to convert an input value to a INT value", "steps, abc",
                              input_name="steps", input_config=["INT", {}], received_value="abc",
                              exception_message="invalid literal for int()"),
                         _err("required_input_missing", "Required input is missing", "denoise",
                              input_name="denoise"))}
    assert map_node_errors(workflow, GRAPH, errors) == [
        "steps: not a valid INT value", "node 4 (Sampler) denoise: required input is missing"]


def test_load_image_missing_file_is_the_uploaded_image():
    invert = load_workflow(MANIFESTS / "invert.yaml")
    errors = {"1": _node("LoadImage", _err("custom_validation_failed", "Custom validation failed for node",
                                           "image - Invalid image file: gone.png", input_name="image"))}
    assert map_node_errors(invert, invert.graph, errors) == ["image: the uploaded image is missing on the server"]


def test_exception_during_validation_has_no_traceback(workflow):
    errors = {"6": _node("SaveImage", _err("exception_during_validation", "Exception when validating node", "'99'",
                                           exception_type="KeyError",
                                           traceback=["  File \"/srv/comfy/execution.py\", line 1\n"]))}
    [problem] = map_node_errors(workflow, GRAPH, errors)
    assert problem == "node 6 (SaveImage): the server could not validate this input (KeyError: '99')"


def test_return_type_mismatch_and_bad_link(workflow):
    errors = {"6": _node("SaveImage",
                         _err("return_type_mismatch", "Return type mismatch between linked nodes",
                              "images, received_type(MASK) mismatch input_type(IMAGE)", input_name="images",
                              input_config=["IMAGE", {}], received_type="MASK", linked_node=["1", 0]),
                         _err("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                              "images", input_name="images"))}
    assert map_node_errors(workflow, GRAPH, errors) == [
        "node 6 (SaveImage) images: linked output is MASK, the input takes IMAGE",
        "node 6 (SaveImage) images: bad link to another node"]


def test_unknown_error_type_keeps_first_line_only(workflow):
    errors = {"3": _node("CLIPTextEncode", _err("something_new", "Odd\nTraceback (most recent call last):", "x"))}
    assert map_node_errors(workflow, GRAPH, errors) == ["node 3 (Positive Prompt): Odd: x"]


def test_recorded_400_from_the_fake_is_mapped():
    """The fake's validator (recorded shapes) on the bundled canvas graph with an out-of-range value."""
    canvas = load_workflow(MANIFESTS / "canvas.yaml")
    graph = json.loads(json.dumps(dict(canvas.graph)))
    graph["1"]["inputs"]["width"] = 99999
    graph["1"]["inputs"]["batch_size"] = 0
    verdict = validate_prompt(graph, object_info_snapshot(), lambda name: True, None)
    problems = map_node_errors(canvas, graph, verdict.node_errors)
    assert problems == ["width: value 99999 bigger than max 16384", "batch: value 0 smaller than min 1"]


@pytest.mark.parametrize("error_type, message, expected", [
    ("invalid_prompt", "Cannot execute because node NoSuchNode does not exist. (Node ID '#2')",
     "this workflow needs node NoSuchNode which the server does not have"),
    ("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
     "the workflow has a node without a class_type"),
    ("prompt_no_outputs", "Prompt has no outputs", "the workflow has no output node"),
    ("no_prompt", "No prompt provided", "no workflow was sent"),
    ("weird", "first line\nsecond line", "first line"),
])
def test_top_level_errors(error_type, message, expected):
    assert map_top_error(error_type, message) == expected


def test_map_rejection_prefers_node_errors(workflow):
    raw = WorkflowRejected(["node 4 (KSampler): Value 999 bigger than max of 150: steps"],
                           {"4": _node("KSampler", _err("value_bigger_than_max", "Value 999 bigger than max of 150",
                                                        "steps", input_name="steps", received_value=999))},
                           "prompt_outputs_failed_validation")
    mapped = map_rejection(workflow, GRAPH, raw)
    assert mapped.problems == ["steps: value 999 bigger than max 150"]
    assert mapped.node_errors == raw.node_errors and mapped.error_type == raw.error_type
    top = map_rejection(workflow, GRAPH, WorkflowRejected(
        ["Cannot execute because node Foo does not exist. (Node ID '#9')"], {}, "invalid_prompt"))
    assert top.problems == ["this workflow needs node Foo which the server does not have"]


def test_execution_error_names_the_single_bound_param(workflow):
    data = {"prompt_id": "p", "node_id": "3", "node_type": "CLIPTextEncode", "exception_message": "bad token\n",
            "exception_type": "RuntimeError", "traceback": ["  File \"/srv/x.py\", line 3\n"],
            "current_inputs": {"text": ["secret prompt"]}}
    failed = map_execution_error(workflow, GRAPH, data)
    assert str(failed) == "prompt: bad token"
    assert (failed.param, failed.node_id, failed.node_type) == ("prompt", "3", "CLIPTextEncode")


def test_execution_error_on_node_with_several_params_names_node_and_params(workflow):
    data = {"node_id": "4", "node_type": "KSampler", "exception_message": "x" * 500 + "\nmore"}
    failed = map_execution_error(workflow, GRAPH, data)
    assert str(failed).startswith("node 4 (Sampler) (params: steps, cfg, sampler, seed): xxx")
    assert len(str(failed)) < 260 and "more" not in str(failed)
    assert failed.param == "steps"


def test_execution_error_on_unbound_node(workflow):
    failed = map_execution_error(workflow, GRAPH, {"node_id": "9", "node_type": "CLIPLoader",
                                                   "exception_message": "", "exception_type": "OSError"})
    assert str(failed) == "node 9 (CLIPLoader): OSError" and failed.param == ""


_texts = st.text(max_size=300)
_error = st.fixed_dictionaries({
    "type": st.sampled_from(["value_bigger_than_max", "value_smaller_than_min", "value_not_in_list",
                             "invalid_input_type", "required_input_missing", "custom_validation_failed",
                             "exception_during_validation", "return_type_mismatch", "bad_linked_input", "other"]),
    "message": _texts, "details": _texts,
    "extra_info": st.dictionaries(st.sampled_from(["input_name", "received_value", "input_config",
                                                   "received_type", "traceback"]),
                                  st.one_of(_texts, st.integers(), st.lists(_texts, max_size=3)), max_size=4)})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GRAPH) + ["77"]),
                       st.fixed_dictionaries({"errors": st.lists(_error, max_size=3),
                                              "class_type": st.one_of(st.none(), _texts)}), max_size=3))
def test_any_node_errors_give_one_line_short_texts(workflow, node_errors):
    for problem in map_node_errors(workflow, GRAPH, node_errors):
        assert "\n" not in problem and len(problem) < 600


def test_a_type_name_with_a_line_break_stays_on_one_line(workflow):
    errors = {"1": {"class_type": "UNETLoader", "errors": [
        {"type": "invalid_input_type", "extra_info": {"input_config": ["INT\n", {}]}}]}}
    assert map_node_errors(workflow, GRAPH, errors) == ["node 1 (UNETLoader): not a valid INT value"]


@pytest.mark.parametrize(("message", "shown"), [
    ("cannot identify image file '/srv/comfy/input/upload.png'", "cannot identify image file 'upload.png'"),
    ("C:\\ComfyUI\\models\\loras\\x.safetensors missing", "x.safetensors missing"),
    ("ratio 16/9 is fine", "ratio 16/9 is fine"),
])
def test_execution_error_never_shows_server_paths(workflow, message, shown):
    failed = map_execution_error(workflow, GRAPH, {"node_id": "9", "node_type": "CLIPLoader",
                                                   "exception_message": message})
    assert str(failed) == f"node 9 (CLIPLoader): {shown}"
