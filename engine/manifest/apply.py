"""``apply_params``: a workflow plus user values → the concrete graph to queue (pure).

The template is never mutated: the returned graph shares untouched nodes with it and gets fresh
copies of every node it writes to (copy-on-write), which keeps a job's preparation in microseconds.
Optional params with ``when_unset: bypass`` and no value splice their bound nodes out of the graph.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .binding import is_link
from .catalog import Workflow
from ..errors import ParamError
from .values import coerce_value, is_unset

__all__ = ["Applied", "apply_params", "resolve_values", "bypass_node"]


@dataclass(frozen=True)
class Applied:
    """The concrete graph for one job and the values it was built from (random seeds drawn)."""

    graph: dict
    values: dict[str, Any]
    bypassed: tuple[str, ...] = ()


def resolve_values(
    workflow: Workflow,
    values: Mapping[str, Any],
    *,
    live: Mapping[str, Sequence[Any]] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Check and coerce ``values``, fill defaults, draw random seeds.

    Params left unset without a default keep the workflow's own value and are absent from the
    result (or trigger a bypass). ``live`` maps a ``choices_from`` source to the server's list.
    """
    params = workflow.manifest.params
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ParamError(unknown[0], "is not a parameter of this workflow")
    resolved: dict[str, Any] = {}
    for name, param in params.items():
        raw = values.get(name)
        if raw is None or is_unset(raw) and (param.type != "text" or param.required):
            raw = param.default
        if param.type == "seed" and (raw is None or raw == -1 or raw == "-1"):
            resolved[name] = (rng or random).randint(0, param.max)
            continue
        if raw is None:
            if param.required:
                raise ParamError(name, "is required")
            continue
        server_list = live.get(param.choices_from) if live and param.type == "choice" else None
        resolved[name] = coerce_value(name, param, raw, server_list)
    return resolved


def bypass_node(graph: dict, node_id: str, link_inputs: Iterable[tuple[str, str]]) -> None:
    """Splice ``node_id`` out of ``graph`` in place; ``graph`` must be a copy owned by the caller
    (touched nodes are copied here). ``link_inputs`` lists where links may sit.

    Output slot k of the removed node is replaced by the node's k-th linked input (pass-through
    nodes such as LoRA loaders list their inputs in output order: model → MODEL, clip → CLIP);
    a consumer whose slot has no such input loses that input (it must be optional).
    """
    node = graph.pop(node_id)
    passthrough = [v for v in node["inputs"].values() if is_link(v)]
    for consumer_id, input_name in link_inputs:
        consumer = graph.get(consumer_id)
        value = consumer["inputs"].get(input_name) if consumer else None
        if not (value and value[0] == node_id):
            continue
        consumer = graph[consumer_id] = {**consumer, "inputs": dict(consumer["inputs"])}
        if value[1] < len(passthrough):
            consumer["inputs"][input_name] = list(passthrough[value[1]])
        else:
            del consumer["inputs"][input_name]


def apply_params(
    workflow: Workflow,
    values: Mapping[str, Any],
    *,
    live: Mapping[str, Sequence[Any]] | None = None,
    rng: random.Random | None = None,
) -> Applied:
    """Validate ``values`` and return the concrete graph plus the resolved values."""
    resolved = resolve_values(workflow, values, live=live, rng=rng)
    graph = dict(workflow.graph)
    owned: set[str] = set()
    for name, value in resolved.items():
        for target in workflow.targets[name]:
            if target.node_id not in owned:
                node = graph[target.node_id]
                graph[target.node_id] = {**node, "inputs": dict(node["inputs"])}
                owned.add(target.node_id)
            graph[target.node_id]["inputs"][target.input_name] = value
    bypassed = []
    for name, param in workflow.manifest.params.items():
        if param.when_unset == "bypass" and name not in resolved:
            for target in workflow.targets[name]:
                if target.node_id in graph:
                    bypass_node(graph, target.node_id, workflow.link_inputs)
                    bypassed.append(target.node_id)
    return Applied(graph, resolved, tuple(bypassed))
