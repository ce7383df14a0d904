"""Tests for bot.views.setup: layout from manifests, live LoRA picker, workflow switching, author
check, modals feeding values, Generate, and the visible expiry edit (offline Discord harness)."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path

import discord
import pytest
from discord import app_commands

from bot.widgets import NONE_VALUE
from bot.views.setup import NOT_AUTHOR, SetupView, carry_values, setup_embed, setup_layout
from engine.manifest.catalog import load_workflow
from tests.bot.harness import fake_discord
from tests.bot.payloads import USER_ID, message_data
from tests.bot.test_render import flux, workflow_of

ROOT = Path(__file__).resolve().parents[2]
LORAS = [f"flux_style_{i:02d}.safetensors" for i in range(40)] + ["hidream_detail.safetensors"]


@lru_cache(maxsize=None)
def bundled(name: str):
    return load_workflow(ROOT / "manifests" / f"{name}.yaml", ROOT / "workflows")


def live(source: str) -> list[str]:
    assert source == "LoraLoaderModelOnly.lora_name"
    return LORAS


def rows(view: discord.ui.View) -> list[list[dict]]:
    return [row["components"] for row in view.to_components()]


class Session:
    """A /setup command that sends a SetupView; records what the run hook receives."""

    def __init__(self, workflows, values=None, timeout: float = 300):
        self.workflows, self.initial, self.timeout = workflows, values or {}, timeout
        self.view: SetupView | None = None
        self.runs: list[tuple] = []

    async def run(self, interaction, workflow, values):
        self.runs.append((workflow.name, values))
        await interaction.response.defer(thinking=True)

    def command(self) -> app_commands.Command:
        async def setup(interaction: discord.Interaction):
            self.view = SetupView(self.workflows, owner_id=interaction.user.id, run=self.run, live=live,
                                  values=self.initial, timeout=self.timeout)
            await interaction.response.send_message(embed=self.view.embed(), view=self.view)
            self.view.message = await interaction.original_response()

        return app_commands.Command(name="setup", description="guided flow", callback=setup)

    def message(self) -> dict:
        return message_data({"components": self.view.to_components()}, message_id=self.view.message.id)

    def custom_id(self, label: str) -> str:
        return next(c["custom_id"] for row in rows(self.view) for c in row
                    if label in (c.get("label"), c.get("placeholder")))


@pytest.fixture
async def session():
    state = Session([flux(), bundled("hidream"), bundled("flux-krea")], {"prompt": "a quiet harbour"})
    async with fake_discord([state.command()]) as fake:
        await fake.slash("setup")
        yield fake, state


async def click(fake, state: Session, label: str, *, user_id: int = USER_ID, values: list[str] | None = None):
    payload = fake.component_payload(state.custom_id(label), component_type=3 if values else 2, values=values,
                                     message=state.message(), user_id=user_id)
    await fake.dispatch(payload)


def test_layout_flux_lora_select_and_modal_pages():
    layout = setup_layout(flux(), live)
    assert layout.selects == ("lora",)
    assert layout.options_pages == (("prompt",),)
    assert [len(p) for p in layout.settings_pages] == [5, 2]


def test_layout_without_live_list_moves_the_choice_into_the_modal():
    layout = setup_layout(flux(), lambda source: [])
    assert layout.selects == () and layout.options_pages == (("prompt", "lora"),)


def test_layout_keeps_a_row_for_buttons():
    wf = workflow_of({f"c{i}": {"type": "choice", "choices": ["a", "b"], "bind": "$.x"} for i in range(8)})
    layout = setup_layout(wf, workflow_select=True)
    assert len(layout.selects) == 3  # workflow select + 3 selects + the buttons row
    assert sum(len(p) for p in layout.options_pages) == 5


def test_components_with_live_lora_list():
    view = SetupView([flux(), bundled("hidream")], owner_id=1, run=None, live=live)
    workflow_row, lora_row, buttons = rows(view)
    assert [o["label"] for o in workflow_row[0]["options"]] == ["Flux", "HiDream"]
    assert [o.get("default", False) for o in workflow_row[0]["options"]] == [True, False]
    options = lora_row[0]["options"]
    assert len(options) == 25 and options[0]["value"] == NONE_VALUE
    assert all("flux" in o["value"] for o in options[1:])  # the manifest's filter applies
    assert [b["label"] for b in buttons] == ["📝 Prompt & options", "⚙️ Settings 1/2", "⚙️ Settings 2/2",
                                             "✨ Generate"]
    assert view.timeout == 300


def test_single_workflow_has_no_workflow_select():
    view = SetupView([flux()], owner_id=1, run=None, live=live)
    assert rows(view)[0][0]["placeholder"] == "LoRA"


def test_carry_values_keeps_same_name_and_type_when_still_valid():
    values = {"prompt": "a cat", "lora": "flux_style_01.safetensors", "steps": 30}
    kept = carry_values(flux(), bundled("hidream"), values, live)
    assert kept["prompt"] == "a cat"
    assert "lora" not in kept  # not a HiDream LoRA
    assert carry_values(flux(), bundled("flux-krea"), values, live)["lora"] == "flux_style_01.safetensors"


def test_embed_marks_required_defaults_and_expiry():
    embed = setup_embed(flux(), {})
    shown = {f.name: f.value for f in embed.fields}
    assert shown["Prompt"] == "**required**" and shown["Steps"] == "30 (default)" and shown["Seed"] == "random"
    assert setup_embed(flux(), {}, expired_command="generate").footer.text == "Expired — run /generate setup again"


async def test_others_are_turned_away(session):
    fake, state = session
    await click(fake, state, "✨ Generate", user_id=USER_ID + 7)
    assert fake.callbacks()[-1]["data"]["content"] == NOT_AUTHOR
    assert state.runs == []


async def test_picking_a_lora_updates_the_message(session):
    fake, state = session
    await click(fake, state, "LoRA", values=["flux_style_07.safetensors"])
    answer = fake.callbacks()[-1]
    assert answer["type"] == 7  # edits the setup message in place
    fields = {f["name"]: f["value"] for f in answer["data"]["embeds"][0]["fields"]}
    assert fields["LoRA"] == "flux_style_07.safetensors"
    await click(fake, state, "LoRA", values=[NONE_VALUE])
    assert state.view.values["lora"] is None


async def test_switching_workflow_rebuilds_and_keeps_values(session):
    fake, state = session
    await click(fake, state, "LoRA", values=["flux_style_07.safetensors"])
    await click(fake, state, "Workflow", values=["hidream"])
    assert state.view.workflow.name == "hidream"
    assert state.view.values["prompt"] == "a quiet harbour" and "lora" not in state.view.values
    answer = fake.callbacks()[-1]["data"]
    assert answer["embeds"][0]["title"] == "🎨 HiDream"
    lora_options = answer["components"][1]["components"][0]["options"]
    assert [o["value"] for o in lora_options] == [NONE_VALUE, "hidream_detail.safetensors"]


async def test_generate_runs_with_the_set_values_and_finishes(session):
    fake, state = session
    await click(fake, state, "✨ Generate")
    assert state.runs == [("flux", {"prompt": "a quiet harbour"})]
    assert state.view.is_finished()


async def test_generate_with_missing_prompt_asks_then_runs():
    state = Session([flux()])
    async with fake_discord([state.command()]) as fake:
        await fake.slash("setup")
        await click(fake, state, "✨ Generate")
        modal = fake.callbacks()[-1]
        assert modal["type"] == 9 and modal["data"]["components"][0]["component"]["custom_id"] == "prompt"
        await fake.dispatch(fake.modal_payload(modal["data"]["custom_id"], {"prompt": "  "}))
        assert fake.callbacks()[-1]["data"]["content"] == "prompt: is required" and state.runs == []
        await click(fake, state, "✨ Generate")
        await fake.dispatch(fake.modal_payload(fake.callbacks()[-1]["data"]["custom_id"], {"prompt": "a fox"}))
    assert state.runs == [("flux", {"prompt": "a fox"})]


async def test_settings_modal_updates_values(session):
    fake, state = session
    await click(fake, state, "⚙️ Settings 2/2")
    modal = fake.callbacks()[-1]
    assert modal["type"] == 9 and modal["data"]["title"] == "Flux settings 2/2"
    await fake.dispatch(fake.modal_payload(modal["data"]["custom_id"], {"batch": "3", "seed": "77"}))
    assert fake.callbacks()[-1]["type"] == 7
    assert state.view.values["batch"] == 3 and state.view.values["seed"] == 77
    await click(fake, state, "✨ Generate")
    assert state.runs == [("flux", {"prompt": "a quiet harbour", "batch": 3, "seed": 77})]


async def test_timeout_edits_the_message_visibly():
    state = Session([flux()], timeout=0.05)  # a real (short) timeout, run by discord.py itself
    async with fake_discord([state.command()]) as fake:
        await fake.slash("setup")
        await state.view.wait()
        edits = []
        for _ in range(300):  # on_timeout runs in its own task after wait() returns
            edits = [r for r in fake.sent() if r.method == "PATCH"]
            if edits:
                break
            await asyncio.sleep(0.01)
    (edit,) = edits
    assert edit.path.endswith("/messages/@original")
    assert edit.payload["embeds"][0]["footer"]["text"] == "Expired — run /generate setup again"
    components = [c for row in edit.payload["components"] for c in row["components"]]
    assert components and all(c.get("disabled") for c in components)


async def test_no_expiry_edit_after_generate():
    state = Session([flux()], {"prompt": "x"}, timeout=0.05)
    async with fake_discord([state.command()]) as fake:
        await fake.slash("setup")
        await click(fake, state, "✨ Generate")
        await state.view.wait()
        await asyncio.sleep(0.1)
    assert not [r for r in fake.sent() if r.method == "PATCH"]
