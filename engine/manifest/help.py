"""Terminal help for a manifest's parameters, derived from the same ``Param`` model as everything else."""

from __future__ import annotations

from .catalog import Workflow
from .model import Param

__all__ = ["param_rule", "params_help"]


def param_rule(param: Param) -> str:
    """What a value must look like: ``int 1–150, default 30``, ``one of euler, heun``, …"""
    match param.type:
        case "int" | "float":
            low = "" if param.min is None else param.min
            high = "" if param.max is None else param.max
            rule = f"{param.type} {low}–{high}" if low != "" or high != "" else param.type
        case "text":
            rule = f"text, ≤ {param.max_length} characters"
        case "choice" if param.choices is not None:
            rule = "one of " + ", ".join(str(c.value) if c.name == str(c.value) else f"{c.value} ({c.name})"
                                         for c in param.choices)
        case "choice":
            rule = f"from the server's {param.choices_from}" + (f" matching /{param.filter}/" if param.filter else "")
        case "seed":
            rule = f"seed 0–{param.max}, -1 or unset: random"
        case "image":
            rule = "image file (--image NAME=PATH)"
        case _:
            rule = "true or false"
    if param.required:
        return rule + ", required"
    if param.default is not None:
        return f"{rule}, default {param.default}"
    return rule + (", unset: node bypassed" if param.when_unset == "bypass" else "")


def params_help(workflow: Workflow) -> str:
    """One line per parameter: name, rule, description — for ``engine run MANIFEST --help``."""
    manifest = workflow.manifest
    lines = [f"{manifest.title} ({manifest.name}): {manifest.description}", "", "parameters (--set NAME=VALUE):"]
    width = max((len(name) for name in manifest.params), default=0)
    for name, param in manifest.params.items():
        advanced = " [advanced]" if param.advanced else ""
        lines.append(f"  {name:<{width}}  {param.description_for(name)}{advanced}")
        lines.append(f"  {'':<{width}}  {param_rule(param)}")
    return "\n".join(lines)
