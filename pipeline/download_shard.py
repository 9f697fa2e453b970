"""One download shard: a slice of selected/ through img2dataset's downloader, into our schemas.

The shard runs img2dataset's own `Downloader` (threads, cv2 decode/resize/re-encode, its Parquet
writer) inside the calling process, i.e. inside our Ray task, with its fetch function replaced by
pipeline.fetch's (private-address guard, robots.txt, TDMRep, X-Robots-Tag, per-host limits,
retries of transient failures): `img2dataset.download()` would start a logger process and a `spawn` pool for every call,
seconds of start-up per shard for no gain once Ray already spreads the shards (bench/download.py).

img2dataset writes its own `key` column (shard-local ids), so our pair key travels as `wit_key`
and is restored afterwards. Its Parquet keeps failed rows (null jpg, status, error_message); rows it
lost altogether (an exception inside its sample loop) are found by comparing keys and recorded as
failures with status "lost", so every input row lands in exactly one of the shard's two staged
files, `_shards/NNNNN.images.parquet` or `_shards/NNNNN.failures.parquet` (pipeline.consolidate
then cuts them into the corpus parts). img2dataset writes to a real disk only: `corpus/_tmp/` for a
local corpus, a node-local scratch directory for a corpus at a cloud URI.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config import DownloadConfig
from pipeline.fetch import Fetcher, installed
from core import storage
from core.artifacts import write_json, write_parquet
from core.config import from_dict

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
_TAGGED = re.compile(r"^\[([a-z0-9_]+)\] ")  # pipeline.fetch's "[reason] message"


def failure_reason(status: str | None, message: str | None) -> str:
    """An error message -> one of a few reason classes (the raw text is kept too): the tag our fetcher
    puts first, else a class read from img2dataset's free text (resize errors, older corpora)."""
    tagged = _TAGGED.match(message or "")
    if tagged:
        return tagged.group(1)
    text = (message or "").lower()
    http = _HTTP.search(text)
    if status == "lost":
        return "lost"
    if "x-robots-tag" in text:
        return "robots_disallowed"
    if "redirect" in text:  # urllib stops a loop after 4 visits of one URL, or after 10 redirects
        return "redirect_loop"
    if http:
        code = int(http.group(1))
        return {404: "http_404", 429: "http_429"}.get(code, "http_5xx" if code >= 500 else "http_4xx")
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


def staged_name(shard: int, what: str) -> str:
    """A download shard's staged output, `_shards/NNNNN.{images,failures}.parquet`."""
    return f"{SHARD_MARKERS}/{shard:05d}.{what}.parquet"


def local_work_dir(corpus_dir: str) -> Path:
    """Where img2dataset's files go while shards run: corpus/_tmp locally, node-local scratch for a URI."""
    if storage.is_uri(corpus_dir):
        return storage.scratch_dir(corpus_dir, "download")
    return Path(corpus_dir) / "_tmp"


def read_sources(sources: list[tuple[str, int, int]]) -> pa.Table:
    """The selected rows of a shard: (file, first row, row count) slices, concatenated."""
    tables = [storage.read_table(path).slice(start, length) for path, start, length in sources]
    table = pa.concat_tables(tables)
    # img2dataset's column order: the extra columns, then caption, then url (its Reader's column_list).
    return pa.table(
        {
            "wit_key": table["key"],
            "query_ids": table["query_ids"],
            "caption": table["text"],
            "url": table["url"],
        }
    )


def run_img2dataset(
    selected: pa.Table, work: Path, shard: int, cfg: DownloadConfig
) -> tuple[list[Path], dict[str, int]]:
    """img2dataset's Downloader over `selected` in this process, fetching through pipeline.fetch;
    returns the Parquet files it wrote and the requests sent per kind (image, robots, tdmrep)."""
    # albumentations (imported by img2dataset) checks for updates over the network at import time.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset.downloader import Downloader  # heavy (cv2, albumentations): only shard tasks need it
    from img2dataset.resizer import Resizer
    from img2dataset.writer import ParquetSampleWriter

    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    feather = work / f"{shard}.feather"
    with pa.OSFile(str(feather), "wb") as sink, pa.ipc.new_file(sink, selected.schema) as writer:
        writer.write_table(selected)
    resizer = Resizer(
        image_size=cfg.image_size,
        resize_mode=cfg.resize_mode,
        resize_only_if_bigger=cfg.resize_only_if_bigger,
        encode_quality=cfg.encode_quality,
        encode_format="jpg",
        min_image_size=cfg.min_image_size,
        max_image_area=cfg.max_image_area if cfg.max_image_area is not None else float("inf"),
        max_aspect_ratio=cfg.max_aspect_ratio if cfg.max_aspect_ratio is not None else float("inf"),
    )
    directives = [d.strip().lower() for d in cfg.disallowed_header_directives]
    downloader = Downloader(
        sample_writer_class=ParquetSampleWriter,
        resizer=resizer,
        thread_count=cfg.thread_count,
        save_caption=True,
        extract_exif=False,
        output_folder=str(out),
        column_list=selected.column_names,
        timeout=cfg.timeout_s,
        number_sample_per_shard=max(selected.num_rows, 1),
        oom_shard_count=5,
        compute_hash=None,  # img2dataset would hash the bytes it fetched; we hash the bytes we store
        verify_hash_type=None,
        encode_format="jpg",
        retries=cfg.retries,
        user_agent_token=cfg.user_agent_token,
        disallowed_header_directives=directives or None,
    )
    fetcher = Fetcher(cfg)
    # download_shard (not __call__, which swallows errors): a failing shard fails its Ray task.
    with installed(fetcher):
        downloader.download_shard((shard, str(feather)))
    return sorted(out.glob("*.parquet")), dict(sorted(fetcher.requests.items()))


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
            "caption": bad["caption"].to_pylist() + lost["caption"].to_pylist(),
            "status": statuses,
            "error_message": messages,
            "reason": [failure_reason(s, m) for s, m in zip(statuses, messages)],
        },
        schema=FAILURE_SCHEMA,
    )
    return corpus.sort_by("key"), failures.sort_by("key")


def download_shard(
    shard: int,
    sources: list[tuple[str, int, int]],
    rows_sha1: str,
    corpus_dir: str,
    cfg_dict: dict[str, Any],
) -> dict[str, Any]:
    """Download one shard into corpus_dir/_shards/NNNNN.{images,failures}.parquet; returns its marker.

    The marker (_shards/NNNNN.json) is written last: a shard with a marker is finished, one without
    is redone from scratch on the next run (a killed task leaves only _tmp/ behind).
    """
    cfg = from_dict(DownloadConfig, cfg_dict)
    root = str(corpus_dir)
    work = local_work_dir(root) / f"shard-{shard:05d}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.time()
    selected = read_sources(sources)
    outputs, requests = run_img2dataset(selected, work, shard, cfg)
    if selected.num_rows and not outputs:
        raise RuntimeError(f"img2dataset wrote nothing for shard {shard}; rerun to retry the shard")
    if outputs:
        corpus, failures = split_results(selected, pa.concat_tables([pq.read_table(p) for p in outputs]))
    else:
        corpus, failures = CORPUS_SCHEMA.empty_table(), FAILURE_SCHEMA.empty_table()
    if corpus.num_rows + failures.num_rows != selected.num_rows:
        raise RuntimeError(
            f"shard {shard}: {selected.num_rows} rows in, {corpus.num_rows}+{failures.num_rows} out"
        )
    # Staged files are intermediate (consolidation rewrites them), so they carry no provenance.
    record = {"stage": "download-shard", "shard": shard}
    write_parquet(corpus, storage.join(root, staged_name(shard, "images")), record)
    write_parquet(failures, storage.join(root, staged_name(shard, "failures")), record)
    marker = {
        "shard": shard,
        "sources": [list(s) for s in sources],
        "rows_sha1": rows_sha1,  # what the shard holds; a rerun reuses the shard only for the same rows
        "config": cfg_dict,
        "rows": selected.num_rows,
        "corpus_rows": corpus.num_rows,
        "failure_rows": failures.num_rows,
        "failure_reasons": dict(Counter(failures["reason"].to_pylist())),
        "requests": requests,  # per kind: what the opt-out checks cost besides the images
        "seconds": round(time.time() - start, 3),
    }
    write_json(marker, storage.join(root, SHARD_MARKERS, f"{shard:05d}.json"))
    shutil.rmtree(work, ignore_errors=True)
    return marker
