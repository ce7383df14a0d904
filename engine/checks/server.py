"""Checks of a manifest and its workflow against a server's ``/object_info`` (pure).

Graph level: node classes are installed, literal values of combo inputs are in the server's lists,
output nodes save something. Param level: bound inputs exist, their type fits the param type,
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
from ..manifest.model import MAX_SEED, Param
from ..manifest.values import live_choices
from ..manifest.source import YamlSource

__all__ = ["graph_issues", "param_issues", "output_issues"]

# Which ComfyUI input types a param type may be bound to ("*" accepts anything).
_FITS = {
    "int": {"INT", "FLOAT"},
    "seed": {"INT"},
    "float": {"FLOAT"},
    "text": {"STRING"},
    "bool": {"BOOLEAN"},
    "choice": {"COMBO"},
    "image": {"COMBO"},
}


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


def _fits(param: Param, kind: str) -> bool:
    if kind == "*" or kind in _FITS[param.type]:
        return True
    if param.type == "choice" and param.choices is not None:
        check = {"INT": lambda v: isinstance(v, int), "FLOAT": lambda v: isinstance(v, (int, float)),
                 "STRING": lambda v: isinstance(v, str)}.get(kind)
        return check is not None and all(check(c.value) for c in param.choices)
    return param.type == "choice" and kind == "STRING"


def _range_issues(src: YamlSource, name: str, param: Param, where: str, spec: list) -> list[Issue]:
    options = spec_options(spec)
    low, high = options.get("min"), options.get("max")
    issues = []

    def outside(key: str, value) -> None:
        if value is None or not isinstance(value, (int, float)):
            return
        if isinstance(low, (int, float)) and value < low or isinstance(high, (int, float)) and value > high:
            issues.append(src.issue(("params", name, key), name, f"{key} {value} is outside {where}'s range "
                                    f"{low}–{high}", "range"))

    if param.type == "seed":
        if isinstance(high, (int, float)) and high < MAX_SEED:
            issues.append(src.issue(("params", name, "type"), name, f"random seeds go up to {MAX_SEED} but {where} "
                                    f"accepts at most {high}", "range"))
        outside("default", None if param.default == -1 else param.default)
    elif param.type in ("int", "float"):
        for key in ("min", "max", "default"):
            outside(key, getattr(param, key))
    return issues


def _choice_issues(src: YamlSource, name: str, param: Param, where: str, options: list) -> list[Issue]:
    issues = []
    if param.type == "choice" and param.choices is not None:
        issues += [src.issue(("params", name, "choices", i), name, f"choice {c.value!r} is not in {where}'s list "
                             "on the server", "value_unavailable")
                   for i, c in enumerate(param.choices) if c.value not in options]
    if param.default is not None and not (param.type == "choice" and param.choices_from) and param.default not in options:
        issues.append(src.issue(("params", name, "default"), name, f"default {param.default!r} is not in {where}'s "
                                "list on the server", "value_unavailable"))
    return issues


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
    if not _fits(param, kind):
        return [src.issue(("params", name, "type"), name, f"type {param.type} does not fit {where}, which takes "
                          f"{kind}", "type_mismatch")]
    options = combo_values(spec)
    issues = _range_issues(src, name, param, where, spec)
    if options is not None:
        issues += _choice_issues(src, name, param, where, options)
    return issues


def _source_issues(src: YamlSource, name: str, param: Param, object_info: Mapping) -> list[Issue]:
    """``choices_from`` must name a combo input on the server; its filter and default must match it."""
    loc = ("params", name, "choices_from")
    spec = input_spec(object_info.get(param.source_class), param.source_input)
    if param.source_class not in object_info:
        return [src.issue(loc, name, f"choices_from: class {param.source_class!r} is not installed on the server",
                          "class_missing")]
    options = combo_values(spec) if spec else None
    if options is None:
        what = "has no input" if spec is None else "has no list at"
        return [src.issue(loc, name, f"choices_from: {param.source_class} {what} {param.source_input!r}",
                          "choices_source")]
    offered = live_choices(param, options)
    issues = []
    if param.filter is not None and not offered:
        issues.append(src.issue(("params", name, "filter"), name, f"filter matches none of the {len(options)} values "
                                f"of {param.choices_from} on the server", "value_unavailable"))
    if param.default is not None and param.default not in offered:
        issues.append(src.issue(("params", name, "default"), name, f"default {param.default!r} is not in "
                                f"{param.choices_from} on the server", "value_unavailable"))
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
    if info is None:
        return []
    outputs = list(info.get("output") or [])
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
    if param.type == "choice" and param.choices_from:
        issues += _source_issues(src, name, param, object_info)
    if param.when_unset == "bypass":
        for node_id in dict.fromkeys(t.node_id for t in targets):
            issues += _bypass_issues(src, name, node_id, graph, object_info)
    return list(dict.fromkeys(issues))
