"""match: keep the pool pairs whose alt text contains a query as whole words.

Each text is normalized exactly like the queries (queries.normalize) and padded with spaces; the
automaton's keys are the queries padded the same way, so " cat " is found in " a cat sat " but not in
" category ". Aho-Corasick reports overlapping keys too: " new york city " yields "new york",
"york city" and "new york city" alike.

Every pool row leaves with exactly one reason (first that applies, in this order): invalid_url,
url_too_long, empty_text, text_too_long, no_match, duplicate (same url and text as a kept row) or
matched. stats.json holds the counts and `input_rows == output_rows + sum(dropped)`.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ahocorasick
import numpy as np
import pyarrow as pa
import ray

from pipeline.config import MatchConfig
from pipeline.pool import pool_files, read_pool
from pipeline.shards import clear_outputs, input_fingerprint, merge_staged, stage_rows
from queries.normalize import normalize
from queries.schema import read_queries
from wit.artifacts import is_done, mark_done, provenance, read_json, write_json
from wit.config import from_dict, to_dict
from wit.raylocal import ensure_ray

DROP_REASONS = ("invalid_url", "url_too_long", "empty_text", "text_too_long", "no_match", "duplicate")
QUERY_IDS = pa.list_(pa.int32())


def pair_key(url: str, text: str) -> str:
    """Stable id of a (url, text) pair: the first 16 bytes of sha1(url TAB text), in hex."""
    return hashlib.sha1(f"{url}\t{text}".encode()).hexdigest()[:32]


def build_automaton(queries: pa.Table) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for query_id, query in zip(queries["query_id"].to_pylist(), queries["query"].to_pylist()):
        if query and query.strip():
            automaton.add_word(f" {query} ", int(query_id))
    automaton.make_automaton()
    return automaton


def find_queries(automaton: ahocorasick.Automaton, text: str) -> list[int]:
    """Sorted unique ids of the queries occurring in `text` as whole words."""
    if automaton.kind == ahocorasick.EMPTY:
        return []
    return sorted({query_id for _, query_id in automaton.iter(f" {normalize(text)} ")})


def url_problem(url: str | None, max_chars: int) -> str | None:
    if not url or not url.strip():
        return "invalid_url"
    if len(url) > max_chars:
        return "url_too_long"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "invalid_url"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return "invalid_url"
    return None


def text_problem(text: str | None, max_chars: int) -> str | None:
    if text is None or not normalize(text):
        return "empty_text"
    if len(text) > max_chars:
        return "text_too_long"
    return None


def match_rows(
    automaton: ahocorasick.Automaton, batch: pa.Table, cfg: MatchConfig
) -> tuple[pa.Table, Counter]:
    """The matched rows of a pool batch (key, url, text, query_ids, kept columns) and why the others left."""
    reasons: Counter = Counter()
    keep_rows, keys, ids = [], [], []
    for i, (url, text) in enumerate(zip(batch["url"].to_pylist(), batch["text"].to_pylist())):
        reason = url_problem(url, cfg.max_url_chars) or text_problem(text, cfg.max_text_chars)
        found = find_queries(automaton, text) if reason is None else []
        if reason is None and not found:
            reason = "no_match"
        if reason is not None:
            reasons[reason] += 1
            continue
        keep_rows.append(i)
        keys.append(pair_key(url, text))
        ids.append(found)
    reasons["matched"] += len(keep_rows)
    kept = batch.take(pa.array(keep_rows, pa.int64()))
    columns = {
        "key": pa.array(keys, pa.string()),
        "url": kept["url"],
        "text": kept["text"],
        "query_ids": pa.array(ids, QUERY_IDS),
        **{c: kept[c] for c in cfg.pool.keep_columns},
    }
    return pa.table(columns), reasons


class MatchQueries:
    """Ray Data callable: match a pool batch, stage the matched rows by key range, return the tallies."""

    def __init__(self, queries_path: str, cfg: dict[str, Any], out_dir: str):
        self.automaton = build_automaton(read_queries(queries_path))  # once per actor, not per batch
        self.cfg = from_dict(MatchConfig, cfg)
        self.out_dir = out_dir

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        matched, reasons = match_rows(self.automaton, batch, self.cfg)
        stage_rows(matched, self.out_dir, self.cfg.output_shards)
        return {
            "reason": np.array(list(reasons), dtype=object),
            "rows": np.array(list(reasons.values()), np.int64),
        }


def _actor_pool_size(cfg: MatchConfig) -> tuple[int, int]:
    if cfg.concurrency:
        return (cfg.concurrency, cfg.concurrency)
    return (1, max(1, int(ray.cluster_resources().get("CPU", 1))))


def match(pool: tuple[str, ...], queries_path: str, out_dir: str, cfg: MatchConfig = MatchConfig()) -> dict:
    """Match the pool against queries.parquet into out_dir (part-*.parquet, stats.json, _SUCCESS.json).

    Returns the stats. A finished out_dir made from the same inputs and config is reused as it is.
    """
    files = pool_files(pool)
    queries = read_queries(queries_path)  # validate on the driver: a wrong file fails here, not in an actor
    inputs = {"pool": input_fingerprint(files), "queries": input_fingerprint([queries_path])}
    reused = _reuse(out_dir, cfg, inputs)
    if reused is not None:
        return reused
    ensure_ray()
    clear_outputs(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    start = time.time()
    tallies = (
        read_pool(files, cfg.pool)
        .map_batches(
            MatchQueries,
            fn_constructor_kwargs={"queries_path": queries_path, "cfg": to_dict(cfg), "out_dir": out_dir},
            batch_format="pyarrow",
            batch_size=cfg.batch_size,
            concurrency=_actor_pool_size(cfg),
        )
        .take_all()
    )
    counts: Counter = Counter()
    for row in tallies:
        counts[row["reason"]] += int(row["rows"])
    record = provenance("match", cfg, inputs=inputs)
    parts = merge_staged(out_dir, record, dedupe=True)
    matched_rows = sum(p["rows"] for p in parts)
    dropped = {reason: counts.get(reason, 0) for reason in DROP_REASONS}
    dropped["duplicate"] = counts["matched"] - matched_rows
    seconds = time.time() - start
    input_rows = sum(counts.values())
    stats = {
        "stage": "match",
        "input_rows": input_rows,
        "output_rows": matched_rows,
        "dropped": dropped,
        "queries": queries.num_rows,
        "files": parts,
        "seconds": round(seconds, 3),
        "rows_per_s": round(input_rows / seconds, 1) if seconds > 0 else None,
    }
    assert input_rows == matched_rows + sum(dropped.values()), stats  # no row leaves without a reason
    write_json(stats, Path(out_dir) / "stats.json")
    mark_done(out_dir, {**record, "stats": stats})
    return stats


def _reuse(out_dir: str, cfg: MatchConfig, inputs: dict[str, Any]) -> dict | None:
    if not is_done(out_dir):
        return None
    done = read_json(Path(out_dir) / "_SUCCESS.json")
    if done.get("config") == to_dict(cfg) and done.get("inputs") == inputs:
        return done["stats"]
    print(f"match: {out_dir} was made from other inputs or another config; recomputing it")
    return None
