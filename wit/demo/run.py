"""`wit demo`: the whole path, offline, on the embedded default.

queries (vendored Wikipedia excerpt + WordNet) -> a loopback web of generated images and its pool ->
match -> balance -> download (img2dataset) -> train a tiny CLIP (Ray Train) -> zero-shot on
held-out images. Each stage reuses its finished output, so a rerun with the same output directory
only does what is missing, and yields the same queries and the same selected keys.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from wit.artifacts import is_done, provenance, read_json, read_provenance, write_json, write_parquet
from wit.demo import evalset, web
from wit.loopback import LoopbackServer
from wit.raylocal import ensure_ray


@dataclass(frozen=True)
class DemoConfig:
    out: str = "demo_out"
    seed: int = 0
    pool_rows: int = 4_000  # "a few thousand" alt-text rows, a fifth of them bad in some way
    cap_per_query: int = 100  # the paper's 20,000 scaled to a pool of thousands
    image_size: int = 64  # shorter side of the downloaded images
    rows_per_download_shard: int = 1_000  # two shards or more: both CPUs download
    model: str = "tiny"
    train_steps: int = 300
    batch_size: int = 64  # per worker
    num_workers: int = 2
    eval_images_per_class: int = 30


def smoke_config(out: str) -> DemoConfig:
    """The demo path at test size: every stage runs, in about a minute."""
    return DemoConfig(out=out, pool_rows=600, cap_per_query=40, rows_per_download_shard=200, train_steps=12,
                      batch_size=16, eval_images_per_class=4)


class Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def stage(self, name: str):
        watch = self

        class _Timed:
            def __enter__(self) -> None:
                print(f"\n== {name} ==", flush=True)
                self.start = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                watch.seconds[name] = round(time.perf_counter() - self.start, 2)

        return _Timed()


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    import pipeline
    import queries
    from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
    from trainer.eval.zeroshot import ZeroShotConfig, zeroshot
    from trainer.fit import TrainConfig, fit

    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray()
    watch = Stopwatch()
    paths = {name: out / name for name in ("queries.parquet", "matched", "selected", "corpus", "run", "eval")}
    pool_path = out / "web" / "pool.parquet"

    with watch.stage("queries: Wikipedia excerpt + WordNet -> queries.parquet"):
        queries.build(queries.demo_config(), str(paths["queries.parquet"]))

    port = _reuse_or_reset_pool(pool_path, paths)
    with LoopbackServer(web.app(cfg.seed), port=port) as server:
        with watch.stage(f"web: {cfg.pool_rows} alt-text rows served from {server.url}"):
            if not pool_path.exists():
                table = web.pool(server.url, cfg.pool_rows, cfg.seed)
                write_parquet(table, pool_path, provenance("demo-pool", cfg, base_url=server.url))
        with watch.stage("pipeline match"):
            pipeline.match((str(pool_path),), str(paths["queries.parquet"]), str(paths["matched"]), MatchConfig())
        with watch.stage(f"pipeline balance (cap {cfg.cap_per_query} per query, seed {cfg.seed})"):
            pipeline.balance(str(paths["matched"]), str(paths["selected"]),
                             BalanceConfig(cap_per_query=cfg.cap_per_query, seed=cfg.seed))
        # The address guard refuses loopback by default; the demo's web is on this machine, so the
        # demo opens 127.0.0.0/8 (as `wit pipeline download --allow-network 127.0.0.0/8` would).
        with watch.stage("pipeline download (img2dataset, --allow-network 127.0.0.0/8 for the demo's loopback web)"):
            manifest = pipeline.download(str(paths["selected"]), str(paths["corpus"]),
                                         DownloadConfig(image_size=cfg.image_size, timeout_s=5,
                                                        rows_per_input_shard=cfg.rows_per_download_shard,
                                                        allow_networks=DEMO_ALLOW_NETWORKS))
        requests = server.requests

    with watch.stage(f"train: {cfg.model} CLIP, {cfg.num_workers} Ray Train workers, {cfg.train_steps} steps"):
        trained = fit(TrainConfig(
            corpus_dir=str(paths["corpus"]), run_dir=str(paths["run"]), model=cfg.model,
            batch_size=cfg.batch_size, steps=cfg.train_steps, num_workers=cfg.num_workers, seed=cfg.seed,
        ))

    with watch.stage("eval: zero-shot on held-out generated images"):
        images, classes_json = evalset.write(paths["eval"], cfg.seed, cfg.eval_images_per_class)
        results = {
            templates: zeroshot(ZeroShotConfig(checkpoint=trained["checkpoint"], images=str(images),
                                               classes_json=str(classes_json), templates=templates))
            for templates in ("ensemble", "single")
        }
        write_json(results, paths["eval"] / "results.json")

    summary = _summary(cfg, paths, pool_path, manifest, trained, results, watch.seconds, requests)
    write_json(summary, out / "summary.json")
    return summary


DEMO_ALLOW_NETWORKS = ("127.0.0.0/8",)  # the demo's own web; everything else stays refused


def _reuse_or_reset_pool(pool_path: Path, paths: dict[str, Path]) -> int:
    """The port to serve on: the pool's own when it exists, so its URLs (and the keys hashed from
    them) stay valid across reruns. A pool whose port is taken and whose download is unfinished is
    regenerated, and the stages built on it are cleared."""
    if not pool_path.exists():
        return 0
    port = int(read_provenance(pool_path)["base_url"].rsplit(":", 1)[1])
    if is_done(paths["corpus"]) or _port_free(port):
        return port
    print(f"port {port} of the existing pool is taken: making a new pool and clearing its stages")
    for stage in ("matched", "selected", "corpus"):
        shutil.rmtree(paths[stage], ignore_errors=True)
    pool_path.unlink()
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _summary(cfg, paths, pool_path, manifest, trained, results, seconds, requests) -> dict[str, Any]:
    queries = pq.read_table(paths["queries.parquet"], columns=["sources"]).column("sources").to_pylist()
    by_source: dict[str, int] = {}
    for sources in queries:
        for source in sources:
            by_source[source] = by_source.get(source, 0) + 1
    return {
        "queries": {"total": len(queries), "by_source": by_source},
        "pipeline": {
            "pool_rows": pq.read_metadata(pool_path).num_rows,
            "matched": read_json(paths["matched"] / "stats.json"),
            "selected": read_json(paths["selected"] / "stats.json"),
            "corpus": manifest,
            "http_requests": requests,
        },
        "train": trained,
        "zeroshot": results,
        "seconds": seconds,
        "artifacts": {name: str(path) for name, path in paths.items()} | {"pool": str(pool_path)},
        "config": cfg.__dict__,
    }
