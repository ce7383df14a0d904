"""Tests for bot.delivery.render: progress and result embeds, and Discord's embed limits."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import discord
from hypothesis import given
from hypothesis import strategies as st

from bot.delivery.render import (
    BAR_BLOCKS,
    STATE_COLOURS,
    embed_problems,
    embed_size,
    format_duration,
    progress_bar,
    progress_embed,
    progress_key,
    result_embed,
)
from engine.manifest.catalog import Workflow, load_workflow
from engine.manifest.model import Manifest
from engine.jobs.progress import JobState, ProgressEvent
from engine.manifest.source import YamlSource

ROOT = Path(__file__).resolve().parents[2]


def workflow_of(params: dict, *, name: str = "test", title: str = "", **manifest) -> Workflow:
    """A Workflow for UI tests: only the manifest matters to the Discord layer."""
    data = {"name": name, "description": "A test workflow", "params": params, **manifest}
    if title:
        data["title"] = title
    return Workflow(Manifest.model_validate(data), {}, {}, YamlSource(f"{name}.yaml", data, None))


@lru_cache(maxsize=None)
def flux() -> Workflow:
    return load_workflow(ROOT / "manifests" / "flux.yaml", ROOT / "workflows")


def fields(embed: discord.Embed) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}


@given(st.floats(min_value=-50, max_value=200, allow_nan=False))
def test_bar_is_always_twenty_blocks_and_grows_with_percent(percent):
    bar = progress_bar(percent)
    assert len(bar) == BAR_BLOCKS
    assert bar.count("█") == min(max(round(percent / 5), 0), 20)


def test_bar_ends():
    assert progress_bar(0) == "░" * 20
    assert progress_bar(100) == "█" * 20
    assert progress_bar(50) == "█" * 10 + "░" * 10


def test_durations():
    assert format_duration(4.4) == "4s"
    assert format_duration(65) == "1m 05s"
    assert format_duration(3725) == "1h 02m"


def test_running_embed_shows_bar_phase_step_eta_elapsed():
    event = ProgressEvent(JobState.RUNNING, percent=42.0, phase="KSampler", step=12, steps=30,
                          eta_seconds=18, elapsed=7)
    embed = progress_embed("Flux", event, prompt_preview="a cat\nin space")
    assert embed.colour == discord.Colour.blue()
    assert "> a cat in space" in embed.description
    assert f"`{progress_bar(42)}` 42%" in embed.description
    assert fields(embed) == {"Phase": "KSampler", "Step": "12/30", "ETA": "~18s", "Elapsed": "7s"}


def test_queued_embed_shows_the_place_in_line_in_orange():
    embed = progress_embed("Flux", ProgressEvent(JobState.QUEUED, line_position=3, elapsed=2))
    assert embed.colour == discord.Colour.orange()
    assert fields(embed)["Queue"] == "3rd in line"
    assert "queued" in embed.title
    on_server = ProgressEvent(JobState.QUEUED, on_server=True, elapsed=2)
    assert fields(progress_embed("Flux", on_server.evolve(queue_position=1)))["Queue"] == "next"
    assert fields(progress_embed("Flux", on_server))["Queue"] == "starting"
    assert "Queue" not in fields(progress_embed("Flux", ProgressEvent(JobState.QUEUED)))  # nothing known yet
    assert progress_key(on_server) != progress_key(on_server.evolve(line_position=2))  # a new place is an edit


def test_terminal_colours_and_error():
    done = progress_embed("Flux", ProgressEvent(JobState.DONE, percent=99.0, elapsed=70))
    assert done.colour == discord.Colour.green() and "100%" in done.description
    failed = progress_embed("Flux", ProgressEvent(JobState.FAILED, error="out of memory", elapsed=1))
    assert failed.colour == discord.Colour.red() and fields(failed)["Error"] == "out of memory"
    cancelled = progress_embed("Flux", ProgressEvent(JobState.CANCELLED))
    assert cancelled.colour == STATE_COLOURS[JobState.CANCELLED] != discord.Colour.green()


def test_preview_image_only_while_running():
    running = progress_embed("Flux", ProgressEvent(JobState.RUNNING), preview_url="attachment://preview.jpg")
    assert running.image.url == "attachment://preview.jpg"
    done = progress_embed("Flux", ProgressEvent(JobState.DONE), preview_url="attachment://preview.jpg")
    assert done.image.url is None


def test_no_event_yet_and_elapsed_override():
    assert "starting" in progress_embed("Flux", None).title
    embed = progress_embed("Flux", ProgressEvent(JobState.RUNNING, elapsed=1), elapsed=125)
    assert fields(embed)["Elapsed"] == "2m 05s"


def test_progress_key_ignores_clocks_but_not_progress():
    a = ProgressEvent(JobState.RUNNING, percent=10.2, step=3, steps=30, elapsed=1, eta_seconds=20)
    b = ProgressEvent(JobState.RUNNING, percent=10.7, step=3, steps=30, elapsed=9, eta_seconds=3)
    c = ProgressEvent(JobState.RUNNING, percent=11.0, step=4, steps=30, elapsed=9)
    assert progress_key(a) == progress_key(b) != progress_key(c)


def test_result_embed_lists_every_value_with_seed_and_image_names():
    wf = workflow_of({
        "prompt": {"type": "text", "required": True, "bind": "$.x", "label": "Prompt"},
        "image": {"type": "image", "bind": "$.y"},
        "steps": {"type": "int", "bind": "$.z"},
        "hires": {"type": "bool", "bind": "$.w"},
        "seed": {"type": "seed", "bind": "$.s"},
    }, title="Edit")
    values = {"prompt": "a red fox", "image": "discomfy/in_abc.png", "steps": 20, "hires": False, "seed": 1234}
    embed = result_embed(wf, values, backend="local", elapsed=12.3, notices=["out.png re-encoded as JPEG"],
                         index=2, total=4)
    assert embed.title == "✅ Edit #2/4"
    assert "a red fox" in embed.description
    assert fields(embed) == {"image": "in_abc.png", "steps": "20", "hires": "no", "seed": "1234",
                             "Notes": "out.png re-encoded as JPEG"}
    assert embed.footer.text == "on local · 12s"
    assert embed_problems(embed) == []


def test_result_embed_seed_argument_when_no_seed_param():
    wf = workflow_of({"steps": {"type": "int", "bind": "$.z"}})
    assert fields(result_embed(wf, {"steps": 3}, seed=99))["Seed"] == "99"
    assert "Seed" not in fields(result_embed(wf, {"steps": 3}))


def test_huge_prompts_still_fit_discord_limits():
    wf = workflow_of({
        "prompt": {"type": "text", "bind": "$.x", "max_length": 6000},
        "negative": {"type": "text", "bind": "$.n", "max_length": 6000},
        **{f"p{i}": {"type": "choice", "choices": ["x" * 100], "bind": "$.c"} for i in range(30)},
    }, title="T" * 100)
    values = {"prompt": "p" * 6000, "negative": "n" * 6000, **{f"p{i}": "x" * 100 for i in range(30)}}
    embed = result_embed(wf, values, backend="b" * 300, elapsed=1, notices=["note " * 400], total=10, index=10)
    assert embed_problems(embed) == []
    assert embed_size(embed) == len(embed) <= 6000
    assert len(embed.fields) == 25
    assert "More" in fields(embed)  # the overflow is folded, not dropped


def test_embed_problems_catches_oversize():
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    embed.add_field(name="n", value="v" * 2000)
    assert {p.split(" ")[0] for p in embed_problems(embed)} == {"title", "description", "field", "total"}


def test_real_flux_manifest_result():
    wf = flux()
    values = {"prompt": "a lighthouse", "width": 1024, "height": 768, "steps": 30, "guidance": 3.5,
              "batch": 1, "seed": 42, "lora_strength": 1.0}
    got = fields(result_embed(wf, values))
    assert got["Seed"] == "42" and got["Width"] == "1024" and got["Guidance"] == "3.5"
    assert "lora" not in got and "LoRA" not in got  # unset params are not invented
