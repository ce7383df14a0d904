"""``/admin …``: commands for the bot's admins (``AccessPolicy.is_admin``, the rule for every path).

- ``/admin reload`` reloads the manifests and workflows now and answers, ephemerally, with what
  changed and every problem found (``file:line:col: …``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from engine import CatalogChange

from ..access import AccessPolicy, Who

__all__ = ["admin_group", "NOT_ADMIN"]

NOT_ADMIN = "Only the bot's admins can do this."
MESSAGE_LIMIT = 2000


def admin_group(access: AccessPolicy, reload: Callable[[str], Awaitable[CatalogChange]]) -> app_commands.Group:
    group = app_commands.Group(name="admin", description="Bot administration (admins only)", guild_only=False)

    @group.command(name="reload", description="Reload the manifests and workflows now")
    async def reload_command(interaction: discord.Interaction) -> None:
        if not access.is_admin(Who.of(interaction)):
            await interaction.response.send_message(NOT_ADMIN, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        change = await reload("/admin reload")
        text = "\n".join(change.lines())
        await interaction.followup.send(text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…",
                                        ephemeral=True)

    return group
