"""Modals generated from manifest params: pages of ≤ 5 labelled fields, checked with ``coerce_value``.

Each param becomes a ``discord.ui.Label`` (text ≤ 45, description ≤ 100) around one input:
text/int/float/seed → ``TextInput`` (placeholder shows the range or the choices), bool and short
choice lists → ``Select``, image → ``FileUpload``. Fields are prefilled with the current values.

On submit every field goes through ``engine.coerce_value`` and ALL problems are answered
in one ephemeral message ("steps: must be ≤ 150"); only clean values reach the ``on_values``
hook, ``await on_values(interaction, values)``. In ``values`` an unset field is ``None`` (the
engine then uses the default; an emptied optional text stays ``""``) and an image param holds
the uploaded ``discord.Attachment``, the value kept from before (a server file name), or ``None``.

A modal's custom_id encodes what it is for (``dc:<purpose>:<key>:<page>[:<target>]~<nonce>``, see
``ModalId``) so an ``on_interaction`` fallback can recognise a submit after a restart, when the
modal object is gone: ``parse_modal_custom_id`` and ``raw_modal_values`` read such a submit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

import discord

from engine import (
    ChoiceParam, Param, ParamError, Workflow, coerce_value, discord_limits as limits, is_unset, live_choices,
)

from ..delivery.render import clip

__all__ = [
    "FIELDS_PER_MODAL",
    "NONE_VALUE",
    "OnValues",
    "LiveChoices",
    "ModalId",
    "ParamModal",
    "parse_modal_custom_id",
    "new_nonce",
    "from_earlier_run",
    "raw_modal_values",
    "settings_modals",
    "check_fields",
    "choice_options",
    "placeholder_for",
    "prefill_text",
    "page_title",
]

FIELDS_PER_MODAL = limits.MAX_MODAL_COMPONENTS
TITLE_LIMIT, LABEL_LIMIT = limits.MAX_MODAL_TITLE_LENGTH, limits.MAX_LABEL_LENGTH
DESCRIPTION_LIMIT = limits.MAX_DESCRIPTION_LENGTH
PLACEHOLDER_LIMIT = 100  # TextInput / Select placeholder
TEXT_INPUT_LIMIT, OPTION_LIMIT = limits.MAX_TEXT_INPUT_LENGTH, limits.MAX_CHOICE_NAME_LENGTH
SELECT_OPTIONS = limits.MAX_SELECT_OPTIONS
NONE_VALUE = "__none__"
MODAL_TIMEOUT = 3600.0  # users may write a long prompt; the submit is a fresh interaction

OnValues = Callable[[discord.Interaction, dict[str, Any]], Awaitable[None]]
LiveChoices = Callable[[str], Sequence[str]]  # a ``choices_from`` source → the server's list

_ID_PATTERN = re.compile(r"^dc:(?P<purpose>[a-z]{1,8}):(?P<key>[-_a-z0-9]{1,40}):(?P<page>\d{1,2})"
                         r"(?::(?P<target>[-_a-z0-9]{1,32}))?(?:~(?P<nonce>[0-9a-f]{8}))?$")


@dataclass(frozen=True)
class ModalId:
    """What a modal is for: ``purpose`` (tweak, act, setup, set), a job id or workflow name, a page.

    discord.py keeps open modals by custom_id alone, so two users opening the same form would
    share one modal object (and the first submit would drop the other): ``nonce`` keeps each
    opening's id unique.
    """

    purpose: str
    key: str
    page: int = 1
    target: str = ""  # the action's target manifest
    nonce: str = ""

    def to_custom_id(self) -> str:
        custom_id = f"dc:{self.purpose}:{self.key}:{self.page}" + (f":{self.target}" if self.target else "") \
            + (f"~{self.nonce}" if self.nonce else "")
        if not _ID_PATTERN.match(custom_id):
            raise ValueError(f"not a valid modal id: {custom_id!r}")
        return custom_id


def parse_modal_custom_id(custom_id: str) -> ModalId | None:
    match = _ID_PATTERN.match(custom_id or "")
    if match is None:
        return None
    return ModalId(match["purpose"], match["key"], int(match["page"]), match["target"] or "", match["nonce"] or "")


BOOT = os.urandom(2).hex()  # marks ids minted by this process (a constant, not state)


def new_nonce() -> str:
    """Unique per modal opening; starts with this process's ``BOOT`` mark."""
    return BOOT + os.urandom(2).hex()


def from_earlier_run(modal_id: ModalId) -> bool:
    """True for a modal opened before this process started: its object is gone, so nothing
    but an ``on_interaction`` fallback will answer its submit."""
    return bool(modal_id.nonce) and not modal_id.nonce.startswith(BOOT)


def raw_modal_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Field values of a raw modal-submit payload (``interaction.data``): text → str, select →
    its first value (or None), file upload → the list of attachment ids."""
    raw: dict[str, Any] = {}
    for row in data.get("components", []):
        for component in row.get("components", []) + ([row["component"]] if "component" in row else []):
            if "value" in component:
                raw[component["custom_id"]] = component["value"]
            elif component.get("type") == 19:
                raw[component["custom_id"]] = list(component.get("values", []))
            elif "values" in component:
                raw[component["custom_id"]] = (component["values"] or [None])[0]
    return raw


def page_title(prefix: str, page: int, pages: int) -> str:
    """``"Settings 1/2"``, cut so the page number survives within 45 characters."""
    suffix = f" {page}/{pages}" if pages > 1 else ""
    return clip(prefix, TITLE_LIMIT - len(suffix)) + suffix


def prefill_text(param: Param, value: Any) -> str | None:
    if value is None or (param.type == "seed" and value == -1):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)[:TEXT_INPUT_LIMIT]


def _number_range(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"{low:g}–{high:g}" if isinstance(low, float) or isinstance(high, float) else f"{low}–{high}"
    return f"≥ {low}" if low is not None else f"≤ {high}" if high is not None else "a number"


def placeholder_for(param: Param, server_list: Sequence[str] | None = None) -> str:
    """The hint inside an empty field: the range, the choices, or what blank means."""
    match param.type:
        case "int" | "float":
            text = _number_range(param.min, param.max)
        case "seed":
            text = "blank or -1 for a random seed"
        case "bool":
            text = "true / false"
        case "choice":
            names = [c.name for c in param.choices] if param.choices else live_choices(param, server_list or [])
            text = ", ".join(map(str, names)) or "a name from the server"
        case _:
            text = "optional" if not param.required else ""
    if param.default is not None and param.type in ("int", "float"):
        text += f" (default {param.default:g})" if isinstance(param.default, float) else f" (default {param.default})"
    return clip(text, PLACEHOLDER_LIMIT)


def choice_options(param: ChoiceParam, current: Any, server_list: Sequence[str] | None = None) -> list[discord.SelectOption]:
    """Select options for a choice param: "None" first when optional, then up to 24/25 choices
    (the current value always among them). Empty when nothing can be offered."""
    if param.choices is not None:
        pairs = [(c.name, str(c.value)) for c in param.choices]
    else:
        pairs = [(str(v), str(v)) for v in live_choices(param, server_list or [])]
    pairs = [(n, v) for n, v in pairs if len(v) <= OPTION_LIMIT]
    room = SELECT_OPTIONS - (0 if param.required else 1)
    chosen = [p for p in pairs if current is not None and p[1] == str(current)]
    pairs = (chosen + [p for p in pairs if p not in chosen])[:room]
    options = [discord.SelectOption(label=clip(n, OPTION_LIMIT), value=v, default=v == str(current)) for n, v in pairs]
    if not param.required and pairs:
        options.insert(0, discord.SelectOption(label="None", value=NONE_VALUE, default=current is None))
    return options


def _fits_select(param: Param, server_list: Sequence[str] | None) -> bool:
    if param.type != "choice":
        return param.type == "bool"
    count = len(param.choices) if param.choices is not None else len(live_choices(param, server_list or []))
    return 0 < count <= SELECT_OPTIONS - (0 if param.required else 1)


def _field(name: str, param: Param, value: Any, server_list: Sequence[str] | None) -> discord.ui.Item:
    if param.type == "image":
        return discord.ui.FileUpload(custom_id=name, required=param.required and value is None,
                                     min_values=0 if not param.required or value is not None else 1, max_values=1)
    if _fits_select(param, server_list):
        options = choice_options(param, value, server_list) if param.type == "choice" else [
            discord.SelectOption(label=label, value=label, default=value is flag)
            for label, flag in (("true", True), ("false", False))]
        return discord.ui.Select(custom_id=name, options=options, required=param.required,
                                 min_values=1 if param.required else 0, placeholder=placeholder_for(param, server_list))
    multiline = param.type == "text" and param.multiline
    max_length = min(param.max_length, TEXT_INPUT_LIMIT) if param.type == "text" else None
    min_length = min(param.min_length, TEXT_INPUT_LIMIT) if param.type == "text" and param.min_length else None
    return discord.ui.TextInput(
        custom_id=name, style=discord.TextStyle.paragraph if multiline else discord.TextStyle.short,
        default=prefill_text(param, value), required=param.required, max_length=max_length, min_length=min_length,
        placeholder=placeholder_for(param, server_list) or None)


def _server_list(param: Param, live: LiveChoices | None) -> Sequence[str] | None:
    return live(param.choices_from) if live and param.type == "choice" and param.choices_from else None


def check_fields(
    workflow: Workflow,
    raw: Mapping[str, Any],
    *,
    kept: Mapping[str, Any] | None = None,
    live: LiveChoices | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Coerce every submitted field; return (values, every problem as "name: problem")."""
    params, values, errors = workflow.manifest.params, {}, []
    for name, value in raw.items():
        param = params[name]
        value = (value or [None])[0] if isinstance(value, list) else value
        value = None if value == NONE_VALUE else value
        try:
            values[name] = _check_field(name, param, value, (kept or {}).get(name), live)
        except ParamError as exc:
            errors.append(str(exc))
    return values, errors


def _check_field(name: str, param: Param, value: Any, kept: Any, live: LiveChoices | None) -> Any:
    if param.type == "image":
        if value is None and kept is None and param.required:
            raise ParamError(name, "is required")
        return value if value is not None else kept
    if is_unset(value):
        if param.required:
            raise ParamError(name, "is required")
        return "" if param.type == "text" and value == "" else None
    return coerce_value(name, param, value, _server_list(param, live))


class ParamModal(discord.ui.Modal):
    """One page of params; on a clean submit calls ``on_values(interaction, values)``."""

    def __init__(
        self,
        workflow: Workflow,
        params: Sequence[str],
        values: Mapping[str, Any],
        *,
        title: str,
        custom_id: str,
        on_values: OnValues,
        live: LiveChoices | None = None,
        timeout: float | None = MODAL_TIMEOUT,
    ):
        if not 1 <= len(params) <= FIELDS_PER_MODAL:
            raise ValueError(f"a modal holds 1–{FIELDS_PER_MODAL} fields, not {len(params)}")
        super().__init__(title=clip(title, TITLE_LIMIT), custom_id=custom_id, timeout=timeout)
        self.workflow, self.on_values, self.live = workflow, on_values, live
        self.kept = {n: values.get(n) for n in params if workflow.manifest.params[n].type == "image"}
        self.inputs: dict[str, discord.ui.Item] = {}
        for name in params:
            param = workflow.manifest.params[name]
            field = _field(name, param, values.get(name), _server_list(param, live))
            self.inputs[name] = field
            self.add_item(discord.ui.Label(text=clip(param.label_for(name), LABEL_LIMIT), component=field,
                                           description=clip(param.description, DESCRIPTION_LIMIT) or None))

    def submitted(self) -> dict[str, Any]:
        """What the user entered, field by field (before checking)."""
        return {name: item.value if isinstance(item, discord.ui.TextInput) else list(item.values)
                for name, item in self.inputs.items()}

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.handle(interaction, self.submitted())

    async def handle(self, interaction: discord.Interaction, raw: Mapping[str, Any]) -> None:
        """Check ``raw`` (field → submitted value) and call the hook, or list every problem."""
        raw = {name: value for name, value in raw.items() if name in self.inputs}
        values, errors = check_fields(self.workflow, raw, kept=self.kept, live=self.live)
        if errors:
            await interaction.response.send_message("\n".join(errors)[:2000], ephemeral=True)
            return
        await self.on_values(interaction, values)


def settings_modals(
    workflow: Workflow,
    params: Sequence[str],
    values: Mapping[str, Any],
    *,
    on_values: OnValues,
    key: str,
    purpose: str = "set",
    title_prefix: str = "Settings",
    live: LiveChoices | None = None,
) -> list[ParamModal]:
    """``params`` split into modals of ≤ 5 fields, titled "Settings 1/2", ids ``dc:<purpose>:<key>:<page>~<nonce>``."""
    pages = [list(params[i:i + FIELDS_PER_MODAL]) for i in range(0, len(params), FIELDS_PER_MODAL)]
    return [ParamModal(workflow, page, values, title=page_title(title_prefix, number, len(pages)),
                       custom_id=ModalId(purpose, key, number, nonce=new_nonce()).to_custom_id(), on_values=on_values, live=live)
            for number, page in enumerate(pages, start=1)]
