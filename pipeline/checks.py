"""The pipeline subcommands' input checks, run at the top of each handler before Ray starts: every
input exists and has its contract's schema (core.validate), every number is in range. Messages name
the option as the user typed it."""

from __future__ import annotations

import argparse

from pipeline.config import PoolConfig
from pipeline.pool import inspect_pool
from core import storage, validate

MATCHED_COLUMNS = ("key", "url", "text", "query_ids")
SELECTED_COLUMNS = (*MATCHED_COLUMNS, "claimed_by")
QUERIES_COLUMNS = ("query_id", "query")


def check_match(a: argparse.Namespace) -> None:
    validate.check_at_least({"--max-text-chars": a.max_text_chars, "--concurrency": a.concurrency}, 1)
    for path in a.pool:
        validate.check_exists(path, "pool path", hint="pass Parquet/TSV/CSV/JSONL/WARC files or directories")
    validate.check_file(a.queries, "queries file", hint="build it with `wit queries build`")
    validate.check_columns(a.queries, QUERIES_COLUMNS, "queries file", hint="build it with `wit queries build`")
    validate.check_output(a.out, "--out")
    # Every pool file's format, columns and first row, on the driver (footers and first lines only).
    inspect_pool(a.pool, PoolConfig(format=a.format, url_col=a.url_col, text_col=a.text_col, header=a.header,
                                    keep_columns=tuple(a.keep)))


def check_balance_numbers(a: argparse.Namespace) -> None:
    validate.check_at_least({"--cap": a.cap, "--read-blocks": a.read_blocks}, 1)


def check_balance(a: argparse.Namespace) -> None:
    check_balance_numbers(a)
    validate.check_stage_dir(a.matched, "matched directory", "wit pipeline match", MATCHED_COLUMNS)
    validate.check_output(a.out, "--out")


def check_download_numbers(a: argparse.Namespace) -> None:
    validate.check_at_least({"--image-size": a.image_size, "--timeout": a.timeout, "--threads": a.threads,
                             "--rows-per-shard": a.rows_per_shard}, 1)
    validate.check_at_least({"--retries": a.retries, "--min-image-size": a.min_image_size,
                             "--max-image-area": a.max_image_area}, 0)
    validate.check_between("--encode-quality", a.encode_quality, 0, 100)
    validate.check_at_least({"--part-target-mb": a.part_target_mb}, 1 / 2**20)


def check_download(a: argparse.Namespace) -> None:
    check_download_numbers(a)
    validate.check_stage_dir(a.selected, "selected directory", "wit pipeline balance", SELECTED_COLUMNS)
    validate.check_output(a.out, "--out")


def check_run(a: argparse.Namespace) -> None:
    check_balance_numbers(a)
    check_download_numbers(a)
    check_match(a)


def check_inspect(a: argparse.Namespace) -> None:
    """Any Parquet file or directory of them, finished or not (failures/ has no marker of its own)."""
    validate.check_at_least({"-n": a.n, "--sheet-rows": a.sheet_rows}, 0)
    validate.check_exists(a.path, "path to inspect", hint="a stage directory or a .parquet file")
    if storage.is_dir(a.path):
        validate.check_dir(a.path, "directory to inspect", hint="a stage directory with part-*.parquet")
        validate.check_parts(a.path, "*.parquet", (), "directory to inspect",
                             hint="a stage directory (queries, matched, selected, corpus, failures)")
    else:
        validate.check_parquet(a.path, "file to inspect", hint="a .parquet file or a stage directory")
    if a.queries:
        validate.check_columns(a.queries, QUERIES_COLUMNS, "queries file")
    if a.html:
        validate.check_output(a.html, "--html", directory=False)
