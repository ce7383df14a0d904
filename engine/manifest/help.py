"""Terminal help for a manifest's parameters, derived from the same ``Param`` model as everything else."""

from __future__ import annotations

from .catalog import Workflow

__all__ = ["params_help"]


def params_help(workflow: Workflow) -> str:
    """One line per parameter: name, rule, description — for ``engine run MANIFEST --help``."""
    manifest = workflow.manifest
    lines = [f"{manifest.title} ({manifest.name}): {manifest.description}", "", "parameters (--set NAME=VALUE):"]
    width = max((len(name) for name in manifest.params), default=0)
    for name, param in manifest.params.items():
        advanced = " [advanced]" if param.advanced else ""
        lines.append(f"  {name:<{width}}  {param.description_for(name)}{advanced}")
        lines.append(f"  {'':<{width}}  {param.rule()}")
    return "\n".join(lines)
