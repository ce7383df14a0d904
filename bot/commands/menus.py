"""Message context-menu commands ("Apps" on a message), one per manifest with ``context_menu: true``.

Each is named by its manifest's title (``engine.discord_limits.menu_name``; ``engine validate``
checks the names and Discord's limit of 5 message commands). Clicking one on any message —
also a message the bot did not make — calls ``CommandHooks.menu(interaction, workflow, message)``;
the flow finds the message's image and opens the manifest's modal or runs it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from engine import Catalog, Workflow, discord_limits

__all__ = ["MenuHook", "build_menus"]

log = logging.getLogger(__name__)

MenuHook = Callable[[discord.Interaction, Workflow, discord.Message], Awaitable[None]]
UNAVAILABLE = "This command is not available right now."


def _menu(workflow: Workflow, hook: MenuHook | None) -> app_commands.ContextMenu:
    async def callback(interaction: discord.Interaction, message: discord.Message) -> None:
        if hook is None:
            await interaction.response.send_message(UNAVAILABLE, ephemeral=True)
        else:
            await hook(interaction, workflow, message)

    name = discord_limits.menu_name(workflow.manifest.title or workflow.name)
    return app_commands.ContextMenu(name=name, callback=callback, type=discord.AppCommandType.message,
                                    nsfw=workflow.manifest.nsfw, extras={"workflow": workflow.name})


def build_menus(catalog: Catalog, hook: MenuHook | None) -> list[app_commands.ContextMenu]:
    """The message commands of ``catalog`` (manifests with ``context_menu`` that take an image), in name
    order; past Discord's limit, or with a name taken or too long, a manifest is skipped with a warning."""
    menus: list[app_commands.ContextMenu] = []
    for workflow in sorted(catalog, key=lambda wf: wf.name):
        manifest = workflow.manifest
        if not manifest.context_menu or manifest.param_taking("image") is None:
            continue
        name = discord_limits.menu_name(manifest.title or workflow.name)
        taken = {m.name.casefold() for m in menus}
        if len(menus) >= discord_limits.MAX_MESSAGE_COMMANDS or name.casefold() in taken \
                or not 1 <= len(name) <= discord_limits.MAX_MENU_NAME_LENGTH:
            log.warning("context menu %r of manifest %s is skipped (engine validate says why)", name, workflow.name)
            continue
        menus.append(_menu(workflow, hook))
    return menus
