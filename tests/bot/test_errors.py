"""The error funnel: one short text per exception kind, unexpected errors logged not shown, replies ephemeral."""

from __future__ import annotations

import logging

import discord
import pytest
from discord import app_commands
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import GENERIC, UNAVAILABLE, install_error_handlers, on_error, reply_error, user_message
from bot.delivery.fitting import TooLargeError
from bot.commands.options import OptionError, ParamOption
from engine.errors import (ComfyTimeout, ComfyUnavailable, ExecutionFailed, JobCancelled, ManifestError, ParamError,
                           WorkflowRejected)
from engine.manifest.model import Manifest

from .harness import fake_discord


def _int_option() -> ParamOption:
    manifest = Manifest.model_validate({"name": "m", "description": "d",
                                        "params": {"steps": {"type": "int", "max": 150, "bind": "$.x"}}})
    return ParamOption("steps", manifest.params["steps"], lambda _: [])


@pytest.mark.parametrize("exc, text", [
    (ParamError("steps", "must be ≤ 150"), "steps: must be ≤ 150"),
    (WorkflowRejected(["steps: value 999 bigger than max 150", "model: not on the server"]),
     "steps: value 999 bigger than max 150\nmodel: not on the server"),
    (ExecutionFailed("out of memory on the GPU"), "The workflow failed: out of memory on the GPU"),
    (JobCancelled("interrupted on the server"), "Cancelled."),
    (ComfyTimeout("the job took longer than 60 s", seconds=60), "Timed out after 60 s."),
    (ComfyTimeout("took 12 s but says nothing else"), "Timed out: the server took too long to answer."),  # no parsing
    (ComfyTimeout("the server took too long to answer"), "Timed out: the server took too long to answer."),
    (ComfyUnavailable("connection refused by http://10.0.0.5:8188"), UNAVAILABLE),
    (TooLargeError("This file is too large for Discord's 10 MiB limit."),
     "This file is too large for Discord's 10 MiB limit."),
    (app_commands.CommandOnCooldown(app_commands.Cooldown(1, 60), 12.2), "Slow down: try again in 13 s."),
    (app_commands.NoPrivateMessage(), "This command only works in a server."),
])
def test_each_kind_gets_its_short_text(exc, text):
    assert user_message(exc) == text


def test_option_errors_show_the_param_message():
    option = _int_option()
    error = OptionError(999, option, ParamError("steps", "must be ≤ 150"))
    assert user_message(error) == "steps: must be ≤ 150"
    wrapped = app_commands.TransformerError(999, option.type, option)
    wrapped.__cause__ = ParamError("steps", "must be a whole number")
    assert user_message(wrapped) == "steps: must be a whole number"


def test_invoke_errors_are_unwrapped():
    command = app_commands.Command(name="x", description="x", callback=_noop)
    assert user_message(app_commands.CommandInvokeError(command, JobCancelled("x"))) == "Cancelled."


async def _noop(interaction: discord.Interaction) -> None:
    return None


def test_unexpected_errors_are_logged_for_operators_and_hidden_from_users(caplog):
    try:
        raise KeyError("token=abc123 at https://internal.example/x")
    except KeyError as exc:
        error = exc
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        assert user_message(error) == GENERIC
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info[1] is error


def test_manifest_errors_are_for_operators_only(caplog):
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        assert user_message(ManifestError([])) == GENERIC


@given(st.text(min_size=1, max_size=300))
def test_unknown_errors_never_echo_their_text(text):
    logging.getLogger("bot.errors").disabled = True
    try:
        assert user_message(RuntimeError(text)) == GENERIC
    finally:
        logging.getLogger("bot.errors").disabled = False


@given(st.lists(st.text(min_size=1, max_size=3000), min_size=1, max_size=5))
def test_texts_fit_a_discord_message(problems):
    assert len(user_message(WorkflowRejected(problems))) <= 2000


async def test_reply_error_answers_ephemerally_then_follows_up():
    async def fails(interaction: discord.Interaction) -> None:
        raise ParamError("steps", "must be ≤ 150")

    async def fails_after_defer(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        raise ExecutionFailed("node 7 crashed")

    client = discord.Client(intents=discord.Intents.default())
    tree = app_commands.CommandTree(client)
    install_error_handlers(tree)
    commands = [app_commands.Command(name="early", description="x", callback=fails),
                app_commands.Command(name="late", description="x", callback=fails_after_defer)]
    async with fake_discord(commands, client=client, tree=tree) as fake:
        await fake.slash("early")
        (answer,) = fake.callbacks()
        assert answer["type"] == 4 and answer["data"]["content"] == "steps: must be ≤ 150"
        assert answer["data"]["flags"] == 64
        await fake.slash("late")
        followup = fake.requests[-1]
        assert followup.method == "POST" and followup.path.startswith("/webhooks/")
        assert followup.payload["content"] == "The workflow failed: node 7 crashed"
        assert followup.payload["flags"] & 64


async def test_on_error_serves_views_and_modals():
    class Broken(discord.ui.View):
        on_error = staticmethod(on_error)

        @discord.ui.button(label="x", custom_id="broken:x")
        async def press(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            raise ComfyUnavailable("gone")

    async with fake_discord() as fake:
        fake.client.add_view(Broken(timeout=None))
        await fake.dispatch(fake.component_payload("broken:x"))
        (answer,) = fake.callbacks()
        assert answer["type"] == 4 and answer["data"]["content"] == UNAVAILABLE and answer["data"]["flags"] == 64
