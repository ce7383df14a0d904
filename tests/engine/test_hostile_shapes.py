"""Any JSON a server can send, in any shape, is read without an exception escaping (issue 7 §4).

Every reader of server data is fed arbitrary JSON values built from the keys the protocol uses
(so the generator reaches deep into the expected shapes and then breaks them): history entries,
queue listings, rejections, execution errors, websocket messages, object_info. The only
exception allowed out is the one the reader documents (``WorkflowRejected`` from ``_reject``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import load_workflow, validate_paths
from engine.backends.routing import graph_requirements, missing_on
from engine.comfy.client import ComfyClient, rejection_problems
from engine.comfy.error_map import map_execution_error, map_node_errors, map_rejection
from engine.comfy.events import EventStream
from engine.comfy.object_info import combo_choices, input_max, is_output_node
from engine.comfy.outputs import failure_text, output_refs, output_texts, parse_status
from engine.comfy.wire import parse_binary_frame, queue_snapshot
from engine.errors import ExecutionFailed, WorkflowRejected
from engine.jobs.progress import ProgressTracker
from engine.manifest.draft import draft_manifest

ROOT = Path(__file__).resolve().parents[2]
FLUX = load_workflow(ROOT / "manifests" / "flux.yaml")
GRAPH = dict(FLUX.graph)
KEYS = ["node_errors", "errors", "error", "message", "details", "class_type", "status", "messages", "outputs",
        "images", "filename", "subfolder", "type", "text", "animated", "format", "exec_info", "queue_remaining",
        "queue_running", "queue_pending", "prompt_id", "node", "value", "max", "min", "data", "node_id",
        "exception_message", "exception_type", "extra_info", "input_name", "received_value", "input_config",
        "input", "required", "optional", "output", "output_node", "options", "nodes", "state", "status_str",
        "completed", "6", "9", "25", "p"]
WORDS = ["6", "9", "p", "execution_error", "executing", "progress", "progress_state", "execution_start",
         "executed", "execution_cached", "execution_success", "execution_interrupted", "status", "running",
         "finished", "success", "error", "x.png", "INT", "COMBO", "STRING"]
LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5) | st.sampled_from(WORDS)
JSON = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=5), max_leaves=40)
MESSAGE = st.fixed_dictionaries({"type": st.sampled_from(WORDS) | JSON, "data": JSON})
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
SLOW_FUZZ = settings(FUZZ, max_examples=40)  # each example loads manifests


@FUZZ
@given(JSON)
def test_history_and_queue_readers_take_any_shape(value):
    for nodes in (None, ["9", "6"]):
        for ref in output_refs(value, nodes):
            assert isinstance(ref.filename, str) and ref.filename
        assert all(isinstance(t.text, str) for t in output_texts(value, nodes))
    parse_status(value)
    queue_snapshot(value)
    if isinstance(value, dict):
        assert isinstance(failure_text(value, value), str)


@FUZZ
@given(JSON)
def test_a_rejection_of_any_shape_is_a_workflow_rejected(value):
    client = ComfyClient("http://x", client_id="c", name="n")
    with pytest.raises(WorkflowRejected) as caught:
        client._reject(value)
    if isinstance(value, dict):
        assert rejection_problems(value)
    mapped = map_rejection(FLUX, GRAPH, caught.value)
    assert isinstance(mapped, WorkflowRejected) and all(isinstance(p, str) for p in mapped.problems)
    assert all(isinstance(p, str) for p in map_node_errors(FLUX, GRAPH, value))


@FUZZ
@given(JSON)
def test_an_execution_error_of_any_shape_maps_to_a_short_message(value):
    error = map_execution_error(FLUX, GRAPH, value if isinstance(value, dict) else {"data": value})
    assert isinstance(error, ExecutionFailed) and str(error)


@FUZZ
@given(st.lists(MESSAGE, max_size=8), JSON)
def test_the_progress_tracker_takes_any_message_sequence(messages, entry):
    tracker = ProgressTracker("p", GRAPH, outputs=["9"])
    for message in messages:
        tracker.feed(message)
    tracker.feed_history(entry if isinstance(entry, dict) else {"status": entry})


@FUZZ
@given(st.lists(MESSAGE, max_size=8), JSON, st.binary(max_size=64))
async def test_the_websocket_router_takes_any_message(messages, entry, frame):
    stream = EventStream(ComfyClient("http://x", client_id="c", name="n"))
    inbox = stream.subscribe("p")
    for message in messages:
        stream._on_text(message)
    stream._on_binary(frame)
    parse_binary_frame(frame)
    stream._replay("p", entry if isinstance(entry, dict) else {"status": entry})
    assert stream.finished("p") and not inbox.empty()


@SLOW_FUZZ
@given(st.dictionaries(st.sampled_from(["KSampler", "SaveImage", "LoraLoaderModelOnly", "UNETLoader",
                                        "CLIPTextEncode", "RandomNoise"]), JSON, max_size=6))
def test_object_info_of_any_shape_is_read_for_routing_and_checks(info):
    missing_on(info, graph_requirements(GRAPH))
    combo_choices(info, "LoraLoaderModelOnly", "lora_name")
    input_max(info, "KSampler", "steps")
    FLUX.output_nodes(info)
    for entry in info.values():
        is_output_node(entry)
    report = validate_paths([ROOT / "manifests" / "flux.yaml", ROOT / "manifests" / "upscale.yaml"], object_info=info)
    assert all(issue.file for issue in report.issues)


@FUZZ
@given(st.dictionaries(st.sampled_from(["1", "2", "3"]), JSON, max_size=3),
       st.none() | st.dictionaries(st.sampled_from(["CLIPTextEncode", "KSampler", "LoadImage"]), JSON, max_size=3))
def test_engine_init_drafts_or_refuses_any_graph(graph, info):
    from engine.errors import ManifestError

    try:
        assert draft_manifest(graph, "x", info).startswith("# Draft manifest")
    except ManifestError as exc:
        assert exc.issues
