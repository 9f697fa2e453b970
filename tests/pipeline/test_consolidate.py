"""consolidate: staged shard files (several row groups each) -> parts cut at the target size, rows in
shard order, each part's checksum and row count right."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.consolidate import consolidate, row_bytes
from pipeline.download_shard import CORPUS_SCHEMA, FAILURE_SCHEMA

TARGET = 3_000


def _images(shard: int, rows: int) -> pa.Table:
    keys = [f"{shard:02d}{i:04d}" for i in range(rows)]
    return pa.table(
        {
            "key": keys,
            "url": [f"http://127.0.0.1/{k}.jpg" for k in keys],
            "caption": [f"caption {k}" for k in keys],
            "query_ids": pa.array([[i % 5] for i in range(rows)], pa.list_(pa.int32())),
            "jpg": [bytes([i % 256]) * (50 + 37 * (i % 11)) for i in range(rows)],
            **{c: pa.array([i % 9 + 1 for i in range(rows)], pa.int32()) for c in ("width", "height", "original_width", "original_height")},
            "sha256": [hashlib.sha256(k.encode()).hexdigest() for k in keys],
        },
        schema=CORPUS_SCHEMA,
    )


def test_parts_are_cut_at_the_target_from_row_group_streams(tmp_path):
    staged, failures, tables = [], [], []
    for shard, rows in enumerate([23, 0, 41, 7]):
        table = _images(shard, rows)
        tables.append(table)
        pq.write_table(table, tmp_path / f"{shard}.images.parquet", row_group_size=5)
        pq.write_table(FAILURE_SCHEMA.empty_table(), tmp_path / f"{shard}.failures.parquet")
        staged.append(str(tmp_path / f"{shard}.images.parquet"))
        failures.append(str(tmp_path / f"{shard}.failures.parquet"))
    out = tmp_path / "corpus"
    parts, failure_parts = consolidate(str(out), staged, failures, (CORPUS_SCHEMA, FAILURE_SCHEMA), {"stage": "t"}, TARGET)

    expected = pa.concat_tables(tables)
    read = [pq.read_table(out / p["file"]) for p in parts]
    assert pa.concat_tables(read).select(["key", "jpg"]).equals(expected.select(["key", "jpg"]))
    assert len(parts) > 3 and [len(failure_parts), failure_parts[0]["rows"]] == [1, 0]
    for part, table in zip(parts, read):
        assert part["rows"] == table.num_rows
        assert part["sha256"] == hashlib.sha256((out / part["file"]).read_bytes()).hexdigest()
    for table in read[:-1]:  # every part but the last reaches the target, and its last row is what got it there
        sizes = row_bytes(table).to_pylist()
        assert sum(sizes) >= TARGET > sum(sizes[:-1])
