"""Every stage run on this machine at given sizes, each timed: what the plan's local figures stand on.

bench/overheads.py runs it on near-empty inputs (each stage's fixed cost), bench/local_rates.py at the
large RATES sizes (per-item costs, the shares of rows that match and download, the query law), and
the reality check (tests/wit/plan/test_plan_reality.py) at `PLAN_CHECK` sizes, where every stage's
work outweighs its start-up, comparing each stage's seconds and pairs with `wit plan plan-check`.
The stages are `wit demo`'s, through the same runner (wit.demo.flow.run_flow): queries -> match ->
balance -> download -> train -> eval, one Ray session, the loopback web serving the images. Only the
stage calls are timed; making the inputs (a generated dump, the pool, the held-out images) is not
part of any stage.

The plan-check run crawls a web the plan has not seen: its pool is drawn with another seed (other
captions, other images) and has another mix of bad rows than the web local_rates.json was measured
on; the plan is told neither, so its pair counts are a prediction, not the measurement coming back.

    python bench/probe.py {overhead,plan-check,rates} --out FILE
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402

from queries.config import QueriesConfig, demo_config  # noqa: E402
from bench.common import machine  # noqa: E402
from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig  # noqa: E402
from queries.count import count_dumps  # noqa: E402
from queries.dump import plan_units  # noqa: E402
from queries.synth import generate  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.fit import fit  # noqa: E402
from core.artifacts import versions, write_parquet  # noqa: E402
from wit.demo import evalset, web  # noqa: E402
from wit.demo.flow import EvalSet, FlowConfig, FlowPaths, run_flow  # noqa: E402
from wit.demo.scenes import COLOURS  # noqa: E402
from core.loopback import LoopbackServer  # noqa: E402
from wit.plan.config import PLAN_CHECK, ProbeSizes, xml_mb  # noqa: E402
from core.raylocal import ensure_ray  # noqa: E402


@dataclass(frozen=True)
class ProbeWeb:
    """The loopback web a probe crawls."""

    seed: int = 0                          # of its captions, images and bad rows
    distinct_rows: int = 50_000            # pool rows generated; a larger pool repeats them on mirror URLs
    bad_row_shares: dict[str, float] = field(default_factory=lambda: dict(web.BAD_ROW_SHARES))


# The demo's own web: what bench/local_rates.py measured its rates on (and bench/overheads.py its costs).
DEMO_WEB = ProbeWeb()
# Not the demo's: other captions and images (seed 1), 200k rows drawn (4x the measured web's 50k, so
# the check's 2.4M rows repeat each 12 times, not 48), and another failure mix (more dead links and
# truncated JPEGs, fewer pages and noai hosts, more bad URLs): the web the plan predicts blind. (Drawing
# all 2.4M rows would add minutes of Python to the check for no other difference: the captions come
# from the same templates either way.)
UNSEEN_WEB = ProbeWeb(seed=1, distinct_rows=200_000, bad_row_shares={
    "missing": 0.07, "error": 0.02, "page": 0.01, "broken": 0.05, "noai": 0.01,
    "bad_url": 0.04, "junk_text": 0.06, "empty_text": 0.02, "duplicate": 0.03})

# Near-empty inputs: what a stage costs before its work counts (bench/overheads.py).
OVERHEAD = ProbeSizes()
# Where bench/local_rates.py measures this machine's per-item costs: far from both, so that neither
# the near-empty run nor the checked one is what it is checked against.
RATES = replace(PLAN_CHECK, wikipedia_mb=250, pool_rows=1_300_000, cap_per_query=500, train_runs=((24, 60),),
                eval_images_per_class=1000)
SIZES = {"overhead": (OVERHEAD, DEMO_WEB), "plan-check": (PLAN_CHECK, UNSEEN_WEB), "rates": (RATES, DEMO_WEB)}


class Watch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, call: Callable[[], Any]) -> Any:
        tick = time.perf_counter()
        result = call()
        self.seconds[name] = round(time.perf_counter() - tick, 3)
        print(f"{name}: {self.seconds[name]:.2f} s", flush=True)
        return result


def wikipedia(tmp: Path, sizes: ProbeSizes) -> QueriesConfig:
    """The queries config: the vendored table-markup dump, or a generated dump of the excerpt's pages."""
    cfg = demo_config()
    if not sizes.wikipedia_mb:
        return replace(cfg, dumps=tuple(d for d in cfg.dumps if "table-markup" in d))
    dumps = generate(tmp / "wiki", cfg.dumps[0], sizes.wikipedia_mb, files=sizes.wikipedia_files, single_stream=False)
    return replace(cfg, dumps=tuple(dumps))


def pool_table(base_url: str, rows: int, probe_web: ProbeWeb = DEMO_WEB) -> pa.Table:
    """`rows` rows of the web's pool: its first `distinct_rows`, then the same rows again on
    `?mirror=k` URLs (the same image elsewhere: a new pair for match, a new key for balance)."""
    base = web.pool(base_url, min(rows, probe_web.distinct_rows), probe_web.seed, probe_web.bad_row_shares)
    copies = [base] + [base.set_column(0, "url", pc.binary_join_element_wise(base["url"], f"?mirror={k}", ""))
                       for k in range(1, -(-rows // base.num_rows))]
    return pa.concat_tables(copies).slice(0, rows)


def cpu_reference_s(repeats: int = 5) -> float:
    """Seconds of a fixed single-process job (pass 1 of the query builder over the vendored excerpt:
    bz2, wikitext parsing, counting), the fastest of `repeats`. Its ratio between two moments is how
    much faster or slower this machine runs now than when bench/local_rates.py measured its rates:
    a shared or different machine moves by 20% and more from one hour, or one host, to the next."""
    cfg = demo_config()
    units = plan_units(cfg.dumps, cfg.stream_range_bytes)
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        count_dumps(units, cfg.bigram_min_count, cfg.bigram_skip_stopwords, cfg.bigram_partitions, use_ray=False)
        times.append(time.perf_counter() - tick)
    return round(min(times), 4)


def flow_config(tmp: Path, sizes: ProbeSizes, probe_web: ProbeWeb) -> FlowConfig:
    paths = FlowPaths(tmp)
    batch, steps = sizes.train_runs[0]
    return FlowConfig(
        queries=wikipedia(tmp, sizes),
        match=MatchConfig(),
        balance=BalanceConfig(cap_per_query=sizes.cap_per_query, seed=probe_web.seed),
        download=DownloadConfig(image_size=sizes.image_size, timeout_s=5,
                                rows_per_input_shard=sizes.rows_per_download_shard,
                                allow_networks=("127.0.0.0/8",)),  # the probe's loopback web
        train=_train(paths, sizes, batch, steps, probe_web.seed, "run"),
    )


def _train(paths: FlowPaths, sizes: ProbeSizes, batch: int, steps: int, seed: int, run: str) -> TrainConfig:
    return TrainConfig(corpus_dir=str(paths.corpus), run_dir=str(paths.out / run), model="tiny", batch_size=batch,
                       steps=steps, num_workers=sizes.workers, seed=seed)


def run_stages(tmp: Path, sizes: ProbeSizes, probe_web: ProbeWeb = DEMO_WEB) -> dict[str, Any]:
    """{"seconds": by stage, "items": work per stage, "train_runs": by batch, ...} of one run at `sizes`.

    Ray must be started (core.raylocal.ensure_ray) by the caller: its start-up is no stage's.
    """
    watch = Watch()
    cfg = flow_config(tmp, sizes, probe_web)
    images, classes = evalset.write(tmp / "eval", probe_web.seed, sizes.eval_images_per_class)

    @contextmanager
    def serve_pool() -> Iterator[tuple[str, ...]]:
        with LoopbackServer(web.app(probe_web.seed)) as server:
            pool = tmp / "pool.parquet"
            write_parquet(pool_table(server.url, sizes.pool_rows, probe_web), pool, {})
            yield (str(pool),)

    results = run_flow(tmp, cfg, serve_pool, EvalSet(str(images), str(classes)), watch)
    runs = {sizes.train_runs[0][0]: _train_run(sizes.train_runs[0][1], watch.seconds["train"], results["train"])}
    for batch, steps in sizes.train_runs[1:]:          # more batches: the step cost's slope (bench/overheads.py)
        name = f"fit_b{batch}"
        trained = watch(name, lambda: fit(_train(FlowPaths(tmp), sizes, batch, steps, probe_web.seed, name)))
        runs[batch] = _train_run(steps, watch.seconds.pop(name), trained)
    items = {"queries": xml_mb(list(cfg.queries.dumps)), "match": sizes.pool_rows,
             "balance": results["match"]["output_rows"], "download": results["balance"]["output_rows"],
             "downloaded": results["download"]["counts"]["downloaded"],
             "eval": len(COLOURS) * sizes.eval_images_per_class}
    return {"seconds": dict(watch.seconds), "items": items, "sizes": asdict(sizes), "web": asdict(probe_web),
            "law": query_law(tmp / "matched"), "train_runs": {str(b): r for b, r in runs.items()}}


def _train_run(steps: int, seconds: float, trained: dict[str, Any]) -> dict[str, Any]:
    rows = [json.loads(line) for line in Path(trained["metrics_path"]).read_text().splitlines()]
    steady = [r["step_time_s"] for r in rows[1:]]
    return {"steps": steps, "seconds": seconds, "steady_step_s": sum(steady) / len(steady)}


def query_law(matched_dir: Path) -> dict[str, Any]:
    """How the pool's pairs spread over queries: each distinct set of matched query ids and how many
    pairs carry it, most first, as "pairs id id ..." lines; what `wit plan` balances with when it plans
    this pool (balance_sim.PairModel.from_law)."""
    ids = ds.dataset(sorted(str(p) for p in matched_dir.glob("part-*.parquet"))).to_table(columns=["query_ids"])
    sets = Counter(tuple(qs) for qs in ids["query_ids"].to_pylist())
    return {"pairs_and_query_ids": [" ".join(map(str, (n, *qs))) for qs, n in sets.most_common()]}


def run_fresh(sizes: str, out_dir: Path, timeout_s: int = 1200) -> dict[str, Any]:
    """`run_stages` at SIZES[sizes] in a new process with its own Ray, as a real run starts."""
    out = Path(out_dir) / f"{sizes}.json"
    subprocess.run([sys.executable, str(Path(__file__).resolve()), sizes, "--out", str(out)], check=True,
                   cwd=ROOT, timeout=timeout_s, env=os.environ | {"RAY_USAGE_STATS_ENABLED": "0"})
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", choices=sorted(SIZES))
    ap.add_argument("--out", required=True, help="JSON file for the seconds and items")
    args = ap.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    ensure_ray()
    ray_init_s = time.perf_counter() - started
    sizes, probe_web = SIZES[args.sizes]
    with tempfile.TemporaryDirectory() as tmp:
        result = run_stages(Path(tmp), sizes, probe_web)
    record = {"command": " ".join(["python", *sys.argv]), "machine": machine(), "versions": versions(),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "load_avg_1min_before_after": [load_before, round(os.getloadavg()[0], 2)]}
    Path(args.out).write_text(json.dumps(record | result | {"ray_init_s": round(ray_init_s, 2)}, indent=1))


if __name__ == "__main__":
    main()
