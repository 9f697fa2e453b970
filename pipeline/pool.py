"""The pool: (image URL, alt text) pairs from the web, as Parquet, TSV, CSV, JSONL or WARC files.

`read_pool` checks every file on the driver first (exists, readable, has a URL and a text column),
so a bad input fails in a second with a message naming the file, not minutes later inside a Ray
task. Files may name their columns differently ("url" in one, "URL" in another): each group of
files with the same layout is read on its own and the groups are unioned.

TSV/CSV files may lack a header (Conceptual Captions' `caption<TAB>url`): a file whose first line
holds an http(s) URL is read headerless, its columns named f0, f1, ..., the URL column being the
one holding that URL. A line with the wrong number of fields is skipped and counted: it reaches
match as a row whose `problem` is "malformed_row", so the stats say how many there were.
WARC files (.warc, .warc.gz) yield every <img> of their HTML responses (pipeline.warc).
Files and directories may be local paths or cloud URIs (core.storage).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import ray.data

from pipeline.config import POOL_FORMATS, TEXT_COLUMNS, URL_COLUMNS, PoolConfig
from pipeline.warc import POOL_COLUMNS, read_warc, warc_table
from core import storage
from core.errors import WitError

_EXTENSIONS = {
    ".parquet": "parquet",
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".warc": "warc",
    ".warc.gz": "warc",
}
RESERVED = ("key", "url", "text", "query_ids", "claimed_by", "problem")
MALFORMED = "malformed_row"  # the `problem` of a TSV/CSV line with the wrong number of fields


def _extension(path: str | Path) -> str | None:
    name = Path(path).name.lower()
    return next((ext for ext in sorted(_EXTENSIONS, key=len, reverse=True) if name.endswith(ext)), None)


@dataclass(frozen=True)
class PoolFile:
    path: str
    format: str
    url_col: str
    text_col: str
    has_rows: bool
    header: bool = True  # TSV/CSV only


def pool_files(paths: Sequence[str]) -> list[str]:
    """The files named by `paths`; a directory stands for its pool files (sorted, not recursive)."""
    if not paths:
        raise WitError("no pool given", hint="pass one or more Parquet/TSV/CSV/JSONL files or directories")
    files: list[str] = []
    for raw in paths:
        if storage.is_dir(raw):
            found = [p for p, is_dir in storage.listdir(raw) if not is_dir and _extension(storage.name(p))]
            if not found:
                raise WitError(f"pool directory {raw} holds no {'/'.join(_EXTENSIONS)} files")
            files.extend(found)
        elif storage.is_file(raw):
            files.append(str(Path(raw)) if not storage.is_uri(raw) else raw)
        else:
            raise WitError(f"pool file {raw} does not exist")
    return files


def file_format(path: str, requested: str) -> str:
    if requested not in POOL_FORMATS:
        raise WitError(f"unknown pool format {requested!r}", hint=f"use one of {', '.join(POOL_FORMATS)}")
    if requested != "auto":
        return requested
    fmt = _EXTENSIONS.get(_extension(path) or "")
    if fmt is None:
        raise WitError(
            f"cannot tell the format of pool file {path}",
            hint="name it .parquet/.tsv/.csv/.jsonl/.warc.gz or pass --format",
        )
    return fmt


def _csv_parse_options(fmt: str, invalid_row_handler=None) -> pa_csv.ParseOptions:
    # Web-scale TSVs (Conceptual Captions style) carry raw quotes inside captions: no quoting there.
    if fmt == "tsv":
        return pa_csv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=invalid_row_handler)
    return pa_csv.ParseOptions(invalid_row_handler=invalid_row_handler)


def _looks_like_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def _has_header(path: str, fmt: str, wanted: bool | None) -> bool:
    """`wanted` when set; else a first line holding a URL means the file has no header."""
    if wanted is not None:
        return wanted
    with storage.open_input_stream(path) as f:
        first = io.BufferedReader(f).readline().decode("utf-8", errors="replace").rstrip("\r\n")
    return not any(_looks_like_url(v) for v in first.split("\t" if fmt == "tsv" else ","))


def _skip(row: pa_csv.InvalidRow) -> str:
    return "skip"


def _peek(path: str, fmt: str, header: bool = True) -> tuple[list[str], bool, list[str]]:
    """Column names of a pool file, whether it holds a row, and its first row's values (as strings)."""
    try:
        if fmt == "parquet":
            with storage.open_input_file(path) as f:
                meta = pq.ParquetFile(f)
                return meta.schema_arrow.names, meta.metadata.num_rows > 0, []
        if fmt in ("csv", "tsv"):
            reader = pa_csv.open_csv(
                storage.open_input_stream(path),
                read_options=pa_csv.ReadOptions(autogenerate_column_names=not header),
                parse_options=_csv_parse_options(fmt, _skip),
            )
            names = reader.schema.names
            for batch in reader:
                if batch.num_rows:
                    return names, True, [str(v) for v in batch.slice(0, 1).to_pylist()[0].values()]
            return names, False, []
        if fmt == "warc":
            return list(POOL_COLUMNS), next(read_warc(path), None) is not None, []
        with storage.open_input_stream(path) as raw:
            for line in io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8"):
                if line.strip():
                    return list(json.loads(line)), True, []
        return [], False, []
    except Exception as err:  # noqa: BLE001 — any reader error means the same thing: a bad pool file
        if fmt != "parquet" and storage.size(path) == 0:
            return [], False, []
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
        header = _has_header(path, fmt, cfg.header) if fmt in ("csv", "tsv") else True
        columns, has_rows, first = _peek(path, fmt, header)
        if not has_rows:
            found.append(PoolFile(path, fmt, "", "", False))
            continue
        if header:
            url_col = _pick(path, columns, cfg.url_col, URL_COLUMNS, "url")
            text_col = _pick(path, columns, cfg.text_col, TEXT_COLUMNS, "text")
        else:  # f0, f1, ...: the URL column is the one whose first value is a URL, text the first other
            url_guess = tuple(c for c, v in zip(columns, first) if _looks_like_url(v))[:1]
            url_col = _pick(path, columns, cfg.url_col, url_guess, "url")
            text_col = _pick(
                path, columns, cfg.text_col, tuple(c for c in columns if c != url_col)[:1], "text"
            )
        missing = [c for c in cfg.keep_columns if c not in columns]
        if missing:
            raise WitError(f"pool file {path} lacks the kept column(s) {missing}; its columns are {columns}")
        found.append(PoolFile(path, fmt, url_col, text_col, True, header))
    if not any(f.has_rows for f in found):
        raise WitError(f"the pool is empty: no rows in {', '.join(f.path for f in found)}")
    return found


def _to_pool_schema(batch: pa.Table, url_col: str, text_col: str, keep: list[str]) -> pa.Table:
    """Rename to url/text and make both strings (JSON may carry a number as a caption)."""
    columns = {"url": batch[url_col], "text": batch[text_col], **{c: batch[c] for c in keep}}
    for name in ("url", "text"):
        if columns[name].type != pa.string():
            columns[name] = columns[name].cast(pa.string())
    if "problem" in batch.column_names:
        columns["problem"] = batch["problem"]
    else:
        columns["problem"] = pa.nulls(batch.num_rows, pa.string())
    return pa.table(columns)


def _read_delimited(
    batch: dict[str, Any], fmt: str, header: bool, url_col: str, text_col: str
) -> Iterator[pa.Table]:
    """Ray Data generator over TSV/CSV files: their rows, then one `malformed_row` row per bad line."""
    for path in batch["path"]:
        malformed = 0

        def count(row: pa_csv.InvalidRow) -> str:
            nonlocal malformed
            malformed += 1
            return "skip"

        reader = pa_csv.open_csv(
            storage.open_input_stream(str(path)),
            read_options=pa_csv.ReadOptions(autogenerate_column_names=not header, block_size=8 << 20),
            parse_options=_csv_parse_options(fmt, count),
            # URLs and captions stay strings even when a file's values all look like numbers.
            convert_options=pa_csv.ConvertOptions(column_types={url_col: pa.string(), text_col: pa.string()}),
        )
        for table in reader:
            yield pa.Table.from_batches([table])
        if malformed:
            names = reader.schema.names
            yield pa.table(
                {
                    **{n: pa.nulls(malformed, reader.schema.field(n).type) for n in names},
                    "problem": pa.array([MALFORMED] * malformed, pa.string()),
                }
            )


def _read_warc(batch: dict[str, Any]) -> Iterator[pa.Table]:
    for path in batch["path"]:
        yield from warc_table(str(path))


def _per_file(files: list[str], fn, **kwargs: Any) -> ray.data.Dataset:
    """One Ray task per file, reading it with `fn` (a generator of tables)."""
    return ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files)).map_batches(
        fn, batch_size=1, fn_kwargs=kwargs
    )


def _read_group(f: PoolFile, files: list[str], keep: list[str]) -> ray.data.Dataset:
    wanted = list(dict.fromkeys([f.url_col, f.text_col, *keep]))
    paths, filesystem = storage.for_ray_data(files)
    if f.format == "parquet":
        ds = ray.data.read_parquet(paths, columns=wanted, filesystem=filesystem)
    elif f.format in ("csv", "tsv"):
        ds = _per_file(
            files, _read_delimited, fmt=f.format, header=f.header, url_col=f.url_col, text_col=f.text_col
        )
    elif f.format == "warc":
        ds = _per_file(files, _read_warc)
    else:
        ds = ray.data.read_json(paths, lines=True, file_extensions=None, filesystem=filesystem)
    return ds.map_batches(
        _to_pool_schema,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"url_col": f.url_col, "text_col": f.text_col, "keep": keep},
    )


def read_pool(paths: Sequence[str], cfg: PoolConfig = PoolConfig()) -> ray.data.Dataset:
    """A Ray Dataset of the pool: url, text (strings), `cfg.keep_columns`, and `problem` (null, or why
    the reader could not make a pair of a line: "malformed_row")."""
    groups: dict[tuple[str, str, str, bool], tuple[PoolFile, list[str]]] = {}
    for f in inspect_pool(paths, cfg):
        if f.has_rows:
            groups.setdefault((f.format, f.url_col, f.text_col, f.header), (f, []))[1].append(f.path)
    datasets = [_read_group(f, files, list(cfg.keep_columns)) for _, (f, files) in sorted(groups.items())]
    return datasets[0] if len(datasets) == 1 else datasets[0].union(*datasets[1:])
