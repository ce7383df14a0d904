"""Tests for bot.views.modals: modal payloads from params, paging, prefill, and checking submitted values."""

from __future__ import annotations

import discord
import pytest
from discord import app_commands
from hypothesis import given
from hypothesis import strategies as st

from bot.views.modals import (
    ModalId,
    ParamModal,
    check_fields,
    page_title,
    parse_modal_custom_id,
    raw_modal_values,
    settings_modals,
)
from bot.widgets import NONE_VALUE, choice_options, placeholder_for
from tests.bot.harness import fake_discord
from tests.bot.payloads import Upload
from tests.bot.test_render import flux, workflow_of

LORAS = [f"flux_style_{i:02d}.safetensors" for i in range(40)] + ["hidream_x.safetensors"]


async def ignore(interaction, values):
    raise AssertionError("the hook must not be called here")


def many_params(count: int):
    return workflow_of({f"p{i}": {"type": "int", "min": 1, "max": 150, "default": 30, "bind": "$.x",
                                  "label": f"Param {i}"} for i in range(count)})


def labels(modal: ParamModal) -> list[dict]:
    return modal.to_dict()["components"]


def test_six_params_make_two_pages_of_at_most_five():
    wf = many_params(6)
    modals = settings_modals(wf, list(wf.manifest.params), {}, on_values=ignore, key="flux")
    assert [m.title for m in modals] == ["Settings 1/2", "Settings 2/2"]
    assert [len(labels(m)) for m in modals] == [5, 1]
    ids = [parse_modal_custom_id(m.custom_id) for m in modals]
    assert [(i.purpose, i.key, i.page) for i in ids] == [("set", "flux", 1), ("set", "flux", 2)]
    assert len({m.custom_id for m in modals}) == 2
    assert all(c["type"] == 18 and c["component"]["type"] == 4 for m in modals for c in labels(m))


def test_five_params_make_one_page_without_number():
    wf = many_params(5)
    (modal,) = settings_modals(wf, list(wf.manifest.params), {}, on_values=ignore, key="k", title_prefix="Tweak")
    assert modal.title == "Tweak"


def test_modal_refuses_more_than_five_fields():
    wf = many_params(6)
    with pytest.raises(ValueError):
        ParamModal(wf, list(wf.manifest.params), {}, title="x", custom_id="dc:set:x:1", on_values=ignore)


@given(st.text(min_size=0, max_size=200), st.integers(1, 99), st.integers(1, 99))
def test_page_titles_fit_and_keep_page_number(prefix, page, pages):
    title = page_title(prefix, page, pages)
    assert len(title) <= 45
    if pages > 1:
        assert title.endswith(f" {page}/{pages}")


def test_flux_settings_labels_limits_and_prefill():
    wf = flux()
    values = {"steps": 20, "guidance": 4.5, "seed": 1234, "width": 1024}
    modals = settings_modals(wf, wf.manifest.advanced_params, values, on_values=ignore, key="flux")
    assert len(modals) == 2
    fields = {c["component"]["custom_id"]: c for m in modals for c in labels(m)}
    assert set(fields) == set(wf.manifest.advanced_params)
    for label in fields.values():
        assert len(label["label"]) <= 45 and len(label.get("description", "")) <= 100
    assert fields["steps"]["label"] == "Steps"
    assert fields["steps"]["component"]["value"] == "20"
    assert fields["steps"]["component"]["placeholder"] == "int 1–150, default 30"
    assert fields["seed"]["component"]["value"] == "1234"
    assert fields["guidance"]["component"]["value"] == "4.5"
    assert "value" not in fields["height"]["component"]  # unset: left for the default
    assert fields["lora_strength"]["component"]["placeholder"] == "float 0–2, default 1"


def test_long_text_is_capped_at_4000_and_paragraph():
    wf = workflow_of({"prompt": {"type": "text", "max_length": 6000, "multiline": True, "required": True,
                                 "bind": "$.x", "label": "L" * 45, "description": "D" * 100}})
    (modal,) = settings_modals(wf, ["prompt"], {"prompt": "x" * 5000}, on_values=ignore, key="w")
    (label,) = labels(modal)
    assert label["component"]["max_length"] == 4000
    assert label["component"]["style"] == 2
    assert len(label["component"]["value"]) == 4000


def test_bool_and_short_choice_become_selects_image_a_file_upload():
    wf = workflow_of({
        "hires": {"type": "bool", "bind": "$.x"},
        "sampler": {"type": "choice", "choices": ["euler", "dpmpp_2m"], "default": "euler", "bind": "$.s"},
        "image": {"type": "image", "required": True, "bind": "$.i"},
    })
    (modal,) = settings_modals(wf, ["hires", "sampler", "image"], {"hires": True, "sampler": "dpmpp_2m"},
                               on_values=ignore, key="w")
    hires, sampler, image = (c["component"] for c in labels(modal))
    assert hires["type"] == 3 and [o["value"] for o in hires["options"] if o.get("default")] == ["true"]
    assert [o["value"] for o in sampler["options"]] == [NONE_VALUE, "dpmpp_2m", "euler"]
    assert [o["value"] for o in sampler["options"] if o.get("default")] == ["dpmpp_2m"]
    assert image["type"] == 19 and image["required"] is True and image["max_values"] == 1


def test_long_live_list_is_a_text_input_with_examples():
    wf = workflow_of({"lora": {"type": "choice", "choices_from": "LoraLoaderModelOnly.lora_name",
                               "filter": "flux", "bind": "$.l"}})
    (modal,) = settings_modals(wf, ["lora"], {}, on_values=ignore, key="w", live=lambda source: LORAS)
    component = labels(modal)[0]["component"]
    assert component["type"] == 4
    assert component["placeholder"].startswith("one of flux_style_00.safetensors, flux_style_01")
    assert len(component["placeholder"]) <= 100


def test_choice_options_none_plus_24_and_current_kept():
    wf = workflow_of({"lora": {"type": "choice", "choices_from": "LoraLoaderModelOnly.lora_name",
                               "filter": "flux", "bind": "$.l"}})
    param = wf.manifest.params["lora"]
    options = choice_options(param, None, LORAS)
    assert len(options) == 25 and options[0].value == NONE_VALUE and options[0].default
    assert "hidream_x.safetensors" not in [o.value for o in options]  # the filter applies
    picked = choice_options(param, "flux_style_39.safetensors", LORAS)
    assert picked[1].value == "flux_style_39.safetensors" and picked[1].default and not picked[0].default


def test_placeholders():
    wf = workflow_of({
        "n": {"type": "int", "min": 1, "bind": "$.x"},
        "f": {"type": "float", "max": 2.5, "bind": "$.x"},
        "s": {"type": "seed", "bind": "$.x"},
        "c": {"type": "choice", "choices": [f"sampler_{i}" for i in range(30)], "bind": "$.x"},
    })
    p = wf.manifest.params
    assert placeholder_for(p["n"]) == "int ≥ 1"
    assert placeholder_for(p["f"]) == "float ≤ 2.5"
    assert "random" in placeholder_for(p["s"])
    assert placeholder_for(p["c"]).endswith("…") and len(placeholder_for(p["c"])) == 100


def test_check_fields_collects_every_error():
    wf = flux()
    values, errors = check_fields(wf, {"steps": "999", "guidance": "lots", "width": "1024", "prompt": ""})
    assert sorted(errors) == ["guidance: must be a number", "prompt: is required", "steps: must be ≤ 150"]


def test_check_fields_coerces_and_leaves_unset_as_none():
    wf = flux()
    values, errors = check_fields(wf, {"steps": " 20 ", "guidance": "4.5", "seed": "", "prompt": "a cat",
                                       "lora": [NONE_VALUE]})
    assert errors == []
    assert values == {"steps": 20, "guidance": 4.5, "seed": None, "prompt": "a cat", "lora": None}


def test_check_fields_images_keep_previous_or_require_upload():
    wf = workflow_of({"image": {"type": "image", "required": True, "bind": "$.i"},
                      "negative": {"type": "text", "bind": "$.n"}})
    assert check_fields(wf, {"image": []}) == ({}, ["image: is required"])
    assert check_fields(wf, {"image": []}, kept={"image": "in.png"}) == ({"image": "in.png"}, [])
    upload = object()  # stands for a discord.Attachment: passed through untouched
    assert check_fields(wf, {"image": [upload], "negative": ""})[0] == {"image": upload, "negative": ""}


def test_live_choices_are_checked_against_the_server_list():
    wf = workflow_of({"lora": {"type": "choice", "choices_from": "LoraLoaderModelOnly.lora_name",
                               "filter": "flux", "bind": "$.l"}})
    live = lambda source: LORAS  # noqa: E731
    assert check_fields(wf, {"lora": "hidream_x.safetensors"}, live=live)[1] == ["lora: is not available on the server"]
    assert check_fields(wf, {"lora": "flux_style_03.safetensors"}, live=live)[1] == []


@given(st.sampled_from(["tweak", "act", "set", "setup"]), st.text("abcdef0123456789", min_size=32, max_size=32),
       st.integers(1, 99), st.sampled_from(["", "edit-qwen", "x" * 32]), st.sampled_from(["", "0a1b2c3d"]))
def test_modal_ids_round_trip_within_100(purpose, key, page, target, nonce):
    modal_id = ModalId(purpose, key, page, target, nonce)
    custom_id = modal_id.to_custom_id()
    assert len(custom_id) <= 100
    assert parse_modal_custom_id(custom_id) == modal_id


def test_each_opening_gets_its_own_id():
    wf = many_params(2)
    first, second = (settings_modals(wf, ["p0"], {}, on_values=ignore, key="w")[0] for _ in range(2))
    assert first.custom_id != second.custom_id


def test_foreign_ids_are_not_ours():
    assert parse_modal_custom_id("0123abcd" * 4) is None
    assert parse_modal_custom_id("dc:tweak:ABC:1") is None


def test_raw_modal_values_reads_labels_and_rows():
    data = {"custom_id": "dc:tweak:ab12:1", "components": [
        {"type": 18, "component": {"type": 4, "custom_id": "steps", "value": "12"}},
        {"type": 18, "component": {"type": 3, "custom_id": "sampler", "values": ["euler"]}},
        {"type": 18, "component": {"type": 19, "custom_id": "image", "values": ["555"]}},
        {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "hi"}]},
    ]}
    assert raw_modal_values(data) == {"steps": "12", "sampler": "euler", "image": ["555"], "prompt": "hi"}


async def test_submitted_upload_reaches_the_hook_as_an_attachment():
    wf = workflow_of({"image": {"type": "image", "required": True, "bind": "$.i"},
                      "prompt": {"type": "text", "required": True, "bind": "$.p"}})
    got = []

    async def on_values(interaction, values):
        got.append(values)
        await interaction.response.defer(thinking=True)

    async def open_modal(interaction: discord.Interaction):
        (modal,) = settings_modals(wf, ["image", "prompt"], {}, on_values=on_values, key="edit")
        await interaction.response.send_modal(modal)

    command = app_commands.Command(name="open", description="open the modal", callback=open_modal)
    async with fake_discord([command]) as fake:
        await fake.slash("open")
        custom_id = fake.callbacks()[-1]["data"]["custom_id"]
        await fake.dispatch(fake.modal_payload(custom_id, {"prompt": "make it blue"}))
        assert fake.callbacks()[-1]["data"]["content"] == "image: is required" and got == []
        await fake.slash("open")
        custom_id = fake.callbacks()[-1]["data"]["custom_id"]
        await fake.dispatch(fake.modal_payload(custom_id, {"prompt": "make it blue"},
                                               uploads={"image": [Upload("in.png", b"png-bytes")]}))
    (values,) = got
    assert values["prompt"] == "make it blue"
    assert isinstance(values["image"], discord.Attachment) and values["image"].filename == "in.png"
