"""match: keep the pool pairs whose alt text contains a query as whole words.

Each text is normalized exactly like the queries (queries.normalize), and a query matches when its
words occur in order among the text's words: " cat " is found in " a cat sat " but not in
" category ", and overlapping queries count alike (" new york city " yields "new york", "york city"
and "new york city"). pipeline.word_trie does it for a whole batch in numpy.

Every pool row leaves with exactly one reason (first that applies, in this order): malformed_row
(a TSV/CSV line with the wrong number of fields, counted by the reader), invalid_url, url_too_long,
empty_text, text_too_long, no_match, duplicate (same url and text as a kept row) or matched.
stats.json holds the counts and `input_rows == output_rows + sum(dropped)`.

Identical (url, text) pairs collapse into one row (one key). The same URL with different texts stays
as separate candidate pairs, since each text may claim for other queries; `duplicate_url_rows`
counts the matched rows whose URL some other matched row also has. It is counted like the output is
written: every block stages (url hash, key hash) by url-hash range, one task per range counts.

The number of key ranges follows the pool: one per `range_target_bytes` of its url/text columns
(Parquet footers' uncompressed sizes, else file sizes), so each merge and each duplicate-URL task
holds one range's rows, and the driver only per-file and per-range figures.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipeline.config import MatchConfig, PoolConfig
from pipeline.pool import inspect_pool, pool_files, read_pool
from pipeline.shards import (
    STAGING,
    clear_outputs,
    input_fingerprint,
    merge_staged,
    num_key_ranges,
    stage_rows,
    uncompressed_bytes,
)
from pipeline.word_trie import QueryTrie, build_trie, find_in_batch
from queries.schema import read_queries
from core import storage
from core.artifacts import write_json
from core.config import from_dict, to_dict
from core.raylocal import ensure_ray
from core.stage import StageRun, reuse_or_run

DROP_REASONS = (
    "malformed_row",
    "invalid_url",
    "url_too_long",
    "empty_text",
    "text_too_long",
    "no_match",
    "duplicate",
)
QUERY_IDS = pa.list_(pa.int32())


def pair_key(url: str, text: str) -> str:
    """Stable id of a (url, text) pair: the first 16 bytes of sha1(url TAB text), in hex."""
    return hashlib.sha1(f"{url}\t{text}".encode()).hexdigest()[:32]


def build_automaton(queries: pa.Table) -> QueryTrie:
    """The matcher of queries.parquet's (query_id, query) rows, built once per actor."""
    return build_trie(queries["query_id"].to_pylist(), queries["query"].to_pylist())


def find_queries(automaton: QueryTrie, text: str) -> list[int]:
    """Sorted unique ids of the queries occurring in `text` as whole words."""
    return find_queries_many(automaton, [text])[2].tolist()


def find_queries_many(
    automaton: QueryTrie, texts: list[str | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`find_queries` for a whole batch: (has_words [N] bool: normalize(text) != "";
    rows [M], query_ids [M]): the (text, query) pairs found, sorted by row, then id, unique, so
    row i's ids are `find_queries(automaton, texts[i])`. None counts as ""."""
    return find_in_batch(automaton, [t or "" for t in texts])


# An absolute http(s) URL with a host and no whitespace anywhere; `re`'s \s is Unicode-aware, so
# no-break and other Unicode spaces count too. The host (after any user@) is a bracketed IPv6
# literal or a run of characters without : / ? # @ [ ] — what urlsplit would call hostname.
_URL = re.compile(
    r"https?://(?:[^\s/?#@]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)(?::[0-9]*)?(?:[/?#]\S*)?",
    re.IGNORECASE,
)


def url_problem(url: str | None, max_chars: int) -> str | None:
    if not url or not url.strip():
        return "invalid_url"
    if len(url) > max_chars:
        return "url_too_long"
    return None if _URL.fullmatch(url) else "invalid_url"


def match_rows(automaton: QueryTrie, batch: pa.Table, cfg: MatchConfig) -> tuple[pa.Table, Counter]:
    """The matched rows of a pool batch (key, url, text, query_ids, kept columns) and why the others left.

    The hot loop of the stage: normalizing and matching run over the whole batch at once
    (find_queries_many); per row, only the URL check and the key of a matched pair are Python.
    """
    urls, texts = batch["url"].to_pylist(), batch["text"].to_pylist()
    has_words, found_rows, found_ids = find_queries_many(automaton, texts)
    has_match = np.zeros(len(texts), bool)
    has_match[found_rows] = True
    reasons: Counter = Counter()
    keep_rows, keys = [], []
    max_url, max_text = cfg.max_url_chars, cfg.max_text_chars
    problems = batch["problem"].to_pylist() if "problem" in batch.column_names else None
    for i, (url, text) in enumerate(zip(urls, texts)):
        reason = (problems and problems[i]) or url_problem(url, max_url)
        if reason is None:
            if not has_words[i]:
                reason = "empty_text"
            elif len(text) > max_text:
                reason = "text_too_long"
            elif has_match[i]:
                keep_rows.append(i)
                keys.append(pair_key(url, text))
                continue
            else:
                reason = "no_match"
        reasons[reason] += 1
    reasons["matched"] += len(keep_rows)
    kept = batch.take(pa.array(keep_rows, pa.int64()))
    # query_ids straight from the arrays: row i's ids are found_ids[found_rows == i], in order
    is_kept = np.zeros(len(texts), bool)
    is_kept[keep_rows] = True
    kept_pairs = is_kept[found_rows]
    per_row = np.bincount(found_rows[kept_pairs], minlength=len(texts))[keep_rows]
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    query_ids = pa.ListArray.from_arrays(offsets, found_ids[kept_pairs].astype(np.int32), type=QUERY_IDS)
    columns = {
        "key": pa.array(keys, pa.string()),
        "url": kept["url"],
        "text": kept["text"],
        "query_ids": query_ids,
        **{c: kept[c] for c in cfg.pool.keep_columns},
    }
    return pa.table(columns), reasons


URLS = "_urls"  # staging of (url hash, key) pairs, for duplicate_url_rows


def url_pairs(matched: pa.Table) -> pa.Table:
    """Matched rows as `key` = url hash (16 hex) + pair key, staged by url-hash range like the output.

    The pair key is part of the staged key so that staged file names (a hash of the keys) differ for
    blocks holding the same URLs with other texts.
    """
    keys = [
        hashlib.sha1(u.encode()).hexdigest()[:16] + k
        for u, k in zip(*matched.select(["url", "key"]).to_pydict().values())
    ]
    return pa.table({"key": pa.array(keys, pa.string())})


@ray.remote
def _duplicate_url_rows(files: list[str]) -> int:
    keys = pa.chunked_array([storage.read_table(f)["key"] for f in files], pa.string())
    pairs = pc.unique(keys)  # identical pairs collapse
    per_url = pc.value_counts(pc.utf8_slice_codeunits(pairs, 0, 16)).field("counts")
    return int(pc.sum(pc.filter(per_url, pc.greater(per_url, 1))).as_py() or 0)


def count_duplicate_urls(out_dir: str) -> int:
    """Matched rows (after collapsing identical pairs) whose URL another matched row shares."""
    ranges = storage.glob(storage.join(out_dir, URLS, STAGING), "b=*", dirs=True)
    total = sum(ray.get([_duplicate_url_rows.remote(storage.glob(r, "*.parquet")) for r in ranges]))
    storage.remove_tree(storage.join(out_dir, URLS))
    return total


class MatchQueries:
    """Ray Data callable: match a pool batch, stage the matched rows by key range, return the tallies."""

    def __init__(self, queries_path: str, cfg: dict[str, Any], out_dir: str, num_ranges: int):
        self.automaton = build_automaton(read_queries(queries_path))  # once per actor, not per batch
        self.cfg = from_dict(MatchConfig, cfg)
        self.out_dir = out_dir
        self.num_ranges = num_ranges

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        matched, reasons = match_rows(self.automaton, batch, self.cfg)
        stage_rows(matched, self.out_dir, self.num_ranges)
        stage_rows(url_pairs(matched), storage.join(self.out_dir, URLS), self.num_ranges)
        return {
            "reason": np.array(list(reasons), dtype=object),
            "rows": np.array(list(reasons.values()), np.int64),
        }


def _actor_pool_size(cfg: MatchConfig) -> tuple[int, int]:
    # An autoscaling pool from 1: a fixed pool holding every CPU starves the read tasks (deadlock).
    return (1, cfg.concurrency or max(1, int(ray.cluster_resources().get("CPU", 1))))


def match(pool: tuple[str, ...], queries_path: str, out_dir: str, cfg: MatchConfig = MatchConfig()) -> dict:
    """Match the pool against queries.parquet into out_dir (part-*.parquet, stats.json, _SUCCESS.json).

    Returns the stats. A finished out_dir made from the same inputs and config is reused as it is.
    """
    files = pool_files(pool)
    queries = read_queries(queries_path)  # validate on the driver: a wrong file fails here, not in an actor
    inputs = {"pool": input_fingerprint(files), "queries": input_fingerprint([queries_path])}
    return reuse_or_run(StageRun("match", out_dir, cfg, inputs),
                        lambda record: _match(files, queries.num_rows, queries_path, out_dir, cfg, record),
                        clear=_clear)


def match_batch_rows(cfg: MatchConfig, num_ranges: int) -> int:
    """Rows per actor batch: enough that each key range's staged file from it holds about
    cfg.staged_rows_per_range rows, within [cfg.batch_size, cfg.max_batch_rows]."""
    return max(cfg.batch_size, min(cfg.max_batch_rows, cfg.staged_rows_per_range * num_ranges))


def _clear(out_dir: str) -> None:
    clear_outputs(out_dir)
    storage.remove_tree(storage.join(out_dir, URLS))


def _match(files: list[str], num_queries: int, queries_path: str, out_dir: str, cfg: MatchConfig,
           record: dict[str, Any]) -> dict:
    ensure_ray()
    start = time.time()
    num_ranges = num_key_ranges(pool_text_bytes(files, cfg.pool), cfg.range_target_bytes)
    tallies = (
        read_pool(files, cfg.pool)
        .map_batches(
            MatchQueries,
            fn_constructor_kwargs={
                "queries_path": queries_path,
                "cfg": to_dict(cfg),
                "out_dir": out_dir,
                "num_ranges": num_ranges,
            },
            batch_format="pyarrow",
            batch_size=match_batch_rows(cfg, num_ranges),
            concurrency=_actor_pool_size(cfg),
        )
        .take_all()
    )
    counts: Counter = Counter()
    for row in tallies:
        counts[row["reason"]] += int(row["rows"])
    parts = merge_staged(out_dir, record, dedupe=True)
    matched_rows = sum(p["rows"] for p in parts)
    duplicate_url_rows = count_duplicate_urls(out_dir)
    dropped = {reason: counts.get(reason, 0) for reason in DROP_REASONS}
    dropped["duplicate"] = counts["matched"] - matched_rows
    seconds = time.time() - start
    input_rows = sum(counts.values())
    stats = {
        "stage": "match",
        "input_rows": input_rows,
        "output_rows": matched_rows,
        "dropped": dropped,
        "duplicate_url_rows": duplicate_url_rows,
        "queries": num_queries,
        "key_ranges": num_ranges,
        "files": parts,
        "seconds": round(seconds, 3),
        "rows_per_s": round(input_rows / seconds, 1) if seconds > 0 else None,
    }
    assert input_rows == matched_rows + sum(dropped.values()), stats  # no row leaves without a reason
    write_json(stats, storage.join(out_dir, "stats.json"))
    return stats


def pool_text_bytes(files: list[str], cfg: PoolConfig) -> int:
    """What the pool's url, text and kept columns take uncompressed: from Parquet footers (only the
    columns read), else the file size (text formats; for WARC an overestimate, the page bodies)."""
    total = 0
    for f in inspect_pool(files, cfg):
        if f.format != "parquet":
            total += storage.size(f.path)
            continue
        total += uncompressed_bytes(f.path, {f.url_col, f.text_col, *cfg.keep_columns})
    return total
