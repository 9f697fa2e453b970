"""Fixed costs of each stage on this machine: what a stage takes before its work starts to count.

At demo size a stage's wall time is mostly start-up (Ray Data actors and their automaton, Ray tasks,
img2dataset's processes, Ray Train workers, model init), so `wit plan` models every stage as
fixed overhead + work / rate. This bench measures the fixed part the way the demo runs the stages
(Ray started first, then queries -> match -> balance -> download -> train -> eval in one process),
on inputs far smaller than the demo's:
  queries   the 5-article table-markup dump alone, with the demo's WordNet
  pipeline  a 160-row pool of the demo's loopback web, cap 20, download shards of 50 rows
  train     the tiny model at two per-worker batches (8 and 24, 10 steps each, 2 workers): the steady
            step times give the step cost (floor + per sample); the first fit less its steps is the
            start-up (a later fit in the same Ray session reuses what the first started)
  eval      zero-shot on 1 held-out image per class, both prompt sets
overhead_s = stage seconds - its few items at the per-core rate of bench/results (subtracted, and
recorded). Also: bytes per head-query candidate on the balance driver (a (hash, key) tuple in a list,
tracemalloc), and the load average before and after: on a shared machine these figures move with
the load (tests/wit/plan/test_plan_reality.py reruns this bench next to the run it predicts).

    python bench/overheads.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from bench.common import write_result  # noqa: E402

POOL_ROWS, CAP = 160, 20
DOWNLOAD_SHARD_ROWS = 50                  # ~3 shard tasks on 2 cores: two waves of img2dataset start-up, as the smoke demo has
TRAIN_RUNS = ((8, 10), (24, 10))          # (batch per worker, steps)
WORKERS = 2


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


class Watch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, fn, *args, **kwargs):
        tick = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - tick, 3)
        print(f"{name}: {self.seconds[name]:.2f} s", flush=True)
        return result


def xml_mb(path: str) -> float:
    with bz2.open(path, "rb") as f:
        return sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b"")) / 1e6


def run_stages(tmp: Path, watch: Watch) -> dict:
    import pipeline
    import queries
    from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
    from trainer.eval.zeroshot import ZeroShotConfig, zeroshot
    from trainer.fit import TrainConfig, fit
    from wit.artifacts import write_parquet
    from wit.demo import evalset, web
    from wit.loopback import LoopbackServer

    cfg = queries.demo_config()
    dump = next(d for d in cfg.dumps if "table-markup" in d)
    watch.time("queries", queries.build, replace(cfg, dumps=(dump,)), str(tmp / "queries.parquet"))
    items = {"queries": xml_mb(dump)}
    with LoopbackServer(web.app(0)) as server:
        pool = tmp / "pool.parquet"
        write_parquet(web.pool(server.url, POOL_ROWS, 0), pool, {})
        matched = watch.time("match", pipeline.match, (str(pool),), str(tmp / "queries.parquet"),
                             str(tmp / "matched"), MatchConfig())
        selected = watch.time("balance", pipeline.balance, str(tmp / "matched"), str(tmp / "selected"),
                              BalanceConfig(cap_per_query=CAP))
        watch.time("download", pipeline.download, str(tmp / "selected"), str(tmp / "corpus"),
                   DownloadConfig(image_size=64, timeout_s=5, rows_per_input_shard=DOWNLOAD_SHARD_ROWS))
    items |= {"match": POOL_ROWS, "balance": matched["output_rows"], "download": selected["output_rows"]}
    steps = {}
    for batch, n in TRAIN_RUNS:
        name = f"train_b{batch}"
        result = watch.time(name, fit, TrainConfig(corpus_dir=str(tmp / "corpus"), run_dir=str(tmp / name),
                                                   model="tiny", batch_size=batch, steps=n, num_workers=WORKERS))
        rows = [json.loads(line) for line in Path(result["metrics_path"]).read_text().splitlines()]
        steady = [r["step_time_s"] for r in rows[1:]]
        steps[batch] = {"steps": n, "seconds": watch.seconds[name], "steady_step_s": sum(steady) / len(steady),
                        "checkpoint": result["checkpoint"]}
    images, classes = evalset.write(tmp / "eval", 0, 1)
    checkpoint = steps[TRAIN_RUNS[0][0]]["checkpoint"]
    watch.time("eval", lambda: [zeroshot(ZeroShotConfig(checkpoint=checkpoint, images=str(images),
                                                          classes_json=str(classes), templates=t))
                                for t in ("ensemble", "single")])
    return {"items": items, "train_runs": {str(b): {k: v for k, v in s.items() if k != "checkpoint"}
                                           for b, s in steps.items()}}


def download_rate_at_64px(images_per_s_per_core: float) -> float:
    """The download rate at this bench's 64 px output, scaled as `wit plan` scales it (wit/plan/model.py)."""
    from wit.plan.model import MEASURED_IMAGE_SIZE

    return images_per_s_per_core * (MEASURED_IMAGE_SIZE / 64) ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()

    from wit.plan.rates import Results
    from wit.raylocal import ensure_ray

    results = Results()                   # the per-core rates whose work is subtracted
    per_core = {
        "queries": results.figure("queries.json", "figures.end_to_end_mb_s_per_core", "MB/s/core"),
        "match": results.figure("match_per_core.json", "per_core.coco.texts_per_s", "texts/s/core"),
        "download": results.figure("download.json", "results.wit.images_per_s_per_core", "images/s/core"),
    }
    balance_rate = (results.figure("match.json", "pipeline.rows", "").value
                    / results.figure("match.json", "pipeline.balance.stage_s", "").value
                    / results.figure("match.json", "machine.cpus", "").value)
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ensure_ray()
    ray_init_s = time.perf_counter() - started
    watch = Watch()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        measured = run_stages(Path(tmp), watch)

    items, runs = measured["items"], measured["train_runs"]
    work = {"queries": items["queries"] / per_core["queries"].value,          # one task: the file is one unit
            "match": items["match"] / (per_core["match"].value * cores),
            "balance": items["balance"] / (balance_rate * cores),
            "download": items["download"] / (download_rate_at_64px(per_core["download"].value) * cores)}
    (b1, r1), (b2, r2) = ((int(b), r) for b, r in runs.items())
    per_sample = max(0.0, (r2["steady_step_s"] - r1["steady_step_s"]) / (b2 - b1))
    floor = max(0.0, r1["steady_step_s"] - b1 * per_sample)
    # The first fit of a Ray session starts what later ones reuse (as the demo's one fit does): its start-up counts.
    first = runs[str(TRAIN_RUNS[0][0])]
    startup = first["seconds"] - first["steps"] * first["steady_step_s"]
    overhead = {stage: round(max(0.0, watch.seconds[stage] - work[stage]), 3) for stage in work}
    overhead["train"] = round(startup, 3)
    overhead["eval"] = watch.seconds["eval"]
    write_result("overheads", {
        "cpus": cores,
        "ray_init_s": round(ray_init_s, 2),
        "overhead_s": overhead,
        "train_step": {"floor_s": round(floor, 4), "per_sample_s": round(per_sample, 5), "workers": WORKERS,
                       "model": "tiny", "runs": runs},
        "stage_s": watch.seconds,
        "items": items,
        "work_subtracted_s": {k: round(v, 3) for k, v in work.items()},
        "rates_subtracted": {k: f"{f.value:g} {f.unit} ({f.source})" for k, f in per_core.items()}
        | {"balance": f"{balance_rate:.0f} rows/s/core (bench/results/match.json)"},
        "balance_candidate_bytes": candidate_bytes(),
        "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
