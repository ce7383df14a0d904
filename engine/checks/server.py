"""Checks of a manifest and its workflow against a server's ``/object_info`` (pure).

Graph level: node classes are installed, literal values of combo inputs are in the server's lists,
output nodes save something. Param level: bound inputs exist, their type fits the param type
(an upload param's input is a loader's upload combo: ``image_upload``, ``audio_upload``),
ranges and defaults fit the input, static and dynamic choice lists match the server, and
``when_unset: bypass`` can splice the bound node out (see ``apply.bypass_node``).

Workflow problems are reported at the manifest's ``workflow:`` key with the node id, since the
graph is JSON without useful positions.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..comfy.object_info import combo_values, input_spec, is_optional, is_output_node, spec_options, spec_type
from ..errors import Issue
from ..manifest.binding import Target, is_link
from ..manifest.model import Param
from ..manifest.source import YamlSource

__all__ = ["graph_issues", "param_issues", "output_issues"]

def _node_label(graph: Mapping, node_id: str) -> str:
    return f"node {node_id} ({graph[node_id].get('class_type')})"


def graph_issues(src: YamlSource, graph: Mapping, object_info: Mapping, overridden: set[Target]) -> list[Issue]:
    """Missing node classes and literal combo values the server does not offer.

    ``overridden`` inputs are always set from a param (or their node is bypassed), so their
    literal never reaches the server and is not checked.
    """
    issues = []
    for node_id, node in graph.items():
        cls = node.get("class_type")
        info = object_info.get(cls)
        if info is None:
            issues.append(src.issue(("workflow",), "", f"{_node_label(graph, node_id)}: class {cls!r} is not "
                                    "installed on the server", "class_missing"))
            continue
        for input_name, value in node.get("inputs", {}).items():
            spec = input_spec(info, input_name)
            options = combo_values(spec) if spec else None
            if options is None or is_link(value) or Target(node_id, input_name) in overridden:
                continue
            if any(v not in options for v in (value if isinstance(value, list) else [value])):  # lists: multiselect
                issues.append(src.issue(("workflow",), "", f"{_node_label(graph, node_id)} input {input_name}: "
                                        f"{value!r} is not available on the server", "value_unavailable"))
    return issues


def output_issues(src: YamlSource, graph: Mapping, outputs: list[str], object_info: Mapping) -> list[Issue]:
    """Declared outputs must be output nodes; without declared outputs the graph needs one."""
    def saves(node_id: str) -> bool:
        info = object_info.get(graph[node_id].get("class_type"))
        return info is None or is_output_node(info)  # a missing class is reported elsewhere

    if not outputs:
        if not any(saves(n) for n in graph):
            return [src.issue(("workflow",), "", "the workflow has no output node (Save…/Preview…)", "no_output")]
        return []
    return [src.issue(("outputs", i), "", f"{_node_label(graph, n)} is not an output node; it produces no files",
                      "output_not_saving") for i, n in enumerate(outputs) if n in graph and not saves(n)]


def _range_issues(src: YamlSource, name: str, param: Param, where: str, spec: list) -> list[Issue]:
    """The param's own numbers (``min``, ``max``, ``default``) must lie within the input's range."""
    options = spec_options(spec)
    low, high = options.get("min"), options.get("max")
    low = low if isinstance(low, (int, float)) else None
    high = high if isinstance(high, (int, float)) else None
    return [src.issue(("params", name, key), name, f"{key} {value} is outside {where}'s range {low}–{high}", "range")
            for key, value in param.bounds().items()
            if low is not None and value < low or high is not None and value > high]


def _choice_issues(src: YamlSource, name: str, param: Param, where: str, options: list) -> list[Issue]:
    """Static choices and defaults must be in the bound combo input's list."""
    return [src.issue(("params", name, *key), name, f"{what} {value!r} is not in {where}'s list on the server",
                      "value_unavailable")
            for key, what, value in param.listed_values() if value not in options]


def _input_kind(kind: str, options: Mapping[str, Any]) -> str:
    """``INT``, ``COMBO``, ``COMBO (audio_upload)``: an input's type as its spec declares it."""
    flags = [key for key, flag in options.items() if key.endswith("_upload") and flag is True]
    return f"{kind} ({', '.join(flags)})" if flags else kind


def _target_issues(src: YamlSource, name: str, param: Param, target: Target, graph: Mapping, object_info: Mapping) -> list[Issue]:
    cls = graph[target.node_id].get("class_type")
    info = object_info.get(cls)
    if info is None:
        return []  # reported once by graph_issues
    where = f"{cls}.{target.input_name}"
    spec = input_spec(info, target.input_name)
    if spec is None:
        return [src.issue(("params", name, "bind"), name, f"{_node_label(graph, target.node_id)} has no input "
                          f"{target.input_name!r} on the server", "input_missing")]
    kind = spec_type(spec)
    if not param.fits(kind, spec_options(spec)):
        return [src.issue(("params", name, "type"), name, f"type {param.type} does not fit {where}, which takes "
                          f"{_input_kind(kind, spec_options(spec))}", "type_mismatch")]
    options = combo_values(spec)
    issues = _range_issues(src, name, param, where, spec)
    if options is not None:
        issues += _choice_issues(src, name, param, where, options)
    return issues


def _source_issues(src: YamlSource, name: str, param: Param, source: str, object_info: Mapping) -> list[Issue]:
    """``choices_from`` must name a combo input on the server; its filter and default must match it."""
    loc = ("params", name, "choices_from")
    source_class, _, source_input = source.rpartition(".")
    if source_class not in object_info:
        return [src.issue(loc, name, f"choices_from: class {source_class!r} is not installed on the server",
                          "class_missing")]
    spec = input_spec(object_info.get(source_class), source_input)
    options = combo_values(spec) if spec else None
    if options is None:
        what = "has no input" if spec is None else "has no list at"
        return [src.issue(loc, name, f"choices_from: {source_class} {what} {source_input!r}", "choices_source")]
    offered = param.offered(options)
    issues = []
    if options and not offered:
        issues.append(src.issue(("params", name, "filter"), name, f"filter matches none of the {len(options)} values "
                                f"of {source} on the server", "value_unavailable"))
    if param.default is not None and param.default not in offered:
        issues.append(src.issue(("params", name, "default"), name, f"default {param.default!r} is not in "
                                f"{source} on the server", "value_unavailable"))
    return issues


def _consumers(graph: Mapping, node_id: str) -> Iterable[tuple[str, str, int]]:
    for consumer_id, node in graph.items():
        for input_name, value in node.get("inputs", {}).items():
            if is_link(value) and value[0] == node_id:
                yield consumer_id, input_name, value[1]


def _bypass_issues(src: YamlSource, name: str, node_id: str, graph: Mapping, object_info: Mapping) -> list[Issue]:
    """Output k of the spliced node is replaced by its k-th linked input; a consumer of an output
    without such input loses that input, which must then be optional."""
    node = graph[node_id]
    info = object_info.get(node.get("class_type"))
    if not isinstance(info, Mapping):
        return []
    listed = info.get("output")
    outputs: list[Any] = listed if isinstance(listed, list) else []
    passthrough = [input_name for input_name, value in node["inputs"].items() if is_link(value)]
    loc, issues = ("params", name, "when_unset"), []
    for consumer_id, input_name, slot in _consumers(graph, node_id):
        consumer = f"{_node_label(graph, consumer_id)}.{input_name}"
        if slot < len(passthrough):
            spec = input_spec(info, passthrough[slot])
            fed = spec_type(spec) if spec else "?"
            wanted = outputs[slot] if slot < len(outputs) else "?"
            if fed != wanted:
                issues.append(src.issue(loc, name, f"bypassing {_node_label(graph, node_id)} would feed its input "
                                        f"{passthrough[slot]} ({fed}) into {consumer}, which expects {wanted}", "bypass"))
        elif not is_optional(object_info.get(graph[consumer_id].get("class_type")), input_name):
            issues.append(src.issue(loc, name, f"bypassing {_node_label(graph, node_id)} would leave required input "
                                    f"{consumer} unconnected", "bypass"))
    return issues


def param_issues(src: YamlSource, name: str, param: Param, targets: Iterable[Target], graph: Mapping,
                 object_info: Mapping) -> list[Issue]:
    """Every server-dependent problem of one param."""
    targets = list(targets)
    issues = []
    for target in targets:
        issues += _target_issues(src, name, param, target, graph, object_info)
    if param.live_source is not None:
        issues += _source_issues(src, name, param, param.live_source, object_info)
    if param.when_unset == "bypass":
        for node_id in dict.fromkeys(t.node_id for t in targets):
            issues += _bypass_issues(src, name, node_id, graph, object_info)
    return list(dict.fromkeys(issues))
