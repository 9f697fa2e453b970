"""download: selected/ -> corpus/ with img2dataset, one Ray task per shard of selected rows.

Layout of corpus/:
  part-00000.parquet ...           images: key, url, caption, query_ids, jpg, sizes, sha256 (of jpg),
                                   about part_target_bytes each (pipeline.consolidate)
  failures/part-00000.parquet ...  rows that got no image: key, url, caption, status, error_message, reason
  manifest.json, stats.json        counts per stage and per failure reason, parts with rows and sha256,
                                   download shards, config, versions
  _SUCCESS.json                    written last
  _shards/, _tmp/                  while running: each download shard's staged images and failures
                                   and its completion marker (NNNNN.json); removed once complete

Download shards are fixed slices of selected/ (read in key order), so shard N is the same rows on
every run: a rerun after a kill redoes only the shards without a marker, then consolidates, and the
corpus equals an uninterrupted run's. Readers should read `corpus/part-*.parquet` (a plain directory
read by Ray Data also descends into failures/).

corpus/ may be a cloud URI (wit.storage): img2dataset then works in a node-local scratch directory
(its output is only read back, never kept), and the staged shards, markers and parts are written to
the bucket directly, `_SUCCESS.json` last.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import time
from collections import Counter
from typing import Any

import ray
from tqdm import tqdm

from pipeline.balance import stage_parts
from pipeline.config import RESIZE_MODES, DownloadConfig
from pipeline.consolidate import consolidate
from pipeline.fetch import validate_fetch
from pipeline.download_shard import (
    CORPUS_SCHEMA,
    FAILURE_SCHEMA,
    SHARD_MARKERS,
    download_shard,
    local_work_dir,
    staged_name,
)
from pipeline.shards import input_fingerprint
from wit import storage
from wit.artifacts import is_done, mark_done, provenance, read_json, write_json
from wit.config import to_dict
from wit.errors import WitError
from wit.raylocal import ensure_ray

Source = tuple[str, int, int]  # (selected part file, first row, row count)


def plan_shards(parts: list[str], rows_per_shard: int) -> list[list[Source]]:
    """Cut the selected rows, in key order, into shards of `rows_per_shard` rows (file slices)."""
    shards: list[list[Source]] = []
    current: list[Source] = []
    room = rows_per_shard
    for path in parts:
        rows, start = storage.num_rows(path), 0
        while start < rows:
            take = min(room, rows - start)
            current.append((path, start, take))
            start, room = start + take, room - take
            if room == 0:
                shards.append(current)
                current, room = [], rows_per_shard
    if current:
        shards.append(current)
    return shards


def shard_digests(plan: list[list[Source]]) -> list[str]:
    """What each shard holds (keys and query ids), so a finished shard is reused only for the same rows."""

    @functools.lru_cache(maxsize=2)  # shards walk the files in order: each file is read once
    def rows(path: str) -> tuple[list, list]:
        table = storage.read_table(path, columns=["key", "query_ids"])
        return table["key"].to_pylist(), table["query_ids"].to_pylist()

    digests = []
    for sources in plan:
        digest = hashlib.sha1()
        for path, start, length in sources:
            keys, ids = rows(path)
            for key, query_ids in zip(keys[start : start + length], ids[start : start + length]):
                digest.update(f"{key}:{query_ids}\n".encode())
        digests.append(digest.hexdigest())
    return digests


def _finished(corpus_dir: str, shard: int, digest: str, cfg: dict[str, Any]) -> dict | None:
    marker_path = storage.join(corpus_dir, SHARD_MARKERS, f"{shard:05d}.json")
    if not storage.exists(marker_path):
        return None
    marker = read_json(marker_path)
    same = marker.get("rows_sha1") == digest and marker["config"] == cfg
    staged = all(
        storage.exists(storage.join(corpus_dir, staged_name(shard, what))) for what in ("images", "failures")
    )
    return marker if same and staged else None


def _validate(cfg: DownloadConfig) -> None:
    if cfg.resize_mode not in RESIZE_MODES:
        raise WitError(
            f"unknown resize_mode {cfg.resize_mode!r}", hint=f"use one of {', '.join(RESIZE_MODES)}"
        )
    if min(cfg.rows_per_input_shard, cfg.image_size, cfg.thread_count, cfg.part_target_bytes) < 1:
        raise WitError("rows_per_input_shard, image_size, thread_count, part_target_bytes must be >= 1")
    if not 0 <= cfg.encode_quality <= 100:
        raise WitError(f"encode_quality {cfg.encode_quality} is not a JPEG quality", hint="use 0..100")
    validate_fetch(cfg)


def run_shards(
    plan: list[list[Source]], corpus_dir: str, cfg: DownloadConfig
) -> tuple[list[dict], set[int]]:
    """Run the unfinished shards as Ray tasks (a tqdm bar counts them); returns markers, skipped ids."""
    cfg_dict = to_dict(cfg)
    digests = shard_digests(plan)
    markers: dict[int, dict] = {}
    for shard, digest in enumerate(digests):
        done = _finished(corpus_dir, shard, digest, cfg_dict)
        if done is not None:
            markers[shard] = done
    skipped = set(markers)
    task = ray.remote(num_cpus=1, max_retries=1)(download_shard)
    pending = {
        task.remote(shard, sources, digests[shard], str(corpus_dir), cfg_dict): shard
        for shard, sources in enumerate(plan)
        if shard not in markers
    }
    with tqdm(total=len(plan), initial=len(skipped), desc="download shards", unit="shard") as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            marker = ray.get(ready[0])
            markers[pending.pop(ready[0])] = marker
            bar.update(1)
    return [markers[s] for s in range(len(plan))], skipped


def _stage_stats(stage_dir: str) -> dict | None:
    path = storage.join(stage_dir, "stats.json")
    if not storage.exists(path):
        return None
    stats = read_json(path)
    return {k: v for k, v in stats.items() if k not in ("queries", "files")}


def download(selected_dir: str, corpus_dir: str, cfg: DownloadConfig = DownloadConfig()) -> dict:
    """Download the selected pairs' images into corpus_dir; returns the manifest (also manifest.json)."""
    _validate(cfg)
    parts = stage_parts(selected_dir, "selected", "wit pipeline balance")
    inputs = {"selected": input_fingerprint(parts)}
    root = str(corpus_dir)
    if is_done(root):
        done = read_json(storage.join(root, "_SUCCESS.json"))
        if done.get("config") == to_dict(cfg) and done.get("inputs") == inputs:
            return read_json(storage.join(root, "manifest.json"))
        print(f"download: {corpus_dir} was made from other inputs or another config; redoing what changed")
        storage.remove(storage.join(root, "_SUCCESS.json"))
    storage.makedirs(root)  # a missing bucket fails here, before any work
    ensure_ray()
    start = time.time()
    plan = plan_shards(parts, cfg.rows_per_input_shard)
    markers, skipped = run_shards(plan, root, cfg)
    seconds = time.time() - start

    selected_rows = sum(storage.num_rows(p) for p in parts)
    corpus_rows = sum(m["corpus_rows"] for m in markers)
    failure_rows = sum(m["failure_rows"] for m in markers)
    if corpus_rows + failure_rows != selected_rows:  # every selected row ends in exactly one place
        raise RuntimeError(
            f"{selected_rows} selected rows but {corpus_rows} in corpus + {failure_rows} failures"
        )
    reasons: Counter = Counter()
    for m in markers:
        reasons.update(m["failure_reasons"])
    downloaded = sum(m["rows"] for i, m in enumerate(markers) if i not in skipped)
    requests: Counter = Counter()
    for m in markers:
        requests.update(m.get("requests", {}))
    stats = {
        "stage": "download",
        "input_rows": selected_rows,
        "output_rows": corpus_rows,
        "dropped": dict(sorted(reasons.items())),  # failure reason -> rows
        "success_rate": round(corpus_rows / selected_rows, 4) if selected_rows else None,
        "shards": len(plan),
        "shards_skipped": len(skipped),
        "seconds": round(seconds, 3),
        "rows_per_s": round(downloaded / seconds, 1) if downloaded and seconds > 0 else None,
        "requests": dict(sorted(requests.items())),  # sent per kind: image (and redirect hops), robots, tdmrep
    }
    record = provenance("download", cfg, inputs=inputs)
    parts_written, failure_parts = consolidate(
        root,
        [storage.join(root, staged_name(s, "images")) for s in range(len(plan))],
        [storage.join(root, staged_name(s, "failures")) for s in range(len(plan))],
        (CORPUS_SCHEMA, FAILURE_SCHEMA),
        record,
        cfg.part_target_bytes,
    )
    assert sum(p["rows"] for p in parts_written) == corpus_rows
    selected_path = str(selected_dir)
    manifest = {
        **record,
        "counts": {
            "pool": (_stage_stats(_matched_dir(selected_path)) or {}).get("input_rows"),
            "matched": (_stage_stats(selected_path) or {}).get("input_rows"),
            "selected": selected_rows,
            "downloaded": corpus_rows,
            "failed": failure_rows,
        },
        "failures": stats["dropped"],
        "stages": {
            "match": _stage_stats(_matched_dir(selected_path)),
            "balance": _stage_stats(selected_path),
        },
        "download": stats,
        "failure_examples": _failure_examples(root, failure_parts),
        "shards": parts_written,  # the corpus parts: file, rows, bytes, sha256
        "failure_shards": failure_parts,
        "download_shards": [{k: v for k, v in m.items() if k != "config"} for m in markers],
    }
    write_json(stats, storage.join(root, "stats.json"))
    write_json(manifest, storage.join(root, "manifest.json"))
    mark_done(root, {**record, "stats": stats})
    # Staged shards are now in the parts; the markers' facts are in the manifest.
    storage.remove_tree(storage.join(root, SHARD_MARKERS))
    shutil.rmtree(local_work_dir(root), ignore_errors=True)
    return manifest


def _matched_dir(selected_dir: str) -> str:
    """Where balance read its input, from its provenance (else the sibling matched/)."""
    done = storage.join(selected_dir, "_SUCCESS.json")
    if storage.exists(done):
        matched = read_json(done).get("inputs", {}).get("matched") or []
        if matched:
            return storage.parent(matched[0]["path"])
    return storage.join(storage.parent(selected_dir), "matched")


def _failure_examples(root: str, failure_parts: list[dict], per_reason: int = 3) -> dict[str, list[str]]:
    """A few distinct raw error messages per reason class, so the classes can be checked by eye."""
    examples: dict[str, list[str]] = {}
    for part in failure_parts:
        table = storage.read_table(storage.join(root, part["file"]), columns=["reason", "error_message"])
        for reason, message in zip(table["reason"].to_pylist(), table["error_message"].to_pylist()):
            seen = examples.setdefault(reason, [])
            if len(seen) < per_reason and message not in seen:
                seen.append(message)
    return dict(sorted(examples.items()))


__all__ = ["download", "plan_shards"]
