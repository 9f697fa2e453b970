"""balance: at most `cap_per_query` pairs per query, with exact, layout-independent claim semantics.

Let c_q be the number of matched pairs containing query q and t the cap. Each query claims all its
pairs when c_q <= t, else the t pairs with the smallest (h(seed, key), key). A pair is selected when
some query claims it; `claimed_by` lists the queries that did. So a pair of a rare query survives
even when it also carries a common one, and no query ends with more than t claimed pairs.

Computed with no per-pair state on the driver (pipeline.cutoffs has the details):
  pass 1a  per-block query counts, summed per query on the driver   -> c_q, the head queries (c_q > t)
  pass 1b  per block, the candidates of head queries (pruned by a threshold from c_q and by the block's
           t smallest), staged by query-id range; one task per range returns each query's t-th smallest
           (hash, key)                                              -> one cutoff per head query
  pass 2   a pure filter: q claims a pair when q is a tail query or (hash, key) <= cutoff[q]; each block
           also returns its per-query claimed counts, summed on the driver
The driver holds per-query arrays only (query ids, counts, cutoffs), never a row per pair.
The result depends on the keys only, never on how Ray split the blocks or how many tasks ran.
Keys are unique in matched/ (match collapses identical (url, text) pairs before anything is counted),
so c_q counts distinct pairs. Per-query matched and claimed counts go to `query_stats.parquet`
(500k rows is a table, not a JSON list); stats.json holds the totals.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

import pipeline.claimhash as claimhash
from pipeline.claimhash import claim_hash
from pipeline.config import BalanceConfig
from pipeline.cutoffs import CUTOFF_SCHEMA, CUTOFFS, head_cutoffs, lookup, query_pairs, row_hashes
from pipeline.match import QUERY_IDS
from pipeline.shards import clear_outputs, input_fingerprint, merge_staged, num_key_ranges, stage_rows, uncompressed_bytes
from core import storage
from core.artifacts import is_done, read_json, write_json, write_parquet
from core.errors import WitError
from core.raylocal import ensure_ray
from core.stage import StageRun, reuse_or_run

QUERY_STATS = "query_stats.parquet"  # query_id:int32, matched:int64, claimed:int64
__all__ = ["balance", "claim", "claim_hash", "claim_rows", "count_queries", "QuerySums", "stage_parts"]


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


class QuerySums:
    """Per-query sums of per-block figures, folded as blocks arrive: about one entry per query, in numpy."""

    def __init__(self) -> None:
        self.query_id, self.total = np.zeros(0, np.int32), np.zeros(0, np.int64)
        self._ids: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._pending = 0

    def add(self, query_id: np.ndarray, value: np.ndarray) -> None:
        self._ids.append(np.asarray(query_id, np.int32))
        self._values.append(np.asarray(value, np.int64))
        self._pending += len(query_id)
        if self._pending > max(len(self.query_id), 1 << 16):  # amortized: each fold at least doubles the input
            self._fold()

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(query_id sorted, total)."""
        self._fold()
        return self.query_id, self.total

    def _fold(self) -> None:
        ids = np.concatenate([self.query_id, *self._ids])
        values = np.concatenate([self.total, *self._values])
        self._ids, self._values, self._pending = [], [], 0
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
        self.query_id = ids[starts]
        self.total = np.add.reduceat(values, starts) if len(ids) else values


def claim_rows(batch: pa.Table, cutoffs: pa.Table, seed: int) -> pa.Table:
    """Pass 2: the selected rows of a block, with claimed_by; a pure function of each row.

    `cutoffs` holds (query_id sorted, hash, key): the last pair each head query claims.
    """
    q, r = query_pairs(batch)
    slot, head = lookup(cutoffs["query_id"].to_numpy(), q)
    claims = ~head
    if head.any():
        hr, hs = r[head], slot[head]
        h = row_hashes(batch, hr, seed)
        cut = cutoffs["hash"].to_numpy()[hs]
        within = h < cut
        tie = np.flatnonzero(h == cut)  # the same hash as the cutoff: the key decides
        if len(tie):
            keys = batch["key"].take(pa.array(hr[tie]))
            within[tie] = pc.less_equal(keys, cutoffs["key"].take(pa.array(hs[tie]))).to_numpy(zero_copy_only=False)
        claims[head] = within
    per_row = np.bincount(r[claims], minlength=batch.num_rows)
    keep = np.flatnonzero(per_row)
    offsets = np.zeros(len(keep) + 1, np.int32)
    np.cumsum(per_row[keep], out=offsets[1:])
    claimed_by = pa.ListArray.from_arrays(pa.array(offsets), pa.array(q[claims], pa.int32()), type=QUERY_IDS)
    return batch.take(pa.array(keep, pa.int64())).append_column("claimed_by", claimed_by)


def _claim_and_stage(
    batch: pa.Table, cutoffs: pa.Table, seed: int, out_dir: str, num_ranges: int
) -> dict[str, np.ndarray]:
    """Pass 2 task: stage the selected rows; return the block's per-query claimed counts and its totals."""
    selected = claim_rows(batch, cutoffs, seed)
    stage_rows(selected, out_dir, num_ranges)
    query_id, claimed = np.unique(
        pc.list_flatten(selected["claimed_by"]).to_numpy(zero_copy_only=False), return_counts=True
    )
    # Block totals ride in one extra row (query id -1), so the output stays one table per block.
    return {
        "query_id": np.r_[query_id.astype(np.int32), np.int32(-1)],
        "claimed": np.r_[claimed.astype(np.int64), np.int64(0)],
        "rows": np.r_[np.zeros(len(query_id), np.int64), np.int64(batch.num_rows)],
        "selected": np.r_[np.zeros(len(query_id), np.int64), np.int64(selected.num_rows)],
    }


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
    inputs = {"matched": input_fingerprint(parts), "claim_hash": claimhash.NAME}
    return reuse_or_run(StageRun("balance", out_dir, cfg, inputs),
                        lambda record: _balance(parts, matched_dir, out_dir, cfg, record), clear=_clear)


def _clear(out_dir: str) -> None:
    clear_outputs(out_dir)
    storage.remove(storage.join(out_dir, QUERY_STATS))
    storage.remove_tree(storage.join(out_dir, CUTOFFS))


def _balance(parts: list[str], matched_dir: str, out_dir: str, cfg: BalanceConfig, record: dict) -> dict:
    ensure_ray()
    start = time.time()
    cap, seed = cfg.cap_per_query, cfg.seed

    paths, filesystem = storage.for_ray_data(parts)

    def read() -> ray.data.Dataset:
        return ray.data.read_parquet(paths, override_num_blocks=cfg.read_blocks, filesystem=filesystem)

    per_pass = {"batch_format": "pyarrow", "batch_size": None, "concurrency": cfg.concurrency}

    def from_blocks(ds: ray.data.Dataset) -> Iterable[dict[str, np.ndarray]]:
        return ds.iter_batches(batch_format="numpy", batch_size=None)

    matched, claimed = QuerySums(), QuerySums()
    cutoffs = CUTOFF_SCHEMA.empty_table()
    head = {"head_candidates": 0, "head_ranges": 0, "head_queries_redone": 0}
    rows_in = selected_rows = 0
    if parts:
        for b in from_blocks(read().map_batches(count_queries, **per_pass)):
            matched.add(b["query_id"], b["count"])
        query_id, count = matched.result()
        if (count > cap).any():
            stage_dir = storage.join(out_dir, CUTOFFS)
            cutoffs, head = head_cutoffs(read, query_id, count, cap, seed, stage_dir, per_pass)
        pass2 = read().map_batches(
            _claim_and_stage,
            **per_pass,
            fn_kwargs={"cutoffs": cutoffs, "seed": seed, "out_dir": out_dir,
                       "num_ranges": num_key_ranges(sum(map(uncompressed_bytes, parts)), cfg.range_target_bytes)},
        )
        for b in from_blocks(pass2):
            known = b["query_id"] >= 0
            claimed.add(b["query_id"][known], b["claimed"][known])
            rows_in += int(b["rows"].sum())
            selected_rows += int(b["selected"].sum())
    files = merge_staged(out_dir, record, dedupe=False)
    query_id, count = matched.result()
    claimed_id, claimed_count = claimed.result()
    slot, known = lookup(query_id, claimed_id)
    assert known.all(), "claims of unmatched queries"
    claims = np.zeros(len(query_id), np.int64)
    claims[slot] = claimed_count
    query_stats = pa.table(
        {
            "query_id": pa.array(query_id, pa.int32()),
            "matched": pa.array(count, pa.int64()),
            "claimed": pa.array(claims, pa.int64()),
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
        "queries_matched": len(query_id),
        "head_queries": cutoffs.num_rows,
        **head,  # candidates staged for the cutoffs, reducer ranges, queries redone without the threshold
        "claimed_pairs": int(claims.sum()),  # (pair, query) claims; >= output_rows
        "query_stats": QUERY_STATS,
        "files": files,
        "seconds": round(time.time() - start, 3),
    }
    # The claim semantics, checked on the output: each query claims exactly min(c_q, cap) pairs.
    assert stats["output_rows"] == selected_rows, stats
    assert (claims == np.minimum(count, cap)).all(), "claim counts"
    write_json(stats, storage.join(out_dir, "stats.json"))
    return stats
