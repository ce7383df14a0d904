"""Modals generated from manifest params: pages of ≤ 5 labelled fields, each read by its param.

Each param becomes a ``discord.ui.Label`` (text ≤ 45, description ≤ 100) around the input its
kind gets (``bot.widgets``): a ``TextInput`` whose placeholder is the param's rule, a ``Select``
or a ``FileUpload``. Fields are prefilled with the current values.

On submit every field goes through its param's ``read`` and ALL problems are answered
in one ephemeral message ("steps: must be ≤ 150"); only clean values reach the ``on_values``
hook, ``await on_values(interaction, values)``. In ``values`` an unset field is ``None`` (the
engine then uses the default; an emptied optional text stays ``""``) and an upload param holds
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

from engine import Param, ParamError, Workflow, discord_limits as limits

from ..delivery.render import clip
from ..widgets import NONE_VALUE, LiveChoices, server_list, widget_for

__all__ = [
    "FIELDS_PER_MODAL",
    "OnValues",
    "ModalId",
    "ParamModal",
    "parse_modal_custom_id",
    "new_nonce",
    "from_earlier_run",
    "raw_modal_values",
    "settings_modals",
    "check_fields",
    "page_title",
]

FIELDS_PER_MODAL = limits.MAX_MODAL_COMPONENTS
TITLE_LIMIT, LABEL_LIMIT = limits.MAX_MODAL_TITLE_LENGTH, limits.MAX_LABEL_LENGTH
DESCRIPTION_LIMIT = limits.MAX_DESCRIPTION_LENGTH
MODAL_TIMEOUT = 3600.0  # users may write a long prompt; the submit is a fresh interaction

OnValues = Callable[[discord.Interaction, dict[str, Any]], Awaitable[None]]

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
    if param.is_upload:  # an upload (a discord.Attachment), else the file kept from before
        if value is None and kept is None and param.required:
            raise ParamError(name, "is required")
        return value if value is not None else kept
    return param.read(name, value, server_list(param, live))


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
        self.kept = {n: values.get(n) for n in params if workflow.manifest.params[n].is_upload}
        self.inputs: dict[str, discord.ui.Item] = {}
        for name in params:
            param = workflow.manifest.params[name]
            field = widget_for(param).field(name, param, values.get(name), server_list(param, live))
            self.inputs[name] = field
            self.add_item(discord.ui.Label(text=clip(param.label_for(name), LABEL_LIMIT), component=field,
                                           description=clip(param.description, DESCRIPTION_LIMIT) or None))

    def submitted(self) -> dict[str, Any]:
        """What the user entered, field by field (before checking): text, or the picked values."""
        return {name: item.value if isinstance(item, discord.ui.TextInput) else list(getattr(item, "values", ()))
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
