"""The static commands' texts (pure): /help is generated from the commands, /status hides names
from non-admins, /workflows summarises every manifest, /choices filters and fits one embed."""

from __future__ import annotations

import time

import discord
from hypothesis import given
from hypothesis import strategies as st

from bot.commands.slash import build_commands, command_payload, inert_hooks
from bot.config import Settings
from bot.access import AccessPolicy, Who
from bot.commands.info import (PAGE_LIMIT, choices_embed, help_pages, job_label, paginate, param_summary,
                      status_embed, workflow_pages)
from bot.delivery.render import embed_problems
from engine.backends.pool import BackendStatus
from engine.jobs.store import JobRecord


def _leaf_paths(payload: list[dict]) -> list[tuple[str, list[str]]]:
    paths = []
    for command in payload:
        subs = [o for o in command.get("options", []) if o["type"] == 1]
        if subs:
            paths += [(f"/{command['name']} {s['name']}", [o["name"] for o in s.get("options", [])]) for s in subs]
        else:
            paths.append((f"/{command['name']}", [o["name"] for o in command.get("options", [])]))
    return paths


def test_help_lists_every_command_subcommand_and_option(fixture_catalog):
    commands = build_commands(fixture_catalog, inert_hooks())
    text = "\n".join(help_pages(commands, fixture_catalog))
    paths = _leaf_paths(command_payload(commands))
    assert len(paths) > 6
    for path, options in paths:
        block = text.split(f"**{path}**", 1)
        assert len(block) == 2, f"{path} missing from /help"
        first_lines = block[1].split("\n\n", 1)[0]
        for option in options:
            assert f"`{option}`" in first_lines, f"{path} {option}"


def test_help_names_the_settings_that_are_not_slash_options(fixture_catalog):
    commands = build_commands(fixture_catalog, inert_hooks())
    text = "\n".join(help_pages(commands, fixture_catalog))
    sdxl = text.split("**/generate sdxl**", 1)[1].split("\n\n", 1)[0]
    assert "settings: checkpoint" in sdxl


def test_help_pages_fit_an_embed_for_the_bundled_library(bundled_catalog):
    pages = help_pages(build_commands(bundled_catalog, inert_hooks()), bundled_catalog)
    assert pages and all(0 < len(p) <= PAGE_LIMIT for p in pages)
    assert "**/test slow-canvas**" in "".join(pages)


@given(st.lists(st.text(min_size=1, max_size=300), max_size=40), st.integers(min_value=20, max_value=800))
def test_paginate_keeps_every_block_in_order_within_the_limit(blocks, limit):
    pages = paginate(blocks, limit)
    assert all(len(page) <= limit for page in pages)
    short = [b for b in blocks if len(b) <= limit]
    joined = "\n\n".join(pages)
    position = 0
    for block in short:
        position = joined.find(block, position)
        assert position >= 0
        position += len(block)


def _statuses() -> list[BackendStatus]:
    return [BackendStatus("gpu-east", True, 1, 3, "0.3.40"), BackendStatus("gpu-west", False, 0, 0, None)]


def test_status_shows_up_down_and_queues_without_names_for_users():
    data = status_embed(_statuses(), show_names=False).to_dict()
    text = str(data)
    assert data["title"] == "ComfyUI servers: 1 of 2 up"
    assert "1 running · 3 queued" in text and "🔴 down" in text and "0.3.40" in text
    assert "gpu-east" not in text and "gpu-west" not in text


def test_status_shows_backend_names_to_admins():
    text = str(status_embed(_statuses(), show_names=True).to_dict())
    assert "gpu-east" in text and "gpu-west" in text


def test_admins_are_listed_users_or_holders_of_listed_roles():
    settings = Settings(admin_user_ids=[5], admin_role_ids=[77])
    policy = AccessPolicy(settings.admin_user_ids, settings.admin_role_ids)
    assert policy.is_admin(Who(5))
    assert policy.is_admin(Who(6, role_ids=frozenset({77})))
    assert not policy.is_admin(Who(6, role_ids=frozenset({78})))


def test_param_summary_says_type_range_default_and_source(fixture_catalog):
    sdxl = fixture_catalog["sdxl"].manifest.params
    assert param_summary("prompt", sdxl["prompt"]) == "prompt (text, ≤ 2000 characters, required)"
    assert "see /choices CheckpointLoaderSimple.ckpt_name" in param_summary("checkpoint", sdxl["checkpoint"])
    size = param_summary("size", sdxl["size"])
    assert "one of 256, 320, 384, 448, 512, " in size and ", …" in size and "default 1024" in size


def test_workflows_lists_title_command_kind_and_params(bundled_catalog):
    text = "\n".join(workflow_pages(bundled_catalog))
    for workflow in bundled_catalog:
        assert f"**{workflow.manifest.title}**" in text
        assert workflow.manifest.description in text
    assert "`/test slow-canvas` · image" in text
    assert "steps (int 1–100, default 10)" in text


def test_choices_filters_case_insensitively():
    embed = choices_embed("LoraLoader.lora_name", ["Flux/detail.safetensors", "sdxl/pixel.safetensors",
                                                   "flux-style.safetensors"], "FLUX")
    assert embed.description.splitlines() == ["`Flux/detail.safetensors`", "`flux-style.safetensors`"]
    assert embed.footer.text == "2 of 2 shown"


def test_choices_fill_one_embed_and_say_how_many_are_left():
    values = [f"model-{i:05d}-" + "x" * 40 + ".safetensors" for i in range(2000)]
    embed = choices_embed("CheckpointLoaderSimple.ckpt_name", values, None)
    shown = len(embed.description.splitlines())
    assert 50 < shown < 2000
    assert embed.footer.text == f"{shown} of 2000 shown; add a filter to narrow the list"
    assert embed_problems(embed) == []


def test_choices_of_an_empty_list_points_at_the_servers():
    assert "server" in choices_embed("X.y", [], None).description


def test_job_label_names_workflow_state_and_prompt_within_100_chars(fixture_catalog):
    record = JobRecord("abc", "sdxl", values={"prompt": "a very\nlong " + "cat " * 50}, state="running",
                       created_at=time.time() - 125)
    label = job_label(record, fixture_catalog, time.time())
    assert label.startswith("Sdxl · running · 2m 05s ago · a very long cat")
    assert len(label) == 100


def test_embeds_built_here_break_no_discord_limit(fixture_catalog):
    embeds = [status_embed(_statuses() * 20, show_names=True), choices_embed("a.b", ["x" * 300] * 50, None)]
    embeds += [discord.Embed(description=page) for page in workflow_pages(fixture_catalog)]
    assert all(embed_problems(e) == [] for e in embeds)
