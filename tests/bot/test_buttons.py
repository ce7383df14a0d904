"""Tests for bot.views.buttons: custom_id templates, result/progress views, and clicks in a fresh client
(as after a restart) reaching the hooks through the offline Discord harness."""

from __future__ import annotations

import re

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.access import NOT_YOURS as NOT_OWNER
from bot.access import AccessPolicy
from bot.views.buttons import (
    DYNAMIC_ITEMS,
    STALE_FORM,
    UNAVAILABLE,
    UNKNOWN_JOB,
    ActionButton,
    ButtonHooks,
    CancelButton,
    DeleteButton,
    JobInfo,
    NewSeedButton,
    RerunButton,
    TweakButton,
    action_params,
    install_buttons,
    progress_view,
    result_view,
    resume_modal,
    tweak_params,
)
from bot.views.modals import BOOT, ModalId, parse_modal_custom_id
from tests.bot.harness import fake_discord
from tests.bot.payloads import USER_ID, message_data, snowflake
from tests.bot.test_render import flux, workflow_of

JOB = "0123456789abcdef0123456789abcdef"
OTHER_USER = USER_ID + 1
ACTIONS = [("upscale", "🔍 Upscale"), ("edit", "✏️ Edit"), ("animate", "🎬 Animate")]
FLUX_VALUES = {"prompt": "a lighthouse at dusk", "width": 1024, "height": 768, "steps": 30, "guidance": 3.5,
               "batch": 1, "seed": 4242, "lora_strength": 1.0}


def targets() -> dict:
    image = {"type": "image", "required": True, "bind": "$.i"}
    return {
        "upscale": workflow_of({"image": image, "factor": {"type": "int", "default": 2, "bind": "$.f"}},
                               name="upscale", title="Upscale"),
        "edit": workflow_of({"image": image, "prompt": {"type": "text", "required": True, "bind": "$.p"},
                             "steps": {"type": "int", "min": 4, "max": 20, "bind": "$.s"}}, name="edit", title="Edit"),
        "animate": workflow_of({"image": image, "prompt": {"type": "text", "required": True, "bind": "$.p"},
                                "frames": {"type": "int", "default": 81, "bind": "$.f"}}, name="animate",
                               title="Animate"),
    }


class App:
    """The app side: a job store and a catalog in dicts, hooks that record and respond."""

    def __init__(self):
        self.jobs = {JOB: JobInfo(str(USER_ID), flux(), dict(FLUX_VALUES))}
        self.catalog = targets()
        self.calls: list[tuple] = []

    async def job(self, job_id):
        return self.jobs.get(job_id)

    async def run(self, interaction, workflow, values):
        self.calls.append(("run", workflow.name, values))
        await interaction.response.defer(thinking=True)

    async def action(self, interaction, job_id, index, target, values):
        self.calls.append(("action", job_id, index, target.name, values))
        await interaction.response.defer(thinking=True)

    async def cancel(self, interaction, job_id):
        self.calls.append(("cancel", job_id))
        await interaction.response.send_message("Cancelled.", ephemeral=True)

    def hooks(self) -> ButtonHooks:
        return ButtonHooks(job=self.job, workflow=self.catalog.get, run=self.run, action=self.action,
                           cancel=self.cancel, access=AccessPolicy())


@pytest.fixture
async def fresh():
    """A client that never showed these buttons: only the classes are registered (a restart)."""
    app = App()
    async with fake_discord() as fake:
        install_buttons(fake.client, app.hooks())
        yield fake, app


def result_message() -> dict:
    view = result_view(JOB, flux(), 2, ACTIONS)
    return message_data({"components": view.to_components()}, message_id=snowflake())


async def click(fake, custom_id: str, *, user_id: int = USER_ID) -> None:
    message = message_data({"components": [{"type": 1, "components": [
        {"type": 2, "style": 2, "label": "x", "custom_id": custom_id}]}]}, message_id=snowflake())
    await fake.dispatch(fake.component_payload(custom_id, message=message, user_id=user_id))


def all_buttons() -> list[discord.ui.DynamicItem]:
    return [RerunButton(JOB), NewSeedButton(JOB), TweakButton(JOB, 2), ActionButton(JOB, 3, "edit-qwen"),
            DeleteButton(JOB), CancelButton(JOB)]


async def test_custom_ids_round_trip_through_templates():
    for button in all_buttons():
        assert len(button.custom_id) <= 100
        match = button.template.match(button.custom_id)
        rebuilt = await type(button).from_custom_id(None, button.item, match)
        assert rebuilt.custom_id == button.custom_id
        assert sum(bool(cls.__discord_ui_compiled_template__.match(button.custom_id)) for cls in DYNAMIC_ITEMS) == 1


@settings(max_examples=40)
@given(st.text("abcdef0123456789", min_size=1, max_size=40), st.integers(1, 99),
       st.from_regex(re.compile(r"[-_a-z0-9]{1,32}"), fullmatch=True))
def test_longest_action_id_fits(job, index, target):
    button = ActionButton(job, index, target)
    assert len(button.custom_id) <= 100
    assert button.template.match(button.custom_id)["target"] == target


def test_result_view_layout_and_limits():
    view = result_view(JOB, flux(), 2, ACTIONS)
    rows = view.to_components()
    labels = [[c["label"] for c in row["components"]] for row in rows]
    assert labels == [["🔁 Rerun", "🎲 New seed", "🛠️ Tweak 1/2", "🛠️ Tweak 2/2", "ℹ️ Details"], ["🗑️ Delete"],
                      ["🔍 Upscale #1", "✏️ Edit #1", "🎬 Animate #1"],
                      ["🔍 Upscale #2", "✏️ Edit #2", "🎬 Animate #2"]]
    ids = [c["custom_id"] for row in rows for c in row["components"]]
    assert len(ids) == len(set(ids)) and "dc:act:%s:2:animate" % JOB in ids
    assert view.timeout is None


def test_result_view_caps_at_25_buttons_and_single_output_has_no_number():
    rows = result_view(JOB, flux(), 10, ACTIONS).to_components()
    assert len(rows) <= 5 and all(len(r["components"]) <= 5 for r in rows)
    assert sum(len(r["components"]) for r in rows) == 25
    single = [c["label"] for r in result_view(JOB, flux(), 1, ACTIONS).to_components() for c in r["components"]]
    assert "🔍 Upscale" in single
    assert "🎲 New seed" not in [c["label"] for r in result_view(JOB, targets()["edit"], 1, []).to_components()
                                 for c in r["components"]]  # no seed param, no new-seed button


def test_labels_are_cut_to_80():
    rows = result_view(JOB, flux(), 1, [("upscale", "U" * 200)]).to_components()
    assert max(len(c["label"]) for r in rows for c in r["components"]) == 80


def test_progress_view_has_cancel():
    (row,) = progress_view(JOB).to_components()
    assert [c["custom_id"] for c in row["components"]] == [f"dc:cancel:{JOB}"]


def test_tweak_and_action_params():
    assert tweak_params(flux())[:2] == ["prompt", "lora"] and "seed" in tweak_params(flux())
    assert action_params(targets()["edit"]) == ["prompt", "steps"]
    assert action_params(targets()["upscale"]) == []  # nothing required: runs directly


async def test_rerun_after_restart_uses_the_same_values(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:rerun:{JOB}", message=result_message(), user_id=OTHER_USER))
    assert app.calls == [("run", "flux", FLUX_VALUES)]
    assert fake.callbacks()[-1]["type"] == 5


async def test_new_seed_clears_only_the_seed(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:seed:{JOB}", message=result_message()))
    assert app.calls == [("run", "flux", {**FLUX_VALUES, "seed": None})]


async def test_tweak_opens_prefilled_modal_at_once_then_checks_everything(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:tweak:{JOB}:1", message=result_message(), user_id=OTHER_USER))
    (answer,) = fake.callbacks()
    assert answer["type"] == 9  # the modal is the first response: no defer before it
    modal = answer["data"]
    assert modal["title"] == "Tweak Flux 1/2"
    prefill = {c["component"]["custom_id"]: c["component"].get("value") for c in modal["components"]}
    assert prefill["prompt"] == "a lighthouse at dusk" and prefill["width"] == "1024"
    assert parse_modal_custom_id(modal["custom_id"]).key == JOB

    bad = {"prompt": "", "width": "99999", "height": "768", "lora_strength": "1", "lora": "x"}
    await fake.dispatch(fake.modal_payload(modal["custom_id"], bad, user_id=OTHER_USER))
    errors = fake.callbacks()[-1]
    assert errors["type"] == 4 and errors["data"]["flags"] == 64
    assert errors["data"]["content"].splitlines() == ["prompt: is required", "width: must be ≤ 2048"]
    assert app.calls == []


async def test_tweak_submit_runs_with_merged_values(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:tweak:{JOB}:2", message=result_message()))
    modal = fake.callbacks()[-1]["data"]
    fields = {c["component"]["custom_id"]: c["component"].get("value") or "" for c in modal["components"]}
    assert fields == {"steps": "30", "guidance": "3.5", "batch": "1", "seed": "4242"}
    await fake.dispatch(fake.modal_payload(modal["custom_id"], {**fields, "guidance": "5", "batch": "2", "seed": ""}))
    assert app.calls == [("run", "flux", {**FLUX_VALUES, "guidance": 5.0, "batch": 2, "seed": None})]


async def test_action_with_required_prompt_asks_first(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:act:{JOB}:2:animate", message=result_message()))
    modal = fake.callbacks()[-1]
    assert modal["type"] == 9
    prompt = modal["data"]["components"][0]["component"]
    assert prompt["custom_id"] == "prompt" and prompt["value"] == "a lighthouse at dusk"  # original prompt
    await fake.dispatch(fake.modal_payload(modal["data"]["custom_id"], {"prompt": "waves roll", "frames": ""}))
    assert app.calls == [("action", JOB, 2, "animate", {"prompt": "waves roll", "frames": None})]


async def test_action_without_other_required_params_runs_directly(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:act:{JOB}:1:upscale", message=result_message()))
    assert app.calls == [("action", JOB, 1, "upscale", {})]
    assert fake.callbacks()[-1]["type"] == 5


async def test_unknown_action_target(fresh):
    fake, app = fresh
    await click(fake, f"dc:act:{JOB}:1:gone")
    assert fake.callbacks()[-1]["data"]["content"] == "This action is not available any more."


async def test_delete_is_for_the_owner_only(fresh):
    fake, app = fresh
    await fake.dispatch(fake.component_payload(f"dc:del:{JOB}", message=result_message(), user_id=OTHER_USER))
    refusal = fake.callbacks()[-1]["data"]
    assert refusal["content"] == NOT_OWNER and refusal["flags"] == 64
    assert not [r for r in fake.requests if r.method == "DELETE"]
    await fake.dispatch(fake.component_payload(f"dc:del:{JOB}", message=result_message()))
    assert fake.callbacks()[-1]["type"] == 6
    assert [r.path.rsplit("/", 1)[1] for r in fake.requests if r.method == "DELETE"] == ["@original"]


async def test_cancel_is_for_the_owner_only(fresh):
    fake, app = fresh
    await click(fake, f"dc:cancel:{JOB}", user_id=OTHER_USER)
    assert fake.callbacks()[-1]["data"]["content"] == NOT_OWNER and app.calls == []
    await click(fake, f"dc:cancel:{JOB}")
    assert app.calls == [("cancel", JOB)]


async def test_unknown_job_is_explained(fresh):
    fake, app = fresh
    await click(fake, "dc:rerun:feedfeed")
    assert fake.callbacks()[-1]["data"]["content"] == UNKNOWN_JOB


async def test_without_hooks_buttons_say_so():
    async with fake_discord() as fake:
        fake.client.add_dynamic_items(*DYNAMIC_ITEMS)
        await click(fake, f"dc:rerun:{JOB}")
        assert fake.callbacks()[-1]["data"]["content"] == UNAVAILABLE


def stale_id(purpose: str, key: str, page: int, target: str = "") -> str:
    foreign = "ffff" if not BOOT.startswith("ff") else "0000"
    return ModalId(purpose, key, page, target, foreign + "0001").to_custom_id()


@pytest.fixture
async def restarted(fresh):
    """``fresh`` plus the app's on_interaction fallback; records what resume_modal answered."""
    fake, app = fresh
    handled = []

    @fake.client.event
    async def on_interaction(interaction):
        handled.append(await resume_modal(interaction))

    yield fake, app, handled


async def test_tweak_modal_from_before_a_restart_still_runs(restarted):
    fake, app, handled = restarted
    fields = {"steps": "12", "guidance": "3.5", "batch": "1", "seed": "4242"}
    await fake.dispatch(fake.modal_payload(stale_id("tweak", JOB, 2), fields))
    assert handled == [True]
    assert app.calls == [("run", "flux", {**FLUX_VALUES, "steps": 12})]


async def test_action_modal_from_before_a_restart_checks_values(restarted):
    fake, app, handled = restarted
    await fake.dispatch(fake.modal_payload(stale_id("act", JOB, 1, "edit"), {"prompt": "", "steps": "50"}))
    assert fake.callbacks()[-1]["data"]["content"].splitlines() == ["prompt: is required", "steps: must be ≤ 20"]
    await fake.dispatch(fake.modal_payload(stale_id("act", JOB, 1, "edit"), {"prompt": "bluer", "steps": ""}))
    assert app.calls == [("action", JOB, 1, "edit", {"prompt": "bluer", "steps": None})]


async def test_setup_modal_from_before_a_restart_is_explained(restarted):
    fake, app, handled = restarted
    await fake.dispatch(fake.modal_payload(stale_id("setup", "flux", 1), {"prompt": "x"}))
    assert fake.callbacks()[-1]["data"]["content"] == STALE_FORM and app.calls == []


async def test_live_modals_are_left_to_discord_py(restarted):
    fake, app, handled = restarted
    await fake.dispatch(fake.component_payload(f"dc:tweak:{JOB}:2", message=result_message()))
    modal = fake.callbacks()[-1]["data"]
    await fake.dispatch(fake.modal_payload(modal["custom_id"], {"steps": "9", "guidance": "3.5", "batch": "1",
                                                                "seed": "4242"}))
    assert handled == [False, False]  # the click and the submit: neither is the fallback's business
    assert app.calls == [("run", "flux", {**FLUX_VALUES, "steps": 9})]
