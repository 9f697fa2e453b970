"""retry: fetch again only the rows of a finished corpus that failed for a transient reason.

`wit pipeline download --retry-failures` takes the failure rows whose reason is transient (timeout,
connection_error, http_5xx, http_429: pipeline.fetch.TRANSIENT_REASONS) and downloads them again
into the same corpus; 404s, decode errors, opt-outs and blocked addresses are never retried. The
corpus keeps its parts; recovered images go into new parts numbered after them, the failures are
rewritten without the retried rows plus those that failed again, and the manifest is updated, so
every selected row is still in exactly one place.

Crash safety, in three steps under corpus/_retry/ (a kill at any point, then a rerun, loses and
duplicates nothing):
  1. input.parquet: the rows to retry, written once; a rerun retries the same rows.
  2. The retry shards run like download shards (markers in _retry/_shards/), so a rerun redoes
     only the unfinished ones; then the new parts and the rewritten failures are written under
     _retry/out/ and commit.json (the moves to make, the new manifest) is written last.
  3. Apply commit.json: _SUCCESS.json removed, files moved into place, manifest written,
     _SUCCESS.json written, _retry/ removed. Every move is idempotent, so a rerun that finds
     commit.json applies it again from the start.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.balance import stage_parts
from pipeline.config import DownloadConfig
from pipeline.consolidate import consolidate
from pipeline.download import _failure_examples, _validate, plan_download, run_shards
from pipeline.download_shard import CORPUS_SCHEMA, FAILURE_SCHEMA, QUERY_IDS, staged_name
from pipeline.fetch import TRANSIENT_REASONS
from core import storage
from core.artifacts import is_done, mark_done, provenance, read_json, write_json, write_parquet
from core.config import to_dict
from core.errors import WitError
from core.raylocal import ensure_ray

RETRY_DIR = "_retry"


def retry_failures(selected_dir: str, corpus_dir: str, cfg: DownloadConfig = DownloadConfig()) -> dict:
    """Fetch again the transient failures of corpus_dir (rows of selected_dir); returns the new manifest."""
    _validate(cfg)
    root = str(corpus_dir)
    work = storage.join(root, RETRY_DIR)
    commit_path = storage.join(work, "commit.json")
    if not storage.exists(commit_path):
        if not is_done(root):
            raise WitError(
                f"{corpus_dir} is not a finished corpus", hint="run `wit pipeline download` to the end first"
            )
        manifest = read_json(storage.join(root, "manifest.json"))
        input_path = storage.join(work, "input.parquet")
        if not storage.exists(input_path):
            rows = transient_rows(root, manifest, selected_dir)
            if rows.num_rows == 0:
                print("retry: no failure with a transient reason; nothing to fetch")
                return manifest
            write_parquet(rows, input_path, provenance("download-retry-input", cfg))
        start = time.time()
        ensure_ray()
        plan = plan_download([input_path], work, cfg)     # shards a killed retry finished are kept
        markers = run_shards(plan, work, cfg)
        prepare_commit(root, work, manifest, len(plan.shards), markers, cfg, time.time() - start)
    apply_commit(root, work)
    return read_json(storage.join(root, "manifest.json"))


def transient_rows(root: str, manifest: dict, selected_dir: str) -> pa.Table:
    """The failure rows to fetch again, in selected/'s columns (query ids looked up there), by key."""
    failed = []
    for part in manifest["failure_shards"]:
        table = storage.read_table(
            storage.join(root, part["file"]), columns=["key", "url", "caption", "reason"]
        )
        failed.append(table.filter(pc.is_in(table["reason"], pa.array(sorted(TRANSIENT_REASONS)))))
    failed_rows = pa.concat_tables(failed) if failed else FAILURE_SCHEMA.empty_table()
    keys = failed_rows["key"]
    query_ids = []
    for path in stage_parts(selected_dir, "selected", "wit pipeline balance"):
        table = storage.read_table(path, columns=["key", "query_ids"])
        query_ids.append(table.filter(pc.is_in(table["key"], keys)))
    found = pa.concat_tables(query_ids)
    ids_of = dict(zip(found["key"].to_pylist(), found["query_ids"].to_pylist()))  # one entry per row to retry
    missing = [k for k in keys.to_pylist() if k not in ids_of]
    if missing:
        raise WitError(
            f"{len(missing)} failed rows of {root} are not in {selected_dir}",
            hint="pass the --selected the corpus was downloaded from",
        )
    return pa.table(
        {
            "key": keys,
            "url": failed_rows["url"],
            "text": failed_rows["caption"],
            "query_ids": pa.array([ids_of[k] for k in keys.to_pylist()], QUERY_IDS),
        }
    ).sort_by("key")


def prepare_commit(
    root: str,
    work: str,
    manifest: dict,
    shards: int,
    markers: list[dict],
    cfg: DownloadConfig,
    seconds: float,
) -> None:
    """Write the new parts and failures under work/out and, last, work/commit.json saying where they go."""
    retried = set(storage.read_table(storage.join(work, "input.parquet"), columns=["key"])["key"].to_pylist())
    kept_reasons: Counter = Counter()
    kept_files = []
    for i, part in enumerate(manifest["failure_shards"]):  # old failures without the retried rows
        table = storage.read_table(storage.join(root, part["file"])).replace_schema_metadata(None)
        kept = table.filter(pc.invert(pc.is_in(table["key"], pa.array(sorted(retried), pa.string()))))
        kept_reasons.update(kept["reason"].to_pylist())
        kept_files.append(write_parquet(kept, storage.join(work, "kept", f"{i:05d}.parquet"), {}))
    done = read_json(storage.join(root, "_SUCCESS.json"))
    rounds = manifest.get("retries", [])
    record = {
        **provenance("download", done["config"], inputs=done.get("inputs")),
        "retry_round": len(rounds) + 1,
    }
    out = storage.join(work, "out")
    images = [storage.join(work, staged_name(s, "images")) for s in range(shards)]
    failures = [str(f) for f in kept_files] + [
        storage.join(work, staged_name(s, "failures")) for s in range(shards)
    ]
    new_parts, failure_parts = consolidate(
        out, images, failures, (CORPUS_SCHEMA, FAILURE_SCHEMA), record, cfg.part_target_bytes
    )
    recovered = sum(m["corpus_rows"] for m in markers)
    new_parts = [p for p in new_parts if p["rows"]]  # consolidate makes one empty part for nothing recovered
    first = len(manifest["shards"])
    image_moves = [[p["file"], f"part-{first + i:05d}.parquet"] for i, p in enumerate(new_parts)]
    failure_moves = [[p["file"], p["file"]] for p in failure_parts]
    retry_reasons: Counter = Counter()
    requests: Counter = Counter()
    for m in markers:
        retry_reasons.update(m["failure_reasons"])
        requests.update(m.get("requests", {}))
    reasons = kept_reasons + retry_reasons
    counts = dict(manifest["counts"])
    counts["downloaded"] += recovered
    counts["failed"] = sum(reasons.values())
    assert counts["downloaded"] + counts["failed"] == counts["selected"], counts
    stats = {
        **manifest["download"],
        "output_rows": counts["downloaded"],
        "dropped": dict(sorted(reasons.items())),
        "success_rate": round(counts["downloaded"] / counts["selected"], 4) if counts["selected"] else None,
    }
    round_record = {
        "round": len(rounds) + 1,
        "retried": len(retried),
        "recovered": recovered,
        "failed_again": dict(sorted(retry_reasons.items())),
        "requests": dict(sorted(requests.items())),
        "seconds": round(seconds, 3),
        "config": to_dict(cfg),
    }
    new_manifest = {
        **manifest,
        "counts": counts,
        "failures": stats["dropped"],
        "download": stats,
        "failure_examples": _failure_examples(out, failure_parts),
        "shards": manifest["shards"] + [{**p, "file": dst} for p, (_, dst) in zip(new_parts, image_moves)],
        "failure_shards": failure_parts,
        "retries": rounds + [round_record],
    }
    for part in consolidate_leftovers(out, len(new_parts)):
        storage.remove(part)
    commit = {
        "image_moves": image_moves,
        "failure_moves": failure_moves,
        "failure_parts": len(failure_parts),
        "manifest": new_manifest,
        "stats": stats,
        "done": {**done, "stats": stats, "retries": new_manifest["retries"]},
    }
    write_json(commit, storage.join(work, "commit.json"))


def consolidate_leftovers(out: str, kept: int) -> list[str]:
    """The empty image part consolidate writes when nothing was recovered."""
    return [p for p in storage.glob(out, "part-*.parquet") if int(storage.name(p)[5:10]) >= kept]


def apply_commit(root: str, work: str) -> None:
    """Move the prepared files into the corpus and publish the manifest; safe to repeat after a kill."""
    commit = read_json(storage.join(work, "commit.json"))
    done_path = storage.join(root, "_SUCCESS.json")
    if storage.exists(done_path):  # from here until the end, the corpus says it is being changed
        storage.remove(done_path)
    out = storage.join(work, "out")
    for source, target in commit["image_moves"] + commit["failure_moves"]:
        _move(storage.join(out, source), storage.join(root, target))
    for path in storage.glob(storage.join(root, "failures"), "part-*.parquet"):
        if int(storage.name(path)[5:10]) >= commit["failure_parts"]:  # the old failures had more parts
            storage.remove(path)
    write_json(commit["stats"], storage.join(root, "stats.json"))
    write_json(commit["manifest"], storage.join(root, "manifest.json"))
    mark_done(root, commit["done"])
    storage.remove_tree(work)


def _move(source: str, target: str) -> None:
    """source -> target, once: a source already moved by an earlier (killed) apply is skipped."""
    if not storage.exists(source):
        return
    if not storage.is_uri(source):
        os.replace(source, target)  # one rename on a local disk
        return
    storage.write_bytes(target, storage.read_bytes(source))  # object stores have no rename
    storage.remove(source)
