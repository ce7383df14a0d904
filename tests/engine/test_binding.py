"""Bind paths resolve once, to concrete node inputs, by id or by title/class filter."""

from __future__ import annotations

import pytest

from engine.manifest.binding import BindError, Target, resolve_bind

from .builders import GRAPH


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ('$["4"].inputs.steps', [Target("4", "steps")]),
        ('$[?(@._meta.title == "Positive Prompt")].inputs.text', [Target("3", "text")]),
        ('$[?(@._meta.title == "Sampler")].inputs.seed', [Target("4", "seed")]),
        ('$[?(@.class_type == "EmptySD3LatentImage")].inputs.width', [Target("5", "width")]),
        ('$[?(@._meta.title =~ "(?i)positive")].inputs.text', [Target("3", "text")]),
        ('$.*.inputs.filename_prefix', [Target("6", "filename_prefix")]),
        ('$["99"].inputs.steps', []),
        ('$["4"].inputs.nope', []),
    ],
)
def test_resolves_to_targets(path, expected):
    assert resolve_bind(GRAPH, path) == expected


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ('$["4"].inputs.model', "link to another node"),
        ('$["4"]', "must end at a node input"),
        ('$["4"].inputs', "must end at a node input"),
        ("$[[[", "not a valid JSONPath"),
    ],
)
def test_rejects_paths_that_are_not_value_inputs(path, problem):
    with pytest.raises(BindError, match=problem):
        resolve_bind(GRAPH, path)


def test_resolution_does_not_touch_the_graph():
    import copy

    before = copy.deepcopy(GRAPH)
    resolve_bind(GRAPH, '$[?(@._meta.title == "Sampler")].inputs.seed')
    assert GRAPH == before
