"""Hostile files and documents (issue 7 §3): every reader refuses past its limit, naming it, and
never raises anything but its documented errors (no RecursionError, no MemoryError, no hang)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import load_catalog, load_workflow
from engine.bounded import NotRegularFile, check_depth, parse_json, read_file, valid_text
from engine.errors import LimitExceeded, ManifestError
from engine.limits import DEFAULT_LIMITS, Limits, limits_from_env
from engine.manifest.source import read_yaml

GRAPH = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}}}
MANIFEST = "description: x\nparams:\n  prompt: {type: text, bind: '$[\"1\"].inputs.text'}\n"


def laughs(levels: int, width: int = 9) -> str:
    """The "billion laughs" manifest: each level is ``width`` aliases of the one below."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\ndescription: bomb\n"


def write(folder: Path, manifest: str, graph: object = GRAPH, name: str = "m") -> Path:
    (folder / "workflows").mkdir(exist_ok=True)
    (folder / "manifests").mkdir(exist_ok=True)
    (folder / "workflows" / f"{name}.json").write_text(json.dumps(graph) if not isinstance(graph, str) else graph)
    path = folder / "manifests" / f"{name}.yaml"
    path.write_text(manifest)
    return path


def expanded_nodes(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(expanded_nodes(k) + expanded_nodes(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(expanded_nodes(v) for v in value)
    return 1


# -- YAML -----------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [6, 9, 30])
def test_alias_bombs_are_refused_at_the_alias_that_breaks_the_limit(levels):
    source, issues = read_yaml(laughs(levels), "bomb.yaml")
    [issue] = issues
    assert source is None and issue.file == "bomb.yaml" and issue.line > 1
    assert "max_yaml_nodes" in issue.message and issue.code == "limit"


def test_a_narrow_deep_bomb_with_few_aliases_is_still_refused():
    # 2 aliases per level, 25 levels: only 50 aliases, but 2**25 nodes once expanded
    [issue] = read_yaml(laughs(25, width=2), "narrow.yaml")[1]
    assert "max_yaml_nodes" in issue.message


def test_merge_key_bombs_are_counted_like_any_alias():
    lines = ["b0: &b0 {x: 1, y: 2, z: 3}"]
    lines += [f"b{i}: &b{i} {{<<: *b{i - 1}, k{i}: [{', '.join([f'*b{i - 1}'] * 8)}]}}" for i in range(1, 12)]
    [issue] = read_yaml("\n".join(lines) + "\n", "merge.yaml")[1]
    assert issue.code == "limit"


def test_too_many_aliases_are_refused_even_when_small():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n"
    [issue] = read_yaml(text, "many.yaml")[1]
    assert "max_yaml_aliases" in issue.message and issue.line == 2


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_is_refused_without_recursion(opener):
    closer = "]" if opener == "[" else "}"
    [issue] = read_yaml("a: " + opener * 5000 + "1" + closer * 5000 + "\n", "deep.yaml")[1]
    assert "max_yaml_depth" in issue.message


def test_aliases_within_the_limits_still_work():
    source, issues = read_yaml("x: &bind ['$[\"1\"].inputs.a']\ny: *bind\n", "ok.yaml")
    assert issues == [] and source.data == {"x": ['$["1"].inputs.a'], "y": ['$["1"].inputs.a']}


@st.composite
def alias_documents(draw):
    """Random documents of anchored lists, each holding scalars and aliases of earlier anchors."""
    lines = []
    for index in range(draw(st.integers(1, 8))):
        earlier = [f"*a{j}" for j in range(index)]
        items = draw(st.lists(st.sampled_from(earlier + ["1", "x"]), min_size=1, max_size=12))
        lines.append(f"a{index}: &a{index} [{', '.join(items)}]")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None)
@given(alias_documents(), st.integers(10, 3000))
def test_an_accepted_document_never_expands_past_the_node_limit(text, max_nodes):
    limits = Limits(max_yaml_nodes=max_nodes)
    source, issues = read_yaml(text, "random.yaml", limits)
    if source is not None:
        assert expanded_nodes(source.data) <= max_nodes + 1  # +1: the count includes the document root
    else:
        assert issues and issues[0].code == "limit"


def test_the_bomb_manifest_fails_load_catalog_alone(tmp_path):
    good = write(tmp_path, MANIFEST, name="good")
    write(tmp_path, laughs(9), name="bomb")
    catalog = load_catalog([good.parent])
    assert list(catalog.workflows) == ["good"]
    assert [issue.code for issue in catalog.issues] == ["limit"]
    assert catalog.issues[0].file.endswith("bomb.yaml")


# -- files ----------------------------------------------------------------------------------


def test_a_manifest_over_its_byte_limit_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, MANIFEST + "#" * (DEFAULT_LIMITS.max_manifest_bytes + 1) + "\n")
    with pytest.raises(ManifestError, match="max_manifest_bytes") as caught:
        load_workflow(path)
    assert caught.value.issues[0].file == str(path)


def test_a_device_or_fifo_as_a_manifest_is_refused_without_reading(tmp_path):
    write(tmp_path, MANIFEST)
    zero = tmp_path / "manifests" / "zero.yaml"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "manifests" / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever without a writer
    outcome: dict = {}
    reader = threading.Thread(target=lambda: outcome.update(catalog=load_catalog([tmp_path / "manifests"])),
                              daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading a FIFO manifest hung"
    catalog = outcome["catalog"]
    assert list(catalog.workflows) == ["m"]
    assert {Path(i.file).name for i in catalog.issues} == {"zero.yaml", "fifo.yaml"}


def test_read_file_stops_one_byte_past_the_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_file(path, max_bytes=100, limit="max_x") == b"x" * 100
    with pytest.raises(LimitExceeded, match=r"larger than 99 bytes \(limit max_x\)") as caught:
        read_file(path, max_bytes=99, limit="max_x")
    assert caught.value.limit == "max_x"
    with pytest.raises(NotRegularFile):
        read_file("/dev/zero", max_bytes=10, limit="max_x")
    with pytest.raises(NotRegularFile):
        read_file(tmp_path, max_bytes=10, limit="max_x")


@pytest.mark.parametrize("graph, code", [
    ("[" * 100_000 + "]" * 100_000, "limit"),  # deeper than Python's recursion: no RecursionError
    ('{"1": {"class_type": "X", "inputs": {"a": ' + "[" * 70 + "]" * 70 + "}}}", "limit"),  # 73 levels
    ('{"1": {"class_type": "X", "inputs": {}}}', None),
    ("\xff\xfe not utf-8", "workflow_json"),
])
def test_workflow_files_are_bounded_in_depth(tmp_path, graph, code):
    path = write(tmp_path, MANIFEST.replace("params:\n  prompt: {type: text, bind: '$[\"1\"].inputs.text'}\n", ""),
                 graph=graph)
    if code is None:
        assert load_workflow(path).graph["1"]["class_type"] == "X"
        return
    with pytest.raises(ManifestError) as caught:
        load_workflow(path)
    assert [issue.code for issue in caught.value.issues] == [code]
    assert caught.value.issues[0].line == 0 or caught.value.issues[0].line >= 1


def test_a_workflow_over_its_byte_limit_names_the_limit(tmp_path):
    path = write(tmp_path, MANIFEST, graph='{"1": {"class_type": "X", "inputs": {"text": "' + "x" * 2000 + '"}}}')
    with pytest.raises(ManifestError, match="max_workflow_bytes"):
        load_workflow(path, limits=Limits(max_workflow_bytes=1000))


# -- workflow: stays inside the workflows folder (§5) ---------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../m.json", "..", "../workflows/m.json"])
def test_workflow_paths_outside_the_folder_are_refused_with_file_and_line(tmp_path, name):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(GRAPH))
    path = write(tmp_path, f"description: x\nworkflow: {json.dumps(name)}\n")
    with pytest.raises(ManifestError) as caught:
        load_workflow(path)
    [issue] = caught.value.issues
    assert (issue.line, issue.code) == (2, "workflow_outside")
    assert "inside the workflows folder" in str(issue) and str(path) in str(issue)


def test_a_workflow_in_a_subfolder_is_fine(tmp_path):
    path = write(tmp_path, "description: x\nworkflow: sub/g.json\n")
    (tmp_path / "workflows" / "sub").mkdir()
    (tmp_path / "workflows" / "sub" / "g.json").write_text(json.dumps(GRAPH))
    assert load_workflow(path).graph["1"]["class_type"] == "CLIPTextEncode"


# -- JSON -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 200))
def test_parse_json_accepts_exactly_up_to_the_depth_limit(depth, max_depth):
    text = "[" * depth + "]" * depth
    if depth <= max_depth:
        assert parse_json(text, max_depth=max_depth) is not None
    else:
        with pytest.raises(LimitExceeded, match="max_json_depth"):
            parse_json(text, max_depth=max_depth)


def test_check_depth_is_iterative():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(LimitExceeded):
        check_depth(value, 64, "nested")


@given(st.text())
def test_parsed_text_is_always_valid_unicode(text):
    parsed = parse_json(json.dumps({text: [text]}), max_depth=4)
    for value in (*parsed, *next(iter(parsed.values()))):
        value.encode("utf-8")  # a lone surrogate would raise here
        assert value == valid_text(text)


def test_lone_surrogates_become_replacement_characters_and_pairs_survive():
    assert parse_json(b'{"k\\ud800": "a\\udfffb\\ud83d\\ude00"}', max_depth=3) == {"k\ufffd": "a\ufffdb😀"}


# -- the limits themselves ------------------------------------------------------------------


def test_limits_come_from_the_environment_by_their_names():
    limits = limits_from_env({"DISCOMFY_MAX_SERVER_JSON_BYTES": "1000", "DISCOMFY_MAX_YAML_ALIASES": " 7 "})
    assert (limits.max_server_json_bytes, limits.max_yaml_aliases) == (1000, 7)
    assert limits.max_manifest_bytes == DEFAULT_LIMITS.max_manifest_bytes
    for bad in ("0", "-1", "1e9", "lots"):
        with pytest.raises(ValueError, match="DISCOMFY_MAX_JSON_DEPTH"):
            limits_from_env({"DISCOMFY_MAX_JSON_DEPTH": bad})
    with pytest.raises(ValueError, match="max_json_depth"):
        Limits(max_json_depth=0)
