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
corpus equals an uninterrupted run's. The driver plans from the Parquet footers (rows per file) and
holds one entry per shard, never per row: each shard's digest of its rows (keys and query ids), which
decides whether a staged shard still matches selected/, is computed by the shard's own task, and on a
rerun by one check task per marked shard; failure counts come from the shards' markers and the
failure examples from one task per failure part. Readers should read `corpus/part-*.parquet` (a plain directory
read by Ray Data also descends into failures/).

corpus/ may be a cloud URI (core.storage): img2dataset then works in a node-local scratch directory
(its output is only read back, never kept), and the staged shards, markers and parts are written to
the bucket directly, `_SUCCESS.json` last.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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
from core import storage
from core.artifacts import read_json, write_json
from core.config import to_dict
from core.errors import WitError
from core.raylocal import ensure_ray
from core.stage import StageRun, reuse_or_run

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


def read_slice(path: str, start: int, length: int, columns: list[str]) -> pa.Table:
    """Rows start..start+length of one Parquet file, reading only the row groups they lie in."""
    with storage.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        groups, first, offset = [], None, 0
        for g in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(g).num_rows
            if offset + rows > start and offset < start + length:
                first = offset if first is None else first
                groups.append(g)
            offset += rows
        if not groups:
            return parquet.schema_arrow.empty_table().select(columns)
        return parquet.read_row_groups(groups, columns=columns).slice(start - first, length)


def shard_digest(sources: list[Source]) -> str:
    """What a shard holds (keys and query ids), so a finished shard is reused only for the same rows.

    Computed inside the shard's own task, from its slices alone: the driver never reads a row.
    """
    digest = hashlib.sha1()
    for path, start, length in sources:
        table = read_slice(path, start, length, ["key", "query_ids"])
        for key, query_ids in zip(table["key"].to_pylist(), table["query_ids"].to_pylist()):
            digest.update(f"{key}:{query_ids}\n".encode())
    return digest.hexdigest()


def _marker_path(corpus_dir: str, shard: int) -> str:
    return storage.join(corpus_dir, SHARD_MARKERS, f"{shard:05d}.json")


def _finished(corpus_dir: str, shard: int, sources: list[Source], cfg: dict[str, Any]) -> dict | None:
    """The shard's marker if it was staged from the same rows with the same config, else None."""
    marker = read_json(_marker_path(corpus_dir, shard))
    if marker["config"] != cfg:
        return None
    staged = all(
        storage.exists(storage.join(corpus_dir, staged_name(shard, what))) for what in ("images", "failures")
    )
    return marker if staged and marker.get("rows_sha1") == shard_digest(sources) else None


def _download(shard: int, sources: list[Source], corpus_dir: str, cfg: dict[str, Any]) -> dict:
    return download_shard(shard, sources, shard_digest(sources), corpus_dir, cfg)


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


@dataclass(frozen=True)
class DownloadPlan:
    """What download() knows before its first shard task: the shards and which of them are finished."""

    shards: list[list[Source]]
    finished: dict[int, dict]  # shard -> its marker, for shards staged from the same rows and config


def plan_download(parts: list[str], corpus_dir: str, cfg: DownloadConfig) -> DownloadPlan:
    """Cut selected/ into shards from the files' footers and find the finished ones (all before the
    first download task). A shard with a marker is checked by a task of its own (its rows' digest
    against the marker's); the driver lists the markers once and holds one entry per shard."""
    shards = plan_shards(parts, cfg.rows_per_input_shard)
    marked = {storage.name(p) for p in storage.glob(storage.join(corpus_dir, SHARD_MARKERS), "*.json")}
    check = ray.remote(num_cpus=1, max_retries=1)(_finished)
    cfg_dict = to_dict(cfg)
    refs = {
        shard: check.remote(corpus_dir, shard, sources, cfg_dict)
        for shard, sources in enumerate(shards)
        if f"{shard:05d}.json" in marked
    }
    finished = {shard: marker for shard, marker in zip(refs, ray.get(list(refs.values()))) if marker is not None}
    return DownloadPlan(shards, finished)


def run_shards(plan: DownloadPlan, corpus_dir: str, cfg: DownloadConfig) -> list[dict]:
    """Run the unfinished shards as Ray tasks (a tqdm bar counts them); returns every shard's marker."""
    cfg_dict = to_dict(cfg)
    markers = dict(plan.finished)
    task = ray.remote(num_cpus=1, max_retries=1)(_download)
    pending = {
        task.remote(shard, sources, str(corpus_dir), cfg_dict): shard
        for shard, sources in enumerate(plan.shards)
        if shard not in markers
    }
    with tqdm(total=len(plan.shards), initial=len(markers), desc="download shards", unit="shard") as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            marker = ray.get(ready[0])
            markers[pending.pop(ready[0])] = marker
            bar.update(1)
    return [markers[s] for s in range(len(plan.shards))]


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
    # clear=None: finished shards of an interrupted or changed run are kept and checked, not redone
    reuse_or_run(StageRun("download", root, cfg, inputs),
                 lambda record: _download_stage(parts, str(selected_dir), root, cfg, record))
    # Staged shards are now in the parts; the markers' facts are in the manifest.
    storage.remove_tree(storage.join(root, SHARD_MARKERS))
    shutil.rmtree(local_work_dir(root), ignore_errors=True)
    return read_json(storage.join(root, "manifest.json"))


def _download_stage(parts: list[str], selected_path: str, root: str, cfg: DownloadConfig, record: dict) -> dict:
    """The download proper: shard tasks, consolidation, manifest.json; returns the stats."""
    ensure_ray()
    start = time.time()
    plan = plan_download(parts, root, cfg)
    markers = run_shards(plan, root, cfg)
    skipped = set(plan.finished)
    seconds = time.time() - start

    selected_rows = sum(length for sources in plan.shards for _, _, length in sources)
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
        "shards": len(plan.shards),
        "shards_skipped": len(skipped),
        "seconds": round(seconds, 3),
        "rows_per_s": round(downloaded / seconds, 1) if downloaded and seconds > 0 else None,
        "requests": dict(sorted(requests.items())),  # sent per kind: image (and redirect hops), robots, tdmrep
    }
    parts_written, failure_parts = consolidate(
        root,
        [storage.join(root, staged_name(s, "images")) for s in range(len(plan.shards))],
        [storage.join(root, staged_name(s, "failures")) for s in range(len(plan.shards))],
        (CORPUS_SCHEMA, FAILURE_SCHEMA),
        record,
        cfg.part_target_bytes,
    )
    assert sum(p["rows"] for p in parts_written) == corpus_rows
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
    return stats


def _matched_dir(selected_dir: str) -> str:
    """Where balance read its input, from its provenance (else the sibling matched/)."""
    done = storage.join(selected_dir, "_SUCCESS.json")
    if storage.exists(done):
        matched = read_json(done).get("inputs", {}).get("matched") or []
        if matched:
            return storage.parent(matched[0]["path"])
    return storage.join(storage.parent(selected_dir), "matched")


def part_failure_examples(path: str, per_reason: int) -> dict[str, list[str]]:
    """The first `per_reason` distinct error messages of each reason in one failure part, in row order,
    read a row group at a time and deduplicated by Arrow (not a Python loop over the rows)."""
    examples: dict[str, list[str]] = {}
    with storage.open_input_file(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(columns=["reason", "error_message"]):
            for reason in pc.unique(batch["reason"]).to_pylist():
                seen = examples.setdefault(reason, [])
                if len(seen) >= per_reason:
                    continue
                messages = pc.unique(batch["error_message"].filter(pc.equal(batch["reason"], reason)))
                for message in messages.to_pylist():
                    if len(seen) < per_reason and message not in seen:
                        seen.append(message)
    return examples


def _failure_examples(root: str, failure_parts: list[dict], per_reason: int = 3) -> dict[str, list[str]]:
    """A few distinct raw error messages per reason class, so the classes can be checked by eye.

    One task per failure part; the driver merges a few messages per reason and part, in part order.
    """
    task = ray.remote(num_cpus=1)(part_failure_examples)
    found = ray.get([task.remote(storage.join(root, p["file"]), per_reason) for p in failure_parts])
    examples: dict[str, list[str]] = {}
    for part in found:
        for reason, messages in part.items():
            seen = examples.setdefault(reason, [])
            seen.extend(m for m in messages if m not in seen)
            del seen[per_reason:]
    return dict(sorted(examples.items()))


__all__ = ["download", "plan_shards"]
