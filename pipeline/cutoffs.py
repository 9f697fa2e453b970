"""Balance's head-query cutoffs, computed in tasks that each own a range of query ids.

A head query (c_q > cap) claims its `cap` smallest (h, key) pairs; its cutoff is the cap-th of them.
At paper scale there are ~20k head queries of up to millions of pairs each, so no single process may
see all their pairs. Instead:
  per block   each pair of a head query is a candidate when h <= keep_below[q], a threshold set from
              c_q so that about cap + PRUNE_SIGMAS·sqrt(cap) of its c_q pairs pass (h is uniform), and
              when it is among the block's cap smallest (h, key) of q; candidates are staged by the
              range of their query (`_cutoffs/r=00007/<content-hash>.parquet`)
  per range   one task sorts its candidates and returns the cap-th (h, key) of each query: at most
              one row per query reaches the driver
Both prunings are exact as long as a query keeps at least cap candidates overall (its cap smallest
pairs then all pass both). A query left with fewer (a run of bad luck of > PRUNE_SIGMAS sigmas, or a
tiny c_q in tests) is redone in a second round without the threshold, where the per-block top-cap
alone bounds the candidates. Ranges are cut from the expected candidate counts, so every reducer
holds about RANGE_ROWS rows (plus one query's), and their number follows the data size.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data

from pipeline.claimhash import MASK, claim_hashes
from core import storage

PRUNE_SIGMAS = 6.0  # a query falls short of cap candidates with odds ~1e-9, then costs one more read
RANGE_ROWS = 4_000_000  # candidates per reducer: ~200 MB of Arrow, sorted in one task
CUTOFFS = "_cutoffs"
CUTOFF_SCHEMA = pa.schema([("query_id", pa.int32()), ("hash", pa.uint64()), ("key", pa.string())])


@dataclass(frozen=True)
class HeadPlan:
    """What every candidate task needs, one entry per head query (never per pair)."""

    query_id: np.ndarray  # int32, sorted
    keep_below: np.ndarray  # uint64: a pair of the query is a candidate only when h <= this
    range_id: np.ndarray  # int32: the reducer that owns the query; ranges are contiguous in query_id


def plan_heads(
    query_id: np.ndarray,
    matched: np.ndarray,
    cap: int,
    sigmas: float = PRUNE_SIGMAS,
    range_rows: int = RANGE_ROWS,
) -> HeadPlan:
    """The plan for the queries with matched > cap; `sigmas=math.inf` prunes nothing by threshold."""
    heads = matched > cap
    ids, counts = query_id[heads].astype(np.int32), matched[heads].astype(np.float64)
    keep = cap + sigmas * math.sqrt(cap)  # expected cap + sigmas standard deviations (binomial, <= sqrt(cap))
    scaled = np.minimum(keep / counts, 1.0) * 2.0**64
    full = scaled >= 2.0**64
    keep_below = np.where(full, np.uint64(MASK), np.where(full, 0.0, scaled).astype(np.uint64))
    expected = np.minimum(counts, math.ceil(keep) if math.isfinite(keep) else counts)
    before = np.cumsum(expected) - expected
    range_id = (before // max(range_rows, 1)).astype(np.int32)
    return HeadPlan(ids, keep_below, range_id)


def query_pairs(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(query id, row) of every (pair, query) in the block, in row order."""
    lists = (
        batch["query_ids"].combine_chunks()
        if batch.num_rows
        else pa.array([], batch.schema.field("query_ids").type)
    )
    ids = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.int32)
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, rows


def lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slot, found): where each of `ids` sits in `sorted_ids`, and whether it is there."""
    if len(sorted_ids) == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    slot = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return slot, sorted_ids[slot] == ids


def row_hashes(batch: pa.Table, rows: np.ndarray, seed: int) -> np.ndarray:
    """h(seed, key) of the given rows (repeats allowed), hashing each distinct row once."""
    distinct, where = np.unique(rows, return_inverse=True)
    return claim_hashes(seed, batch["key"].take(pa.array(distinct)))[where]


def group_starts(sorted_ids: np.ndarray) -> np.ndarray:
    if len(sorted_ids) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])


def head_candidates(batch: pa.Table, plan: HeadPlan, cap: int, seed: int) -> pa.Table:
    """Pass 1b, one block: the (range_id, query_id, hash, key) that may be among a head query's cap smallest."""
    q, r = query_pairs(batch)
    slot, hit = lookup(plan.query_id, q)
    q, r, slot = q[hit], r[hit], slot[hit]
    h = row_hashes(batch, r, seed)
    below = h <= plan.keep_below[slot]
    q, r, slot, h = q[below], r[below], slot[below], h[below]
    order = np.lexsort((h, q))
    q, r, slot, h = q[order], r[order], slot[order], h[order]
    # This block's cap smallest of each query; ties with the cap-th hash stay (the key decides them later).
    starts = group_starts(q)
    sizes = np.diff(np.r_[starts, len(q)])
    last = np.where(sizes > cap, h[np.minimum(starts + cap - 1, max(len(h) - 1, 0))], np.uint64(MASK))
    keep = h <= np.repeat(last, sizes)
    return pa.table(
        {
            "range_id": pa.array(plan.range_id[slot[keep]], pa.int32()),
            "query_id": pa.array(q[keep], pa.int32()),
            "hash": pa.array(h[keep], pa.uint64()),
            "key": batch["key"].take(pa.array(r[keep])).cast(pa.string()),
        }
    )


def stage_candidates(
    batch: pa.Table, plan: HeadPlan, cap: int, seed: int, stage_dir: str
) -> dict[str, np.ndarray]:
    """Pass 1b task: write the block's candidates into the staging files of their ranges."""
    found = head_candidates(batch, plan, cap, seed)
    ranges = found["range_id"].to_numpy()
    for start, end in zip(*_runs(ranges)):  # candidates are sorted by query id, so by range too
        part = found.slice(start, end - start).drop_columns(["range_id"])
        ids, hashes = (part[c].to_numpy() for c in ("query_id", "hash"))
        digest = hashlib.sha1(ids.tobytes() + hashes.tobytes()).hexdigest()[:20]  # a retry overwrites
        path = storage.join(stage_dir, f"r={ranges[start]:05d}", f"{digest}.parquet")
        with storage.atomic_output(path) as (fs, target):
            pq.write_table(part, target, filesystem=fs)
    return {"candidates": np.array([found.num_rows], np.int64)}


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = group_starts(values)
    return starts, np.r_[starts[1:], len(values)].astype(np.int64)


def range_cutoffs(candidates: pa.Table, cap: int) -> pa.Table:
    """Each query's cap-th smallest (hash, key) among its candidates; queries with fewer are left out."""
    ranked = candidates.sort_by([("query_id", "ascending"), ("hash", "ascending"), ("key", "ascending")])
    q = ranked["query_id"].to_numpy()
    starts = group_starts(q)
    sizes = np.diff(np.r_[starts, len(q)])
    at = (starts + cap - 1)[sizes >= cap]
    return ranked.take(pa.array(at, pa.int64())).select(CUTOFF_SCHEMA.names).cast(CUTOFF_SCHEMA)


@ray.remote
def _reduce_range(files: list[str], cap: int) -> pa.Table:
    tables = [storage.read_table(f) for f in files]
    return range_cutoffs(pa.concat_tables(tables) if tables else CUTOFF_SCHEMA.empty_table(), cap)


def head_cutoffs(
    read: Callable[[], ray.data.Dataset],
    query_id: np.ndarray,
    matched: np.ndarray,
    cap: int,
    seed: int,
    stage_dir: str,
    per_pass: dict,
    sigmas: float = PRUNE_SIGMAS,
    range_rows: int = RANGE_ROWS,
) -> tuple[pa.Table, dict[str, int]]:
    """The cutoff of every query with matched > cap, sorted by query id, and what it took.

    `query_id` and `matched` are per-query arrays (pass 1a's sums); the result has one row per head query.
    """
    plan = plan_heads(query_id, matched, cap, sigmas, range_rows)
    found, candidates = _round(read, plan, cap, seed, stage_dir, per_pass)
    short = np.setdiff1d(plan.query_id, found["query_id"].to_numpy())
    info = {"head_candidates": candidates, "head_ranges": int(plan.range_id.max(initial=-1)) + 1}
    info["head_queries_redone"] = len(short)
    if len(short):  # too few passed the threshold: redo these exactly, pruned by the per-block top-cap only
        slot, _ = lookup(query_id, short)
        redo = plan_heads(short, matched[slot], cap, math.inf, range_rows)
        more, extra = _round(read, redo, cap, seed, stage_dir, per_pass)
        info["head_candidates"] += extra
        found = pa.concat_tables([found, more])
    found = found.sort_by("query_id")
    assert found.num_rows == len(plan.query_id), "every head query has a cutoff"
    return found, info


def _round(read, plan: HeadPlan, cap: int, seed: int, stage_dir: str, per_pass: dict) -> tuple[pa.Table, int]:
    storage.remove_tree(stage_dir)
    staged = read().map_batches(
        stage_candidates,
        **per_pass,
        fn_kwargs={"plan": plan, "cap": cap, "seed": seed, "stage_dir": stage_dir},
    )
    candidates = sum(
        int(b["candidates"].sum()) for b in staged.iter_batches(batch_format="numpy", batch_size=None)
    )
    refs = [
        _reduce_range.remote(storage.glob(r, "*.parquet"), cap)
        for r in storage.glob(stage_dir, "r=*", dirs=True)
    ]
    found = [t for t in ray.get(refs)] or [CUTOFF_SCHEMA.empty_table()]
    storage.remove_tree(stage_dir)
    return pa.concat_tables(found), candidates
