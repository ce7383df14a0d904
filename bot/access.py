"""The one access policy: who may do what, with which workflow and which job, on every path into a job.

The rules (manifests and settings hold the data; nothing else decides):

- a workflow runs only where and for whom its manifest allows: ``channels`` (a thread counts as
  its parent channel; empty: everywhere), ``nsfw`` (NSFW channels only), ``roles`` (role ids or
  names, names case-insensitive; empty: everyone) — ``run_refusal``;
- the buttons and modals of a result run the job's own workflow again (rerun, new seed, tweak):
  its rules; an action feeds a result into another workflow: the rules of the source *and* the
  target — ``refusal(who, *workflows)``; every click and every modal submit is checked again (a
  role may be lost, a click may be forged from another channel);
- an admin is a user listed in ``ADMIN_USER_IDS`` or holding a role in ``ADMIN_ROLE_IDS`` —
  ``is_admin``; cancelling a job or deleting its message is for its owner or an admin —
  ``manage_refusal``;
- the setup view offers only the workflows the user may run here — ``runnable``;
- autocomplete and ``/choices`` list a live server list (``choices_from``) only to users who may
  run a workflow that uses it — ``sources``, ``may_list``.

``Who.of(interaction)`` reads the user, their roles and the channel with discord.py's public API
(``Member.roles`` — the bot caches its guilds with their roles — and ``Interaction.channel``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from engine import Catalog, Workflow

__all__ = ["Who", "AccessPolicy", "NOT_HERE", "NSFW_ONLY", "NEEDS_ROLE", "NOT_YOURS"]

NOT_HERE = "This workflow is not available in this channel."
NSFW_ONLY = "This workflow is only available in NSFW channels."
NEEDS_ROLE = "You need a role that is allowed to use this workflow."
NOT_YOURS = "Only the person who started this job (or a bot admin) can do that."


@dataclass(frozen=True)
class Who:
    """The user behind an interaction and where they are."""

    user_id: int
    role_ids: frozenset[int] = frozenset()
    role_names: frozenset[str] = frozenset()  # casefolded
    channel_id: int = 0
    parent_channel_id: int | None = None  # a thread's channel
    channel_is_nsfw: bool = False

    @classmethod
    def of(cls, interaction: discord.Interaction) -> Who:
        user, channel = interaction.user, interaction.channel
        roles = user.roles if isinstance(user, discord.Member) else []
        is_nsfw = getattr(channel, "is_nsfw", None)  # text, voice, forum channels and threads have it
        parent = getattr(channel, "parent_id", None)  # threads
        return cls(user.id, frozenset(r.id for r in roles), frozenset(r.name.casefold() for r in roles),
                   interaction.channel_id or 0, parent if isinstance(parent, int) else None,
                   bool(is_nsfw()) if callable(is_nsfw) else False)


def _listed(wanted: Iterable[str | int], held: Iterable[str | int]) -> bool:
    return not {str(w).strip().casefold() for w in wanted}.isdisjoint(str(h).casefold() for h in held)


class AccessPolicy:
    """Decides every access question (see the module docstring); pure, no I/O."""

    def __init__(self, admin_user_ids: Iterable[int] = (), admin_role_ids: Iterable[int] = ()):
        self.admin_user_ids = frozenset(admin_user_ids)
        self.admin_role_ids = frozenset(admin_role_ids)

    def is_admin(self, who: Who) -> bool:
        return who.user_id in self.admin_user_ids or not self.admin_role_ids.isdisjoint(who.role_ids)

    def run_refusal(self, who: Who, workflow: Workflow) -> str | None:
        """Why ``workflow`` may not run for ``who`` where they are (None: it may)."""
        manifest = workflow.manifest
        channels = [who.channel_id] + ([who.parent_channel_id] if who.parent_channel_id is not None else [])
        if manifest.channels and not _listed(manifest.channels, channels):
            return NOT_HERE
        if manifest.nsfw and not who.channel_is_nsfw:
            return NSFW_ONLY
        if manifest.roles and not _listed(manifest.roles, [*who.role_ids, *who.role_names]):
            return NEEDS_ROLE
        return None

    def refusal(self, who: Who, *workflows: Workflow | None) -> str | None:
        """The first refusal among ``workflows`` (an action: its source and its target); None skipped."""
        return next((text for wf in workflows if wf is not None and (text := self.run_refusal(who, wf))), None)

    def manage_refusal(self, who: Who, owner: str | None) -> str | None:
        """Cancelling a job or deleting its message: its owner or an admin."""
        return None if str(who.user_id) == str(owner) or self.is_admin(who) else NOT_YOURS

    def runnable(self, who: Who, workflows: Iterable[Workflow]) -> list[Workflow]:
        """The workflows ``who`` may run here (the setup view's choice)."""
        return [wf for wf in workflows if self.run_refusal(who, wf) is None]

    def sources(self, who: Who, catalog: Catalog) -> list[str]:
        """The live lists (``choices_from``) of the workflows ``who`` may run here, sorted."""
        return sorted({source for wf in self.runnable(who, catalog) for p in wf.manifest.params.values()
                       if (source := p.live_source)})

    def may_list(self, who: Who, workflow: Workflow) -> bool:
        """Whether ``workflow``'s live lists may be offered to ``who`` (its autocomplete)."""
        return self.run_refusal(who, workflow) is None
