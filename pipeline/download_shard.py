"""One download shard: a slice of selected/ through img2dataset, into our corpus and failure schemas.

img2dataset runs as a library with one worker process (it starts it with `spawn`, so everything here
is importable, with no lambdas). It writes its own `key` column (shard-local ids), so our pair key
travels as `wit_key` and is restored afterwards. Its Parquet keeps failed rows (null jpg, status,
error_message); rows it lost altogether (an exception inside its sample loop) are found by
comparing keys and recorded as failures with status "lost", so every input row lands in exactly one
of corpus/part-N.parquet or corpus/failures/part-N.parquet.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import DownloadConfig
from wit.artifacts import write_json, write_parquet
from wit.config import from_dict

FAILURES = "failures"
SHARD_MARKERS = "_shards"
QUERY_IDS = pa.list_(pa.int32())
CORPUS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("query_ids", QUERY_IDS),
        ("jpg", pa.binary()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("original_width", pa.int32()),
        ("original_height", pa.int32()),
        ("sha256", pa.string()),
    ]
)
FAILURE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("caption", pa.string()),
        ("status", pa.string()),
        ("error_message", pa.string()),
        ("reason", pa.string()),  # error_message normalized into a few classes (failure_reason)
    ]
)

_HTTP = re.compile(r"http error (\d{3})")


def failure_reason(status: str | None, message: str | None) -> str:
    """img2dataset's free-text error message -> one of a few reason classes (the raw text is kept too)."""
    text = (message or "").lower()
    http = _HTTP.search(text)
    if status == "lost":
        return "lost"
    if "x-robots-tag" in text:
        return "robots_disallowed"
    if http:
        code = int(http.group(1))
        return "http_404" if code == 404 else "http_5xx" if code >= 500 else "http_4xx"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "decoding error" in text or "cannot identify image" in text:
        return "decode_error"
    if "too small" in text:
        return "too_small"
    if "area too large" in text:
        return "too_large"
    if "aspect ratio" in text:
        return "bad_aspect_ratio"
    if any(s in text for s in ("connection", "urlopen error", "remote end closed", "name or service")):
        return "connection_error"
    return "other"


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def read_sources(sources: list[tuple[str, int, int]]) -> pa.Table:
    """The selected rows of a shard: (file, first row, row count) slices, concatenated."""
    tables = [pq.read_table(path).slice(start, length) for path, start, length in sources]
    table = pa.concat_tables(tables)
    return pa.table(
        {"url": table["url"], "text": table["text"], "wit_key": table["key"], "query_ids": table["query_ids"]}
    )


def _run_img2dataset(input_path: str, output_dir: str, rows: int, cfg: DownloadConfig) -> None:
    # albumentations (imported by img2dataset) checks for updates over the network at import time.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import img2dataset  # imported here: heavy (cv2, albumentations), and only shard tasks need it

    img2dataset.download(
        url_list=input_path,
        output_folder=output_dir,
        input_format="parquet",
        output_format="parquet",
        url_col="url",
        caption_col="text",
        save_additional_columns=["wit_key", "query_ids"],
        number_sample_per_shard=max(rows, 1),  # one img2dataset shard per task
        processes_count=cfg.processes_count,
        thread_count=cfg.thread_count,
        distributor="multiprocessing",
        image_size=cfg.image_size,
        resize_mode=cfg.resize_mode,
        resize_only_if_bigger=cfg.resize_only_if_bigger,
        encode_quality=cfg.encode_quality,
        encode_format="jpg",
        timeout=cfg.timeout_s,
        retries=cfg.retries,
        user_agent_token=cfg.user_agent_token,
        disallowed_header_directives=list(cfg.disallowed_header_directives),
        min_image_size=cfg.min_image_size,
        max_image_area=cfg.max_image_area if cfg.max_image_area is not None else float("inf"),
        max_aspect_ratio=cfg.max_aspect_ratio if cfg.max_aspect_ratio is not None else float("inf"),
        compute_hash=None,  # img2dataset hashes the bytes it fetched; we hash the bytes we store
        extract_exif=False,
        enable_wandb=False,
        # "incremental" on a fresh directory: "overwrite" deletes img2dataset's own _tmp (1.47.0).
        incremental_mode="incremental",
    )


def split_results(selected: pa.Table, results: pa.Table) -> tuple[pa.Table, pa.Table]:
    """img2dataset output -> (corpus rows, failure rows), both sorted by key, covering every input row."""
    results = results.rename_columns(
        ["key" if n == "wit_key" else "i2d_key" if n == "key" else n for n in results.column_names]
    )
    ok = pc.and_(pc.equal(results["status"], "success"), pc.is_valid(results["jpg"])).fill_null(False)
    good = results.filter(ok)
    images = good["jpg"].to_pylist()
    corpus = pa.table(
        {
            "key": good["key"],
            "url": good["url"],
            "caption": good["caption"],
            "query_ids": good["query_ids"].cast(QUERY_IDS),
            "jpg": pa.array(images, pa.binary()),
            **{c: good[c].cast(pa.int32()) for c in ("width", "height", "original_width", "original_height")},
            "sha256": pa.array([hashlib.sha256(b).hexdigest() for b in images], pa.string()),
        },
        schema=CORPUS_SCHEMA,
    )
    bad = results.filter(pc.invert(ok))
    seen = set(results["key"].to_pylist())
    lost = selected.filter(pc.invert(pc.is_in(selected["wit_key"], pa.array(list(seen), pa.string()))))
    keys = bad["key"].to_pylist() + lost["wit_key"].to_pylist()
    statuses = bad["status"].to_pylist() + ["lost"] * lost.num_rows
    messages = bad["error_message"].to_pylist() + ["img2dataset wrote no row for this URL"] * lost.num_rows
    failures = pa.table(
        {
            "key": keys,
            "url": bad["url"].to_pylist() + lost["url"].to_pylist(),
            "caption": bad["caption"].to_pylist() + lost["text"].to_pylist(),
            "status": statuses,
            "error_message": messages,
            "reason": [failure_reason(s, m) for s, m in zip(statuses, messages)],
        },
        schema=FAILURE_SCHEMA,
    )
    return corpus.sort_by("key"), failures.sort_by("key")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_shard(
    shard: int,
    sources: list[tuple[str, int, int]],
    rows_sha1: str,
    corpus_dir: str,
    cfg_dict: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, Any]:
    """Download one shard into corpus_dir/part-N.parquet and failures/part-N.parquet; returns its marker.

    The marker (_shards/N.json) is written last: a shard with a marker is finished, one without is
    redone from scratch on the next run.
    """
    cfg = from_dict(DownloadConfig, cfg_dict)
    root = Path(corpus_dir)
    work = root / "_tmp" / f"shard-{shard:05d}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    selected = read_sources(sources)
    pq.write_table(selected, work / "input.parquet")
    _run_img2dataset(str(work / "input.parquet"), str(work / "out"), selected.num_rows, cfg)
    outputs = sorted((work / "out").glob("*.parquet"))
    if selected.num_rows and not outputs:
        raise RuntimeError(
            f"img2dataset wrote nothing for shard {shard} (see its log); rerun to retry the shard"
        )
    results = pa.concat_tables([pq.read_table(p) for p in outputs]) if outputs else None
    if results is None:
        corpus, failures = CORPUS_SCHEMA.empty_table(), FAILURE_SCHEMA.empty_table()
    else:
        corpus, failures = split_results(selected, results)
    if corpus.num_rows + failures.num_rows != selected.num_rows:
        raise RuntimeError(
            f"shard {shard}: {selected.num_rows} rows in, {corpus.num_rows}+{failures.num_rows} out"
        )
    corpus_path = write_parquet(corpus, root / shard_name(shard), {**record, "shard": shard})
    failures_path = write_parquet(failures, root / FAILURES / shard_name(shard), {**record, "shard": shard})
    reasons: dict[str, int] = {}
    for reason in failures["reason"].to_pylist():
        reasons[reason] = reasons.get(reason, 0) + 1
    marker = {
        "shard": shard,
        "sources": [list(s) for s in sources],
        "rows_sha1": rows_sha1,  # what the shard holds; a rerun reuses the shard only for the same rows
        "config": cfg_dict,
        "rows": selected.num_rows,
        "corpus_file": corpus_path.name,
        "corpus_rows": corpus.num_rows,
        "corpus_sha256": _sha256_file(corpus_path),
        "failures_file": f"{FAILURES}/{failures_path.name}",
        "failure_rows": failures.num_rows,
        "failures_sha256": _sha256_file(failures_path),
        "failure_reasons": reasons,
    }
    write_json(marker, root / SHARD_MARKERS / f"{shard:05d}.json")
    shutil.rmtree(work, ignore_errors=True)
    return marker
