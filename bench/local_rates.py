"""This machine's per-item cost of every stage on the demo's data: the rates of `wit plan`'s local presets.

The stage benches measure rates on the data a cluster run sees (COCO captions against 500k queries,
512x384 web JPEGs to 256 px). A plan of a run on this machine over the demo's loopback web needs the
rates of that data: its short generated alt-texts against the demo's ~14k queries, its small images
to 64 px, zero-shot on its held-out images. Each round runs, each in a fresh process with its own Ray
(bench/probe.py), every stage on near-empty inputs (OVERHEAD) and at the large RATES sizes; a stage's
per-item cost is the difference of the two times over the difference of their items, and the figure is
the median over rounds (the machine may be shared). Also written: this machine's speed meanwhile
(bench/probe.py: cpu_reference_s, before and after every round), so a later plan can scale the rates
to the speed of its moment; how the pool's matched pairs spread
over queries (the query law `wit plan` balances with) and the shares of pool rows that match and that
download, all at RATES size.

    python bench/local_rates.py [--rounds 2] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from bench.probe import cpu_reference_s, run_fresh  # noqa: E402

PER_ITEM = {"queries": "XML MB", "match": "pool rows", "balance": "matched rows", "download": "selected URLs",
            "eval": "images (both prompt sets)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    rounds = []
    loads = [os.getloadavg()[0]]
    references = [cpu_reference_s()]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            small, large = run_fresh("overhead", Path(tmp)), run_fresh("rates", Path(tmp))
            rounds.append({"overhead": small, "rates": large})
            loads.append(os.getloadavg()[0])
            references.append(cpu_reference_s())
    seconds_per_item = {}
    for stage in PER_ITEM:
        slopes = [(r["rates"]["seconds"][stage] - r["overhead"]["seconds"][stage])
                  / (r["rates"]["items"][stage] - r["overhead"]["items"][stage]) for r in rounds]
        seconds_per_item[stage] = statistics.median(slopes)
    batch, = rounds[-1]["rates"]["train_runs"]                       # the RATES size's one fit
    # A CPU step with a corpus streaming through Ray Data (decoded on the same cores) costs several
    # times the step on the near-empty corpus: the plan's CPU training uses this one.
    step_s = statistics.median(r["rates"]["train_runs"][batch]["steady_step_s"] for r in rounds)
    large = rounds[-1]["rates"]
    items, sizes = large["items"], large["sizes"]
    write_result("local_rates", {
        "cpus": cores,
        # wall seconds per item with every core busy -> items per second per core
        "per_core": {stage: round(1 / (s * cores), 3) for stage, s in seconds_per_item.items()},
        "units": PER_ITEM,
        "seconds_per_item": {stage: round(s, 9) for stage, s in seconds_per_item.items()},
        "image_size": sizes["image_size"],
        "train_step_s": round(step_s, 4),
        "train_batch_per_worker": int(batch),
        "train_workers": sizes["workers"],
        "matched_share": items["balance"] / items["match"],
        "downloaded_share": items["downloaded"] / items["download"],
        "law": large["law"],
        "rounds": [{which: {k: v for k, v in run.items() if k != "law"} for which, run in r.items()} for r in rounds],
        "load_avg_1min": [round(x, 2) for x in loads],
        # this machine's speed while the rates were measured (bench/probe.py: cpu_reference_s): a plan made
        # later scales the rates by how much faster or slower the same job runs then (bench/overheads.py)
        "cpu_reference_s": min(references),   # its best, as bench/overheads.py takes its best of a few
        "cpu_reference_s_runs": references,
    }, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
