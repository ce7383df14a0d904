"""The slash-command surface: generated commands and options, and the static commands."""
