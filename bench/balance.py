"""balance alone on synthetic matched/ dirs (bench/synth_matched.py): wall time and memory.

    python bench/balance.py --rows 1000000 4000000 --cap 20 --label after

For each size: writes (or reuses) WORK/matched-<rows>, then runs balance in a fresh driver process
(its own local Ray) and records wall seconds, the driver's peak RSS (getrusage, from a process that
did nothing before balance but imports), and the largest RSS of any Ray worker process of that run,
sampled every 0.2 s (RSS counts the object-store pages a worker touched, so it overstates its own
heap). Writes bench/results/balance_<label>.json. Run it with PYTHONPATH at another checkout to
measure that checkout's balance on the same data (the label says which).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# bench/ goes last on the path: bench/queries.py must not hide the `queries` package. The pipeline comes
# from PYTHONPATH (this checkout, or another one to measure its balance).
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]


def _worker_peak(stop: threading.Event, peak: list[int]) -> None:
    import psutil

    me = psutil.Process()
    while not stop.wait(0.2):
        for p in me.children(recursive=True):
            try:
                if "default_worker" in " ".join(p.cmdline()) or p.name().startswith("ray::"):
                    peak[0] = max(peak[0], p.memory_info().rss)
            except psutil.Error:
                pass


def run_once(matched: str, out: str, cap: int) -> dict:
    """One balance in this process; prints its figures as JSON (called in a fresh subprocess)."""
    import ray

    from pipeline.balance import balance
    from pipeline.config import BalanceConfig

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_worker_peak, args=(stop, peak), daemon=True)
    sampler.start()
    start = time.time()
    stats = balance(matched, out, BalanceConfig(cap_per_query=cap))
    wall = time.time() - start
    stop.set()
    sampler.join()
    figures = {
        "wall_s": round(wall, 1),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "driver_rss_before_balance_mb": round(before / 2**20, 1),
        "largest_ray_worker_rss_mb": round(peak[0] / 2**20, 1),
        "input_rows": stats["input_rows"],
        "output_rows": stats["output_rows"],
        "head_queries": stats["head_queries"],
        "balance_module": sys.modules["pipeline.balance"].__file__,
    }
    for k in ("head_candidates", "head_ranges", "head_queries_redone"):
        if k in stats:
            figures[k] = stats[k]
    ray.shutdown()
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    p.add_argument("--cap", type=int, default=20)
    p.add_argument("--queries", type=int, default=500_000)
    p.add_argument("--label", default="after")
    p.add_argument("--work", default="/tmp/wit-bench-balance")
    p.add_argument("--once", nargs=2, metavar=("MATCHED", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.once:
        print("FIGURES " + json.dumps(run_once(a.once[0], a.once[1], a.cap)))
        return
    from synth_matched import write_synth_matched

    figures: dict = {"cap": a.cap, "queries": a.queries, "runs": {}}
    for rows in a.rows:
        matched = Path(a.work) / f"matched-{rows}"
        if not (matched / "_SUCCESS.json").exists():
            figures["runs"].setdefault(str(rows), {})["data"] = write_synth_matched(matched, rows, a.queries)
        out = Path(a.work) / f"selected-{rows}-{a.label}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, __file__, "--cap", str(a.cap), "--once", str(matched), str(out)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"balance on {matched} failed:\n{done.stderr[-3000:]}")
        line = [x for x in done.stdout.splitlines() if x.startswith("FIGURES ")][-1]
        run = {**json.loads(line[len("FIGURES ") :]), "load_1min_before": round(load, 1)}
        run["load_1min_after"] = round(os.getloadavg()[0], 1)
        figures["runs"].setdefault(str(rows), {}).update(run)
        shutil.rmtree(out, ignore_errors=True)
        print(rows, json.dumps(run), flush=True)

    import numpy
    import pyarrow
    import ray
    from common import write_result

    figures["versions"] = {"ray": ray.__version__, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__}
    write_result(f"balance_{a.label}", figures)


if __name__ == "__main__":
    main()
