"""Discord's limits on what the bot generates from manifests, and the texts it derives (no discord import).

The numbers come from docs/discord.md §2. ``engine validate`` checks manifests against them
before the bot builds anything, so a bad manifest fails in the terminal, not in ``tree.sync()``.
The bot must derive its texts with the functions below, so that what is validated is what is sent:

- slash option description: ``param.description_for(name)`` (description, else label, else the name)
- modal field label: ``param.label_for(name)`` (label, else the name)
- settings modal title: ``modal_title(manifest_title)`` (``"<title> settings"``)

Rules decided here (the bot follows them):
- The basic (non-advanced) params of one manifest, plus its image params (always attachments),
  are the options of that manifest's command or subcommand: at most ``MAX_OPTIONS``.
- Manifests sharing a ``command`` are its subcommands, next to the bot's ``SETUP_SUBCOMMAND``:
  at most ``MAX_SUBCOMMANDS - 1`` manifests, none named ``setup``. The group's description is
  ``group_description(titles)``. Distinct commands plus the bot's ``RESERVED_COMMANDS`` count
  against ``MAX_COMMANDS``, and no manifest command may take a reserved name.
- A required param must be a slash option (basic, or an image): the settings modal is optional.
- Static ``choices`` hold at most ``MAX_CHOICES`` entries whether the param is basic (slash option
  ``choices``) or advanced (a modal select); longer lists belong on the server (``choices_from``,
  served by autocomplete).
- Advanced text params are modal text inputs: ``max_length`` at most ``MAX_TEXT_INPUT_LENGTH``.
"""

from __future__ import annotations

from ..manifest.model import Param

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_OPTIONS",
    "MAX_CHOICES",
    "MAX_CHOICE_NAME_LENGTH",
    "MAX_CHOICE_VALUE_LENGTH",
    "MAX_SUBCOMMANDS",
    "MAX_COMMANDS",
    "MAX_COMMAND_SIZE",
    "MAX_MODAL_TITLE_LENGTH",
    "MAX_MODAL_COMPONENTS",
    "MAX_LABEL_LENGTH",
    "MAX_TEXT_INPUT_LENGTH",
    "MAX_STRING_OPTION_LENGTH",
    "MAX_INTEGER",
    "MAX_SELECT_OPTIONS",
    "MAX_CUSTOM_ID_LENGTH",
    "MAX_BUTTON_LABEL_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "DEFAULT_UPLOAD_LIMIT",
    "RESERVED_COMMANDS",
    "SETUP_SUBCOMMAND",
    "SETUP_DESCRIPTION",
    "MAX_MESSAGE_COMMANDS",
    "MAX_MENU_NAME_LENGTH",
    "group_description",
    "modal_title",
    "menu_name",
    "is_option",
]

MAX_NAME_LENGTH = 32             # command, subcommand and option names: ^[-_a-z0-9]{1,32}$ here
MAX_DESCRIPTION_LENGTH = 100     # command / option description, 1–100
MAX_OPTIONS = 25                 # options per command or subcommand
MAX_CHOICES = 25                 # static choices per option
MAX_CHOICE_NAME_LENGTH = 100
MAX_CHOICE_VALUE_LENGTH = 100    # string choice values
MAX_SUBCOMMANDS = 25             # subcommands per command (group)
MAX_COMMANDS = 100               # top-level CHAT_INPUT commands per scope
MAX_COMMAND_SIZE = 8000          # name+description+value characters of a whole command (older docs: 4000)
MAX_MODAL_TITLE_LENGTH = 45
MAX_MODAL_COMPONENTS = 5         # top-level components (Labels) per modal
MAX_LABEL_LENGTH = 45            # modal Label text
MAX_TEXT_INPUT_LENGTH = 4000     # modal TextInput max_length and value
MAX_STRING_OPTION_LENGTH = 6000  # slash STRING option max_length
MAX_INTEGER = 2**53 - 1          # slash INTEGER range is ±(2**53 - 1)
MAX_SELECT_OPTIONS = 25
MAX_CUSTOM_ID_LENGTH = 100
MAX_BUTTON_LABEL_LENGTH = 80
MAX_MESSAGE_LENGTH = 2000
MAX_MESSAGE_COMMANDS = 5         # message context-menu commands ("Apps") per application
MAX_MENU_NAME_LENGTH = 32        # a context-menu command's name (spaces and capitals allowed)
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

RESERVED_COMMANDS = ("help", "status", "workflows", "choices", "cancel", "jobs", "admin")  # the bot's built-in commands
SETUP_SUBCOMMAND = "setup"  # every group's guided setup subcommand
SETUP_DESCRIPTION = "Pick a workflow and its settings step by step"


def is_option(param: Param) -> bool:
    """Basic params and every upload param (an attachment: image, audio) are slash options."""
    return not param.advanced or param.is_upload


def group_description(titles: list[str]) -> str:
    """The description of a command whose manifests are subcommands (clipped to 100 characters)."""
    text = "Workflows: " + ", ".join(titles)
    return text if len(text) <= MAX_DESCRIPTION_LENGTH else text[: MAX_DESCRIPTION_LENGTH - 1] + "…"


def menu_name(manifest_title: str) -> str:
    """The name of a manifest's message context-menu command (its title)."""
    return manifest_title.strip()


def modal_title(manifest_title: str) -> str:
    """The title of a manifest's settings modal."""
    return f"{manifest_title} settings"
