"""What a message context menu does once the access policy has allowed it (``Flow.menu``).

The message's first usable image (``inputs.message_image``) goes into the workflow's first image
param; the manifest's modal asks for the params it still requires (the same fields as an action
button's, ``buttons.action_params``), or the job starts at once when nothing is required.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from engine import Workflow

from ..views.buttons import action_params
from ..views.modals import LiveChoices, ModalId, ParamModal, new_nonce
from .inputs import message_image
from .media import MediaSource

__all__ = ["NO_IMAGE", "open_menu"]

NO_IMAGE = "This message has no image I can use: it needs a PNG, JPEG or WebP attachment or embedded image."

Run = Callable[[discord.Interaction, Workflow, dict[str, Any]], Awaitable[None]]


async def open_menu(interaction: discord.Interaction, workflow: Workflow, message: discord.Message, *,
                    run: Run, live: LiveChoices | None, media: MediaSource, max_bytes: int) -> None:
    """Run ``workflow`` on ``message``'s image, through its modal when it requires more."""
    image = message_image(message, media, max_bytes=max_bytes)
    param = workflow.manifest.param_taking("image")  # build_menus offers only workflows that take one
    if image is None or param is None:
        await interaction.response.send_message(NO_IMAGE, ephemeral=True)
        return
    names = action_params(workflow)
    if not names:
        await run(interaction, workflow, {param: image})
        return

    async def on_values(submitted: discord.Interaction, values: dict[str, Any]) -> None:
        await run(submitted, workflow, {**values, param: image})

    modal = ParamModal(workflow, names, {}, title=workflow.manifest.title or workflow.name, on_values=on_values,
                       live=live, custom_id=ModalId("menu", workflow.name, nonce=new_nonce()).to_custom_id())
    await interaction.response.send_modal(modal)
