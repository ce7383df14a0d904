"""The slash-command surface, generated from the catalog; callbacks delegate to ``CommandHooks``.

Shape (one entry per ``command`` in ``Catalog.commands()``):

- a command with one manifest → top-level ``/<command>`` with that manifest's options;
- a command with several → group ``/<command> <manifest>`` (one subcommand each) plus
  ``/<command> setup`` (no options), which opens the guided setup view;
- static commands: ``/help``, ``/status``, ``/workflows``, ``/choices source filter``, ``/cancel job``,
  ``/jobs``.

Options come from :mod:`bot.commands.options` (one transformer per param). ``nsfw`` is set on top-level
commands of NSFW manifests, and on groups whose members are all NSFW; runtime checks stay in the
guards. The names, the setup subcommand and the group description come from ``engine.discord_limits``,
so ``engine validate`` checks exactly this shape. Should an unvalidated catalog still break it,
commands named like a static one, a manifest named ``setup`` inside a group, workflows beyond a
group's 24 and commands beyond Discord's 100 are skipped with a warning instead of failing. :func:`command_payload` returns exactly what ``tree.sync()`` PUTs.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

import discord
from discord import app_commands

from engine import Catalog, Workflow, discord_limits as limits

from .menus import MenuHook, build_menus
from .options import PickOption, make_param_option, option_params, python_names

__all__ = [
    "CommandHooks",
    "STATIC_COMMANDS",
    "build_commands",
    "command_payload",
    "inert_hooks",
]

log = logging.getLogger(__name__)

STATIC_COMMANDS = limits.RESERVED_COMMANDS  # engine validate refuses manifests that take these names

Interaction = discord.Interaction
AppCommand = app_commands.Command | app_commands.Group | app_commands.ContextMenu


@dataclass(frozen=True)
class CommandHooks:
    """What the generated callbacks call. ``values`` are keyed by manifest param names and hold only
    the options the user gave (attachments as ``discord.Attachment``); the engine fills defaults."""

    run: Callable[[Interaction, Workflow, dict[str, Any]], Awaitable[None]]
    setup: Callable[[Interaction, str], Awaitable[None]]
    help: Callable[[Interaction], Awaitable[None]]
    status: Callable[[Interaction], Awaitable[None]]
    workflows: Callable[[Interaction], Awaitable[None]]
    choices: Callable[[Interaction, str, str | None], Awaitable[None]]
    cancel: Callable[[Interaction, str], Awaitable[None]]
    live_choices: Callable[[str], Sequence[str]]
    user_jobs: Callable[[Interaction], Awaitable[Sequence[tuple[str, str]]]]
    listed: Callable[[Interaction, Workflow], bool]  # may this workflow's choice lists be offered here?
    sources: Callable[[Interaction], Sequence[str]]  # the live lists /choices may show here
    jobs: Callable[[Interaction], Awaitable[None]] | None = None  # /jobs (None: it answers "not available")
    menu: MenuHook | None = None  # a message context menu was used (None: it answers "not available")


def inert_hooks() -> CommandHooks:
    """Hooks that do nothing: for building payloads offline (CLI, benchmarks)."""

    async def nothing(*_: Any) -> None:
        return None

    async def no_jobs(_: Interaction) -> list[tuple[str, str]]:
        return []

    return CommandHooks(run=nothing, setup=nothing, help=nothing, status=nothing, workflows=nothing,
                        choices=nothing, cancel=nothing, live_choices=lambda _: [], user_jobs=no_jobs,
                        listed=lambda *_: False, sources=lambda _: [])


@dataclass(frozen=True)
class _Option:
    name: str
    description: str
    annotation: Any
    required: bool


def _command(name: str, description: str, options: list[_Option],
             invoke: Callable[[Interaction, dict[str, Any]], Awaitable[None]], *,
             nsfw: bool = False, extras: dict | None = None) -> app_commands.Command:
    """An ``app_commands.Command`` whose parameters come from ``options`` (a synthetic signature)."""
    idents = python_names(o.name for o in options)
    by_ident = {idents[o.name]: o.name for o in options}

    async def callback(interaction: Interaction, **kwargs: Any) -> None:
        await invoke(interaction, {by_ident[k]: v for k, v in kwargs.items() if v is not None})

    callback.__name__ = callback.__qualname__ = f"{name.replace('-', '_')}_command"
    signature = inspect.Signature(
        [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Interaction)]
        + [inspect.Parameter(idents[o.name], inspect.Parameter.KEYWORD_ONLY, annotation=o.annotation,
                             default=inspect.Parameter.empty if o.required else None) for o in options])
    setattr(callback, "__signature__", signature)  # discord.py reads the options from the signature
    if options:
        callback = app_commands.describe(**{idents[o.name]: o.description for o in options})(callback)
        callback = app_commands.rename(**{idents[o.name]: o.name for o in options})(callback)
    return app_commands.Command(name=name, description=description, callback=callback, nsfw=nsfw,
                                extras=extras or {})


def _workflow_command(workflow: Workflow, name: str, hooks: CommandHooks, *, top_level: bool) -> app_commands.Command:
    manifest = workflow.manifest
    options = [_Option(p, manifest.params[p].description_for(p),
                       make_param_option(p, manifest.params[p], hooks.live_choices,
                                         listed=lambda interaction: hooks.listed(interaction, workflow)),
                       manifest.params[p].required)
               for p in option_params(manifest)]

    async def invoke(interaction: Interaction, values: dict[str, Any]) -> None:
        await hooks.run(interaction, workflow, values)

    return _command(name, manifest.description, options, invoke, nsfw=top_level and manifest.nsfw,
                    extras={"workflow": workflow.name})


def _group(command: str, workflows: list[Workflow], hooks: CommandHooks) -> app_commands.Group:
    members = [wf for wf in workflows if wf.name != limits.SETUP_SUBCOMMAND]
    for wf in workflows:
        if wf.name == limits.SETUP_SUBCOMMAND:
            log.warning("/%s: manifest %r is skipped, %r is the guided setup subcommand", command, wf.name, wf.name)
    room = limits.MAX_SUBCOMMANDS - 1  # next to setup
    if len(members) > room:
        log.warning("/%s: %d workflows, Discord allows %d subcommands next to setup; skipping %s", command,
                    len(members), room, ", ".join(wf.name for wf in members[room:]))
        members = members[:room]
    description = limits.group_description([wf.manifest.title or wf.name for wf in members])
    group = app_commands.Group(name=command, description=description,
                               nsfw=all(wf.manifest.nsfw for wf in members), extras={"command": command})

    async def setup(interaction: Interaction, _: dict[str, Any]) -> None:
        await hooks.setup(interaction, command)

    group.add_command(_command(limits.SETUP_SUBCOMMAND, limits.SETUP_DESCRIPTION, [], setup,
                               extras={"command": command}))
    for wf in members:
        group.add_command(_workflow_command(wf, wf.name, hooks, top_level=False))
    return group


async def _unavailable(interaction: Interaction) -> None:
    await interaction.response.send_message("This command is not available right now.", ephemeral=True)


def _static_commands(catalog: Catalog, hooks: CommandHooks) -> list[app_commands.Command]:
    source = PickOption("source", lambda interaction: [(s, s) for s in hooks.sources(interaction)], strict=True,
                        problem="is not a list any workflow uses")

    async def user_jobs(interaction: Interaction) -> list[tuple[str, str]]:
        return [(label, job_id) for job_id, label in await hooks.user_jobs(interaction)]

    job = PickOption("job", user_jobs, strict=False)

    def call(hook: Callable[[Interaction], Awaitable[None]]):
        return lambda interaction, _: hook(interaction)

    return [
        _command("help", "How to use this bot", [], call(hooks.help)),
        _command("status", "ComfyUI servers and the queue", [], call(hooks.status)),
        _command("workflows", "The workflows you can run", [], call(hooks.workflows)),
        _command("choices", "The values a workflow option accepts, e.g. the models on the server",
                 [_Option("source", "Which list, e.g. CheckpointLoaderSimple.ckpt_name", source, True),
                  _Option("filter", "Only values containing this text", str, False)],
                 lambda i, v: hooks.choices(i, v["source"], v.get("filter"))),
        _command("cancel", "Cancel one of your running jobs", [_Option("job", "The job to cancel", job, True)],
                 lambda i, v: hooks.cancel(i, v["job"])),
        _command("jobs", "Your recent jobs (admins: everyone's queued and running), with cancelling", [],
                 call(hooks.jobs or _unavailable)),
    ]


def build_commands(catalog: Catalog, hooks: CommandHooks) -> list[AppCommand]:
    """Every slash command for ``catalog``: the static ones first, then one per ``command``; then the
    message context menus (``menus.build_menus``), which do not count against the 100 slash commands."""
    commands: list[AppCommand] = list(_static_commands(catalog, hooks))
    for command, workflows in catalog.commands().items():
        if command in STATIC_COMMANDS:
            log.warning("/%s is a built-in command; skipping workflows %s", command,
                        ", ".join(wf.name for wf in workflows))
        elif len(workflows) == 1:
            commands.append(_workflow_command(workflows[0], command, hooks, top_level=True))
        else:
            commands.append(_group(command, workflows, hooks))
    if len(commands) > limits.MAX_COMMANDS:
        log.warning("%d commands, Discord allows %d; skipping %s", len(commands), limits.MAX_COMMANDS,
                    ", ".join(c.name for c in commands[limits.MAX_COMMANDS:]))
    return commands[:limits.MAX_COMMANDS] + build_menus(catalog, hooks.menu)


def command_payload(commands: Sequence[AppCommand]) -> list[dict]:
    """The JSON body ``tree.sync()`` would PUT for ``commands`` (built offline, never logged in)."""
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    for command in commands:
        tree.add_command(command)
    return [c.to_dict(tree) for c in tree.get_commands()]
