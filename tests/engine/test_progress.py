"""ProgressTracker replayed against the recorded ComfyUI websocket captures, plus properties."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.comfy.outputs import failure_text
from engine.comfy.wire import Preview
from engine.jobs.progress import (
    JobState,
    ProgressEvent,
    ProgressTracker,
    visible_key,
    TERMINAL_STATES,
    nodes_to_run,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "comfyui"
CAPTURES = DATA / "captures"
WORKFLOWS = DATA / "workflows"


def load(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


def workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def as_feedable(message: dict):
    """A capture line as the websocket module hands it over: text dicts as is, previews decoded."""
    if not message.get("binary"):
        return {"type": message["type"], "data": message["data"]}
    if message["event"] in (1, 4):
        # the capture keeps only the size and magic of the image; rebuild bytes of that shape
        size = message["image_bytes"]
        image = bytes.fromhex(message["image_magic_hex"]).ljust(size, b"\0")
        meta = message.get("metadata") or {}
        mime = meta.get("image_type") or ("image/png" if message.get("image_format") == 2 else "image/jpeg")
        return Preview(image, mime, meta.get("node_id"), meta.get("prompt_id"))
    return message  # TEXT frames: not something the tracker understands; must be ignored


@dataclass(frozen=True)
class Run:
    name: str
    prompt_id: str
    graph: dict
    messages: list
    final: JobState


def _history_run(name, section, final) -> Run:
    answer = section["post_response"]
    prompt_id = answer["json"]["prompt_id"] if "json" in answer else answer["prompt_id"]  # basic_a wraps it
    graph = section["history"][prompt_id]["prompt"][2]
    return Run(name, prompt_id, graph, [as_feedable(m) for m in section["ws_messages"]], final)


def all_runs() -> list[Run]:
    progress, basic, text = load("progress_b.json"), load("basic_a.json"), load("text_and_wsimage.json")
    video, reconnect = load("video_e.json"), load("reconnect.json")
    rc_messages = reconnect["first_socket"] + reconnect["second_socket_same_clientId"]
    rc_prompt = next(m["data"]["prompt_id"] for m in rc_messages if m.get("type") == "execution_start")
    return [
        _history_run("b_plain", progress["no_feature_flags"], JobState.DONE),
        _history_run("b_metadata", progress["supports_preview_metadata"], JobState.DONE),
        _history_run("a_first", basic["runs"][0], JobState.DONE),
        _history_run("a_cached", basic["runs"][1], JobState.DONE),
        _history_run("c_fail", load("fail_c.json"), JobState.FAILED),
        _history_run("interrupt", load("interrupt.json"), JobState.CANCELLED),
        _history_run("f_text", text["f_text_output"], JobState.DONE),
        _history_run("g_wsimage", text["g_websocket_image"], JobState.DONE),
        Run(
            "e_video",
            video["post_response"]["prompt_id"],
            workflow("e_video_outputs.json"),
            [as_feedable(m) for m in video["ws_messages"]],
            JobState.DONE,
        ),
        Run(
            "reconnect",
            rc_prompt,
            workflow("i_long_slowprogress.json"),
            [as_feedable(m) for m in rc_messages],
            JobState.DONE,
        ),
    ]


RUNS = all_runs()
RUNS_BY_NAME = {run.name: run for run in RUNS}


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def replay(run: Run, *, want_previews: bool = False, messages=None) -> tuple[ProgressTracker, list[ProgressEvent]]:
    clock = FakeClock()
    tracker = ProgressTracker(run.prompt_id, run.graph, clock=clock, want_previews=want_previews)
    events: list[ProgressEvent] = []
    for message in run.messages if messages is None else messages:
        if isinstance(message, dict) and "t_ms" in message:
            clock.now = message["t_ms"] / 1000
        events.extend(tracker.feed(message))
    return tracker, events


LEGAL_NEXT = {
    JobState.QUEUED: set(JobState),
    JobState.RUNNING: {JobState.RUNNING, JobState.DONE, JobState.FAILED, JobState.CANCELLED},
    JobState.DONE: {JobState.DONE},
    JobState.FAILED: {JobState.FAILED},
    JobState.CANCELLED: {JobState.CANCELLED},
}


def check_invariants(events: list[ProgressEvent], initial: ProgressEvent | None = None) -> None:
    previous = initial
    for event in events:
        assert 0.0 <= event.percent <= 100.0
        assert (event.percent == 100.0) == (event.state is JobState.DONE)
        if previous is not None:
            assert event.percent >= previous.percent
            assert event.state in LEGAL_NEXT[previous.state]
            assert visible_key(event) != visible_key(previous), "an event without a visible change"
        previous = event


# -- replays of every capture ------------------------------------------------------------


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.name)
def test_replay_reaches_the_recorded_outcome(run: Run):
    tracker, events = replay(run)

    assert events, "a run must produce events"
    assert tracker.state is run.final
    assert events[-1].state is run.final
    assert events[0].state is JobState.RUNNING
    check_invariants(events)


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.name)
def test_replay_with_previews_keeps_invariants(run: Run):
    _, events = replay(run, want_previews=True)
    check_invariants(events)


def test_success_message_alone_is_not_done():
    run = RUNS_BY_NAME["b_plain"]
    cut = next(i for i, m in enumerate(run.messages) if isinstance(m, dict) and m.get("type") == "execution_success")
    tracker, events = replay(run, messages=run.messages[: cut + 1])

    assert tracker.state is JobState.RUNNING
    assert events[-1].percent == 99.0


def test_progress_reports_each_sampler_step_once():
    _, events = replay(RUNS_BY_NAME["b_plain"])

    steps = [(e.step, e.steps) for e in events if e.phase == "SlowProgress" and e.step is not None]
    assert steps == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_percent_counts_nodes_and_sampler_steps():
    _, events = replay(RUNS_BY_NAME["b_plain"])

    at_step = {e.step: e.percent for e in events if e.phase == "SlowProgress" and e.step is not None}
    # 3 nodes: EmptyImage done (1/3) + 2/5 of SlowProgress -> (1 + 0.4) / 3
    assert at_step[2] == pytest.approx(100 * 1.4 / 3)
    assert at_step[5] == pytest.approx(100 * 2 / 3)


def test_phase_is_the_node_title_when_present():
    _, events = replay(RUNS_BY_NAME["a_first"])

    phases = list(dict.fromkeys(e.phase for e in events if e.phase))
    assert phases == ["Load Image", "ImageInvert", "ImageScale", "SaveImage"]  # _meta.title, else class_type


def test_cached_nodes_count_as_done():
    tracker, events = replay(RUNS_BY_NAME["a_cached"])

    assert [e.percent for e in events] == [0.0, 99.0, 100.0]  # start, all four cached, done
    assert tracker.state is JobState.DONE


def test_failure_carries_a_short_message_and_the_node():
    tracker, events = replay(RUNS_BY_NAME["c_fail"])

    last = events[-1]
    assert last.state is JobState.FAILED
    assert "boom" in last.error
    assert last.error == "FailOnPurpose: boom (FailOnPurpose)"
    assert last.failed_node == "2"
    assert last.percent < 100


def test_failure_text_never_contains_the_traceback_or_inputs():
    data = load("fail_c.json")["ws_messages"]
    error = next(m["data"] for m in data if m.get("type") == "execution_error")
    error = dict(error, traceback=['  File "x.py", line 1, in run\n'], exception_message="bad\nthings\n" + "x" * 500)

    text = failure_text(error, {"2": {"class_type": "FailOnPurpose", "_meta": {"title": "Fail here"}}})

    assert text.startswith("Fail here: bad things ")
    assert "File" not in text and "tensor" not in text
    assert len(text) < 330


def test_interrupt_cancels_and_keeps_the_step_reached():
    tracker, events = replay(RUNS_BY_NAME["interrupt"])

    assert tracker.state is JobState.CANCELLED
    last_running = [e for e in events if e.state is JobState.RUNNING][-1]
    assert (last_running.step, last_running.steps) == (4, 30)
    assert events[-1].percent == last_running.percent


def test_executing_without_prompt_id_follows_a_running_prompt():
    run = RUNS_BY_NAME["reconnect"]
    tracker = ProgressTracker(run.prompt_id, run.graph)
    tracker.feed({"type": "execution_start", "data": {"prompt_id": run.prompt_id}})

    events = tracker.feed({"type": "executing", "data": {"node": "3"}})

    assert events[-1].phase == "PreviewImage"


def test_executing_without_prompt_id_is_ignored_while_queued():
    tracker = ProgressTracker("p1", workflow("i_long_slowprogress.json"))

    assert tracker.feed({"type": "executing", "data": {"node": "2"}}) == []
    assert tracker.state is JobState.QUEUED


def test_messages_of_other_prompts_are_ignored():
    run = RUNS_BY_NAME["b_plain"]
    tracker = ProgressTracker("someone-else", run.graph)

    events = [e for m in run.messages for e in tracker.feed(m)]

    assert events == []
    assert tracker.state is JobState.QUEUED


@pytest.mark.parametrize(
    "data",
    [
        {"value": float("nan"), "max": 5},
        {"value": 1, "max": float("inf")},
        {"value": float("inf"), "max": 2},
        {"value": 3, "max": 0},
        {"value": "3", "max": 5},
        {"value": True, "max": 5},
    ],
)
def test_hostile_progress_numbers_are_ignored(data):
    tracker = ProgressTracker("p", {"1": {"class_type": "X", "inputs": {}}})
    tracker.feed({"type": "executing", "data": {"node": "1", "display_node": [1], "prompt_id": "p"}})

    events = tracker.feed({"type": "progress", "data": {**data, "node": "1", "prompt_id": "p"}})
    events += tracker.feed({"type": "progress_state", "data": {"nodes": {"1": data}, "prompt_id": "p"}})

    assert events == []
    assert tracker.current.percent == 0.0 and tracker.current.step is None


def test_several_samplers_never_move_the_bar_backwards():
    graph = {
        "1": {"class_type": "KSampler", "inputs": {}},
        "2": {"class_type": "KSampler", "inputs": {"latent_image": ["1", 0]}, "_meta": {"title": "Refiner"}},
    }
    tracker = ProgressTracker("p", graph)
    messages = [{"type": "execution_start", "data": {"prompt_id": "p"}}]
    for node, steps in (("1", 20), ("2", 10)):
        messages.append({"type": "executing", "data": {"node": node, "prompt_id": "p"}})
        messages += [
            {"type": "progress", "data": {"value": i, "max": steps, "node": node, "prompt_id": "p"}}
            for i in range(1, steps + 1)
        ]
    messages.append({"type": "executing", "data": {"node": None, "prompt_id": "p"}})

    events = [e for m in messages for e in tracker.feed(m)]

    check_invariants(events)
    refiner_start = next(e for e in events if e.phase == "Refiner")
    assert refiner_start.percent == 50.0 and refiner_start.step is None
    assert events[-1].state is JobState.DONE


def test_only_the_outputs_ancestors_are_counted():
    graph = workflow("e_video_outputs.json")

    assert nodes_to_run(graph, ["4"]) == {"1", "3", "4"}
    assert nodes_to_run(graph) == set(graph)
    assert nodes_to_run(graph, ["99"]) == set()


# -- queue position and status -----------------------------------------------------------


def queue_ids(queue: dict) -> tuple[list[str], list[str]]:
    running = [item[1] for item in queue["queue_running"]]
    pending = [item[1] for item in sorted(queue["queue_pending"], key=lambda item: item[0])]
    return running, pending


def test_queue_position_from_a_snapshot():
    capture = load("queue_two_clients.json")
    ids = capture["prompt_ids"]
    graph = workflow("i_long_slowprogress.json")
    running, pending = queue_ids(capture["queue_after_posts"])

    positions = {}
    for name in ("A1", "B_front", "B1", "A2_deleted", "no_client"):
        tracker = ProgressTracker(ids[name], graph)
        events = tracker.feed_queue(running, pending)
        positions[name] = (tracker.state, events[-1].queue_position)

    assert positions == {
        "A1": (JobState.RUNNING, None),
        "B_front": (JobState.QUEUED, 1),
        "B1": (JobState.QUEUED, 2),
        "A2_deleted": (JobState.QUEUED, 3),
        "no_client": (JobState.QUEUED, 4),
    }


def test_queue_position_moves_up_then_the_prompt_runs_to_the_end():
    capture = load("queue_two_clients.json")
    prompt_id = capture["prompt_ids"]["B1"]
    tracker = ProgressTracker(prompt_id, workflow("i_long_slowprogress.json"))
    tracker.feed_queue(*queue_ids(capture["queue_after_posts"]))
    assert tracker.current.queue_position == 2

    after_posts = capture["ws_B"][6:]  # the snapshot was taken after the sixth status (q=5)
    assert after_posts[0]["data"]["status"]["exec_info"]["queue_remaining"] == 4

    events = [e for m in after_posts for e in tracker.feed(as_feedable(m))]

    assert events[0].state is JobState.RUNNING  # statuses of 4, 3, 2 left position 2 as it was
    assert tracker.state is JobState.DONE
    assert [e.step for e in events if e.step][-1] == 6
    check_invariants(events)


def test_a_stale_snapshot_does_not_move_a_running_prompt_back():
    tracker = ProgressTracker("p", {"1": {"class_type": "X", "inputs": {}}})
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})

    assert tracker.feed_queue([], ["p"]) == []
    assert tracker.state is JobState.RUNNING


def test_a_position_alone_moves_a_queued_prompt_and_never_a_running_one():
    tracker = ProgressTracker("p", {"1": {"class_type": "X", "inputs": {}}})
    assert tracker.feed_position(3)[-1].queue_position == 3
    assert tracker.feed_position(3) == []  # nothing visible changed
    assert tracker.feed_position(0) == [] and tracker.current.queue_position == 3
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})
    assert tracker.feed_position(1) == [] and tracker.current.queue_position is None


def test_status_caps_the_position_to_the_queue_size():
    tracker = ProgressTracker("p", {})
    tracker.feed_queue(["r"], ["a", "b", "c", "p"])

    assert tracker.feed_status(2)[-1].queue_position == 2
    assert tracker.feed_status(5) == []  # a larger queue says nothing about us
    assert tracker.feed_status(0) == []
    status = {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}
    assert tracker.feed(status)[-1].queue_position == 1


def test_prompt_without_client_id_finishes_through_history():
    capture = load("queue_two_clients.json")
    prompt_id = capture["prompt_ids"]["no_client"]
    tracker = ProgressTracker(prompt_id, workflow("i_long_slowprogress.json"))

    for message in capture["ws_observer"]:
        tracker.feed(as_feedable(message))
    assert tracker.state is JobState.RUNNING  # only progress is broadcast; no "done" arrives
    assert tracker.current.step == 4

    events = tracker.feed_history({"status": capture["history_no_client_status"], "outputs": {}})
    assert events[-1].state is JobState.DONE and events[-1].percent == 100.0


def test_history_settles_failure_and_cancel_states():
    fail = load("fail_c.json")
    prompt_id = fail["post_response"]["prompt_id"]
    entry = fail["history"][prompt_id]
    tracker = ProgressTracker(prompt_id, entry["prompt"][2])
    assert tracker.feed_history(entry)[-1].error == "FailOnPurpose: boom (FailOnPurpose)"

    interrupt = load("interrupt.json")
    prompt_id = interrupt["post_response"]["prompt_id"]
    tracker = ProgressTracker(prompt_id, interrupt["history"][prompt_id]["prompt"][2])
    assert tracker.feed_history(interrupt["history"][prompt_id])[-1].state is JobState.CANCELLED
    assert tracker.feed_history({}) == []


def test_cancel_is_final():
    tracker = ProgressTracker("p", {})
    assert tracker.cancel()[-1].state is JobState.CANCELLED
    assert tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}}) == []
    assert tracker.cancel() == []


# -- ETA, elapsed, previews --------------------------------------------------------------


def test_eta_from_the_observed_rate():
    clock = FakeClock(100.0)
    tracker = ProgressTracker("p", {"1": {"class_type": "KSampler", "inputs": {}}}, clock=clock)
    clock.now = 101.0
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})

    def step(at: float, value: int) -> ProgressEvent:
        clock.now = at
        progress = {"value": value, "max": 10, "node": "1", "prompt_id": "p"}
        return tracker.feed({"type": "progress", "data": progress})[-1]

    first = step(101.2, 1)
    assert first.eta_seconds is None  # too early to tell
    assert step(103.0, 2).eta_seconds == pytest.approx(8.0)  # 20 % in 2 s -> 80 % in 8 s
    later = step(106.0, 5)
    assert later.eta_seconds == pytest.approx(5.0)
    assert later.elapsed == pytest.approx(6.0)
    clock.now = 107.0
    done = tracker.feed({"type": "executing", "data": {"node": None, "prompt_id": "p"}})[-1]
    assert done.eta_seconds is None and done.elapsed == pytest.approx(7.0)


def test_previews_are_attached_only_when_wanted():
    run = RUNS_BY_NAME["b_metadata"]
    _, without = replay(run)
    _, wanted = replay(run, want_previews=True)

    assert all(e.preview is None for e in without)
    assert [e for e in wanted if e.preview] and wanted[-1].preview.startswith(b"\xff\xd8")


def test_previews_of_other_prompts_or_before_running_are_ignored():
    tracker = ProgressTracker("p", {"1": {"class_type": "X", "inputs": {}}}, want_previews=True)

    assert tracker.feed(Preview(b"img", "image/png")) == []  # not running yet: cannot be ours
    tracker.feed({"type": "execution_start", "data": {"prompt_id": "p"}})
    assert tracker.feed(Preview(b"other", "image/png", "1", "q")) == []
    assert tracker.feed(Preview(b"mine", "image/png", "1", "p"))[-1].preview == b"mine"
    assert tracker.feed(Preview(b"next", "image/png"))[-1].preview == b"next"


# -- properties --------------------------------------------------------------------------

FOREIGN = "foreign-prompt"


def _foreign_copy(message):
    """A message of another prompt with the same shape as ``message``."""
    if isinstance(message, Preview):
        return Preview(message.image + b"!", message.mime, message.node_id, FOREIGN)
    if not isinstance(message, dict) or "data" not in message:
        return message
    data = dict(message["data"])
    if "prompt_id" in data or message["type"] != "status":
        data["prompt_id"] = FOREIGN
    return {"type": message["type"], "data": data}


junk_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 50), st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=2)
)
junk_messages = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["executing", "progress", "progress_state", "execution_cached", "executed", "status", "execution_start", "x"]
        ),
        "data": st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["node", "value", "max", "nodes", "prompt_id", "status"]), junk_values, max_size=4
            ),
        ),
    }
)


def _foreign_junk(message: dict) -> dict:
    if not message["data"]:
        return message
    return {**message, "data": {**message["data"], "prompt_id": FOREIGN}}


def _addressed(message: dict, prompt_id: str) -> dict:
    data = message["data"] if isinstance(message["data"], dict) else {}
    return {**message, "data": {**data, "prompt_id": prompt_id}}


@st.composite
def mixed_feeds(draw):
    run = draw(st.sampled_from(RUNS))
    keep = draw(st.lists(st.booleans(), min_size=len(run.messages), max_size=len(run.messages)))
    ours = [m for m, k in zip(run.messages, keep) if k]
    others = [_foreign_copy(m) for m in draw(st.sampled_from(RUNS)).messages]
    others += [_foreign_junk(m) for m in draw(st.lists(junk_messages, max_size=8))]
    # interleave, keeping each stream's own order
    picks = draw(st.permutations([0] * len(ours) + [1] * len(others)))
    streams = [iter(ours), iter(others)]
    return run, [next(streams[p]) for p in picks]


@settings(max_examples=100, deadline=None)
@given(mixed_feeds(), st.booleans())
def test_any_interleaving_keeps_the_bar_sane(feed, want_previews):
    run, messages = feed
    tracker = ProgressTracker(run.prompt_id, run.graph, want_previews=want_previews)
    initial = tracker.current
    events = [e for m in messages for e in tracker.feed(m)]

    check_invariants(events, initial)
    if events:
        assert events[-1].state is tracker.state


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(RUNS),
    st.randoms(use_true_random=False),
    st.lists(st.tuples(junk_messages, st.booleans()), max_size=10),
)
def test_shuffled_and_malformed_messages_never_break_the_rules(run, rnd, junk):
    messages = list(run.messages) + [_addressed(m, run.prompt_id) if ours else m for m, ours in junk]
    rnd.shuffle(messages)
    tracker = ProgressTracker(run.prompt_id, run.graph)
    initial = tracker.current
    events = []
    for message in messages:
        events += tracker.feed(message)
        assert tracker.state in (events[-1].state if events else initial.state,)

    check_invariants(events, initial)
    if tracker.state in TERMINAL_STATES:
        assert tracker.feed({"type": "execution_start", "data": {"prompt_id": run.prompt_id}}) == []


def test_public_names_exist():
    import engine.jobs.progress as module

    assert all(hasattr(module, name) for name in module.__all__)


@given(state=st.sampled_from(list(JobState)), position=st.none() | st.integers(1, 500),
       percent=st.floats(0, 100), phase=st.none() | st.text(max_size=5))
def test_evolve_is_dataclasses_replace(state, position, percent, phase):
    base = ProgressEvent(JobState.QUEUED, queue_position=3, phase="x", step=1, steps=2)
    changes = {"state": state, "queue_position": position, "percent": percent, "phase": phase}
    evolved = base.evolve(**changes)
    assert evolved == replace(base, **changes) and base.queue_position == 3 and hash(evolved) == hash(replace(base, **changes))


def test_evolve_refuses_an_unknown_field():
    with pytest.raises(TypeError):
        ProgressEvent(JobState.QUEUED).evolve(position=1)
