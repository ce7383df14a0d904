"""The offline Discord itself: every interaction kind and both HTTP paths, as other bot tests use them."""

from __future__ import annotations

import io

import discord
from discord import app_commands

from .harness import fake_discord
from .payloads import CHANNEL_ID, GUILD_ID, Upload, older_than

PNG = b"\x89PNG\r\n\x1a\n bytes"


class RetryButton(discord.ui.DynamicItem[discord.ui.Button], template=r"job:(?P<job>\w+):retry"):
    clicked: list[str] = []

    def __init__(self, job: str):
        super().__init__(discord.ui.Button(label="Retry", custom_id=f"job:{job}:retry"))
        self.job = job

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        RetryButton.clicked.append(self.job)
        await interaction.response.defer()


class PromptModal(discord.ui.Modal, title="Edit prompt"):
    submitted: list[tuple] = []

    prompt = discord.ui.Label(text="Prompt", component=discord.ui.TextInput(custom_id="prompt"))
    image = discord.ui.Label(text="Image", component=discord.ui.FileUpload(custom_id="img", required=False))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        PromptModal.submitted.append((self.prompt.component.value, [a.filename for a in self.image.component.values]))
        await interaction.response.send_message("ok", ephemeral=True)


async def _respond(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.followup.send("result", file=discord.File(io.BytesIO(PNG), "out.png"))
    await interaction.edit_original_response(content="done")
    await interaction.channel.send("posted with the bot token")


async def test_command_followups_and_bot_token_calls_are_recorded(discord_fake):
    discord_fake.tree.add_command(app_commands.Command(name="go", description="Go", callback=_respond))
    await discord_fake.slash("go")
    calls = [(r.via, r.method, r.path.split("/")[1]) for r in discord_fake.requests]
    assert calls == [("webhook", "POST", "interactions"), ("webhook", "POST", "webhooks"),
                     ("webhook", "PATCH", "webhooks"), ("http", "POST", "channels")]
    _, followup, edit, post = discord_fake.requests
    assert discord_fake.callbacks() == [{"type": 5}]
    assert followup.payload["content"] == "result" and followup.files == (("out.png", PNG),)
    assert edit.path.endswith("/messages/@original") and edit.payload["content"] == "done"
    assert post.path == f"/channels/{CHANNEL_ID}/messages" and post.payload["content"] == "posted with the bot token"


async def test_dynamic_button_click_reaches_its_callback(discord_fake):
    RetryButton.clicked.clear()
    discord_fake.client.add_dynamic_items(RetryButton)
    await discord_fake.dispatch(discord_fake.component_payload("job:abc123:retry"))
    assert RetryButton.clicked == ["abc123"] and discord_fake.callbacks() == [{"type": 6}]


async def test_modal_round_trip_with_file_upload(discord_fake):
    PromptModal.submitted.clear()

    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(PromptModal(custom_id="edit:abc"))

    discord_fake.tree.add_command(app_commands.Command(name="ask", description="Ask", callback=ask))
    await discord_fake.slash("ask")
    assert discord_fake.callbacks()[0]["type"] == 9
    await discord_fake.dispatch(discord_fake.modal_payload("edit:abc", {"prompt": "new prompt"},
                                                           {"img": [Upload("up.png", PNG)]}))
    assert PromptModal.submitted == [("new prompt", ["up.png"])]
    assert discord_fake.callbacks()[-1] == {"type": 4, "data": {"content": "ok", "flags": 64, "tts": False}}


async def test_interactions_can_be_dated_and_sent_from_dms(discord_fake):
    seen = []

    async def look(interaction: discord.Interaction) -> None:
        seen.append((interaction.is_expired(), interaction.guild_id, interaction.filesize_limit))

    discord_fake.tree.add_command(app_commands.Command(name="look", description="Look", callback=look))
    await discord_fake.dispatch(discord_fake.slash_payload("look", created=older_than(16)))
    await discord_fake.dispatch(discord_fake.slash_payload("look", guild=False, size_limit=25 * 1024 * 1024))
    assert seen == [(True, GUILD_ID, 10 * 1024 * 1024), (False, None, 25 * 1024 * 1024)]
