"""``engine init``: a draft manifest for a workflow, made by recognising common nodes (pure).

``draft_manifest(graph, name)`` returns commented YAML that ``engine validate`` accepts. It knows
prompt encoders (positive/negative from the node title, else from the sampler or guider input that
leads to them), samplers and noise (seed, steps, cfg, guidance), empty latents (width, height,
length, batch size), image and audio loaders, LoRA loaders (optional, bypassed when unset), and model and
upscale model loaders (live lists from the server). With a server's ``object_info`` it also
recognises unknown prompt encoders and fits ranges and defaults to the server.
Binds use the node's title when it is unique (it survives re-exports), else the node id.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

from ..comfy.object_info import combo_values, input_spec, spec_options, spec_type
from ..errors import Issue, ManifestError
from .binding import BindError, Target, is_link, resolve_bind
from .model import humanize
from .yaml_writer import yaml_comment as _comment
from .yaml_writer import yaml_scalar as _scalar

__all__ = ["draft_manifest", "draft_name"]

_TEXT_INPUTS = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeHiDream": ("clip_l", "clip_g", "t5xxl", "llama"),
    "CLIPTextEncodeLumina2": ("user_prompt",),
    "TextEncodeQwenImageEdit": ("prompt",),
    "TextEncodeQwenImageEditPlus": ("prompt",),
    "TextEncodeHunyuanVideo_ImageToVideo": ("prompt",),
}
_CONDITIONING_INPUTS = ("conditioning", "conditioning_to", "conditioning_1")
_FILE_LOADERS = {"LoadImage": "image", "LoadImageOutput": "image", "LoadAudio": "audio"}  # class → input = param type
_LORA_LOADERS = {"LoraLoaderModelOnly": ("model",), "LoraLoader": ("model", "clip")}
_LOADERS = {  # class: (input, param name, description)
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoint", "Checkpoint"),
    "ImageOnlyCheckpointLoader": ("ckpt_name", "checkpoint", "Checkpoint"),
    "UNETLoader": ("unet_name", "model", "Diffusion model"),
    "UpscaleModelLoader": ("model_name", "upscale_model", "Upscale model"),
}


class _Number(NamedTuple):
    """How a number input becomes a param; ``convert`` None: a seed (random, no range, always fanned out)."""

    name: str
    type: str
    low: float | None
    high: float | None
    description: str
    advanced: bool
    convert: Callable[[Any], Any] | None


_NUMBERS = {  # input name → how it is drafted, for the classes that have them (below)
    "seed": _Number("seed", "seed", None, None, "Random seed (empty: random)", False, None),
    "noise_seed": _Number("seed", "seed", None, None, "Random seed (empty: random)", False, None),
    "steps": _Number("steps", "int", 1, 150, "Sampling steps", True, int),
    "cfg": _Number("cfg", "float", 0.0, 30.0, "Prompt guidance (CFG)", True, float),
    "guidance": _Number("guidance", "float", 0.0, 30.0, "Flux guidance", True, float),
    "width": _Number("width", "int", 64, 2048, "Width in pixels", True, int),
    "height": _Number("height", "int", 64, 2048, "Height in pixels", True, int),
    "length": _Number("length", "int", 1, 241, "Frames", True, int),
    "batch_size": _Number("batch_size", "int", 1, 8, "How many at once", True, int),
}
_NUMBER_CLASSES = {
    "KSampler": ("seed", "steps", "cfg"),
    "KSamplerAdvanced": ("noise_seed", "steps", "cfg"),
    "RandomNoise": ("noise_seed",),
    "BasicScheduler": ("steps",),
    "CFGGuider": ("cfg",),
    "FluxGuidance": ("guidance",),
    **{cls: ("width", "height", "batch_size") for cls in ("EmptyLatentImage", "EmptySD3LatentImage",
                                                          "EmptyHunyuanImageLatent")},
    **{cls: ("width", "height", "length", "batch_size") for cls in ("EmptyHunyuanLatentVideo", "EmptyMochiLatentVideo",
                                                                    "EmptyLTXVLatentVideo", "WanImageToVideo",
                                                                    "WanFirstLastFrameToVideo")},
}
_VIDEO_SAVERS = re.compile(r"(SaveVideo|SaveWEBM|VideoCombine|SaveAnimated)")
_AUDIO_SAVERS = re.compile(r"(SaveAudio|PreviewAudio)")


@dataclass
class _Param:
    name: str
    fields: dict[str, Any]
    targets: list[Target]
    note: str = ""
    extra: list[str] = field(default_factory=list)


def draft_name(stem: str) -> str:
    """A valid manifest name from a file stem: lowercase, ``-``/``_``/digits, ≤ 32 characters."""
    name = re.sub(r"[^-_a-z0-9]+", "-", stem.lower()).strip("-_")[:32]
    return name or "workflow"


def _node_order(node_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"\D+", node_id) if p) or (0,), node_id


def _title(node: Mapping) -> str:
    meta = node.get("_meta")
    return str(meta.get("title") or "") if isinstance(meta, dict) else ""


def _check_api_format(graph: Any, file: str) -> None:
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise ManifestError([Issue(file, 0, 0, "", "this is a UI-format export; in ComfyUI use \"Export (API)\" "
                                   "and save that file instead", "workflow_ui_format")])
    if not isinstance(graph, dict) or not graph or not all(
            isinstance(n, dict) and isinstance(n.get("class_type"), str) for n in graph.values()):
        raise ManifestError([Issue(file, 0, 0, "", "not an API-format workflow (a JSON object of nodes with "
                                   "class_type and inputs)", "workflow_format")])


class _Graph:
    """The workflow with the lookups the recognisers need."""

    def __init__(self, graph: Mapping, object_info: Mapping | None):
        self.graph = {k: {**v, "inputs": dict(v.get("inputs") or {})} for k, v in graph.items()}
        self.info = object_info or {}
        titles = [_title(n) for n in self.graph.values()]
        self.unique_titles = {t for t in titles if t and titles.count(t) == 1}

    def ids(self, classes=None) -> list[str]:
        ids = [k for k, n in self.graph.items() if classes is None or n["class_type"] in classes]
        return sorted(ids, key=_node_order)

    def cls(self, node_id: str) -> str:
        return self.graph[node_id]["class_type"]

    def literal(self, node_id: str, input_name: str) -> Any:
        value = self.graph[node_id]["inputs"].get(input_name)
        return None if is_link(value) else value

    def spec(self, node_id: str, input_name: str) -> list | None:
        return input_spec(self.info.get(self.cls(node_id)), input_name)

    def bind(self, target: Target) -> str:
        title = _title(self.graph[target.node_id])
        if title in self.unique_titles and '"' not in title and "\\" not in title:
            path = f'$[?(@._meta.title == "{title}")].inputs.{target.input_name}'
            try:
                if resolve_bind(self.graph, path) == [target]:
                    return path
            except BindError:
                pass
        return f'$["{target.node_id}"].inputs.{target.input_name}'

    def text_inputs(self, node_id: str) -> tuple[str, ...]:
        known = _TEXT_INPUTS.get(self.cls(node_id))
        info = self.info.get(self.cls(node_id))
        outputs = info.get("output") if isinstance(info, dict) else None
        if known is None and isinstance(outputs, list) and "CONDITIONING" in outputs:
            known = tuple(n for n in self.graph[node_id]["inputs"]
                          if (s := self.spec(node_id, n)) and spec_type(s) == "STRING"
                          and spec_options(s).get("multiline"))
        return tuple(n for n in known or () if isinstance(self.literal(node_id, n), str))


def _walk_roles(g: _Graph, encoders: list[str]) -> dict[str, str]:
    """Encoder id → "positive"/"negative", from titles, then from what links to them."""
    roles = {}
    for node_id in encoders:
        title = _title(g.graph[node_id]).lower()
        roles.update({node_id: r for r in ("negative", "positive") if r in title and node_id not in roles})
    for role in ("positive", "negative"):
        for node_id in g.ids():
            for name, value in g.graph[node_id]["inputs"].items():
                if is_link(value) and (name == role or name == "conditioning" and role == "positive"
                                       and g.cls(node_id) == "BasicGuider"):
                    _follow(g, value[0], role, roles, encoders, set())
    return roles


def _follow(g: _Graph, node_id: str, role: str, roles: dict, encoders: list[str], seen: set) -> None:
    if node_id in seen or node_id not in g.graph:
        return
    seen.add(node_id)
    if node_id in encoders:
        roles.setdefault(node_id, role)
        return
    for name in (role, *_CONDITIONING_INPUTS):
        value = g.graph[node_id]["inputs"].get(name)
        if is_link(value):
            _follow(g, value[0], role, roles, encoders, seen)


def _prompt_params(g: _Graph) -> list[_Param]:
    encoders = [n for n in g.ids() if g.text_inputs(n)]
    roles = _walk_roles(g, encoders)
    unassigned = [n for n in encoders if n not in roles]
    if unassigned and "positive" not in roles.values():
        roles[unassigned[0]] = "positive"
    params = []
    for role, name in (("positive", "prompt"), ("negative", "negative")):
        ids = [n for n in encoders if roles.get(n) == role]
        if not ids:
            continue
        targets = [Target(n, i) for n in ids for i in g.text_inputs(n)]
        fields: dict[str, Any] = {"type": "text", "multiline": True}
        if role == "positive":
            fields.update(required=True, description="What to create")
        else:
            current = g.literal(targets[0].node_id, targets[0].input_name)
            fields.update(advanced=True, description="What to avoid", max_length=4000)
            if len(current) <= 4000:
                fields["default"] = current
        params.append(_Param(name, fields, targets, _where(g, ids)))
    unmapped = [n for n in encoders if n not in roles]
    if unmapped and params:
        params[-1].extra.append(f"not mapped (positive or negative?): {_where(g, unmapped)}")
    return params


def _where(g: _Graph, ids: list[str]) -> str:
    return ", ".join(f"node {n} {g.cls(n)}" + (f" {_title(g.graph[n])!r}" if _title(g.graph[n]) else "") for n in ids)


def _fit_range(g: _Graph, target: Target, low, high, value):
    """(low, high, default) widened to include the workflow's value, clipped to the input's own range."""
    low = min(low, value) if low is not None and value is not None else low
    high = max(high, value) if high is not None and value is not None else high
    spec = g.spec(target.node_id, target.input_name)
    options = spec_options(spec) if spec else {}
    if isinstance(options.get("min"), (int, float)) and low is not None:
        low = max(low, options["min"])
    if isinstance(options.get("max"), (int, float)) and high is not None:
        high = min(high, options["max"])
    if value is not None and low is not None and high is not None and not low <= value <= high:
        value = None
    return low, high, value


def _number_params(g: _Graph) -> list[_Param]:
    found: dict[str, _Param] = {}
    for node_id in g.ids(_NUMBER_CLASSES):
        for input_name in _NUMBER_CLASSES[g.cls(node_id)]:
            value = g.literal(node_id, input_name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            spec = _NUMBERS[input_name]
            target = Target(node_id, input_name)
            if spec.name in found:  # fan out seeds always, other numbers when the workflow agrees
                first = found[spec.name]
                if spec.convert is None or g.literal(first.targets[0].node_id, first.targets[0].input_name) == value:
                    first.targets.append(target)
                    first.note += f", node {node_id}"
                continue
            fields: dict[str, Any] = {"type": spec.type, "description": spec.description}
            if spec.convert is not None:
                low, high, default = _fit_range(g, target, spec.low, spec.high, spec.convert(value))
                fields.update(advanced=spec.advanced, default=default, min=low, max=high)
            found[spec.name] = _Param(spec.name, fields, [target], f"node {node_id} {g.cls(node_id)}")
    return list(found.values())


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    taken.add(candidate)
    return candidate


def _server_has(g: _Graph, target: Target, value: Any) -> bool:
    spec = g.spec(target.node_id, target.input_name)
    options = combo_values(spec) if spec else None
    return not g.info or options is None or value in options


def _bypass_safe(g: _Graph, node_id: str) -> bool:
    """Whether apply.bypass_node can splice the LoRA node out: its linked inputs, in order,
    match its outputs (model → MODEL, clip → CLIP)."""
    linked = [n for n, v in g.graph[node_id]["inputs"].items() if is_link(v)]
    return linked == list(_LORA_LOADERS[g.cls(node_id)])


def _loader_params(g: _Graph, taken: set[str]) -> list[_Param]:
    params = []
    for node_id in g.ids(_FILE_LOADERS):
        kind, title = _FILE_LOADERS[g.cls(node_id)], _title(g.graph[node_id])
        described = title and title.lower() != f"load {kind}" and len(title) <= 100
        params.append(_Param(_unique(kind, taken), {"type": kind, "required": True,
                                                    "description": title if described else f"Input {kind}"},
                             [Target(node_id, kind)], _where(g, [node_id])))
    for node_id in g.ids(_LORA_LOADERS):
        target = Target(node_id, "lora_name")
        if not isinstance(g.literal(target.node_id, target.input_name), str):
            continue
        fields: dict[str, Any] = {"type": "choice", "choices_from": f"{g.cls(node_id)}.lora_name",
                                  "description": "LoRA to apply (empty: none)"}
        note = _where(g, [node_id])
        if _bypass_safe(g, node_id):
            fields["when_unset"] = "bypass"
        elif _server_has(g, target, g.literal(target.node_id, target.input_name)):
            fields["default"] = g.literal(target.node_id, target.input_name)
            note += "; cannot be bypassed (inputs out of order), so it keeps a default"
        name = _unique("lora", taken)
        params.append(_Param(name, fields, [target], note))
        strengths = [Target(node_id, s) for s in ("strength_model", "strength_clip")
                     if isinstance(g.literal(node_id, s), (int, float))]
        if strengths:
            low, high, value = _fit_range(g, strengths[0], -2.0, 2.0, float(g.literal(strengths[0].node_id, strengths[0].input_name)))
            params.append(_Param(_unique(f"{name}_strength", taken), {
                "type": "float", "advanced": True, "default": value, "min": low, "max": high,
                "description": "LoRA strength"}, strengths, note))
    for node_id in g.ids(_LOADERS):
        input_name, pname, description = _LOADERS[g.cls(node_id)]
        target, value = Target(node_id, input_name), g.literal(node_id, input_name)
        if not isinstance(value, str):
            continue
        fields = {"type": "choice", "choices_from": f"{g.cls(node_id)}.{input_name}", "description": description}
        if _server_has(g, target, value):
            fields["default"] = value
        params.append(_Param(_unique(pname, taken), fields, [target], _where(g, [node_id])))
    return params


def _kind(g: _Graph) -> str:
    classes = [g.cls(n) for n in g.graph]
    if any(_VIDEO_SAVERS.search(c) for c in classes):
        return "video"
    if any(_AUDIO_SAVERS.search(c) for c in classes):
        return "audio"
    if not any(re.match(r"(Save|Preview)Image", c) for c in classes) and any("Text" in c or c == "PreviewAny"
                                                                             for c in classes):
        return "text"
    return "image"


_ORDER = ("type", "required", "advanced", "description", "default", "min", "max", "max_length", "multiline",
          "choices_from", "when_unset")


def _render_param(g: _Graph, param: _Param) -> list[str]:
    lines = [f"  {param.name}:  # {_comment(param.note)}"] + [f"  # {_comment(x)}" for x in param.extra]
    for key in _ORDER:
        if param.fields.get(key) is not None:
            lines.append(f"    {key}: {_scalar(param.fields[key])}")
    binds = [g.bind(t) for t in param.targets]
    if len(binds) == 1:
        lines.append(f"    bind: {_scalar(binds[0])}")
    else:
        lines += ["    bind:"] + [f"      - {_scalar(b)}" for b in binds]
    return lines


def draft_manifest(graph: Any, name: str, object_info: Mapping | None = None, *, workflow_file: str | None = None) -> str:
    """Commented YAML for a draft manifest of ``graph`` (an API-format workflow).

    Raises ``ManifestError`` for a UI-format export or anything that is not an API graph.
    """
    workflow_file = workflow_file or f"{name}.json"
    _check_api_format(graph, workflow_file)
    name = draft_name(name)
    g = _Graph(graph, object_info)
    taken = {"prompt", "negative"} | {spec.name for spec in _NUMBERS.values()}
    params = _prompt_params(g) + _loader_params(g, taken) + _number_params(g)
    title = humanize(name)[:36]
    description = f"{title} (drafted from {workflow_file})"
    lines = [
        f"# Draft manifest for {_comment(workflow_file)}, written by `engine init`.",
        "# Review the params (names, ranges, which are advanced), then run `engine validate`.",
        f"name: {name}",
        f"workflow: {_scalar(workflow_file)}",
        f"title: {_scalar(title)}",
        f"description: {_scalar(description if len(description) <= 100 else title)}",
        f"# command: generate   # manifests sharing a command become its subcommands (default: the name)",
        f"kind: {_kind(g)}",
        "timeout: 600",
    ]
    lines += ["params:"] + [line for p in params for line in _render_param(g, p)] if params else ["params: {}"]
    return "\n".join(lines) + "\n"
