"""Builders for engine tests: a tiny workflow + manifest written to a temp folder."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


GRAPH = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "LoraLoaderModelOnly",
          "inputs": {"model": ["1", 0], "lora_name": "flux/detail.safetensors", "strength_model": 1.0}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "old", "clip": ["9", 0]},
          "_meta": {"title": "Positive Prompt"}},
    "4": {"class_type": "KSampler",
          "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["3", 0], "latent_image": ["5", 0],
                     "seed": 7, "steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple",
                     "denoise": 1.0},
          "_meta": {"title": "Sampler"}},
    "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "t"}},
    "9": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "flux"}},
}

MANIFEST = """\
description: A test workflow
params:
  prompt: {type: text, required: true, min_length: 1, max_length: 500, bind: '$[?(@._meta.title == "Positive Prompt")].inputs.text'}
  steps: {type: int, default: 30, min: 1, max: 150, bind: '$["4"].inputs.steps'}
  cfg: {type: float, min: 0, max: 30, advanced: true, bind: '$["4"].inputs.cfg'}
  size: {type: int, min: 64, max: 4096, advanced: true, bind: ['$["5"].inputs.width', '$["5"].inputs.height']}
  sampler: {type: choice, choices: [euler, dpmpp_2m], default: euler, bind: '$["4"].inputs.sampler_name'}
  lora: {type: choice, choices_from: LoraLoaderModelOnly.lora_name, filter: '^flux/', when_unset: bypass, bind: '$["2"].inputs.lora_name'}
  seed: {type: seed, bind: '$["4"].inputs.seed'}
"""


def write_case(root: Path, manifest: str = MANIFEST, graph: dict | None = None, name: str = "t") -> Path:
    (root / "manifests").mkdir(exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    (root / "workflows" / f"{name}.json").write_text(json.dumps(graph or GRAPH))
    path = root / "manifests" / f"{name}.yaml"
    path.write_text(textwrap.dedent(manifest))
    return path


