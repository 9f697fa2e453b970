"""Small hand-made inputs for the pipeline tests: queries.parquet in the contract's schema, and pools."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def write_queries(path: Path, queries: list[str]) -> str:
    """queries.parquet with the schema of CONTRACTS.md; query_id = position."""
    n = len(queries)
    table = pa.table(
        {
            "query_id": pa.array(range(n), pa.int32()),
            "query": pa.array(queries, pa.string()),
            "sources": pa.array([["word"]] * n, pa.list_(pa.string())),
            "count": pa.array([100] * n, pa.int64()),
            "pmi": pa.array([None] * n, pa.float64()),
        }
    )
    pq.write_table(table, path)
    return str(path)


def write_pool(path: Path, urls: list, texts: list, text_col: str = "caption", **extra: list) -> str:
    pq.write_table(
        pa.table({"url": pa.array(urls, pa.string()), text_col: pa.array(texts, pa.string()), **extra}), path
    )
    return str(path)


def image_bytes(width: int, height: int, fmt: str = "JPEG", color: tuple = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, fmt)
    return buf.getvalue()
