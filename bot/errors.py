"""The error funnel: every exception that reaches a user becomes one short text, sent ephemerally.

:func:`user_message` is the only place that turns exceptions into words. Engine errors carry
texts meant for users (``ParamError`` → "steps: must be ≤ 150"); ComfyUI trouble gets a fixed
wording; anything unexpected becomes "Something went wrong." and its traceback goes to the log
at ERROR for operators — never to users. No text built here contains a URL or a token.

:func:`reply_error` answers an interaction with that text (the initial response if there was
none yet, else a followup; after a ``defer(thinking=True)`` the followup replaces the "thinking"
message). :func:`install_error_handlers` routes a command tree's errors here, and
:func:`on_error` is the same handler shaped for ``View.on_error`` / ``Modal.on_error``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import discord
from discord import app_commands

from engine import (ComfyTimeout, ComfyUnavailable, ExecutionFailed, JobCancelled, LimitExceeded, ParamError,
                    StoreError, WorkflowRejected)

from .delivery.fitting import TooLargeError
from .commands.options import OptionError

__all__ = ["GENERIC", "UNAVAILABLE", "STORE_DOWN", "ANSWER_WAIT", "user_message", "reply_error", "on_error", "install_error_handlers"]

log = logging.getLogger(__name__)

GENERIC = "Something went wrong."
UNAVAILABLE = "No ComfyUI server is available right now — try again later."
STORE_DOWN = "The bot's job database is not available right now — try again in a moment."
ANSWER_WAIT = 2.0  # seconds a job-database read may take before an interaction's first answer (Discord: 3 s)
MESSAGE_LIMIT = 2000


def _unwrap(exc: BaseException) -> BaseException:
    """The exception that says what happened: discord.py wraps callback errors in ``CommandInvokeError``."""
    while isinstance(exc, app_commands.CommandInvokeError):
        exc = exc.original
    if isinstance(exc, OptionError):
        return exc.param_error
    if isinstance(exc, app_commands.TransformerError) and isinstance(exc.__cause__, ParamError):
        return exc.__cause__
    return exc


def _timeout_text(exc: ComfyTimeout) -> str:
    if exc.seconds is None:
        return "Timed out: the server took too long to answer."
    return f"Timed out after {exc.seconds:g} s."


def _discord_text(exc: BaseException) -> str | None:
    match exc:
        case app_commands.CommandOnCooldown():
            return f"Slow down: try again in {max(1, math.ceil(exc.retry_after))} s."
        case app_commands.NoPrivateMessage():
            return "This command only works in a server."
        case app_commands.BotMissingPermissions():
            return "I am missing permissions here: " + ", ".join(p.replace("_", " ") for p in exc.missing_permissions)
        case app_commands.MissingPermissions() | app_commands.MissingRole() | app_commands.MissingAnyRole():
            return "You are not allowed to use this command."
        case app_commands.TransformerError():
            return "That value is not acceptable here."
        case app_commands.CheckFailure():
            return "You cannot use this command here."
        case app_commands.CommandNotFound() | app_commands.CommandSignatureMismatch():
            return "This command has changed or is gone; Discord will show the current ones shortly."
    return None


def user_message(exc: BaseException, *, job_id: str | None = None) -> str:
    """The short text a user sees for ``exc``; unexpected errors are logged with their traceback
    (and ``job_id`` when the error ended a job)."""
    exc = _unwrap(exc)
    match exc:
        case ParamError() | TooLargeError():
            text = str(exc)
        case LimitExceeded():  # a server sent more than the bot accepts: the message names the limit
            log.warning("job %s: %s", job_id or "-", exc)
            text = str(exc)
        case WorkflowRejected():
            text = "\n".join(exc.problems) or "The server rejected this workflow."
        case ExecutionFailed():
            text = f"The workflow failed: {exc}"
        case JobCancelled():
            text = "Cancelled."
        case ComfyTimeout():
            text = _timeout_text(exc)
        case ComfyUnavailable():
            log.warning("no ComfyUI server for a request: %s", exc)
            text = UNAVAILABLE
        case StoreError():
            log.warning("job database unavailable for a request: %s", exc)
            text = STORE_DOWN
        case _:
            known = _discord_text(exc)
            if known is None and job_id is not None:
                log.error("job %s: unexpected error", job_id, exc_info=exc)
            elif known is None:
                log.error("unexpected error while handling an interaction", exc_info=exc)
            text = known or GENERIC
    return text[:MESSAGE_LIMIT]


async def reply_error(interaction: discord.Interaction, exc: BaseException) -> None:
    """Tell the user what went wrong, ephemerally (an initial response when possible)."""
    text = user_message(exc)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as failure:  # token expired, interaction gone: nothing more to do
        log.info("could not report an error to the user: %s", type(failure).__name__)


async def on_error(interaction: discord.Interaction, error: Exception, item: Any = None, /) -> None:
    """For ``View.on_error`` (3 arguments) and ``Modal.on_error`` (2): the funnel."""
    await reply_error(interaction, error)


def install_error_handlers(tree: app_commands.CommandTree) -> None:
    """Route every error of ``tree``'s commands through :func:`reply_error`."""

    async def on_tree_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await reply_error(interaction, error)

    tree.error(on_tree_error)
