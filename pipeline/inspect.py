"""inspect: a Polars (lazy) summary of any stage's output: queries.parquet, matched/, selected/, corpus/.

The kind is told by the columns, so a single part file works as well as a directory. Only the
columns a summary needs are scanned; image bytes are never loaded except to show their length. Every
figure is an aggregate computed by Polars' streaming engine: what reaches this process is a few rows
(the top queries, the failure reasons, the samples), never the stage's rows nor one row per query.
A cloud URI is read through our pyarrow filesystem (core.storage) as a Polars scan of a pyarrow
dataset, so Polars needs no credentials or endpoint of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.dataset as pads

from core import storage
from core.errors import WitError

TOP = 20


def _files(path: str) -> list[str]:
    if storage.is_file(path):
        return [path]
    if not storage.is_dir(path):
        raise WitError(f"{path} does not exist")
    files = storage.glob(path, "part-*.parquet") or storage.glob(path, "*.parquet")
    if not files:
        raise WitError(
            f"{path} holds no Parquet files", hint="point inspect at a stage directory or a .parquet file"
        )
    return files


def scan(files: list[str]) -> pl.LazyFrame:
    """A lazy scan of Parquet files, local (Polars' own reader) or at a URI (a pyarrow dataset)."""
    paths, filesystem = storage.for_ray_data(files)
    if filesystem is None:
        return pl.scan_parquet(files)
    return pl.scan_pyarrow_dataset(pads.dataset(paths, filesystem=filesystem, format="parquet"))


def _kind(columns: list[str]) -> str:
    if "query_id" in columns and "query" in columns:
        return "queries"
    if "jpg" in columns:
        return "corpus"
    if "status" in columns and "error_message" in columns:
        return "failures"
    if "claimed_by" in columns:
        return "selected"
    if "query_ids" in columns:
        return "matched"
    return "pool" if "url" in columns else "unknown"


def _bytes_on_disk(path: str) -> int:
    if storage.is_file(path):
        return storage.size(path)
    return sum(size for _, size in storage.walk_files(path))


def _describe(lf: pl.LazyFrame, expr: pl.Expr) -> dict[str, Any]:
    row = (
        lf.select(
            expr.min().alias("min"),
            expr.mean().alias("mean"),
            expr.median().alias("median"),
            expr.max().alias("max"),
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}


def _find_queries(path: str, queries: str | None) -> str | None:
    if queries:
        return queries
    base = path if storage.is_dir(path) else storage.parent(path)
    for candidate in (
        storage.join(base, "queries.parquet"),
        storage.join(storage.parent(base), "queries.parquet"),
        storage.join(storage.parent(storage.parent(base)), "queries.parquet"),
    ):
        if storage.is_file(candidate) and storage.display(candidate) != storage.display(path):
            return candidate
    return None


def _per_query(lf: pl.LazyFrame, column: str, queries: str | None) -> dict[str, Any]:
    """Pairs per query: the top queries and the tail's statistics, aggregated by Polars' streaming
    engine; what comes back to this process is TOP rows and one row of statistics."""
    counts = (
        lf.select(pl.col(column).explode().alias("query_id")).drop_nulls().group_by("query_id").len("pairs")
    )
    top = counts.sort(["pairs", "query_id"], descending=[True, False]).head(TOP)
    if queries is not None:
        names = scan([queries]).select(pl.col("query_id").cast(pl.Int64), "query")
        top = top.with_columns(pl.col("query_id").cast(pl.Int64)).join(names, on="query_id", how="left")
        top = top.sort(["pairs", "query_id"], descending=[True, False])
    tail = counts.select(
        pl.len().alias("queries"),
        pl.col("pairs").min().alias("min"),
        pl.col("pairs").median().alias("median"),
        pl.col("pairs").mean().alias("mean"),
        pl.col("pairs").max().alias("max"),
        (pl.col("pairs") == 1).sum().alias("with_one_pair"),
    )
    top_rows, stats = pl.collect_all([top, tail], engine="streaming")
    stats = stats.row(0, named=True)
    queries_seen = stats.pop("queries")
    stats["mean"] = round(stats["mean"], 2) if queries_seen else None
    stats["with_one_pair"] = int(stats["with_one_pair"] or 0)
    return {"column": column, "queries": queries_seen, "top": top_rows.to_dicts(), "tail": stats}


def summarize(path: str, queries: str | None = None, n: int = 5) -> dict[str, Any]:
    """A JSON-ready summary of a stage directory or Parquet file."""
    root = str(path) if storage.is_uri(path) else str(Path(path))
    files = _files(root)
    try:
        lf = scan(files)
        columns = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as err:
        raise WitError(f"cannot read {path} as Parquet: {err}") from err
    kind = _kind(columns)
    out: dict[str, Any] = {
        "path": root,
        "kind": kind,
        "files": len(files),
        "rows": lf.select(pl.len()).collect(engine="streaming").item(),
        "bytes_on_disk": _bytes_on_disk(root),
        "columns": columns,
    }
    text = next((c for c in ("caption", "text", "query") if c in columns), None)
    if text:
        out["text_chars"] = _describe(lf, pl.col(text).str.len_chars())
    if kind == "corpus":
        for c in ("width", "height", "original_width", "original_height"):
            out[c] = _describe(lf, pl.col(c))
        failures = storage.join(root, "failures")
        failure_files = storage.glob(failures, "*.parquet") if storage.is_dir(root) else []
        if failure_files:
            fl = scan(failure_files)
            reason = "reason" if "reason" in fl.collect_schema().names() else "status"
            by_reason = (
                fl.group_by(reason)
                .len("rows")
                .sort(["rows", reason], descending=[True, False])
                .collect(engine="streaming")
            )
            out["failures"] = int(by_reason["rows"].sum())
            out["failure_reasons"] = {r[reason]: r["rows"] for r in by_reason.to_dicts()}
        total = out["rows"] + out.get("failures", 0)
        out["success_rate"] = round(out["rows"] / total, 4) if total else None
    if kind == "failures":
        reason = "reason" if "reason" in columns else "status"
        by_reason = lf.group_by(reason).len("rows").sort("rows", descending=True).collect(engine="streaming")
        out["failure_reasons"] = {r[reason]: r["rows"] for r in by_reason.to_dicts()}
    per_query_col = (
        "claimed_by" if "claimed_by" in columns else "query_ids" if "query_ids" in columns else None
    )
    if per_query_col:
        out["per_query"] = _per_query(lf, per_query_col, _find_queries(root, queries))
    shown = [c for c in columns if c != "jpg"]
    samples = lf.select(shown).head(n).collect().to_dicts()
    if "jpg" in columns:
        sizes = (
            lf.select(pl.col("jpg").bin.size().alias("jpg_bytes")).head(n).collect()["jpg_bytes"].to_list()
        )
        for row, size in zip(samples, sizes):
            row["jpg_bytes"] = size
    out["samples"] = samples
    stats = storage.join(root, "stats.json") if storage.is_dir(root) else None
    if stats is not None and storage.exists(stats):
        out["stage_stats"] = {
            k: v for k, v in json.loads(storage.read_text(stats)).items() if k not in ("queries", "files")
        }
    return out


def format_summary(d: dict[str, Any]) -> str:
    """The summary for a human: one fact a line, the per-query table, then sample rows."""
    lines = [
        f"{d['path']}  ({d['kind']}, {d['files']} file(s), {d['bytes_on_disk']:,} bytes)",
        f"rows: {d['rows']:,}",
    ]
    if "success_rate" in d:
        lines.append(f"success rate: {d['success_rate']}  (failures: {d.get('failures', 0):,})")
    for reason, rows in d.get("failure_reasons", {}).items():
        lines.append(f"  {reason:<20} {rows:>10,}")
    for key in ("text_chars", "width", "height", "original_width", "original_height"):
        if key in d:
            s = d[key]
            lines.append(f"{key}: min {s['min']}  median {s['median']}  mean {s['mean']}  max {s['max']}")
    if "per_query" in d:
        pq_ = d["per_query"]
        tail = pq_["tail"]
        lines.append(f"pairs per query ({pq_['column']}), {pq_['queries']:,} queries:")
        for row in pq_["top"]:
            name = f"  {row.get('query') or ''}" if "query" in row else ""
            lines.append(f"  {row['query_id']:>8} {row['pairs']:>10,}{name}")
        lines.append(
            f"  tail: min {tail['min']}  median {tail['median']}  mean {tail['mean']}  max {tail['max']}"
            f"  queries with one pair {tail['with_one_pair']:,}"
        )
    if d.get("samples"):
        lines.append("samples:")
        for row in d["samples"]:
            lines.append("  " + json.dumps(row, ensure_ascii=False, default=str)[:300])
    return "\n".join(lines)
