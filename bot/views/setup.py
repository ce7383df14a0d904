"""The guided flow (``/<command> setup``): pick a workflow and its options, then Generate.

``SetupView`` shows, for the command's manifests: a workflow Select (when there are several),
one Select per basic choice param (static choices, or the live ``choices_from`` list: "None" +
24 for optional ones), a "Prompt & options" button opening a modal for the other basic params,
"Settings" buttons opening the advanced params' modal pages, and "Generate", which calls
``run(interaction, workflow, values)`` — or, while required values are missing, opens the modal
that asks for them (and generates on its submit). ``values`` hold only what was set (files as
``discord.Attachment``); the engine fills defaults. After Generate the view is finished and the
``run`` hook owns the interaction and the message.

Only the user who opened it may use it. Set ``view.message`` after sending it: on timeout the
message is edited visibly (components disabled, footer "Expired — run /<command> setup again").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import discord

from engine import ParamError, Workflow, discord_limits as limits

from ..delivery.render import clip
from ..widgets import NONE_VALUE, LiveChoices, choice_options, server_list
from ..errors import on_error
from .modals import OnValues, ParamModal, settings_modals

__all__ = ["SETUP_TIMEOUT", "NOT_AUTHOR", "RunHook", "SetupLayout", "setup_layout", "setup_embed",
           "carry_values", "SetupView"]

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 300.0
NOT_AUTHOR = "Only the person who opened this can use it."
MAX_ROWS, PER_ROW, MAX_OPTIONS = 5, 5, 25
RunHook = Callable[[discord.Interaction, Workflow, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class SetupLayout:
    """Where each param of a workflow goes in the view."""

    selects: tuple[str, ...]  # basic choice params shown as Selects
    options_pages: tuple[tuple[str, ...], ...]  # the "Prompt & options" modal pages
    settings_pages: tuple[tuple[str, ...], ...]  # the "Settings" modal pages


def _pages(names: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(names[i:i + PER_ROW]) for i in range(0, len(names), PER_ROW))


def setup_layout(workflow: Workflow, live: LiveChoices | None = None, *, workflow_select: bool = True) -> SetupLayout:
    """Choice params become Selects while rows are left (one row stays for the buttons); the
    rest of the basic params go to the options modal, advanced ones to the settings modal."""
    params = workflow.manifest.params
    candidates = [n for n in workflow.manifest.basic_params
                  if choice_options(params[n], None, server_list(params[n], live))]
    rows = MAX_ROWS - int(workflow_select)
    settings = _pages(workflow.manifest.advanced_params)
    for count in range(min(len(candidates), rows - 1), 0, -1):
        options = _pages([n for n in workflow.manifest.basic_params if n not in candidates[:count]])
        buttons = len(options) + len(settings) + 1
        if count + -(-buttons // PER_ROW) <= rows:
            return SetupLayout(tuple(candidates[:count]), options, settings)
    return SetupLayout((), _pages(workflow.manifest.basic_params), settings)


def carry_values(old: Workflow, new: Workflow, values: Mapping[str, Any], live: LiveChoices | None = None) -> dict:
    """Values worth keeping when switching workflow: same name, same kind, still valid there."""
    kept = {}
    for name, value in values.items():
        param, before = new.manifest.params.get(name), old.manifest.params.get(name)
        if param is None or before is None or not param.same_kind(before):
            continue
        if param.is_upload or value is None:
            kept[name] = value
            continue
        try:
            kept[name] = param.coerce(name, value, server_list(param, live))
        except ParamError:
            continue
    return kept


def setup_embed(workflow: Workflow, values: Mapping[str, Any], *, expired_command: str | None = None) -> discord.Embed:
    """Summary of the current choices: every param with its value, its default, or "required"."""
    manifest = workflow.manifest
    embed = discord.Embed(title=clip(f"🎨 {manifest.title or workflow.name}", 256),
                          description=manifest.description, colour=discord.Colour.blurple())
    for name, param in list(manifest.params.items())[:MAX_OPTIONS]:
        value = values.get(name)
        if value is not None and value != "":
            shown = param.show(value)
        else:
            shown = "**required**" if param.required else param.show_unset()
        embed.add_field(name=clip(param.label or name, 256), value=clip(shown, 200), inline=not param.is_text)
    if expired_command:
        embed.colour = discord.Colour.dark_grey()
        embed.set_footer(text=f"Expired — run /{expired_command} setup again")
    return embed


class SetupView(discord.ui.View):
    """The setup message's components; see the module docstring."""

    def __init__(self, workflows: Sequence[Workflow], *, owner_id: int, run: RunHook, live: LiveChoices | None = None,
                 values: Mapping[str, Any] | None = None, command: str = "generate", timeout: float = SETUP_TIMEOUT):
        super().__init__(timeout=timeout)
        if not workflows:
            raise ValueError("a setup view needs at least one workflow")
        self.workflows = {wf.name: wf for wf in list(workflows)[:MAX_OPTIONS]}
        self.workflow = next(iter(self.workflows.values()))
        self.owner_id, self.run, self.live, self.command = owner_id, run, live, command
        self.values: dict[str, Any] = carry_values(self.workflow, self.workflow, values or {}, live)
        self.message: discord.Message | discord.InteractionMessage | None = None
        self.layout = setup_layout(self.workflow, live, workflow_select=len(self.workflows) > 1)
        self._build()

    # ---- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.clear_items()
        row = 0
        if len(self.workflows) > 1:
            self.add_item(self._workflow_select(row))
            row += 1
        for name in self.layout.selects:
            self.add_item(self._choice_select(name, row))
            row += 1
        for label, pages, purpose in (("📝 Prompt & options", self.layout.options_pages, "setup"),
                                      ("⚙️ Settings", self.layout.settings_pages, "set")):
            for number in range(1, len(pages) + 1):
                title = label + (f" {number}/{len(pages)}" if len(pages) > 1 else "")
                self.add_item(self._button(title, self._open_modal(purpose, number)))
        self.add_item(self._button("✨ Generate", self._on_generate, discord.ButtonStyle.success))

    def _workflow_select(self, row: int) -> discord.ui.Select[SetupView]:
        options = [discord.SelectOption(label=clip(wf.manifest.title or wf.name, 100), value=wf.name,
                                        description=clip(wf.manifest.description, 100), default=wf is self.workflow)
                   for wf in self.workflows.values()]
        return _Select(self._pick_workflow, options=options, placeholder="Workflow", row=row)

    def _choice_select(self, name: str, row: int) -> discord.ui.Select[SetupView]:
        param = self.workflow.manifest.params[name]
        options = choice_options(param, self.values.get(name), server_list(param, self.live))

        async def pick(interaction: discord.Interaction, picked: list[str]) -> None:
            await self._pick_choice(interaction, name, picked)

        return _Select(pick, options=options, placeholder=clip(param.label or name, 150), row=row)

    def _button(self, label: str, callback: Callback,
                style: discord.ButtonStyle = discord.ButtonStyle.secondary) -> discord.ui.Button[SetupView]:
        return _Button(callback, label=label, style=style)

    # ---- state ---------------------------------------------------------------------------------
    def missing(self) -> list[str]:
        """Required params without a value, in manifest order."""
        return [n for n, p in self.workflow.manifest.params.items()
                if p.required and (self.values.get(n) is None or self.values.get(n) == "")]

    def embed(self, *, expired: bool = False) -> discord.Embed:
        return setup_embed(self.workflow, self.values, expired_command=self.command if expired else None)

    def _modal(self, purpose: str, number: int, *, generate_after: bool = False) -> ParamModal:
        pages = self.layout.options_pages if purpose == "setup" else self.layout.settings_pages
        title = "Prompt & options" if purpose == "setup" else limits.modal_title(self.workflow.manifest.title)
        names = [n for page in pages for n in page]
        modals = settings_modals(self.workflow, names, self.values, on_values=self._on_values(generate_after),
                                 key=self.workflow.name, purpose=purpose, title_prefix=title, live=self.live)
        return modals[number - 1]

    # ---- callbacks -----------------------------------------------------------------------------
    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(NOT_AUTHOR, ephemeral=True)
        return False

    async def _redraw(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(embed=self.embed(), view=self)

    async def _pick_workflow(self, interaction: discord.Interaction, picked: list[str]) -> None:
        new = self.workflows[picked[0]]
        self.values = carry_values(self.workflow, new, self.values, self.live)
        self.workflow = new
        self.layout = setup_layout(new, self.live, workflow_select=True)
        self._build()
        await self._redraw(interaction)

    async def _pick_choice(self, interaction: discord.Interaction, name: str, picked: list[str]) -> None:
        param = self.workflow.manifest.params[name]
        try:
            value = None if picked[0] == NONE_VALUE else param.coerce(name, picked[0], server_list(param, self.live))
        except ParamError:  # the server's list changed since the options were drawn
            value = None
        self.values[name] = value
        self._build()
        await self._redraw(interaction)

    def _open_modal(self, purpose: str, number: int) -> Callback:
        async def callback(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(self._modal(purpose, number))
        return callback

    def _on_values(self, generate_after: bool) -> OnValues:
        async def on_values(interaction: discord.Interaction, values: dict[str, Any]) -> None:
            if self.is_finished():
                await interaction.response.send_message("This setup has expired.", ephemeral=True)
                return
            self.values.update(values)
            if generate_after and not self.missing():
                await self._generate(interaction)
                return
            self._build()
            await self._redraw(interaction)
        return on_values

    async def _on_generate(self, interaction: discord.Interaction) -> None:
        missing = self.missing()
        if not missing:
            await self._generate(interaction)
            return
        first = missing[0]
        if first in self.layout.selects:
            param = self.workflow.manifest.params[first]
            await interaction.response.send_message(f"Choose {param.label or first} first.", ephemeral=True)
            return
        purpose, pages = ("set", self.layout.settings_pages) if self.workflow.manifest.params[first].advanced \
            else ("setup", self.layout.options_pages)
        number = next(i for i, page in enumerate(pages, start=1) if first in page)
        await interaction.response.send_modal(self._modal(purpose, number, generate_after=True))

    async def _generate(self, interaction: discord.Interaction) -> None:
        self.stop()  # from here on the run hook owns the message; no expiry edit
        values = {n: v for n, v in self.values.items() if v is not None}
        await self.run(interaction, self.workflow, values)

    async def on_error(self, interaction: discord.Interaction, error: Exception,
                       item: discord.ui.Item[Any]) -> None:
        await on_error(interaction, error, item)

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, (discord.ui.Button, discord.ui.Select)):
                item.disabled = True
        if self.message is None:
            return
        try:
            await self.message.edit(embed=self.embed(expired=True), view=self)
        except discord.HTTPException as exc:  # deleted meanwhile, or no access any more
            log.info("could not mark setup message as expired: %s", type(exc).__name__)


Callback = Callable[[discord.Interaction], Awaitable[None]]


class _Select(discord.ui.Select[SetupView]):
    """A Select that hands its picked values to ``on_pick``."""

    def __init__(self, on_pick: Callable[[discord.Interaction, list[str]], Awaitable[None]], **options: Any):
        super().__init__(**options)
        self._on_pick = on_pick

    async def callback(self, interaction: discord.Interaction) -> None:
        await self._on_pick(interaction, list(self.values))


class _Button(discord.ui.Button[SetupView]):
    """A Button that calls ``on_click``."""

    def __init__(self, on_click: Callback, **options: Any):
        super().__init__(**options)
        self._on_click = on_click

    async def callback(self, interaction: discord.Interaction) -> None:
        await self._on_click(interaction)
