"""Fleet simulation (issue 11 §4): 20 fake ComfyUIs of different speeds and model sets, thousands of
jobs from users of very different appetites, (a) submit-at-once routing vs (b) our fair queue.

    python bench/bench_fleet.py [--quick] [--jobs 5000] [--users 200] [--seed 1]

Method. The fakes run in 4 processes of their own (``fleet_servers.py``); backend i runs a job in
``STEPS × STEP_SECONDS × scale`` seconds with scales cycling 0.5/0.8/1/1.5/2 (a 4× spread), and has
the SD 1.5 checkpoint, SDXL on two thirds of them, Flux on half. Jobs: 50 % SD 1.5, 30 % SDXL,
20 % Flux. Users: 5 % are heavy and submit 60 % of the jobs in a burst at the start; the light
ones submit the rest evenly over the first 80 % of the ideal makespan (half the fleet's capacity). Each mode runs in a fresh
engine process (its peak RSS and CPU are its own) against freshly started fakes. Mode (a) is the
engine without a dispatcher (every job sent at once to the shortest capable queue); (b) is
``JobSettings(max_pending=1)``. Wait = submit → the job starts running on a server. Utilisation of
a backend = its busy time while work waited (from the first submit to the last job's start) over
that time. "Incapable" counts prompts a fake received for a checkpoint it lacks (must be 0).
``--quick``: 600 jobs from 60 users, same shape (under two minutes for both modes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS, PROCESSES = 20, 4
STEPS, STEP_SECONDS = 4, 0.2
SCALES = [0.5, 0.8, 1.0, 1.5, 2.0]
MODELS = {"sd15": "v1-5-pruned-emaonly.safetensors", "sdxl": "sd_xl_base_1.0.safetensors",
          "flux": "flux1-dev-fp8.safetensors"}
SHARE = {"sd15": 0.5, "sdxl": 0.3, "flux": 0.2}
HEAVY_USERS, HEAVY_JOBS = 0.05, 0.6


def fleet_specs() -> list[dict]:
    specs = []
    for i in range(BACKENDS):
        models = [MODELS["sd15"]] + ([MODELS["sdxl"]] if i % 3 else []) + ([MODELS["flux"]] if i % 2 == 0 else [])
        specs.append({"scale": SCALES[i % len(SCALES)], "models": models})
    return specs


def ideal_makespan(jobs: int) -> float:
    rate = sum(1 / (STEPS * STEP_SECONDS * s["scale"]) for s in fleet_specs())
    return jobs / rate


def plan(jobs: int, users: int, seed: int) -> list[dict]:
    """Who submits what when: heavy users burst at the start, light ones spread out."""
    rng = random.Random(seed)
    heavy = max(1, round(users * HEAVY_USERS))
    span = 0.8 * ideal_makespan(jobs)
    heavy_jobs = round(jobs * HEAVY_JOBS)
    items = []
    for n in range(jobs):
        if n < heavy_jobs:
            owner, kind, at = f"heavy{n % heavy}", "heavy", rng.uniform(0, 1.0)
        else:
            owner, kind, at = f"light{rng.randrange(users - heavy)}", "light", rng.uniform(0, span)
        workflow = rng.choices(list(SHARE), weights=list(SHARE.values()))[0]
        items.append({"n": n, "owner": owner, "kind": kind, "at": at, "workflow": workflow})
    return sorted(items, key=lambda item: item["at"])


def write_catalog(folder: Path):
    from engine import load_catalog

    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    (folder / "workflows").mkdir(exist_ok=True)
    for name, model in MODELS.items():
        graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
                 "2": {"class_type": "SlowProgress", "inputs": {"image": ["1", 0], "steps": STEPS,
                       "seconds_per_step": STEP_SECONDS, "preview": False, "progress_text": False, "nonce": 0}},
                 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": name}},
                 "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}}}
        (folder / "workflows" / f"{name}.json").write_text(json.dumps(graph))
        (folder / "manifests" / f"{name}.yaml").write_text(
            f"name: {name}\ndescription: fleet bench {name}\ntimeout: 3600\noutputs: ['3']\nparams:\n"
            "  nonce: {type: int, default: 0, min: 0, max: 100000000, bind: '$[\"2\"].inputs.nonce'}\n")
    return load_catalog([folder / "manifests"], folder / "workflows")


# -- one mode, in its own engine process ---------------------------------------------------------

async def engine_run(mode: str, urls: list[str], items: list[dict]) -> dict:
    """Run every planned job through a Runtime; the raw timings, the engine's CPU and peak RSS."""
    from engine import JobSettings, JobStore, Runtime

    with tempfile.TemporaryDirectory() as tmp:
        catalog = write_catalog(Path(tmp))
        store = await JobStore.open(":memory:")
        settings = JobSettings(max_pending=1 if mode == "b" else None)
        runtime = Runtime(catalog, [(f"gpu{i:02d}", url) for i, url in enumerate(urls)], store, settings=settings,
                          health_interval=2.0)
        await runtime.start()
        clock_offset = time.time() - time.monotonic()
        cpu, start = time.process_time(), time.monotonic()

        async def one(item: dict) -> dict:
            await asyncio.sleep(max(0.0, item["at"] - (time.monotonic() - start)))
            submitted = time.time()
            job = await runtime.submit(item["workflow"], {"nonce": item["n"]}, owner=item["owner"])
            result = await job.result()
            return {**item, "submitted": submitted, "started": job.timings["started"],
                    "finished": job.timings["finished"], "backend": result.backend}

        done = await asyncio.gather(*(one(item) for item in items))
        cpu = time.process_time() - cpu
        await runtime.close()
        await store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"jobs": done, "cpu": cpu, "rss_mb": rss, "clock_offset": clock_offset}


def start_fakes() -> tuple[list[subprocess.Popen], list[str]]:
    specs, procs, urls = fleet_specs(), [], []
    per = BACKENDS // PROCESSES
    for p in range(PROCESSES):
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fleet_servers.py"),
                                 json.dumps(specs[p * per:(p + 1) * per])], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        urls += json.loads(proc.stdout.readline())["urls"]
        procs.append(proc)
    return procs, urls


async def fake_stats(urls: list[str]) -> list[dict]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        return [await (await session.get(f"{url}/_bench/stats")).json() for url in urls]


def run_mode(mode: str, items: list[dict]) -> dict:
    """Fresh fakes, a fresh engine process for ``mode``; its figures with the fakes' stats."""
    procs, urls = start_fakes()
    try:
        child = subprocess.run([sys.executable, __file__, "--engine", mode], input=json.dumps({"urls": urls,
                               "items": items}), capture_output=True, text=True, check=True)
        outcome = json.loads(child.stdout.strip().splitlines()[-1])
        outcome["fakes"] = asyncio.run(fake_stats(urls))
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=30)
    return outcome


# -- figures -------------------------------------------------------------------------------------

def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def figures(outcome: dict) -> dict:
    jobs = outcome["jobs"]
    first, last_start = min(j["submitted"] for j in jobs), max(j["started"] for j in jobs)
    span = max(j["finished"] for j in jobs) - first
    waits = {kind: [j["started"] - j["submitted"] for j in jobs if j["kind"] == kind] for kind in ("light", "heavy")}
    window = (first - outcome["clock_offset"], last_start - outcome["clock_offset"])
    length = max(window[1] - window[0], 1e-9)
    util = [sum(max(0.0, min(end, window[1]) - max(begin, window[0])) for begin, end in fake["busy"]) / length
            for fake in outcome["fakes"]]
    return {"jobs": len(jobs), "throughput": len(jobs) / span, "span": span,
            **{f"{kind}_p{q}": percentile(w, q) for kind, w in waits.items() for q in (50, 95)},
            "util_min": min(util), "util_median": statistics.median(util), "util": util,
            "incapable": sum(fake["incapable"] for fake in outcome["fakes"]),
            "cpu_s": outcome["cpu"], "cpu_ms_per_job": outcome["cpu"] / len(jobs) * 1000, "rss_mb": outcome["rss_mb"]}


def report(name: str, f: dict) -> None:
    print(f"{name}: {f['jobs']} jobs in {f['span']:.1f} s = {f['throughput']:.1f} jobs/s; wait submit→start "
          f"light p50 {f['light_p50']:.2f} s p95 {f['light_p95']:.2f} s, heavy p50 {f['heavy_p50']:.2f} s "
          f"p95 {f['heavy_p95']:.2f} s")
    print(f"   utilisation while work waited: min {f['util_min']:.0%}, median {f['util_median']:.0%} "
          f"(per backend: {' '.join(f'{u:.0%}' for u in f['util'])}); jobs on an incapable backend: "
          f"{f['incapable']}; engine CPU {f['cpu_s']:.1f} s ({f['cpu_ms_per_job']:.2f} ms/job), peak RSS "
          f"{f['rss_mb']:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=["a", "b"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.engine:
        given = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(engine_run(options.engine, given["urls"], given["items"]))))
        return 0
    jobs, users = (600, 60) if options.quick else (options.jobs, options.users)
    items = plan(jobs, users, options.seed)
    print(f"{jobs} jobs from {users} users on {BACKENDS} fake backends (ideal makespan "
          f"{ideal_makespan(jobs):.1f} s; seed {options.seed})")
    a = figures(run_mode("a", items))
    report("(a) submit at once  ", a)
    b = figures(run_mode("b", items))
    report("(b) our fair queue  ", b)
    halved = b["light_p95"] <= a["light_p95"] / 2
    busy = b["util_min"] > 0.9
    print(f"light users' p95 wait (b)/(a): {b['light_p95'] / max(a['light_p95'], 1e-9):.2f} "
          f"({'at least halved' if halved else 'NOT halved'}); every backend busy > 90 % in (b): "
          f"{'yes' if busy else 'NO'}; incapable: {a['incapable']} / {b['incapable']}")
    return 0 if halved and busy and a["incapable"] == b["incapable"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
