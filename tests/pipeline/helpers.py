"""Small hand-made inputs for the pipeline tests: queries.parquet in the contract's schema, and pools."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from core.loopback import Response


# `wit pipeline` flags for tiny images, a short timeout and few threads: the loopback server answers at
# once; the address guard refuses loopback unless it is opened.
SMALL_IMAGES = ("--image-size", "32", "--timeout", "2", "--threads", "4", "--allow-network", "127.0.0.0/8")


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


JPEG = image_bytes(120, 90)


def cat_web(path: str) -> Response:
    """A loopback web of one 120x90 JPEG at every path, and a 404 under /gone."""
    return Response(404) if path.startswith("/gone") else Response(200, JPEG, "image/jpeg")


def cat_pool(directory: Path, base_url: str) -> tuple[str, str]:
    """(queries.parquet, pool.parquet) for `cat_web`: 12 cats, a 404, a dog with a red car, and a
    mailto: URL; queries cat, dog and red car."""
    queries = write_queries(directory / "queries.parquet", ["cat", "dog", "red car"])
    urls = [f"{base_url}/cat{i}.jpg" for i in range(12)] + [f"{base_url}/gone.jpg", f"{base_url}/dog.jpg",
                                                           "mailto:x@example.org"]
    texts = [f"a cat number {i}" for i in range(12)] + ["a dog and a red car", "dog", "cat"]
    return queries, write_pool(directory / "pool.parquet", urls, texts)
