"""Message context menus ("Apps" on any message with an image): validation, payload, and the offline stack."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from PIL import Image

from bot.commands.payload_limits import check_payload
from bot.jobs.menu import NO_IMAGE
from engine import load_catalog, validate_paths

from .payloads import USER_ID, interaction, menu_data, message_data, modal_data, snowflake
from .stack import REPO, flow_catalog, png, running_stack

OTHER_USER = USER_ID + 7

MENU = """
name: {name}
title: {title}
description: Invert (context menu test)
workflow: invert.json
timeout: 60
context_menu: true
params:
  image: {{type: image, required: true, bind: '$["1"].inputs.image'}}
outputs: ["3"]
"""
NAMED = MENU.replace("outputs:", "  prefix: {{type: text, required: true, max_length: 40, description: File name prefix,\n"
                     "           bind: '$[\"3\"].inputs.filename_prefix'}}\noutputs:")
SPICY = MENU + "nsfw: true\n"


def _write(folder, **manifests: str):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in manifests.items():
        (folder / f"{name}.yaml").write_text(text)


def test_validate_refuses_a_sixth_menu_a_menu_without_image_and_bad_names(tmp_path):
    folder = tmp_path / "m"
    _write(folder, **{f"m{i}": MENU.format(name=f"m{i}", title=f"Menu {i}") for i in range(6)})
    _write(folder, canvas=(REPO / "manifests" / "canvas.yaml").read_text() + "context_menu: true\n",
           twin=MENU.format(name="twin", title="menu 1"), long=MENU.format(name="long", title="L" * 33))
    report = validate_paths([folder], workflows_dir=REPO / "workflows")
    lines = [str(i) for i in report.issues]

    assert any("canvas.yaml" in line and "takes no image" in line for line in lines)
    assert any("long.yaml" in line and "has 33 characters; Discord allows 1–32" in line for line in lines)
    assert any("twin.yaml" in line and "is taken by another manifest" in line for line in lines)
    past_five = sorted(line.split("/")[-1].split(".yaml")[0] for line in lines if "message commands per app" in line)
    assert past_five == ["m3", "m4", "m5", "twin"]  # in name order: canvas, long, m0, m1, m2 are the first five
    assert not any(f"m{i}.yaml" in line for line in lines for i in range(3))


def test_the_payload_lists_message_commands_and_its_check_counts_them():
    catalog = load_catalog([REPO / "manifests"], REPO / "workflows")
    from bot.commands.slash import build_commands, command_payload, inert_hooks

    payload = command_payload(build_commands(catalog, inert_hooks()))
    menus = [c for c in payload if c.get("type") == 3]
    assert {m["name"] for m in menus} == {"Upscale", "Qwen Image edit", "Wan 2.2 Animate"}
    assert check_payload(payload) == []
    six = payload + [{**menus[0], "name": f"Extra {i}"} for i in range(3)]
    assert check_payload(six) == ["6 message commands (at most 5)"]


@pytest.fixture
async def stack(fake_comfy, tmp_path):
    folder = tmp_path / "m"
    flow_catalog(folder)
    _write(folder, flip=MENU.format(name="flip", title="Flip colours"), named=NAMED.format(name="named", title="Named flip"),
           spicy=SPICY.format(name="spicy2", title="Spicy flip"))  # replaces the stack's own NSFW manifest
    catalog = load_catalog([folder], REPO / "workflows")
    assert not catalog.issues, catalog.issues
    async with running_stack(fake_comfy.url, tmp_path / "db" / "jobs.sqlite3", catalog) as stack:
        yield stack


def _message(stack, *, files=(), embeds=(), author=OTHER_USER) -> dict:
    message = message_data({"embeds": list(embeds)}, message_id=snowflake(), files=files, author_id=author)
    for attachment, (_, data) in zip(message["attachments"], files):
        stack.fake.http.cdn[attachment["url"]] = data
    return message


async def _use(stack, name: str, message: dict, **context) -> None:
    await stack.dispatch(interaction(2, menu_data(name, message), **context), timeout=20)


def _inverted(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(255 - c for c in colour)


async def test_an_image_in_someone_elses_message_runs_a_workflow_without_required_params(stack):
    picture = png(24, 16, (200, 30, 30))
    await _use(stack, "Flip colours", _message(stack, files=[("cat.png", picture)]))

    (job,) = await stack.jobs()
    assert job.manifest == "flip" and job.state == "done" and job.owner == str(USER_ID)
    assert job.extra["inputs"]["image"]["sha256"] == hashlib.sha256(picture).hexdigest()
    (name, data), = stack.result_edits()[-1].files
    assert Image.open(io.BytesIO(data)).getpixel((3, 3)) == _inverted((200, 30, 30))


async def test_an_embedded_image_is_read_through_discords_media_proxy(stack):
    picture = png(20, 20, (10, 100, 250))
    proxy = "https://media.discordapp.net/external/abc/https/example.org/pic.png"
    stack.fake.http.cdn[proxy] = picture
    embed = {"type": "image", "image": {"url": "https://example.org/pic.png", "proxy_url": proxy}}
    await _use(stack, "Flip colours", _message(stack, embeds=[embed]))

    (job,) = await stack.jobs()
    assert job.state == "done" and job.extra["inputs"]["image"]["sha256"] == hashlib.sha256(picture).hexdigest()
    assert not [r for r in stack.fake.requests if "example.org" in r.path and "media.discordapp.net" not in r.path]


async def test_an_embedded_image_past_the_upload_cap_is_refused_naming_the_param(stack):
    stack.flow.settings = stack.flow.settings.model_copy(update={"max_upload_bytes": 2000})
    proxy = "https://media.discordapp.net/external/big/pic.png"
    stack.fake.http.cdn[proxy] = png(400, 400, (1, 2, 3)) + bytes(300_000)  # nothing vouches for its size
    embed = {"type": "image", "image": {"url": "https://example.org/pic.png", "proxy_url": proxy}}
    await _use(stack, "Flip colours", _message(stack, embeds=[embed]))

    assert await stack.jobs() == []
    (edit,) = stack.webhook_edits()
    assert edit.payload["content"] == "image: the image is larger than 1.95 KiB"


@pytest.mark.parametrize("files, embeds", [
    ((), ()),                                                                   # text only
    ((("clip.gif", b"GIF89a" + bytes(20)),), ()),                               # not a format workflows take
    ((), ({"type": "image", "image": {"url": "http://192.168.1.2/x.png"}},)),   # an outside host: never fetched
])
async def test_a_message_without_a_usable_image_gets_a_clear_ephemeral_answer(stack, files, embeds):
    await _use(stack, "Flip colours", _message(stack, files=files, embeds=embeds))
    assert stack.ephemeral_texts() == [NO_IMAGE]
    assert await stack.jobs() == []
    assert not [r for r in stack.fake.requests if "192.168" in r.path]


async def test_required_params_open_the_manifests_modal_and_its_submit_runs_with_the_image(stack):
    picture = png(16, 16, (0, 0, 0))
    await _use(stack, "Named flip", _message(stack, files=[("dark.png", picture)]))
    (opened,) = stack.fake.callbacks()
    assert opened["type"] == 9 and opened["data"]["custom_id"].startswith("dc:menu:named:1")
    labels = json.dumps(opened["data"]["components"])
    assert "prefix" in labels.lower() and await stack.jobs() == []

    await stack.dispatch(interaction(5, modal_data(opened["data"]["custom_id"], {"prefix": "menu/flip"})), timeout=20)
    (job,) = await stack.jobs()
    assert job.state == "done" and job.values["prefix"] == "menu/flip"
    assert job.extra["inputs"]["image"]["sha256"] == hashlib.sha256(picture).hexdigest()


async def test_the_access_policy_refuses_an_nsfw_workflow_outside_nsfw_channels(stack):
    await _use(stack, "Spicy flip", _message(stack, files=[("a.png", png())]), nsfw=False)
    assert len(stack.ephemeral_texts()) == 1 and "NSFW" in stack.ephemeral_texts()[0]
    assert await stack.jobs() == []
