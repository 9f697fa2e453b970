"""balance: at most `cap_per_query` pairs per query, with exact, layout-independent claim semantics.

Let c_q be the number of matched pairs containing query q and t the cap. Each query claims all its
pairs when c_q <= t, else the t pairs with the smallest (h(seed, key), key). A pair is selected when
some query claims it; `claimed_by` lists the queries that did. So a pair of a rare query survives
even when it also carries a common one, and no query ends with more than t claimed pairs.

Computed without shuffling pairs by query:
  pass 1a  per-block query counts, summed on the driver          -> c_q, the head queries (c_q > t)
  pass 1b  per block, the t smallest (hash, key) of each head query, merged on the driver
           into one cutoff per head query (its t-th smallest)   -> cutoffs
  pass 2   a pure filter: q claims a pair when q is a tail query or (hash, key) <= cutoff[q]
The result depends on the keys only, never on how Ray split the blocks or how many tasks ran.
Keys are unique in matched/ (match collapses identical (url, text) pairs before anything is counted),
so c_q counts distinct pairs. Per-query matched and claimed counts go to `query_stats.parquet`
(500k rows is a table, not a JSON list); stats.json holds the totals.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from pipeline.config import BalanceConfig
from pipeline.match import QUERY_IDS
from pipeline.shards import clear_outputs, input_fingerprint, merge_staged, stage_rows
from wit import storage
from wit.artifacts import is_done, mark_done, provenance, read_json, write_json, write_parquet
from wit.config import to_dict
from wit.errors import WitError
from wit.raylocal import ensure_ray

QUERY_STATS = "query_stats.parquet"  # query_id:int32, matched:int64, claimed:int64
Cutoff = tuple[int, str]  # (hash, key) of the last pair a head query claims


def claim_hash(seed: int, key: str) -> int:
    """h(seed, key): 64 bits of blake2b, the same on every machine and Python version."""
    digest = hashlib.blake2b(seed.to_bytes(8, "little", signed=True) + key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def claim(pairs: dict[str, list[int]], cap: int, seed: int) -> dict[str, list[int]]:
    """The claim semantics in plain Python (the reference the distributed version is tested against).

    `pairs` maps key -> query ids; returns key -> claiming query ids, for the selected pairs only.
    """
    by_query: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for key, ids in pairs.items():
        for q in set(ids):
            by_query[q].append((claim_hash(seed, key), key))
    claimed: dict[str, list[int]] = defaultdict(list)
    for q, ranked in by_query.items():
        for _, key in sorted(ranked)[:cap]:
            claimed[key].append(q)
    return {key: sorted(qs) for key, qs in sorted(claimed.items())}


def count_queries(batch: pa.Table) -> dict[str, np.ndarray]:
    """Pass 1a: how many pairs of this block contain each query."""
    ids = pc.list_flatten(batch["query_ids"]).to_numpy(zero_copy_only=False)
    query_id, count = np.unique(ids, return_counts=True)
    return {"query_id": query_id.astype(np.int32), "count": count.astype(np.int64)}


def head_candidates(batch: pa.Table, heads: list[int], cap: int, seed: int) -> dict[str, np.ndarray]:
    """Pass 1b: for each head query, this block's `cap` smallest (hash, key) pairs."""
    wanted = set(heads)
    ranked: dict[int, list[Cutoff]] = defaultdict(list)
    for key, ids in zip(batch["key"].to_pylist(), batch["query_ids"].to_pylist()):
        hit = wanted.intersection(ids)
        if hit:
            h = claim_hash(seed, key)
            for q in hit:
                ranked[q].append((h, key))
    out: dict[str, list] = {"query_id": [], "hash": [], "key": []}
    for q, pairs in ranked.items():
        for h, key in sorted(pairs)[:cap]:
            out["query_id"].append(q)
            out["hash"].append(h)
            out["key"].append(key)
    return {
        "query_id": np.array(out["query_id"], np.int32),
        "hash": np.array(out["hash"], np.uint64),
        "key": np.array(out["key"], dtype=object),
    }


def merge_cutoffs(candidates: Iterable[dict[str, np.ndarray]], cap: int) -> dict[int, Cutoff]:
    """Each head query's cap-th smallest (hash, key) over all blocks' candidates."""
    ranked: dict[int, list[Cutoff]] = defaultdict(list)
    for batch in candidates:
        for q, h, key in zip(batch["query_id"].tolist(), batch["hash"].tolist(), batch["key"].tolist()):
            ranked[q].append((int(h), key))
    return {q: sorted(pairs)[cap - 1] for q, pairs in ranked.items()}


def claim_rows(batch: pa.Table, cutoffs: dict[int, Cutoff], seed: int) -> pa.Table:
    """Pass 2: the selected rows of a block, with claimed_by; a pure function of each row."""
    keep, claimed_by = [], []
    for i, (key, ids) in enumerate(zip(batch["key"].to_pylist(), batch["query_ids"].to_pylist())):
        h = claim_hash(seed, key) if any(q in cutoffs for q in ids) else 0
        claimers = [q for q in ids if q not in cutoffs or (h, key) <= cutoffs[q]]
        if claimers:
            keep.append(i)
            claimed_by.append(claimers)
    selected = batch.take(pa.array(keep, pa.int64()))
    return selected.append_column("claimed_by", pa.array(claimed_by, QUERY_IDS))


def _claim_and_stage(
    batch: pa.Table, cutoffs: dict[int, Cutoff], seed: int, out_dir: str, num_ranges: int
) -> dict[str, np.ndarray]:
    selected = claim_rows(batch, cutoffs, seed)
    stage_rows(selected, out_dir, num_ranges)
    return {"rows": np.array([batch.num_rows]), "selected": np.array([selected.num_rows])}


def stage_parts(stage_dir: str, stage: str, next_step: str) -> list[str]:
    """The part files of a finished stage directory, in key order; WitError if it is not finished."""
    if not storage.is_dir(stage_dir):
        raise WitError(f"{stage} directory {stage_dir} does not exist", hint=f"run `{next_step}` first")
    if not is_done(stage_dir):
        raise WitError(
            f"{stage} directory {stage_dir} is incomplete (no _SUCCESS.json)", hint=f"rerun `{next_step}`"
        )
    return storage.glob(stage_dir, "part-*.parquet")


def balance(matched_dir: str, out_dir: str, cfg: BalanceConfig = BalanceConfig()) -> dict:
    """Select at most cfg.cap_per_query pairs per query from matched/ into out_dir; returns the stats."""
    if cfg.cap_per_query < 1:
        raise WitError(f"cap_per_query must be at least 1, not {cfg.cap_per_query}")
    parts = stage_parts(matched_dir, "matched", "wit pipeline match")
    inputs = {"matched": input_fingerprint(parts)}
    if is_done(out_dir):
        done = read_json(storage.join(out_dir, "_SUCCESS.json"))
        if done.get("config") == to_dict(cfg) and done.get("inputs") == inputs:
            return done["stats"]
        print(f"balance: {out_dir} was made from other inputs or another config; recomputing it")
    ensure_ray()
    storage.makedirs(out_dir)  # a missing bucket fails here, before any work
    clear_outputs(out_dir)
    storage.remove(storage.join(out_dir, QUERY_STATS))
    start = time.time()
    cap, seed = cfg.cap_per_query, cfg.seed
    record = provenance("balance", cfg, inputs=inputs)

    paths, filesystem = storage.for_ray_data(parts)

    def read() -> ray.data.Dataset:
        return ray.data.read_parquet(paths, override_num_blocks=cfg.read_blocks, filesystem=filesystem)

    per_pass = {"batch_format": "pyarrow", "batch_size": None, "concurrency": cfg.concurrency}

    matched_per_query: dict[int, int] = defaultdict(int)
    cutoffs: dict[int, Cutoff] = {}
    rows_in = selected_rows = 0
    if parts:
        for b in (
            read().map_batches(count_queries, **per_pass).iter_batches(batch_format="numpy", batch_size=None)
        ):
            for q, c in zip(b["query_id"].tolist(), b["count"].tolist()):
                matched_per_query[q] += c
        heads = sorted(q for q, c in matched_per_query.items() if c > cap)
        if heads:
            candidates = read().map_batches(
                head_candidates,
                **per_pass,
                fn_kwargs={"heads": heads, "cap": cap, "seed": seed},
            )
            cutoffs = merge_cutoffs(candidates.iter_batches(batch_format="numpy", batch_size=None), cap)
        for t in (
            read()
            .map_batches(
                _claim_and_stage,
                **per_pass,
                fn_kwargs={
                    "cutoffs": cutoffs,
                    "seed": seed,
                    "out_dir": out_dir,
                    "num_ranges": cfg.output_shards,
                },
            )
            .iter_rows()
        ):
            rows_in += int(t["rows"])
            selected_rows += int(t["selected"])
    files = merge_staged(out_dir, record, dedupe=False)
    claimed = _claimed_per_query([storage.join(out_dir, f["file"]) for f in files])
    query_ids = sorted(matched_per_query)
    query_stats = pa.table(
        {
            "query_id": pa.array(query_ids, pa.int32()),
            "matched": pa.array([matched_per_query[q] for q in query_ids], pa.int64()),
            "claimed": pa.array([claimed.get(q, 0) for q in query_ids], pa.int64()),
        }
    )
    write_parquet(query_stats, storage.join(out_dir, QUERY_STATS), record)
    matched_stats = read_json(storage.join(matched_dir, "_SUCCESS.json")).get("stats", {})
    stats = {
        "stage": "balance",
        "cap_per_query": cap,
        "seed": seed,
        "input_rows": rows_in,
        "output_rows": sum(f["rows"] for f in files),
        "dropped": {"not_claimed": rows_in - selected_rows},
        "duplicate_url_rows": matched_stats.get("duplicate_url_rows"),  # counted by match, on its output
        "queries_matched": len(query_ids),
        "head_queries": len(cutoffs),
        "claimed_pairs": sum(claimed.values()),  # (pair, query) claims; >= output_rows
        "query_stats": QUERY_STATS,
        "files": files,
        "seconds": round(time.time() - start, 3),
    }
    # The claim semantics, checked on the output: each query claims exactly min(c_q, cap) pairs.
    assert stats["output_rows"] == selected_rows, stats
    assert all(claimed.get(q, 0) == min(matched_per_query[q], cap) for q in query_ids), "claim counts"
    assert set(claimed) <= set(matched_per_query), "claims of unmatched queries"
    write_json(stats, storage.join(out_dir, "stats.json"))
    mark_done(out_dir, {**record, "stats": stats})
    return stats


def _claimed_per_query(files: list[str]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for path in files:
        ids = pc.list_flatten(storage.read_table(path, columns=["claimed_by"])["claimed_by"]).to_numpy(
            zero_copy_only=False
        )
        for q, c in zip(*np.unique(ids, return_counts=True)):
            counts[int(q)] += int(c)
    return counts
