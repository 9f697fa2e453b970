"""Every stage run on this machine at given sizes, each timed: what the plan's local figures stand on.

bench/overheads.py runs it on near-empty inputs (each stage's fixed cost); the reality check runs it at
`PLAN_CHECK` sizes, where every stage's work outweighs its start-up, and compares each stage's seconds
with `wit plan plan-check`. The stages run in the order, and with the calls, of `wit demo`:
queries -> match -> balance -> download -> train -> eval, one Ray session, the loopback web serving
the images. Only the stage calls are timed; making the inputs (a generated dump, the pool, the
held-out images) is not part of any stage.
"""

from __future__ import annotations

import bz2
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ProbeSizes:
    wikipedia_mb: float = 0.0             # 0: the vendored table-markup excerpt alone; else a generated dump
    wikipedia_files: int = 2              # of that many multistream files (queries.synth)
    pool_rows: int = 160                  # of the demo's loopback web (wit.demo.web.pool)
    cap_per_query: int = 20
    rows_per_download_shard: int = 50
    image_size: int = 64
    train_runs: tuple[tuple[int, int], ...] = ((8, 10), (24, 10))   # (batch per worker, steps), one fit each
    workers: int = 2
    # x 8 colours, both prompt sets; 65 x 8 = 520 is past trainer.eval.embed.LOCAL_MAX_ROWS (512), so even
    # the near-empty run embeds through Ray Data actors, as every larger eval does: the same start-up
    eval_images_per_class: int = 65
    seed: int = 0


# Near-empty inputs: what a stage costs before its work counts (bench/overheads.py).
OVERHEAD = ProbeSizes()
# Every stage long enough on 2 cores that its start-up jitter (1-3 s run to run) is well under 30%.
PLAN_CHECK = ProbeSizes(wikipedia_mb=150, wikipedia_files=2, pool_rows=800_000, cap_per_query=300,
                        rows_per_download_shard=1_000, train_runs=((24, 40),), eval_images_per_class=600)
# Where bench/local_rates.py measures this machine's per-item costs: far from both, so that neither
# the near-empty run nor the checked one is what it is checked against.
RATES = replace(PLAN_CHECK, wikipedia_mb=250, pool_rows=1_300_000, cap_per_query=500, train_runs=((24, 60),),
                eval_images_per_class=1000)
SIZES = {"overhead": OVERHEAD, "plan-check": PLAN_CHECK, "rates": RATES}
BASE_POOL_ROWS = 50_000                   # distinct captions; larger pools repeat them on mirror URLs


class Watch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        tick = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - tick, 3)
        print(f"{name}: {self.seconds[name]:.2f} s", flush=True)
        return result


def xml_mb(paths: list[str]) -> float:
    """Uncompressed MB (10^6 bytes) of the .bz2 dumps at `paths`: the queries stage's measure of work."""
    total = 0
    for path in paths:
        with bz2.open(path, "rb") as f:
            total += sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
    return total / 1e6


def wikipedia(tmp: Path, sizes: ProbeSizes):
    """The queries config: the vendored table-markup dump, or a generated dump of the excerpt's pages."""
    import queries
    from queries.synth import generate

    cfg = queries.demo_config()
    if not sizes.wikipedia_mb:
        return replace(cfg, dumps=tuple(d for d in cfg.dumps if "table-markup" in d))
    dumps = generate(tmp / "wiki", cfg.dumps[0], sizes.wikipedia_mb, files=sizes.wikipedia_files, single_stream=False)
    return replace(cfg, dumps=tuple(dumps))


def pool_table(base_url: str, rows: int, seed: int):
    """`rows` rows of the demo web's pool: its first BASE_POOL_ROWS, then the same rows again on
    `?mirror=k` URLs (the same image elsewhere: a new pair for match, a new key for balance)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from wit.demo import web

    base = web.pool(base_url, min(rows, BASE_POOL_ROWS), seed)
    copies = [base] + [base.set_column(0, "url", pc.binary_join_element_wise(base["url"], f"?mirror={k}", ""))
                       for k in range(1, -(-rows // base.num_rows))]
    return pa.concat_tables(copies).slice(0, rows)


def cpu_reference_s(repeats: int = 5) -> float:
    """Seconds of a fixed single-process job (pass 1 of the query builder over the vendored excerpt:
    bz2, wikitext parsing, counting), the fastest of `repeats`. Its ratio between two moments is how
    much faster or slower this machine runs now than when bench/local_rates.py measured its rates:
    a shared or different machine moves by 20% and more from one hour, or one host, to the next."""
    import queries
    from queries.count import count_dumps
    from queries.dump import plan_units

    cfg = queries.demo_config()
    units = plan_units(cfg.dumps, cfg.stream_range_bytes)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        count_dumps(units, cfg.bigram_min_count, cfg.bigram_skip_stopwords, cfg.bigram_partitions, use_ray=False)
        times.append(time.perf_counter() - tick)
    return round(min(times), 4)


def run_stages(tmp: Path, sizes: ProbeSizes, watch: Watch | None = None) -> dict[str, Any]:
    """{"seconds": by stage, "items": work per stage, "train_runs": by batch} of one run at `sizes`.

    Ray must be started (wit.raylocal.ensure_ray) by the caller: its start-up is no stage's.
    """
    import pipeline
    import queries
    from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
    from trainer.eval.zeroshot import ZeroShotConfig, zeroshot
    from trainer.fit import TrainConfig, fit
    from wit.artifacts import write_parquet
    from wit.demo import evalset, web
    from wit.demo.scenes import COLOURS
    from wit.loopback import LoopbackServer

    watch = watch or Watch()
    wiki = wikipedia(tmp, sizes)
    watch.time("queries", queries.build, wiki, str(tmp / "queries.parquet"))
    items: dict[str, float] = {"queries": xml_mb(list(wiki.dumps))}
    with LoopbackServer(web.app(sizes.seed)) as server:
        pool = tmp / "pool.parquet"
        write_parquet(pool_table(server.url, sizes.pool_rows, sizes.seed), pool, {})
        matched = watch.time("match", pipeline.match, (str(pool),), str(tmp / "queries.parquet"),
                             str(tmp / "matched"), MatchConfig())
        selected = watch.time("balance", pipeline.balance, str(tmp / "matched"), str(tmp / "selected"),
                              BalanceConfig(cap_per_query=sizes.cap_per_query, seed=sizes.seed))
        manifest = watch.time("download", pipeline.download, str(tmp / "selected"), str(tmp / "corpus"),
                              DownloadConfig(image_size=sizes.image_size, timeout_s=5,
                                             rows_per_input_shard=sizes.rows_per_download_shard,
                                             allow_networks=("127.0.0.0/8",)))  # the loopback web
    items |= {"match": sizes.pool_rows, "balance": matched["output_rows"], "download": selected["output_rows"],
              "downloaded": manifest["counts"]["downloaded"]}
    runs = {}
    for batch, steps in sizes.train_runs:
        name = f"fit_b{batch}"
        result = watch.time(name, fit, TrainConfig(corpus_dir=str(tmp / "corpus"), run_dir=str(tmp / name),
                                                   model="tiny", batch_size=batch, steps=steps,
                                                   num_workers=sizes.workers, seed=sizes.seed))
        rows = [json.loads(line) for line in Path(result["metrics_path"]).read_text().splitlines()]
        steady = [r["step_time_s"] for r in rows[1:]]
        runs[batch] = {"steps": steps, "seconds": watch.seconds[name], "steady_step_s": sum(steady) / len(steady),
                       "checkpoint": result["checkpoint"]}
    watch.seconds["train"] = watch.seconds[f"fit_b{sizes.train_runs[0][0]}"]     # the first fit: as in the demo
    images, classes = evalset.write(tmp / "eval", sizes.seed, sizes.eval_images_per_class)
    checkpoint = runs[sizes.train_runs[0][0]]["checkpoint"]
    watch.time("eval", lambda: [zeroshot(ZeroShotConfig(checkpoint=checkpoint, images=str(images),
                                                          classes_json=str(classes), templates=t))
                                for t in ("ensemble", "single")])
    items["eval"] = len(COLOURS) * sizes.eval_images_per_class
    watch.seconds.pop("fit_b" + str(sizes.train_runs[0][0]))
    return {"seconds": dict(watch.seconds), "items": items, "sizes": asdict(sizes), "law": query_law(tmp / "matched"),
            "train_runs": {str(b): {k: v for k, v in r.items() if k != "checkpoint"} for b, r in runs.items()}}


def query_law(matched_dir: Path) -> dict[str, Any]:
    """How the pool's pairs spread over queries: each distinct set of matched query ids and how many
    pairs carry it, most first, as "pairs id id ..." lines; what `wit plan` balances with when it plans
    this pool (balance_sim.PairModel.from_law)."""
    from collections import Counter

    import pyarrow.dataset as ds

    ids = ds.dataset(sorted(str(p) for p in matched_dir.glob("part-*.parquet"))).to_table(columns=["query_ids"])
    sets = Counter(tuple(qs) for qs in ids["query_ids"].to_pylist())
    return {"pairs_and_query_ids": [" ".join(map(str, (n, *qs))) for qs, n in sets.most_common()]}


def run_fresh(sizes: str, out_dir: Path, timeout_s: int = 1200) -> dict[str, Any]:
    """`run_stages` at SIZES[sizes] in a new process with its own Ray, as a real run starts."""
    import os
    import subprocess
    import sys

    out = Path(out_dir) / f"{sizes}.json"
    subprocess.run([sys.executable, "-m", "wit.plan.probe", sizes, "--out", str(out)], check=True,
                   cwd=Path(__file__).resolve().parents[2], timeout=timeout_s,
                   env=os.environ | {"RAY_USAGE_STATS_ENABLED": "0"})
    return json.loads(out.read_text())


def main() -> None:
    """python -m wit.plan.probe {overhead,plan-check,rates} --out FILE: one run in a fresh Ray session."""
    import argparse
    import tempfile

    from wit.raylocal import ensure_ray

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("sizes", choices=sorted(SIZES))
    ap.add_argument("--out", required=True, help="JSON file for the seconds and items")
    args = ap.parse_args()
    started = time.perf_counter()
    ensure_ray()
    ray_init_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        result = run_stages(Path(tmp), SIZES[args.sizes])
    Path(args.out).write_text(json.dumps(result | {"ray_init_s": round(ray_init_s, 2)}, indent=1))


if __name__ == "__main__":
    main()
