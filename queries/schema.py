"""The `queries.parquet` schema, shared by the writer (queries.build) and readers (pipeline.match)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from queries.select import Query
from core import storage
from core.errors import WitError

SCHEMA = pa.schema(
    [
        ("query_id", pa.int32()),  # 0..n-1 in rank order (most frequent first)
        ("query", pa.string()),  # normalized text (queries.normalize.normalize)
        ("sources", pa.list_(pa.string())),  # sorted subset of word, bigram, title, wordnet
        ("count", pa.int64()),  # whole-word occurrences in the Wikipedia article text
        ("pmi", pa.float64()),  # null unless `bigram` is a source
    ]
)
# Types a reader accepts for each column; Polars and others write the large_* variants.
_ACCEPTED = {
    "query_id": (pa.int32(),),
    "query": (pa.string(), pa.large_string()),
    "sources": (pa.list_(pa.string()), pa.large_list(pa.string()), pa.list_(pa.large_string()),
                pa.large_list(pa.large_string())),
    "count": (pa.int64(),),
    "pmi": (pa.float64(),),
}


def to_table(queries: Sequence[Query]) -> pa.Table:
    """Ranked queries as a table; query_id is the rank."""
    return pa.table(
        {
            "query_id": pa.array(range(len(queries)), pa.int32()),
            "query": [q.query for q in queries],
            "sources": [list(q.sources) for q in queries],
            "count": [q.count for q in queries],
            "pmi": [q.pmi for q in queries],
        },
        schema=SCHEMA,
    )


def read_queries(path: str | os.PathLike) -> pa.Table:
    """Read and validate a queries.parquet; WitError saying what is wrong when it is not one."""
    path = str(path) if storage.is_uri(path) else Path(path)  # a local path or a cloud URI
    hint = "build it with `wit queries build` (or `wit queries build --demo`)"
    if not storage.is_file(path):
        raise WitError(f"queries file not found: {path}", hint=hint)
    try:
        with storage.open_input_file(path) as f:
            table = pq.read_table(f)
    except (pa.ArrowException, OSError) as err:
        raise WitError(f"{path}: not a readable Parquet file ({err})", hint=hint) from err
    problems = []
    for name, accepted in _ACCEPTED.items():
        if name not in table.column_names:
            problems.append(f"missing column {name!r}")
        elif table.schema.field(name).type not in accepted:
            problems.append(f"column {name!r} is {table.schema.field(name).type}, expected {accepted[0]}")
    if problems:
        raise WitError(f"{path}: not a queries file: " + "; ".join(problems), hint=hint)
    table = table.select(SCHEMA.names).cast(SCHEMA.with_metadata(table.schema.metadata))
    ids = table.column("query_id")
    if ids.null_count or not ids.equals(pa.chunked_array([pa.array(range(len(table)), pa.int32())])):
        raise WitError(f"{path}: query_id must be 0..{len(table) - 1} in row order", hint=hint)
    return table
