"""Output parsing against the recorded history entries and executed messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.comfy.outputs import (
    OutputFile,
    OutputRef,
    OutputText,
    history_entry,
    kind_of,
    mime_of,
    output_refs,
    output_texts,
    parse_status,
    refs_from_node,
    texts_from_node,
)

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "comfyui" / "captures"


def load(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


def only_entry(history: dict) -> dict:
    (entry,) = history.values()
    return entry


def test_save_image_output():
    capture = load("progress_b.json")["no_feature_flags"]
    prompt_id = capture["post_response"]["prompt_id"]
    entry = history_entry(capture["history"], prompt_id)

    assert output_refs(entry) == [
        OutputRef("3", "slow_00006_.png", "probe", "output", kind="image", mime="image/png", animated=False)
    ]
    assert output_texts(entry) == []


def test_video_and_animations_hide_under_images():
    capture = load("video_e.json")
    refs = {ref.filename: ref for ref in output_refs({"outputs": capture["history_outputs"]})}

    assert {name: (r.kind, r.mime, r.animated) for name, r in refs.items()} == {
        "video_00004_.mp4": ("video", "video/mp4", True),
        "webm_00004_.webm": ("video", "video/webm", True),
        "anim_00004_.webp": ("image", "image/webp", True),
        "apng_00004_.png": ("image", "image/png", True),
    }
    # the server's own Content-Type for each file agrees with the mime we derive
    for key, view in capture["views"].items():
        filename = key.split(":")[-1]
        assert refs[filename].mime == view["headers"]["Content-Type"]


def test_history_order_unless_nodes_are_given():
    outputs = {"outputs": load("video_e.json")["history_outputs"]}

    assert [r.node_id for r in output_refs(outputs)] == ["4", "6", "5", "2"]
    assert [r.node_id for r in output_refs(outputs, ["2", "4", "99"])] == ["2", "4"]
    assert output_refs(outputs, []) == []


def test_text_output():
    capture = load("text_and_wsimage.json")["f_text_output"]
    entry = only_entry(capture["history"])

    assert output_texts(entry) == [OutputText("1", "hello from TextOutput")]
    assert output_refs(entry) == []


def test_websocket_image_node_leaves_no_history_output():
    entry = only_entry(load("text_and_wsimage.json")["g_websocket_image"]["history"])

    assert output_refs(entry) == [] and output_texts(entry) == []


def test_preview_image_is_a_temp_file():
    executed = next(m for m in load("queue_two_clients.json")["ws_A"] if m.get("type") == "executed")
    (ref,) = refs_from_node(executed["data"]["node"], executed["data"]["output"])

    assert ref.type == "temp" and ref.subfolder == "" and ref.kind == "image"
    assert ref.view_params() == {"filename": ref.filename, "subfolder": "", "type": "temp"}


def test_executed_messages_parse_like_history():
    capture = load("video_e.json")
    from_ws = [
        ref
        for m in capture["ws_messages"]
        if m.get("type") == "executed"
        for ref in refs_from_node(m["data"]["node"], m["data"]["output"])
    ]

    assert sorted(from_ws, key=str) == sorted(output_refs({"outputs": capture["history_outputs"]}), key=str)


def test_other_list_keys_are_files_too():
    ui = {
        "gifs": [{"filename": "clip_00001.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4"}],
        "audio": [{"filename": "voice_00001_.flac", "subfolder": "a", "type": "output"}],
        "videos": [{"filename": "noext", "type": "output"}],
        "custom": [{"filename": "notes.txt"}],
        "images": [{"not_a_file": 1}, "x", {"filename": ""}],
        "text": ["t"],
    }

    refs = {ref.filename: (ref.kind, ref.mime, ref.animated) for ref in refs_from_node("7", ui)}

    assert refs == {
        "clip_00001.mp4": ("video", "video/mp4", True),
        "voice_00001_.flac": ("audio", "audio/flac", False),
        "noext": ("video", "application/octet-stream", True),
        "notes.txt": ("text", "text/plain", False),
    }
    assert texts_from_node("7", ui) == [OutputText("7", "t")]


def test_unflagged_webp_is_a_still_image():
    (ref,) = refs_from_node("1", {"images": [{"filename": "a.webp", "subfolder": "", "type": "output"}]})
    assert (ref.kind, ref.animated) == ("image", False)


@pytest.mark.parametrize(
    ("filename", "hint", "mime", "kind"),
    [
        ("X.PNG", None, "image/png", "image"),
        ("a.jpeg", None, "image/jpeg", "image"),
        ("a.mov", None, "video/quicktime", "video"),
        ("a.mp3", None, "audio/mpeg", "audio"),
        ("a.unknownext", "video/h265-mp4", "video/h265-mp4", "video"),
        ("a.json", None, "application/json", "text"),
    ],
)
def test_mime_and_kind(filename, hint, mime, kind):
    assert mime_of(filename, hint) == mime
    assert kind_of(mime) == kind


def test_status_of_success_failure_and_interrupt():
    success = parse_status(only_entry(load("progress_b.json")["no_feature_flags"]["history"]))
    failed = parse_status(only_entry(load("fail_c.json")["history"]))
    interrupted = parse_status(only_entry(load("interrupt.json")["history"]))

    assert (success.status_str, success.completed, success.last_type, success.succeeded) == (
        "success",
        True,
        "execution_success",
        True,
    )
    assert (failed.status_str, failed.completed, failed.last_type) == ("error", False, "execution_error")
    assert failed.last_data["exception_message"].startswith("boom") and not failed.succeeded
    assert (interrupted.last_type, interrupted.last_data["node_id"]) == ("execution_interrupted", "2")


def test_history_entry_of_an_unknown_prompt():
    assert history_entry({}, "nope") is None
    assert history_entry([], "nope") is None


def test_output_file_from_ref_prefers_the_server_content_type():
    ref = OutputRef("4", "video_00004_.mp4", "probe", "output", "video", "video/mp4", True)

    file = OutputFile.from_ref(ref, b"\0\0\0 ftyp", "video/mp4; charset=binary")
    assert (file.mime, file.kind, file.filename, file.node_id, file.animated) == (
        "video/mp4",
        "video",
        "video_00004_.mp4",
        "4",
        True,
    )
    assert OutputFile.from_ref(ref, b"", None).mime == "video/mp4"


def test_ref_round_trips_through_a_dict():
    ref = OutputRef("4", "video_00004_.mp4", "probe", "output", "video", "video/mp4", True)
    assert OutputRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


@given(json_values)
def test_malformed_entries_never_crash(entry):
    for candidate in (entry, {"outputs": entry, "status": entry}, {"outputs": {"1": entry}}):
        refs = output_refs(candidate) if isinstance(candidate, dict) else []
        texts = output_texts(candidate) if isinstance(candidate, dict) else []
        status = parse_status(candidate)
        assert all(isinstance(r, OutputRef) and r.filename for r in refs)
        assert all(isinstance(t.text, str) for t in texts)
        assert isinstance(status.completed, bool)


def test_public_names_exist():
    import engine.comfy.outputs as module

    assert all(hasattr(module, name) for name in module.__all__)
