"""Synchronous prompt validation of the fake ComfyUI, driven by the object_info snapshot.

Produces the recorded 400 shapes (docs/comfyui-protocol.md §2): ``invalid_prompt`` for a missing/unknown
``class_type``, ``prompt_no_outputs``, and ``prompt_outputs_failed_validation`` with per-node
errors (required_input_missing, invalid_input_type, value_smaller_than_min,
value_bigger_than_max, value_not_in_list, custom_validation_failed for LoadImage and LoadAudio,
return_type_mismatch, exception_during_validation). One valid output among invalid ones is
accepted with the other outputs' errors in ``node_errors``. Like the real server (0.3.64), only
old-style list combos are checked against their choices: a v3 ``COMBO`` takes any value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Verdict", "validate_prompt", "top_error"]

_CONVERT: dict[str, Callable[[object], object]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
_LOADERS = {("LoadImage", "image"): "image", ("LoadAudio", "audio"): "audio"}  # input → what its file is


@dataclass
class Verdict:
    """Outcome of validation: ``error`` is None when at least one output can run."""

    error: dict | None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict = field(default_factory=dict)


def top_error(kind: str, message: str, details: str = "") -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _error(kind: str, message: str, details: str, **extra: object) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _is_link(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _types_match(received: object, expected: object) -> bool:
    if not isinstance(expected, str) or expected == "COMBO" or not isinstance(received, str):
        return True
    if "*" in (received, expected) or received == expected:
        return True
    return set(received.split(",")) <= set(expected.split(","))


class _Validator:
    def __init__(self, graph: dict, object_info: dict, input_exists: Callable[[str], bool]):
        self.graph = graph
        self.object_info = object_info
        self.input_exists = input_exists
        self.validated: dict[str, tuple[bool, list[dict]]] = {}

    def node(self, node_id: str) -> bool:
        if node_id not in self.validated:
            try:
                self.validated[node_id] = self._check_node(node_id)
            except (KeyError, IndexError, TypeError) as exc:
                error = _error("exception_during_validation", "Exception when validating node", str(exc),
                               exception_type=type(exc).__name__, traceback=["<fake comfy>"])
                self.validated[node_id] = (False, [error])
        return self.validated[node_id][0]

    def _check_node(self, node_id: str) -> tuple[bool, list[dict]]:
        node = self.graph[node_id]
        spec = self.object_info[node["class_type"]]
        inputs = node.setdefault("inputs", {})
        required = spec["input"].get("required", {})
        optional = spec["input"].get("optional", {})
        errors: list[dict] = []
        valid = True
        for name, input_spec in [*required.items(), *optional.items()]:
            if name not in inputs:
                if name in required:
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         input_name=name))
                    valid = False
                continue
            problems, linked_ok = self._check_input(node["class_type"], inputs, name, input_spec)
            errors += problems
            valid = valid and not problems and linked_ok
        return valid, errors

    def _check_input(self, class_type: str, inputs: dict, name: str, spec: list) -> tuple[list[dict], bool]:
        """Problems of one input, and whether its linked node (if any) is valid."""
        kind = spec[0]
        config = spec[1] if len(spec) > 1 else {}
        spec = [kind, config]  # the real server reports input_config with an explicit (maybe empty) config
        value = inputs[name]
        if _is_link(value):
            source = self.graph[value[0]]
            received = self.object_info[source["class_type"]]["output"][value[1]]
            if not _types_match(received, kind):
                details = f"{name}, received_type({received}) mismatch input_type({kind})"
                return [_error("return_type_mismatch", "Return type mismatch between linked nodes", details,
                               input_name=name, input_config=spec, received_type=received,
                               linked_node=value)], True
            return [], self.node(value[0])
        if (class_type, name) in _LOADERS:  # VALIDATE_INPUTS: the file must exist, whatever the list says
            if isinstance(value, str) and self.input_exists(value):
                return [], True
            return [_error("custom_validation_failed", "Custom validation failed for node",
                           f"{name} - Invalid {_LOADERS[class_type, name]} file: {value}", input_name=name)], True
        if isinstance(kind, str) and kind in _CONVERT:
            return self._check_scalar(inputs, name, spec, kind, config), True
        # only old-style list combos are checked: the real server (0.3.64) lets a v3 ``["COMBO", {"options"}]``
        # value through, and a loader given a missing file fails when it runs (nodes.require_model_files)
        if isinstance(kind, list) and value not in kind:
            big = len(kind) > 20  # the real server leaves a long list (model files) out of the error
            listing = f"(list of length {len(kind)})" if big else str(kind)
            return [_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}",
                           input_name=name, input_config=None if big else spec, received_value=value)], True
        return [], True

    @staticmethod
    def _check_scalar(inputs: dict, name: str, spec: list, kind: str, config: dict) -> list[dict]:
        value = inputs[name]
        try:
            converted = _CONVERT[kind](value)
        except (TypeError, ValueError) as exc:
            return [_error("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                           f"{name}, {value}, {exc}", input_name=name, input_config=spec,
                           received_value=value, exception_message=str(exc))]
        inputs[name] = converted
        if kind not in ("INT", "FLOAT"):
            return []
        if "min" in config and converted < config["min"]:
            return [_error("value_smaller_than_min", f"Value {converted} smaller than min of {config['min']}",
                           name, input_name=name, input_config=spec, received_value=converted)]
        if "max" in config and converted > config["max"]:
            return [_error("value_bigger_than_max", f"Value {converted} bigger than max of {config['max']}",
                           name, input_name=name, input_config=spec, received_value=converted)]
        return []


def _structure_error(graph: dict, object_info: dict) -> dict | None:
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return top_error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                             f"Node ID '#{node_id}'")
        if node["class_type"] not in object_info:
            return top_error("invalid_prompt", f"Cannot execute because node {node['class_type']} does not exist.",
                             f"Node ID '#{node_id}'")
    return None


def validate_prompt(graph: dict, object_info: dict, input_exists: Callable[[str], bool],
                    targets: list[str] | None = None) -> Verdict:
    """Validate ``graph`` in place (scalar inputs are converted, like the real server does)."""
    problem = _structure_error(graph, object_info)
    if problem:
        return Verdict(problem)
    outputs = [node_id for node_id, node in graph.items()
               if object_info[node["class_type"]].get("output_node") and (targets is None or node_id in targets)]
    if not outputs:
        return Verdict(top_error("prompt_no_outputs", "Prompt has no outputs"))
    validator = _Validator(graph, object_info, input_exists)
    good: list[str] = []
    node_errors: dict = {}
    reasons: list[str] = []
    for output in outputs:
        if validator.node(output):
            good.append(output)
            continue
        reasons += [f"{e['message']}: {e['details']}" for e in validator.validated[output][1]]
        for node_id, (valid, errors) in validator.validated.items():
            if not valid and errors:
                entry = node_errors.setdefault(node_id, {"errors": errors, "dependent_outputs": [],
                                                         "class_type": graph[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
    if not good:
        error = top_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(reasons))
        return Verdict(error, [], node_errors)
    return Verdict(None, good, node_errors)
