"""Fixed costs of each stage on this machine: what a stage takes before its work starts to count.

At demo size a stage's wall time is mostly start-up (Ray Data actors and their automaton, Ray tasks,
img2dataset's processes, Ray Train workers, model init), so `wit plan` models every stage as
fixed overhead + work / rate. This bench measures the fixed part the way the demo runs the stages
(a fresh process starts Ray, then queries -> match -> balance -> download -> train -> eval), on
inputs far smaller than the demo's (bench/probe.py: OVERHEAD), --repeats times; per stage the fastest:
  queries   the 5-article table-markup dump alone, with the demo's WordNet
  pipeline  a 160-row pool of the demo's loopback web, cap 20, download shards of 50 rows
  train     the tiny model at two per-worker batches (8 and 24, 10 steps each, 2 workers): the steady
            step times give the step cost (floor + per sample); the first fit less its steps is the
            start-up (a later fit in the same Ray session reuses what the first started)
  eval      zero-shot on 65 held-out images per class (past the in-process limit), both prompt sets
overhead_s = stage seconds - its few items at this machine's per-item cost (bench/results/
local_rates.json; subtracted, and recorded). Also: the seconds of a fixed CPU job
(bench/probe.py: cpu_reference_s), which against local_rates.json's says how fast this machine runs
now; bytes per head-query candidate on the balance driver (a (hash, key) tuple in a list,
tracemalloc); the load average before and after. On a shared machine these figures move with the
load (tests/wit/plan/test_plan_reality.py reruns this bench next to the run it predicts).

    python bench/overheads.py [--repeats 2] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.common import RESULTS, write_result  # noqa: E402
from bench.probe import OVERHEAD, cpu_reference_s, run_fresh  # noqa: E402
from wit.plan.rates import Results  # noqa: E402


def candidate_bytes(n: int = 100_000) -> float:
    """Driver memory per (hash, key) candidate as pipeline.balance.merge_cutoffs holds them."""
    import hashlib

    keys = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(n)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ranked = {q: [(int.from_bytes(os.urandom(8), "big"), key) for key in keys[q::10]] for q in range(10)}
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del ranked
    return round(used / n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--repeats", type=int, default=2, help="near-empty runs, each in a fresh process")
    args = ap.parse_args()

    local = Results(RESULTS).load("local_rates.json")["figures"]   # this machine's per-item costs, to subtract
    cores = os.cpu_count() or 1
    reference_s = cpu_reference_s()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_fresh("overhead", Path(tmp)) for _ in range(args.repeats)]
    # Start-up jitter is one-sided (now and then a stage waits seconds more for a worker process):
    # the fastest of the runs is the stage's usual fixed cost.
    stage_s = {stage: min(r["seconds"][stage] for r in runs) for stage in runs[0]["seconds"]}
    items = runs[0]["items"]
    speed = reference_s / local["cpu_reference_s"]            # > 1: this machine runs slower now
    work = {stage: items[stage] * local["seconds_per_item"][stage] * speed for stage in local["seconds_per_item"]}
    fits = min(runs, key=lambda r: r["seconds"]["train"])["train_runs"]
    (b1, r1), (b2, r2) = ((int(b), r) for b, r in fits.items())
    per_sample = max(0.0, (r2["steady_step_s"] - r1["steady_step_s"]) / (b2 - b1))
    floor = max(0.0, r1["steady_step_s"] - b1 * per_sample)
    # The first fit of a Ray session starts what later ones reuse (as the demo's one fit does): its start-up counts.
    startup = stage_s["train"] - r1["steps"] * r1["steady_step_s"]
    overhead = {stage: round(max(0.0, stage_s[stage] - work[stage]), 3) for stage in work}
    overhead["train"] = round(startup, 3)
    write_result("overheads", {
        "cpus": cores,
        "ray_init_s": min(r["ray_init_s"] for r in runs),
        "overhead_s": overhead,
        "train_step": {"floor_s": round(floor, 4), "per_sample_s": round(per_sample, 5),
                       "workers": OVERHEAD.workers, "model": "tiny", "runs": fits},
        "stage_s": stage_s,
        "stage_s_runs": [r["seconds"] for r in runs],
        "items": items,
        "work_subtracted_s": {k: round(v, 3) for k, v in work.items()},
        "rates_subtracted": "bench/results/local_rates.json: figures.seconds_per_item",
        "balance_candidate_bytes": candidate_bytes(),
        "cpu_reference_s": reference_s,       # bench/probe.py: cpu_reference_s, before the runs
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
