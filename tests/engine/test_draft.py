"""engine init: drafts that engine validate accepts, recognised roles, YAML that round-trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.manifest.binding import Target, resolve_bind
from engine.manifest.draft import draft_manifest, draft_name
from engine.errors import ManifestError
from engine.manifest.model import NAME_PATTERN, Manifest
from engine.checks.validate import validate_paths
from engine.manifest.yaml_writer import yaml_comment, yaml_scalar

DATA = Path(__file__).parent.parent / "data" / "comfyui"
GRAPHS = Path(__file__).parent / "data" / "graphs"
OBJECT_INFO = json.loads((DATA / "object_info.json").read_text())
WORKFLOWS = sorted(DATA.glob("workflows/*.json")) + sorted(p for p in GRAPHS.glob("*.json") if p.stem != "ui_export")
# The recorded probe workflows that are broken on purpose: the draft is fine, the graph is not.
WORKFLOW_FAULTS = {
    "d2_unknown_class_type": ["node 2 (NoSuchNode): class 'NoSuchNode' is not installed on the server"],
    "d_invalid_values": ["node 2 (ImageScale) input upscale_method: 'super-resolution' is not available on the server"],
}


def _graph(name: str) -> dict:
    return json.loads((GRAPHS / f"{name}.json").read_text())


def _params(text: str) -> dict:
    return YAML(typ="safe").load(text)["params"]


def _validate_draft(tmp_path: Path, workflow: Path, object_info: dict | None) -> list[str]:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "workflows").mkdir()
    name = draft_name(workflow.stem)
    (tmp_path / "workflows" / workflow.name).write_bytes(workflow.read_bytes())
    text = draft_manifest(json.loads(workflow.read_text()), name, object_info, workflow_file=workflow.name)
    (tmp_path / "manifests" / f"{name}.yaml").write_text(text)
    report = validate_paths([tmp_path / "manifests"], object_info=OBJECT_INFO if object_info else None)
    assert len(report.manifests) == 1
    return [i.message for i in report.issues]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_drafts_pass_validate_with_the_server_data(tmp_path, workflow):
    assert _validate_draft(tmp_path, workflow, OBJECT_INFO) == WORKFLOW_FAULTS.get(workflow.stem, [])


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_drafts_pass_validate_without_server_data(tmp_path, workflow):
    assert _validate_draft(tmp_path, workflow, None) == []


def test_ui_format_export_asks_for_the_api_export():
    with pytest.raises(ManifestError) as caught:
        draft_manifest(_graph("ui_export"), "ui_export")
    assert "Export (API)" in str(caught.value)


@pytest.mark.parametrize("graph", [[], {}, {"1": {"inputs": {}}}, "text"])
def test_non_graphs_are_refused(graph):
    with pytest.raises(ManifestError, match="API-format"):
        draft_manifest(graph, "x")


def test_sdxl_roles_come_from_the_sampler_inputs():
    params = _params(draft_manifest(_graph("sdxl_lora"), "sdxl"))
    assert params["prompt"]["bind"] == '$["6"].inputs.text'  # both encoders share a title: ids are used
    assert params["negative"]["bind"] == '$["7"].inputs.text'
    assert params["negative"]["default"] == "blurry, 'low' quality: \"jpeg\""
    assert params["lora"]["when_unset"] == "bypass"
    assert params["lora_strength"]["bind"] == ['$[?(@._meta.title == "Load LoRA")].inputs.strength_model',
                                               '$[?(@._meta.title == "Load LoRA")].inputs.strength_clip']
    assert params["checkpoint"]["choices_from"] == "CheckpointLoaderSimple.ckpt_name"


def test_flux_prompt_found_through_the_basic_guider_chain_and_bound_by_title():
    params = _params(draft_manifest(_graph("flux"), "flux", OBJECT_INFO))
    assert params["prompt"]["bind"] == '$[?(@._meta.title == "Positive Prompt")].inputs.text'
    assert "negative" not in params
    assert params["seed"] == {"type": "seed", "description": "Random seed (empty: random)",
                              "bind": '$[?(@._meta.title == "RandomNoise")].inputs.noise_seed'}
    assert params["guidance"]["default"] == 3.5
    assert params["model"]["default"] == "flux1-dev-fp8.safetensors"


def test_wan_fans_out_seeds_and_shared_numbers_over_both_samplers():
    params = _params(draft_manifest(_graph("wan_i2v"), "wan"))
    assert params["seed"]["bind"] == ['$["11"].inputs.noise_seed', '$["12"].inputs.noise_seed']
    assert params["steps"]["bind"] == ['$["11"].inputs.steps', '$["12"].inputs.steps']
    assert params["negative"]["bind"] == '$["7"].inputs.text'  # through WanImageToVideo's negative input
    assert {params["model"]["default"], params["model2"]["default"]} == {
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"}


def test_qwen_edit_gets_one_image_param_per_loader_named_by_title():
    params = _params(draft_manifest(_graph("qwen_edit"), "qwen"))
    assert [params["image"]["description"], params["image2"]["description"]] == ["Picture to edit", "Reference"]
    assert params["prompt"]["bind"] == '$["6"].inputs.prompt'
    assert params["negative"]["default"] == ""


def test_titles_decide_roles_before_the_graph_does():
    graph = _graph("sdxl_lora")
    graph["6"]["_meta"] = {"title": "Negative"}
    graph["7"]["_meta"] = {"title": "Positive"}
    params = _params(draft_manifest(graph, "x"))
    assert params["prompt"]["bind"] == '$[?(@._meta.title == "Positive")].inputs.text'
    assert params["negative"]["bind"] == '$[?(@._meta.title == "Negative")].inputs.text'


def test_an_encoder_nothing_links_to_becomes_the_prompt():
    graph = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "hi", "clip": ["2", 0]}},
             "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_l.safetensors", "type": "wan"}}}
    assert _params(draft_manifest(graph, "x"))["prompt"]["bind"] == '$["1"].inputs.text'


def test_lora_with_inputs_out_of_output_order_is_not_bypassed():
    graph = _graph("sdxl_lora")
    lora = graph["10"]["inputs"]
    graph["10"]["inputs"] = {"clip": lora["clip"], **{k: v for k, v in lora.items() if k != "clip"}}
    params = _params(draft_manifest(graph, "x", OBJECT_INFO))
    assert "when_unset" not in params["lora"]
    assert params["lora"]["default"] == "sdxl_offset_example.safetensors"


def test_server_ranges_narrow_the_suggested_ones():
    graph = _graph("flux")
    graph["27"]["inputs"]["width"] = 4096  # the workflow's value widens the suggested 64–2048
    params = _params(draft_manifest(graph, "x", OBJECT_INFO))
    assert (params["width"]["min"], params["width"]["max"], params["width"]["default"]) == (64, 4096, 4096)


def test_models_missing_on_the_server_get_no_default():
    graph = _graph("flux")
    graph["12"]["inputs"]["unet_name"] = "not-installed.safetensors"
    params = _params(draft_manifest(graph, "x", OBJECT_INFO))
    assert "default" not in params["model"]


@given(st.text(min_size=0, max_size=60))
def test_draft_names_are_valid_manifest_names(stem):
    assert re.fullmatch(NAME_PATTERN, draft_name(stem))


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=200))
def test_any_text_round_trips_through_the_yaml(negative):
    graph = _graph("sdxl_lora")
    graph["7"]["inputs"]["text"] = negative
    data = YAML(typ="rt").load(draft_manifest(graph, "x"))
    assert data["params"]["negative"]["default"] == negative
    Manifest.model_validate(data)


@settings(max_examples=8, deadline=None)  # each new title costs a JSONPath compile (~70 ms)
@given(st.text(min_size=1, max_size=40))
def test_any_node_title_gives_a_bind_that_resolves(title):
    graph = _graph("sdxl_lora")
    graph["10"]["_meta"]["title"] = title
    data = YAML(typ="rt").load(draft_manifest(graph, "x"))
    assert resolve_bind(graph, data["params"]["lora"]["bind"]) == [Target("10", "lora_name")]


_values = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False))


@given(_values)
def test_yaml_scalars_read_back_as_the_same_value(value):
    assert YAML(typ="rt").load(f"  key: {yaml_scalar(value)}  # {yaml_comment(str(value))}\n")["key"] == value
