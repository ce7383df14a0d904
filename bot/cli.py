"""The ``discomfy`` console script.

- ``discomfy commands [--json] [--manifests DIR] [--workflows DIR] [--budget N]`` builds the slash commands
  offline and prints them (``--json``: exactly the body ``tree.sync()`` would PUT). Exit 1 when a
  manifest failed to load or the payload breaks a Discord limit (findings on stderr), 2 on usage.
- ``discomfy check [--config FILE] [--quick]`` looks at the settings, the token, every backend, every
  manifest against the live servers and the storage, and prints a table; exit 1 when anything failed
  (``--quick``: settings, backends reachable, storage — the container healthcheck).
- ``discomfy run [--config FILE]`` runs the same checks, then starts the bot (``bot.app.run_bot``, imported only then); exit 2 when
  the settings are unusable (every problem on stderr, never the token).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .commands.payload_limits import MAX_COMMAND_CHARS

__all__ = ["main", "BUNDLED_MANIFESTS"]

BUNDLED_MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="discomfy", description="ComfyUI workflows as Discord commands")
    sub = parser.add_subparsers(dest="action", required=True)
    commands = sub.add_parser("commands", help="print the generated slash commands (offline)")
    commands.add_argument("--json", action="store_true", help="the exact tree.sync() payload")
    commands.add_argument("--manifests", type=Path, default=BUNDLED_MANIFESTS, help="manifest folder")
    commands.add_argument("--workflows", type=Path, default=None, help="workflow folder (default: ../workflows)")
    commands.add_argument("--budget", type=int, default=MAX_COMMAND_CHARS,
                          help=f"characters allowed per command (default {MAX_COMMAND_CHARS}; older Discord docs: 4000)")
    check = sub.add_parser("check", help="check the settings, token, servers, manifests and storage")
    check.add_argument("--config", type=Path, default=None, help="TOML settings file (default: $DISCOMFY_CONFIG)")
    check.add_argument("--quick", action="store_true", help="skip the token and manifest checks (healthcheck)")
    run = sub.add_parser("run", help="start the bot")
    run.add_argument("--config", type=Path, default=None, help="TOML settings file (default: $DISCOMFY_CONFIG)")
    return parser


def _outline(payload: list[dict]) -> str:
    lines = []
    for command in payload:
        subs = [o for o in command.get("options", []) if o.get("type") == 1]
        for path, options in ([(f"/{command['name']} {s['name']}", s.get("options", [])) for s in subs]
                              or [(f"/{command['name']}", command.get("options", []))]):
            shown = " ".join(o["name"] + ("" if o.get("required") else "?") for o in options)
            lines.append(f"{path} {shown}".rstrip())
    return "\n".join(lines)


def _commands(args: argparse.Namespace) -> int:
    from discord import app_commands

    from engine import limits_from_env, load_catalog

    from .commands.slash import build_commands, command_payload, inert_hooks
    from .commands.payload_limits import check_payload

    if not args.manifests.is_dir():
        print(f"discomfy: no manifest folder {args.manifests}", file=sys.stderr)
        return 2
    try:
        limits = limits_from_env()  # the same DISCOMFY_MAX_* variables the bot and `engine` read
    except ValueError as exc:
        print(f"discomfy: {exc}", file=sys.stderr)
        return 2
    catalog = load_catalog([args.manifests], args.workflows, limits=limits)
    for issue in catalog.issues:
        print(f"manifest: {issue}", file=sys.stderr)
    try:
        payload = command_payload(build_commands(catalog, inert_hooks()))
    except app_commands.AppCommandError as exc:  # e.g. more than 100 top-level commands
        print(f"discord: {exc}", file=sys.stderr)
        return 1
    findings = check_payload(payload, size_budget=args.budget)
    print(json.dumps(payload, indent=2, ensure_ascii=False) if args.json else _outline(payload))
    for finding in findings:
        print(f"discord limit: {finding}", file=sys.stderr)
    return 1 if findings or catalog.issues else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "commands":
        return _commands(args)
    if args.action == "check":
        from .check import check_command

        code, table = check_command(args.config, quick=args.quick, color=sys.stdout.isatty())
        print(table, end="")
        return code
    from .app import run_bot  # the bot itself; imported only here so `commands` works without it

    return run_bot(args.config)


if __name__ == "__main__":
    sys.exit(main())
