"""A workflow plus user values → the concrete graph to queue (pure).

- ``prepare``: the one check of a job's values (``resolve_values``) and the graph built from them
  (``build_graph``); random seeds stay unset until the server that runs the job is known, then
  ``draw_seeds`` draws them within what that server's inputs accept and ``bind_values`` writes
  them (and the uploaded files' names) into the graph.
- ``apply_params``: all of it at once (engine tests, benchmarks, ``engine validate``'s checks).

The template is never mutated: the returned graph shares untouched nodes with it and gets fresh
copies of every node it writes to (copy-on-write), which keeps a job's preparation in microseconds.
Optional params with ``when_unset: bypass`` and no value splice their bound nodes out of the graph.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ParamError
from .binding import is_link
from .catalog import Workflow

__all__ = ["Applied", "Prepared", "UPLOAD_PLACEHOLDER", "apply_params", "bind_values", "build_graph", "bypass_node",
           "draw_seeds", "prepare", "resolve_values"]

UPLOAD_PLACEHOLDER = "upload.png"  # an upload param's value until the upload names the file on the server


@dataclass(frozen=True)
class Applied:
    """The concrete graph for one job and the values it was built from (random seeds drawn)."""

    graph: dict
    values: dict[str, Any]
    bypassed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A job's values, checked once (``prepare``): what ``Runtime.start`` runs.

    ``values`` are resolved (defaults filled; unset random seeds absent: they are drawn on the
    server that runs the job); ``graph`` is built from them (for routing); ``uploads`` names the
    upload params that expect an uploaded file."""

    workflow: Workflow
    values: dict[str, Any]
    graph: dict
    uploads: tuple[str, ...] = ()


def resolve_values(
    workflow: Workflow,
    values: Mapping[str, Any],
    *,
    live: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Check and coerce ``values`` and fill defaults: the one validation of a job's values.

    Params left unset without a default are absent from the result: they keep the workflow's own
    value, trigger a bypass, or (seeds) get a random value from ``draw_seeds`` once the server
    that runs the job is known. ``live`` maps a ``choices_from`` source to the server's list.
    """
    params = workflow.manifest.params
    if not values.keys() <= params.keys():
        raise ParamError(sorted(set(values) - set(params))[0], "is not a parameter of this workflow")
    resolved: dict[str, Any] = {}
    for name, param in params.items():
        server_list = live.get(param.live_source or "") if live else None
        value = param.resolve(name, values.get(name), server_list)
        if value is not None:
            resolved[name] = value
    return resolved


def draw_seeds(workflow: Workflow, values: Mapping[str, Any], *, object_info: Mapping[str, Any] | None = None,
               rng: random.Random | None = None) -> dict[str, Any]:
    """``values`` plus a random value for every unset seed, each within what its bound inputs
    accept on the server whose ``object_info`` is given (and the manifest's own ``max``)."""
    drawn = dict(values)
    for name in workflow.random_params:
        if name not in drawn:
            drawn[name] = workflow.manifest.params[name].draw(rng, workflow.input_limit(name, object_info))
    return drawn


def prepare(workflow: Workflow, values: Mapping[str, Any], *, uploads: Iterable[str] = (),
            live: Mapping[str, Sequence[Any]] | None = None) -> Prepared:
    """Check ``values`` once (``ParamError``) and build the graph; ``uploads`` are the upload params
    (images, audio) whose file will be given to ``Runtime.start`` (their values here are placeholders)."""
    uploads = tuple(dict.fromkeys(uploads))
    not_files = [name for name in uploads if name not in workflow.manifest.upload_params]
    if not_files:
        raise ParamError(not_files[0], "is not a file parameter of this workflow")
    resolved = resolve_values(workflow, {**values, **dict.fromkeys(uploads, UPLOAD_PLACEHOLDER)}, live=live)
    return Prepared(workflow, resolved, build_graph(workflow, resolved).graph, uploads)


def bind_values(workflow: Workflow, graph: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """``graph`` with each param's bound inputs set to its value in ``values`` (nodes copied, not mutated)."""
    result = dict(graph)
    for param, value in values.items():
        for target in workflow.targets.get(param, ()):
            node = result.get(target.node_id)
            if node is not None:
                result[target.node_id] = {**node, "inputs": {**node["inputs"], target.input_name: value}}
    return result


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
        if consumer is None or not (value and value[0] == node_id):
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
    object_info: Mapping[str, Any] | None = None,
) -> Applied:
    """Validate ``values``, draw random seeds, and return the concrete graph plus the values used."""
    resolved = draw_seeds(workflow, resolve_values(workflow, values, live=live), object_info=object_info, rng=rng)
    return build_graph(workflow, resolved)


def build_graph(workflow: Workflow, resolved: dict[str, Any]) -> Applied:
    """The concrete graph for already resolved values (no checks): values written to their bound
    inputs, unset ``when_unset: bypass`` params' nodes spliced out."""
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
