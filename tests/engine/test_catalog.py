"""Loading manifests: every problem at once, each located at file:line:col."""

from __future__ import annotations

import json

import pytest

from engine import ManifestError, load_catalog, load_workflow

from .builders import GRAPH, MANIFEST, write_case


def _lines(exc: ManifestError) -> list[str]:
    return [f"{i.line}:{i.col}: {i.param}: {i.message}" for i in exc.issues]


def test_good_manifest_loads_with_defaults(tmp_path):
    wf = load_workflow(write_case(tmp_path))
    assert wf.name == "t" and wf.manifest.command == "t" and wf.manifest.title == "T"
    assert wf.manifest.basic_params == ["prompt", "steps", "sampler", "lora", "seed"]
    assert wf.param_of_node("5") == ["size"]
    assert wf.output_nodes() == ["6"]


def test_several_mistakes_are_all_reported_with_positions(tmp_path):
    bad = """\
    description: broken
    colour: red
    params:
      steps: {type: int, default: 300, min: 1, max: 50, bind: '$["4"].inputs.steps'}
      cfg:
        type: float
        bind: '$["4"].inputs.cfgg'
      mode: {type: choise, bind: '$["4"].inputs.scheduler'}
    """
    with pytest.raises(ManifestError) as err:
        load_workflow(write_case(tmp_path, bad))
    assert _lines(err.value) == [
        "2:1: : unknown key 'colour'",
        "4:22: steps: default 300 is bigger than max 50",
        "7:5: cfg: bind '$[\"4\"].inputs.cfgg' matches no node input in t.json",
        "8:3: mode: unknown type 'choise' (text, int, float, bool, choice, seed, image, audio)",
    ]
    assert all(i.file.endswith("t.yaml") for i in err.value.issues)


def test_ui_format_export_gets_a_hint(tmp_path):
    write_case(tmp_path)
    (tmp_path / "workflows" / "t.json").write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(ManifestError, match=r"Export \(API\)"):
        load_workflow(tmp_path / "manifests" / "t.yaml")


def test_missing_workflow_and_yaml_syntax(tmp_path):
    path = write_case(tmp_path, "description: x\nworkflow: nope.json\n")
    with pytest.raises(ManifestError, match="nope.json not found"):
        load_workflow(path)
    path.write_text("description: [unclosed\n")
    with pytest.raises(ManifestError, match="YAML syntax"):
        load_workflow(path)


def test_duplicate_keys_are_errors(tmp_path):
    path = write_case(tmp_path, MANIFEST + "  steps: {type: int, bind: '$[\"4\"].inputs.steps'}\n")
    with pytest.raises(ManifestError, match="YAML syntax"):
        load_workflow(path)


def test_catalog_collects_problems_and_groups_commands(tmp_path):
    write_case(tmp_path, MANIFEST + "command: gen\nactions: [nothing, u]\n", name="a")
    write_case(tmp_path, MANIFEST + "command: gen\n", name="b")
    write_case(tmp_path, "description: up\nparams:\n  image: {type: image, bind: '$[\"1\"].inputs.image'}\n",
               graph={"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
                      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "u"}}},
               name="u")
    write_case(tmp_path, "description: [", name="broken")
    catalog = load_catalog([tmp_path / "manifests"])
    assert sorted(w.name for w in catalog) == ["a", "b", "u"]
    assert [w.name for w in catalog.commands()["gen"]] == ["a", "b"]
    messages = [i.message for i in catalog.issues]
    assert messages[0] == "action 'nothing' names no manifest"
    assert messages[1].startswith("YAML syntax: ") and len(messages) == 2


def test_image_param_must_bind_a_load_image(tmp_path):
    bad = "description: x\nparams:\n  pic: {type: image, bind: '$[\"4\"].inputs.steps'}\n"
    with pytest.raises(ManifestError, match="image param must bind LoadImage.image"):
        load_workflow(write_case(tmp_path, bad, GRAPH))


def test_impossible_workflow_file_names_are_reported_not_raised(tmp_path):
    for name in ["x" * 300 + ".json", "nul\x00.json"]:
        path = write_case(tmp_path, f"description: x\nworkflow: {name!r}\n".replace("'", '"'))
        with pytest.raises(ManifestError, match="not found"):
            load_workflow(path)
