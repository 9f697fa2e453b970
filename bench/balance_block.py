"""balance's per-block work on one ~125k-row block of the synthetic matched/, in one process, no Ray.

    PYTHONPATH=<checkout> python bench/balance_block.py --label after [--matched DIR]

Times pass 1b on the block (head candidates), the cutoff step (the old driver merge or the new
per-range reducer) and pass 2 (claim filter), for whichever pipeline PYTHONPATH points at (the old
code has no pipeline.cutoffs). Writes bench/results/balance_block_<label>.json.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", required=True)
    p.add_argument("--matched", default="/tmp/wit-bench-balance/matched-1000000")
    p.add_argument("--cap", type=int, default=20)
    a = p.parse_args()
    block = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(f"{a.matched}/part-*.parquet"))[:2]])
    ids, counts = np.unique(pc.list_flatten(block["query_ids"]).to_numpy(), return_counts=True)
    figures = {"rows": block.num_rows, "cap": a.cap, "heads": int((counts > a.cap).sum())}
    figures["load_1min_before"] = round(os.getloadavg()[0], 1)
    import pipeline.balance as stage

    if hasattr(stage, "merge_cutoffs"):  # the code before issue #16: candidates merged on the driver
        heads = sorted(ids[counts > a.cap].tolist())
        t = time.time()
        found = stage.head_candidates(block, heads, a.cap, 0)
        figures["pass1b_block_s"] = round(time.time() - t, 2)
        t = time.time()
        cutoffs = stage.merge_cutoffs([found], a.cap)
        figures["cutoffs_s (driver merge)"] = round(time.time() - t, 2)
    else:
        from pipeline.cutoffs import head_candidates, plan_heads, range_cutoffs

        t = time.time()
        found = head_candidates(block, plan_heads(ids, counts, a.cap), a.cap, 0)
        figures["pass1b_block_s"] = round(time.time() - t, 2)
        t = time.time()
        cutoffs = range_cutoffs(found.drop_columns(["range_id"]), a.cap)
        figures["cutoffs_s (range task)"] = round(time.time() - t, 2)
    t = time.time()
    selected = stage.claim_rows(block, cutoffs, 0)
    figures["pass2_block_s"] = round(time.time() - t, 2)
    figures["selected"] = selected.num_rows
    figures["load_1min_after"] = round(os.getloadavg()[0], 1)
    figures["balance_module"] = sys.modules["pipeline.balance"].__file__
    from common import write_result

    write_result(f"balance_block_{a.label}", figures)


if __name__ == "__main__":
    main()
