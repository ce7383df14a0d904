"""Engine core benchmark: apply_params per bundled manifest, catalog load + validate.

Prints medians of several runs. Goals (issue 2): apply_params < 50 µs per manifest; loading and
validating the bundled catalog, and 100 generated manifests, < 1 s each.

    python bench/bench_engine.py
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timing import median_seconds  # noqa: E402
from engine import apply_params, load_catalog  # noqa: E402
from engine.checks.validate import validate_paths  # noqa: E402

OBJECT_INFO = ROOT / "tests" / "data" / "comfyui" / "object_info.json"
UPLOAD_EXTENSIONS = {"image": "png", "audio": "flac"}  # a plausible uploaded file name per kind of file


def sample_values(workflow) -> dict:
    """Required params get a plausible value; everything else keeps its default."""
    values = {}
    for name, param in workflow.manifest.params.items():
        if param.is_text and param.required:
            values[name] = "a lighthouse at dusk, oil painting"
        elif param.is_upload:  # every file param, as before the audio kind (no bypassed image inputs)
            values[name] = f"input.{UPLOAD_EXTENSIONS[param.takes or '']}"
        elif param.required:
            values[name] = getattr(param, "min", None) or 1  # a required number: its lowest value
    return values


def bench_apply(catalog) -> None:
    rng = random.Random(1)
    print("apply_params, median of 7 runs × 2000 calls:")
    for workflow in catalog:
        values = sample_values(workflow)

        def many(workflow=workflow, values=values):
            for _ in range(2000):
                apply_params(workflow, values, rng=rng)

        per_call = median_seconds(many, 7) / 2000
        print(f"  {workflow.name:<16} {per_call * 1e6:7.1f} µs")


def generated_manifests(folder: Path, count: int) -> None:
    """Copies of the bundled manifests under new names: a realistic 100-manifest catalog."""
    (folder / "manifests").mkdir()
    shutil.copytree(ROOT / "workflows", folder / "workflows")
    bundled = sorted((ROOT / "manifests").glob("*.yaml"))
    for i in range(count):
        source = bundled[i % len(bundled)]
        text = source.read_text()
        stem = source.stem
        text = f"name: gen{i}-{stem[:20]}\nworkflow: {stem}.json\ncommand: gen{i // 20}\n" + \
            "\n".join(l for l in text.splitlines() if not l.startswith(("name:", "workflow:", "command:", "actions:")))
        (folder / "manifests" / f"gen{i}-{stem[:20]}.yaml").write_text(text)


def main() -> None:
    object_info = json.loads(OBJECT_INFO.read_text())
    catalog = load_catalog([ROOT / "manifests"])
    assert not catalog.issues, catalog.issues
    bench_apply(catalog)
    load = median_seconds(lambda: load_catalog([ROOT / "manifests"]), 5)
    check = median_seconds(lambda: validate_paths([ROOT / "manifests"], object_info=object_info), 5)
    print(f"bundled catalog ({len(catalog)} manifests): load {load * 1e3:.1f} ms, load + validate {check * 1e3:.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        generated_manifests(Path(tmp), 100)
        big = load_catalog([Path(tmp) / "manifests"])
        assert len(big) == 100 and not big.issues, big.issues[:3]
        load = median_seconds(lambda: load_catalog([Path(tmp) / "manifests"]), 5)
        check = median_seconds(lambda: validate_paths([Path(tmp) / "manifests"], object_info=object_info), 5)
        print(f"100 generated manifests: load {load * 1e3:.1f} ms, load + validate {check * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
