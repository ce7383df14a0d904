"""Server errors → short texts naming the manifest params users can change (pure, no I/O).

- ``map_node_errors``  a 400's ``node_errors`` → ``["steps: value 999 bigger than max 150", …]``;
  an error on an input bound to a param names the param, any other names the node
  (``"node 5 (KSampler) sampler_name: 'x' not in list"``).
- ``map_top_error``    a 400 without node errors (``invalid_prompt``, ``prompt_no_outputs``, …).
- ``map_rejection``    a raw ``WorkflowRejected`` from the client → one with mapped problems.
- ``map_execution_error`` a websocket ``execution_error`` → ``ExecutionFailed`` naming the param.

Texts never contain tracebacks, server paths of the error or whole input values: long values are
clipped and multi-line messages keep their first line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import ExecutionFailed, WorkflowRejected
from .outputs import node_title
from .wire import list_at, mapping_at

__all__ = ["ParamLookup", "map_node_errors", "map_top_error", "map_rejection", "map_execution_error",
           "MESSAGE_LIMIT"]


class ParamLookup(Protocol):
    """Which manifest params are bound where (``engine.Workflow`` is one)."""

    def param_of_input(self, node_id: str, input_name: str) -> str | None: ...

    def param_of_node(self, node_id: str) -> list[str]: ...


MESSAGE_LIMIT = 200
_VALUE_LIMIT = 40
_LIST_LIMIT = 8


_SERVER_PATH = re.compile(r"(?:[A-Za-z]:)?[/\\](?:[^\s'\"/\\]+[/\\])+([^\s'\"/\\]*)")


def _clip(text: Any, limit: int = MESSAGE_LIMIT) -> str:
    """First line, white space folded, server file paths cut to their file name, at most ``limit``."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    first = _SERVER_PATH.sub(r"\1", " ".join(lines[0].split())) if lines else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _value(value: Any) -> str:
    return _clip(repr(value) if isinstance(value, str) else value, _VALUE_LIMIT)


def _config(extra: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
    """(type or combo list, options) of the input, from ``extra_info.input_config``."""
    config = extra.get("input_config")
    if isinstance(config, (list, tuple)) and config:
        options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
        return config[0], options
    return None, {}


def _bound(error: Mapping[str, Any], extra: Mapping[str, Any], word: str, key: str) -> str:
    limit = _config(extra)[1].get(key)
    if limit is None:  # message is "Value 99999 bigger than max of 16384"
        found = re.search(rf"{word} than {key} of (\S+)", str(error.get("message", "")))
        limit = found.group(1) if found else None
    limit = f"{key} {_clip(limit, _VALUE_LIMIT)}" if limit is not None else f"its {key}"
    received = extra.get("received_value")
    return f"value {_value(received)} {word} than {limit}" if received is not None else f"value {word} than {limit}"


def _too_big(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    return _bound(error, extra, "bigger", "max")


def _too_small(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    return _bound(error, extra, "smaller", "min")


def _not_in_list(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    choices, _ = _config(extra)
    received = extra.get("received_value")
    if received is None:  # details: "ckpt_name: 'model.safetensors' not in [...]"
        found = re.search(r":\s*(.+?) not in ", str(error.get("details", "")))
        text = _clip(found.group(1), _VALUE_LIMIT) if found else "value"
    else:
        text = _value(received)
    if choices is None and str(error.get("details", "")).rstrip().endswith("not in []"):
        choices = []
    if isinstance(choices, list) and not choices:
        return f"{text} not in list (the server has none installed)"
    if isinstance(choices, list) and len(choices) <= _LIST_LIMIT:
        return f"{text} not in list ({', '.join(_clip(c, _VALUE_LIMIT) for c in choices)})"
    return f"{text} not in list"


def _bad_type(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    kind, _ = _config(extra)
    if not isinstance(kind, str):
        found = re.search(r"to a (\w+) value", str(error.get("message", "")))
        kind = found.group(1) if found else "the expected type"
    return f"not a valid {kind} value"


def _missing(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    return "required input is missing"


def _custom(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    details = str(error.get("details") or error.get("message") or "")
    if "invalid image file" in details.lower():
        return "the uploaded image is missing on the server"
    name = extra.get("input_name")
    if name and details.startswith(f"{name} - "):
        details = details[len(name) + 3:]
    return _clip(details) or "rejected by the node's own check"


def _exception(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    kind = extra.get("exception_type")
    details = _clip(error.get("details") or "", 80)
    reason = f"{kind}: {details}" if kind and details else kind or details
    return f"the server could not validate this input ({reason})" if reason \
        else "the server could not validate this input"


def _type_mismatch(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    received = extra.get("received_type")
    expected, _ = _config(extra)
    if received and isinstance(expected, str):
        return f"linked output is {received}, the input takes {expected}"
    return _clip(error.get("details") or error.get("message") or "link type mismatch")


def _bad_link(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    return "bad link to another node"


def _other(error: Mapping[str, Any], extra: Mapping[str, Any], title: str) -> str:
    message, details = _clip(error.get("message") or ""), _clip(error.get("details") or "", 120)
    text = f"{message}: {details}" if message and details and details not in message else message or details
    return text or "rejected by the server"


_REASONS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], str], str]] = {
    "value_bigger_than_max": _too_big,
    "value_smaller_than_min": _too_small,
    "value_not_in_list": _not_in_list,
    "invalid_input_type": _bad_type,
    "required_input_missing": _missing,
    "custom_validation_failed": _custom,
    "exception_during_validation": _exception,
    "exception_during_inner_validation": _exception,
    "return_type_mismatch": _type_mismatch,
    "bad_linked_input": _bad_link,
}

# error types whose ``details`` is the bare input name (no ``extra_info.input_name`` in old servers)
_DETAILS_IS_INPUT = {"required_input_missing", "value_bigger_than_max", "value_smaller_than_min"}


def _input_name(error: Mapping[str, Any], extra: Mapping[str, Any]) -> str | None:
    name = extra.get("input_name")
    if isinstance(name, str) and name.strip():
        return _clip(name, _VALUE_LIMIT)
    details = error.get("details")
    if error.get("type") in _DETAILS_IS_INPUT and isinstance(details, str) and re.fullmatch(r"\w+", details):
        return details
    if error.get("type") in ("value_not_in_list", "return_type_mismatch") and isinstance(details, str):
        found = re.match(r"(\w+)[:,]", details)
        return found.group(1) if found else None
    return None


def _node_label(graph: Mapping[str, Any], node_id: str, class_type: Any) -> str:
    title = _clip(node_title(graph, node_id) or class_type or "", _VALUE_LIMIT)
    node_id = _clip(node_id, _VALUE_LIMIT)
    return f"node {node_id} ({title})" if title else f"node {node_id}"


def _problem(workflow: ParamLookup, graph: Mapping[str, Any], node_id: str, class_type: Any,
             error: Mapping[str, Any]) -> str:
    extra = mapping_at(error, "extra_info")
    label = _node_label(graph, node_id, class_type)
    reason = _REASONS.get(str(error.get("type")), _other)(error, extra, label)
    input_name = _input_name(error, extra)
    param = workflow.param_of_input(node_id, input_name) if input_name else None
    if param:
        text = f"{param}: {reason}"
    else:
        text = f"{label} {input_name}: {reason}" if input_name else f"{label}: {reason}"
    return _clip(" ".join(text.split()))  # one line whatever the server put in a type or value


def map_node_errors(workflow: ParamLookup, graph: Mapping[str, Any], node_errors: Any) -> list[str]:
    """One short text per distinct node error, naming the param bound to the failing input."""
    problems: list[str] = []
    for node_id, entry in (node_errors.items() if isinstance(node_errors, Mapping) else ()):
        if not isinstance(entry, Mapping):
            continue
        for error in list_at(entry, "errors"):
            if isinstance(error, Mapping):
                text = _problem(workflow, graph, str(node_id), entry.get("class_type"), error)
                if text not in problems:
                    problems.append(text)
    return problems


def map_top_error(error_type: str, message: str) -> str:
    """A short text for a 400 without node errors (``error.type`` and ``error.message``)."""
    missing = re.search(r"node (\S+) does not exist", message or "")
    if error_type == "invalid_prompt" and missing:
        return f"this workflow needs node {missing.group(1)} which the server does not have"
    if error_type == "invalid_prompt" and "class_type" in (message or ""):
        return "the workflow has a node without a class_type"
    if error_type == "prompt_no_outputs":
        return "the workflow has no output node"
    if error_type == "no_prompt":
        return "no workflow was sent"
    return _clip(message) or "the server rejected the workflow"


def map_rejection(workflow: ParamLookup, graph: Mapping[str, Any], rejected: WorkflowRejected) -> WorkflowRejected:
    """``rejected`` (raw, from the client) with its problems mapped to params."""
    problems = map_node_errors(workflow, graph, rejected.node_errors)
    if not problems:
        raw = rejected.problems or [""]
        problems = list(dict.fromkeys(map_top_error(rejected.error_type, text) for text in raw))
    return WorkflowRejected(problems, rejected.node_errors, rejected.error_type)


def map_execution_error(workflow: ParamLookup, graph: Mapping[str, Any], data: Mapping[str, Any]) -> ExecutionFailed:
    """``execution_error`` data → ``ExecutionFailed``; the message names the param when the node is bound."""
    node_id = str(data.get("node_id")) if data.get("node_id") is not None else ""
    node_type = str(data.get("node_type") or "")
    reason = _clip(data.get("exception_message") or "") or _clip(data.get("exception_type") or "") or "failed"
    params = workflow.param_of_node(node_id) if node_id else []
    if len(params) == 1:
        where = params[0]
    elif node_id:
        where = _node_label(graph, node_id, node_type)
        where += f" (params: {', '.join(params)})" if params else ""
    else:
        where = ""
    message = f"{where}: {reason}" if where else reason
    return ExecutionFailed(message, node_id=node_id, node_type=node_type, param=params[0] if params else "")
