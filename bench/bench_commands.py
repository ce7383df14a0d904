"""How long generating the slash commands takes (run: ``python bench/bench_commands.py``).

Two catalogs: the bundled one (manifests/) and 100 generated manifests (4 commands of 24 manifests
each plus 4 single ones, 8 params each: text, int, float, bool, seed, image, static choice, live
choice). For each: ``build_commands`` alone, then build + ``to_dict`` (the ``tree.sync()`` body),
then ``check_payload``. Prints the median of several runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import logging  # noqa: E402

from timing import median_seconds  # noqa: E402
from bot.commands.slash import build_commands, command_payload, inert_hooks  # noqa: E402
from bot.commands.payload_limits import check_payload  # noqa: E402
from engine.manifest.catalog import Catalog, Workflow, load_catalog  # noqa: E402
from engine.manifest.model import Manifest  # noqa: E402

RUNS = 7


def generated_manifest(i: int) -> Manifest:
    command = f"group{i // 24}" if i < 96 else f"single{i}"
    return Manifest.model_validate({
        "name": f"wf-{i:03}", "description": f"Generated workflow number {i}", "command": command,
        "params": {
            "prompt": {"type": "text", "required": True, "description": "What to draw", "bind": "$"},
            "steps": {"type": "int", "min": 1, "max": 150, "default": 20, "bind": "$"},
            "cfg": {"type": "float", "min": 0.0, "max": 30.0, "bind": "$"},
            "hires": {"type": "bool", "bind": "$"},
            "seed": {"type": "seed", "bind": "$"},
            "image": {"type": "image", "bind": "$"},
            "sampler": {"type": "choice", "choices": ["euler", "dpmpp_2m", "uni_pc"], "bind": "$"},
            "lora": {"type": "choice", "choices_from": "LoraLoaderModelOnly.lora_name", "bind": "$"},
        },
    })


def generated_catalog(count: int = 100) -> Catalog:
    empty = MappingProxyType({})
    return Catalog(MappingProxyType({m.name: Workflow(m, empty, empty, None)
                                     for m in map(generated_manifest, range(count))}))


def report(label: str, catalog: Catalog) -> None:
    hooks = inert_hooks()
    payload = command_payload(build_commands(catalog, hooks))
    build = median_seconds(lambda: build_commands(catalog, hooks))
    full = median_seconds(lambda: command_payload(build_commands(catalog, hooks)))
    check = median_seconds(lambda: check_payload(payload))
    options = sum(len(c.get("options", [])) for c in payload)  # message commands (context menus) have none
    print(f"{label:<28} {len(catalog):>4} manifests → {len(payload):>3} commands ({options} top-level options): "
          f"build {build * 1000:7.2f} ms, build+to_dict {full * 1000:7.2f} ms, check_payload {check * 1000:6.2f} ms")


def main() -> None:
    logging.disable(logging.WARNING)
    bundled = load_catalog([ROOT / "manifests"])
    report("bundled catalog", bundled)
    report("100 generated manifests", generated_catalog())
    print(f"(median of {RUNS} runs)")


if __name__ == "__main__":
    main()
