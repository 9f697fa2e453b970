"""Driver and task memory of match -> balance -> download planning as the pool grows (issue #16).

For each pool size, each stage runs in a fresh subprocess (so the driver's peak RSS is that stage's
own) on a local Ray with --cpus CPUs:
  match      the synthetic pool against 500,000 queries          (rows = pool rows)
  balance    matched/ -> selected/ with a small cap (20)           (rows = matched rows)
  download   download planning only: what `download` does before its first shard task
             (pipeline.download.plan_download: shard plan and which shards are finished)
                                                                   (rows = selected rows)
Figures per stage: wall seconds (the stage call, Ray already started), rows/s and µs per row, the
driver's peak RSS (VmHWM of the stage process: imports and Ray start-up included), and the largest
Ray worker process's peak RSS: VmHWM from /proc of every Ray worker descended from the stage
process, read every 0.5 s. A worker process runs many tasks (or one actor) in turn, so this is the peak of a worker,
an upper bound of any one task's peak in it; it counts the object-store pages the worker touched.

The pool: `url`, `caption` Parquet files of 1M rows; each caption holds three query words drawn
with Zipf (s=1) frequencies over the query ranks, so pairs per query are Zipf-like and thousands of
queries are heads at cap 20. Queries: `zab`-like pseudo-words in the queries.parquet schema. Both are
generated once, vectorized, into --work and reused.

    python bench/scale.py --sizes 1e6,4e6,1e7            # all three stages, each size
    python bench/scale.py --sizes 1e6 --stages download  # one stage, reusing the cached selected/

Results are merged into bench/results/scale.json (one entry per size and stage, each with its own
date, load and commit; --fresh drops earlier entries) with the ratios of the largest size to the
smallest and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("match", "balance", "download")
POOL_FILE_ROWS = 1_000_000
WORDS_PER_CAPTION = 3
ZIPF_S = 1.0


# --- synthetic inputs -------------------------------------------------------------------------

def query_words(n: int) -> list[str]:
    """n distinct pseudo-words: 'z' + the bijective base-26 spelling of 1..n (none is an English word
    the captions' filler uses, since every one starts with 'z')."""
    words = []
    for i in range(1, n + 1):
        letters = []
        while i:
            i, r = divmod(i - 1, 26)
            letters.append(chr(97 + r))
        words.append("z" + "".join(reversed(letters)))
    return words


def write_queries(path: Path, n: int) -> None:
    from queries.schema import SCHEMA

    words = query_words(n)
    table = pa.table(
        {
            "query_id": pa.array(np.arange(n, dtype=np.int32)),
            "query": words,
            "sources": pa.array([["word"]] * n, pa.list_(pa.string())),
            "count": pa.array(np.arange(n, 0, -1, dtype=np.int64) * 100),
            "pmi": pa.nulls(n, pa.float64()),
        },
        schema=SCHEMA,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_pool(out_dir: Path, rows: int, num_queries: int, seed: int = 0) -> None:
    """`rows` captions in files of POOL_FILE_ROWS rows, each with WORDS_PER_CAPTION Zipf-drawn query words."""
    vocab = pa.array(query_words(num_queries))
    weights = 1.0 / np.arange(1, num_queries + 1) ** ZIPF_S
    cdf = np.cumsum(weights) / weights.sum()
    rng = np.random.default_rng(seed)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for number, start in enumerate(range(0, rows, POOL_FILE_ROWS)):
        n = min(POOL_FILE_ROWS, rows - start)
        words = [vocab.take(pa.array(np.searchsorted(cdf, rng.random(n)))) for _ in range(WORDS_PER_CAPTION)]
        caption = pc.binary_join_element_wise("a photo of", words[0], "with", words[1], "and", words[2], " ")
        ids = pc.cast(pa.array(np.arange(start, start + n, dtype=np.int64)), pa.string())
        url = pc.binary_join_element_wise("https://img.example.org/", ids, ".jpg", "")
        pq.write_table(pa.table({"url": url, "caption": caption}), tmp / f"pool-{number:05d}.parquet")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def inputs(work: Path, size: int, num_queries: int) -> tuple[Path, Path]:
    queries = work / f"queries-{num_queries}.parquet"
    if not queries.exists():
        write_queries(queries, num_queries)
    pool = work / f"pool-{size}-q{num_queries}"
    if not pool.exists():
        started = time.time()
        write_pool(pool, size, num_queries)
        print(f"pool of {size:,} rows written in {time.time() - started:.1f} s: {pool}", flush=True)
    return queries, pool


# --- measuring one stage (child process) --------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _peak_rss(pid: int | str = "self") -> int:
    """VmHWM in bytes. Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a child
    would report its parent's peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise KeyError("VmHWM")


def _worker_peak(pid: int) -> tuple[str, int, int] | None:
    """(process title, VmHWM bytes, private RSS bytes now) of a Ray task/actor worker (title 'ray::...',
    not an agent), else None. Private = RssAnon + RssFile: VmHWM also counts the pages of Ray's shared
    object store a worker has touched (RssShmem), which a long-lived worker accumulates up to the
    store's fixed size whatever its own task holds."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").split()[0]
        if not title.startswith("ray::") or title.endswith("Agent"):
            return None
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        private = sum(int(status[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile"))
        return title, _peak_rss(pid), private
    except (OSError, KeyError, IndexError, ValueError):
        return None


class WorkerPeaks:
    """Peak RSS of every Ray worker below this process, read every `every` seconds on a thread."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self.peaks: dict[int, int] = {}  # pid -> peak bytes (VmHWM)
        self.private: dict[int, int] = {}  # pid -> peak private bytes seen in the samples
        self.titles: dict[int, set[str]] = {}  # pid -> the titles it had (ray::IDLE, ray::MatchQueries, ...)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        for pid in _descendants(os.getpid()):
            seen = _worker_peak(pid)
            if seen is not None:
                self.peaks[pid] = max(seen[1], self.peaks.get(pid, 0))
                self.private[pid] = max(seen[2], self.private.get(pid, 0))
                self.titles.setdefault(pid, set()).add(seen[0])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._read()

    def __enter__(self) -> "WorkerPeaks":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def largest(self) -> tuple[list[str], int]:
        if not self.peaks:
            return [], 0
        pid = max(self.peaks, key=self.peaks.__getitem__)
        return sorted(self.titles[pid]), self.peaks[pid]

    def largest_private(self) -> tuple[list[str], int]:
        if not self.private:
            return [], 0
        pid = max(self.private, key=self.private.__getitem__)
        return sorted(self.titles[pid]), self.private[pid]


def _rss_mib() -> float:
    return _peak_rss() / 2**20


def _start_ray(cpus: int, tries: int = 4) -> None:
    """Ray gives its raylet 30 s to register; on a machine loaded far past its cores that can pass."""
    import ray

    from core.raylocal import ensure_ray

    for attempt in range(tries):
        try:
            ensure_ray(cpus)
            return
        except Exception as err:  # Ray raises a bare Exception for a node that timed out starting
            print(f"ray start failed ({err}); try {attempt + 2} of {tries}", file=sys.stderr)
            ray.shutdown()
    ensure_ray(cpus)


def run_stage(stage: str, work: Path, size: int, num_queries: int, cap: int, cpus: int, range_mb: float) -> dict:
    from pipeline.balance import balance, stage_parts
    from pipeline.config import BalanceConfig, DownloadConfig, MatchConfig
    from pipeline.download import plan_download
    from pipeline.match import match

    queries, pool = inputs(work, size, num_queries)
    run = work / f"run-{size}-q{num_queries}-cap{cap}"
    matched, selected, corpus = run / "matched", run / "selected", run / "corpus"
    _start_ray(cpus)
    before = int(next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
    started = time.time()
    with WorkerPeaks() as workers:
        if stage == "match":
            shutil.rmtree(matched, ignore_errors=True)
            stats = match((str(pool),), str(queries), str(matched), MatchConfig(range_target_bytes=int(range_mb * 2**20)))
            rows, out_rows = stats["input_rows"], stats["output_rows"]
        elif stage == "balance":
            shutil.rmtree(selected, ignore_errors=True)
            stats = balance(str(matched), str(selected),
                            BalanceConfig(cap_per_query=cap, range_target_bytes=int(range_mb * 2**20)))
            rows, out_rows = stats["input_rows"], stats["output_rows"]
        else:
            shutil.rmtree(corpus, ignore_errors=True)
            corpus.mkdir(parents=True)
            plan = plan_download(stage_parts(str(selected), "selected", "bench/scale.py"), str(corpus), DownloadConfig())
            rows = sum(length for shard in plan.shards for _, _, length in shard)
            out_rows = len(plan.shards)  # shards planned
    seconds = time.time() - started
    title, worker_bytes = workers.largest()
    private_title, private_bytes = workers.largest_private()
    return {
        "rows": rows,
        "output_rows" if stage != "download" else "shards": out_rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None,
        "us_per_row": round(seconds / rows * 1e6, 3) if rows else None,
        "driver_peak_rss_mib": round(_rss_mib(), 1),
        "driver_rss_before_stage_mib": round(before, 1),
        "largest_worker_peak_rss_mib": round(worker_bytes / 2**20, 1),
        "largest_worker_titles": title,
        "largest_worker_private_mib": round(private_bytes / 2**20, 1),   # RssAnon + RssFile, sampled
        "largest_private_worker_titles": private_title,
        "workers_seen": len(workers.peaks),
    }


# --- the parent: one subprocess per size and stage ---------------------------------------------

def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("ray", "pyarrow", "polars", "pyahocorasick", "numpy")}


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "pipeline"], capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def measure(stage: str, size: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--sizes", str(size), "--queries", str(args.queries),
           "--cap", str(args.cap), "--cpus", str(args.cpus), "--work", str(args.work),
           "--range-target-mb", str(args.range_target_mb)]
    load_before = os.getloadavg()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # The figures come back in a file: Ray's raylet may print warnings on the child's stdout at any time.
    result = args.work / f"result-{stage}-{size}-{os.getpid()}.json"
    done = subprocess.run([*cmd, "--result", str(result)], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not result.exists():
        raise SystemExit(f"{stage} at {size:,} rows failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    figures = json.loads(result.read_text())
    result.unlink()
    return {
        **figures,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
    }


def ratios(entries: dict) -> dict:
    """Largest size over smallest, per stage: driver and worker peak RSS, and µs per row."""
    out = {}
    for stage in STAGES:
        sizes = sorted(int(s) for s in entries if stage in entries[s])
        if len(sizes) < 2:
            continue
        small, big = entries[str(sizes[0])][stage], entries[str(sizes[-1])][stage]
        out[stage] = {
            "sizes": f"{sizes[-1]:,} / {sizes[0]:,}",
            **{
                f"{key}_x": round(big[key] / small[key], 2) if small.get(key) else None
                for key in ("driver_peak_rss_mib", "largest_worker_peak_rss_mib", "largest_worker_private_mib",
                            "us_per_row")
            },
        }
    return out


def table(entries: dict) -> str:
    lines = ["| pool rows | stage | rows in | wall s | rows/s | µs/row | driver peak RSS MiB | largest worker peak RSS MiB "
             "| largest worker private MiB | load (1 min) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sorted(entries, key=int):
        for stage in STAGES:
            e = entries[size].get(stage)
            if e:
                lines.append(f"| {int(size):,} | {stage} | {e['rows']:,} | {e['seconds']} | {e['rows_per_s']:,} | "
                             f"{e['us_per_row']} | {e['driver_peak_rss_mib']} | {e['largest_worker_peak_rss_mib']} | "
                             f"{e.get('largest_worker_private_mib', '—')} | {e['load_before'][0]}–{e['load_after'][0]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e6,4e6,1e7", help="pool rows, comma-separated (1e6 notation allowed)")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--queries", type=int, default=500_000)
    ap.add_argument("--cap", type=int, default=20)
    ap.add_argument("--range-target-mb", type=float, default=32.0,
                    help="key-range size of match and balance: small enough that every size measured has full "
                         "ranges, as every paper-scale run has (the default 128 MiB leaves a 1M-row pool one "
                         "part-full range, so its merge task is smaller than at 4M rows for that reason alone)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/wit-scale"))
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--name", default="scale", help="results file name (e.g. scale_before for a baseline)")
    ap.add_argument("--fresh", action="store_true", help="drop earlier entries of scale.json")
    ap.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    if args.child:
        figures = run_stage(args.child, args.work, sizes[0], args.queries, args.cap, args.cpus, args.range_target_mb)
        args.result.write_text(json.dumps(figures))
        return

    from bench.common import RESULTS, write_result

    path = Path(args.out_dir or RESULTS) / f"{args.name}.json"
    old = json.loads(path.read_text())["figures"] if path.exists() and not args.fresh else {}
    same = (old.get("queries") == args.queries and old.get("cap") == args.cap and old.get("cpus") == args.cpus
            and old.get("range_target_mb") == args.range_target_mb)
    entries = old.get("per_size", {}) if same else {}
    commands = old.get("commands", []) if same else []
    for size in sizes:
        inputs(args.work, size, args.queries)  # generated outside the measured processes
        for stage in args.stages.split(","):
            entry = measure(stage, size, args)
            entries.setdefault(str(size), {})[stage] = entry
            print(f"{size:,} rows, {stage}: {json.dumps(entry)}", flush=True)
    command = " ".join(["python", "bench/scale.py", *sys.argv[1:]])
    figures = {
        "queries": args.queries, "cap": args.cap, "cpus": args.cpus, "range_target_mb": args.range_target_mb,
        "pool": f"{WORDS_PER_CAPTION} query words per caption, Zipf s={ZIPF_S} over query ranks",
        "per_size": {s: entries[s] for s in sorted(entries, key=int)},
        "ratios_largest_over_smallest": ratios(entries),
        "target": "driver and largest worker peak RSS each <= 1.3x from 1M to 10M rows; us/row not growing",
        "versions": _versions(),
        "commands": [*commands, command] if command not in commands else commands,
    }
    write_result(args.name, figures, "cpu", args.out_dir)
    print(table(figures["per_size"]))


if __name__ == "__main__":
    main()
