"""The pool: (image URL, alt text) pairs from the web, as Parquet, TSV, CSV or JSONL files.

`read_pool` checks every file on the driver first (exists, readable, has a URL and a text column),
so a bad input fails in a second with a message naming the file, not minutes later inside a Ray
task. Files may name their columns differently ("url" in one, "URL" in another): each group of
files with the same layout is read on its own and the groups are unioned.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import ray.data

from pipeline.config import POOL_FORMATS, TEXT_COLUMNS, URL_COLUMNS, PoolConfig
from wit.errors import WitError

_EXTENSIONS = {".parquet": "parquet", ".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
RESERVED = ("key", "url", "text", "query_ids", "claimed_by")


@dataclass(frozen=True)
class PoolFile:
    path: str
    format: str
    url_col: str
    text_col: str
    has_rows: bool


def pool_files(paths: Sequence[str]) -> list[str]:
    """The files named by `paths`; a directory stands for its pool files (sorted, not recursive)."""
    if not paths:
        raise WitError("no pool given", hint="pass one or more Parquet/TSV/CSV/JSONL files or directories")
    files: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in _EXTENSIONS and p.is_file())
            if not found:
                raise WitError(f"pool directory {raw} holds no {'/'.join(_EXTENSIONS)} files")
            files.extend(found)
        elif path.is_file():
            files.append(str(path))
        else:
            raise WitError(f"pool file {raw} does not exist")
    return files


def file_format(path: str, requested: str) -> str:
    if requested not in POOL_FORMATS:
        raise WitError(f"unknown pool format {requested!r}", hint=f"use one of {', '.join(POOL_FORMATS)}")
    if requested != "auto":
        return requested
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise WitError(
            f"cannot tell the format of pool file {path}",
            hint="name it .parquet/.tsv/.csv/.jsonl or pass --format",
        )
    return fmt


def _csv_parse_options(fmt: str) -> pa_csv.ParseOptions:
    # Web-scale TSVs (Conceptual Captions style) carry raw quotes inside captions: no quoting there.
    return pa_csv.ParseOptions(delimiter="\t", quote_char=False) if fmt == "tsv" else pa_csv.ParseOptions()


def _peek(path: str, fmt: str) -> tuple[list[str], bool]:
    """Column names of a pool file and whether it holds at least one row, reading as little as possible."""
    try:
        if fmt == "parquet":
            meta = pq.ParquetFile(path)
            return meta.schema_arrow.names, meta.metadata.num_rows > 0
        if fmt in ("csv", "tsv"):
            reader = pa_csv.open_csv(path, parse_options=_csv_parse_options(fmt))
            names = reader.schema.names
            for batch in reader:
                if batch.num_rows:
                    return names, True
            return names, False
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    return list(json.loads(line)), True
        return [], False
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as err:
        if fmt != "parquet" and os.path.getsize(path) == 0:
            return [], False
        raise WitError(f"cannot read pool file {path} as {fmt}: {err}") from err


def _pick(path: str, columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    options = (wanted,) if wanted else candidates
    for name in options:
        if name in columns:
            return name
    raise WitError(
        f"pool file {path} has no {what} column (looked for {', '.join(options)}); its columns are {columns}",
        hint=f"name the column with --{what}-col",
    )


def inspect_pool(paths: Sequence[str], cfg: PoolConfig) -> list[PoolFile]:
    """Validate every pool file on the driver; WitError names the first bad one."""
    bad_keep = [c for c in cfg.keep_columns if c in RESERVED]
    if bad_keep:
        raise WitError(f"cannot keep pool columns {bad_keep}: the pipeline writes columns of those names")
    found = []
    for path in pool_files(paths):
        fmt = file_format(path, cfg.format)
        columns, has_rows = _peek(path, fmt)
        if not has_rows:
            found.append(PoolFile(path, fmt, "", "", False))
            continue
        url_col = _pick(path, columns, cfg.url_col, URL_COLUMNS, "url")
        text_col = _pick(path, columns, cfg.text_col, TEXT_COLUMNS, "text")
        missing = [c for c in cfg.keep_columns if c not in columns]
        if missing:
            raise WitError(f"pool file {path} lacks the kept column(s) {missing}; its columns are {columns}")
        found.append(PoolFile(path, fmt, url_col, text_col, True))
    if not any(f.has_rows for f in found):
        raise WitError(f"the pool is empty: no rows in {', '.join(f.path for f in found)}")
    return found


def _to_pool_schema(batch: pa.Table, url_col: str, text_col: str, keep: list[str]) -> pa.Table:
    """Rename to url/text and make both strings (JSON may carry a number as a caption)."""
    columns = {"url": batch[url_col], "text": batch[text_col], **{c: batch[c] for c in keep}}
    for name in ("url", "text"):
        if columns[name].type != pa.string():
            columns[name] = columns[name].cast(pa.string())
    return pa.table(columns)


def _read_group(fmt: str, files: list[str], url_col: str, text_col: str, keep: list[str]) -> ray.data.Dataset:
    wanted = list(dict.fromkeys([url_col, text_col, *keep]))
    if fmt == "parquet":
        ds = ray.data.read_parquet(files, columns=wanted)
    elif fmt in ("csv", "tsv"):
        # URLs and captions stay strings even when a file's values all look like numbers.
        convert = pa_csv.ConvertOptions(column_types={url_col: pa.string(), text_col: pa.string()})
        ds = ray.data.read_csv(
            files, parse_options=_csv_parse_options(fmt), convert_options=convert, file_extensions=None
        )
    else:
        ds = ray.data.read_json(files, lines=True, file_extensions=None)
    return ds.map_batches(
        _to_pool_schema,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"url_col": url_col, "text_col": text_col, "keep": keep},
    )


def read_pool(paths: Sequence[str], cfg: PoolConfig = PoolConfig()) -> ray.data.Dataset:
    """A Ray Dataset of the pool with columns url, text (strings) plus `cfg.keep_columns`."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for f in inspect_pool(paths, cfg):
        if f.has_rows:
            groups.setdefault((f.format, f.url_col, f.text_col), []).append(f.path)
    datasets = [
        _read_group(fmt, files, url_col, text_col, list(cfg.keep_columns))
        for (fmt, url_col, text_col), files in sorted(groups.items())
    ]
    return datasets[0] if len(datasets) == 1 else datasets[0].union(*datasets[1:])
