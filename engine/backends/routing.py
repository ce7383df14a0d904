"""Routing rules for the backend pool (pure, no I/O): which servers can run a graph, best first.

``graph_requirements`` lists the node classes and literal input values of a concrete graph;
``missing_on`` says what a server's ``object_info`` lacks: a node class, or a combo value such as
a model file (upload combos like ``LoadImage.image`` are exempt: the upload happens right before
queueing); ``rank_backends`` keeps the up candidates that have everything, shortest queue first;
``no_backend_reason`` explains an empty ranking ("no server has node X").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..comfy.object_info import combo_choices

__all__ = [
    "Candidate",
    "Requirements",
    "graph_requirements",
    "missing_on",
    "no_backend_reason",
    "rank_backends",
]


@dataclass(frozen=True)
class Requirements:
    """What a concrete graph needs from a server: node classes and (class, input, value) literals."""

    classes: frozenset[str]
    literals: tuple[tuple[str, str, Any], ...]


class Candidate(Protocol):
    """What routing reads of a backend (``engine.backends.Backend`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def up(self) -> bool: ...

    @property
    def load(self) -> int: ...

    @property
    def object_info(self) -> Mapping[str, Any]: ...


C = TypeVar("C", bound=Candidate)


def graph_requirements(graph: Mapping[str, Any]) -> Requirements:
    """Node classes and literal (non-link, hashable scalar) input values of ``graph``."""
    classes, literals = set(), []
    for node in graph.values():
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if not isinstance(class_type, str):
            continue
        classes.add(class_type)
        inputs = node.get("inputs")
        for name, value in (inputs.items() if isinstance(inputs, Mapping) else ()):
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                literals.append((class_type, str(name), value))
    return Requirements(frozenset(classes), tuple(literals))


def missing_on(object_info: Mapping[str, Any], needs: Requirements) -> str | None:
    """What ``object_info`` lacks for ``needs`` (first problem, as a short text), or None."""
    for class_type in sorted(needs.classes):
        if class_type not in object_info:
            return f"node {class_type}"
    for class_type, input_name, value in needs.literals:
        allowed = combo_choices(object_info, class_type, input_name, include_uploads=False)
        if allowed is not None and value not in allowed:
            return f"model {value} for {input_name}" if isinstance(value, str) else f"value {value} for {input_name}"
    return None


def rank_backends(candidates: Iterable[C], needs: Requirements) -> list[C]:
    """Up candidates that have everything ``needs`` asks for, shortest queue first (then by name)."""
    fit = [c for c in candidates if c.up and missing_on(c.object_info, needs) is None]
    return sorted(fit, key=lambda c: (c.load, c.name))


def no_backend_reason(candidates: Sequence[Candidate], needs: Requirements) -> str:
    """Why ``rank_backends`` found nothing: "no server is up", "no server has node X", ..."""
    up = [c for c in candidates if c.up]
    if not up:
        return "no server is up"
    lacks = {c.name: missing_on(c.object_info, needs) for c in up}
    lacks = {name: what for name, what in lacks.items() if what is not None}
    if len(set(lacks.values())) == 1:
        return f"no server has {next(iter(lacks.values()))}"
    return "no server has everything this workflow needs (" + "; ".join(
        f"{name} lacks {what}" for name, what in sorted(lacks.items())) + ")"
