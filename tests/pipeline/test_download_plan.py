"""Download planning holds per-shard state only: the driver reads Parquet footers, never a row; which
staged shards still match selected/ is decided by tasks (each shard's digest of its own rows), and
the failure examples come from one task per failure part."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import DownloadConfig
from pipeline.download import (
    _failure_examples,
    part_failure_examples,
    plan_download,
    read_slice,
    run_shards,
)
from tests.pipeline.helpers import image_bytes
from tests.pipeline.test_download import make_selected
from core import storage
from core.loopback import LoopbackServer, Response

ROWS, ROWS_PER_SHARD = 12, 4


def test_read_slice_reads_the_rows_of_a_slice_across_row_groups(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"key": [f"{i:04x}" for i in range(50)], "n": list(range(50))})
    pq.write_table(table, path, row_group_size=7)
    for start, length in [(0, 50), (0, 7), (3, 4), (5, 10), (13, 22), (49, 1), (20, 0)]:
        got = read_slice(str(path), start, length, ["key", "n"])
        assert got.to_pydict() == table.slice(start, length).to_pydict(), (start, length)


def _reference_examples(tables: list[pa.Table], per_reason: int) -> dict[str, list[str]]:
    """The first distinct messages per reason, by a plain loop over every row."""
    examples: dict[str, list[str]] = {}
    for table in tables:
        for reason, message in zip(table["reason"].to_pylist(), table["error_message"].to_pylist()):
            seen = examples.setdefault(reason, [])
            if len(seen) < per_reason and message not in seen:
                seen.append(message)
    return dict(sorted(examples.items()))


def test_failure_examples_are_the_first_distinct_messages_per_reason(ray_local, tmp_path):
    reasons = ["http_404", "timeout", "http_404", "other", "timeout", "http_404"]
    tables = []
    for part in range(2):
        n = 40
        table = pa.table(
            {
                "reason": [reasons[(i * 7 + part) % len(reasons)] for i in range(n)],
                "error_message": [f"message {(i * 5 + part) % 9}" for i in range(n)],
            }
        )
        pq.write_table(table, tmp_path / f"part-{part:05d}.parquet", row_group_size=6)
        tables.append(table)
    expected = _reference_examples(tables, 3)
    assert part_failure_examples(str(tmp_path / "part-00000.parquet"), 3) == _reference_examples(tables[:1], 3)
    parts = [{"file": f"part-{p:05d}.parquet"} for p in range(2)]
    assert _failure_examples(str(tmp_path), parts, 3) == expected
    assert _failure_examples(str(tmp_path), parts, 1) == _reference_examples(tables, 1)


def _image(path: str) -> Response:
    return Response(200, image_bytes(40, 30), "image/jpeg")


@pytest.mark.slow
def test_plan_finds_finished_shards_without_reading_rows_on_the_driver(ray_local, tmp_path, monkeypatch):
    cfg = DownloadConfig(rows_per_input_shard=ROWS_PER_SHARD, thread_count=2, image_size=16, timeout_s=5)
    selected, corpus = tmp_path / "selected", str(tmp_path / "corpus")
    with LoopbackServer(_image) as server:
        make_selected(selected, server.url, [f"/{i}.jpg" for i in range(ROWS)])
        parts = [str(selected / "part-00000.parquet")]
        first = plan_download(parts, corpus, cfg)
        assert (len(first.shards), first.finished) == (ROWS // ROWS_PER_SHARD, {})
        run_shards(first, corpus, cfg)  # stages every shard and writes its marker (no consolidation)

    with monkeypatch.context() as m:  # reading rows in this (the driver's) process fails; workers are unaffected
        for target, name in ((storage, "read_table"), (pq.ParquetFile, "read_row_groups"),
                             (pq.ParquetFile, "read"), (pq.ParquetFile, "iter_batches")):
            m.setattr(target, name, _refuse)
        again = plan_download(parts, corpus, cfg)
    assert sorted(again.finished) == [0, 1, 2]

    # Same keys and row count, one row's query ids changed: only that row's shard is redone.
    table = pq.read_table(parts[0])
    ids = table["query_ids"].to_pylist()
    ids[5] = [2, 7]
    column = table.schema.get_field_index("query_ids")
    pq.write_table(table.set_column(column, "query_ids", pa.array(ids, pa.list_(pa.int32()))), parts[0])
    assert sorted(plan_download(parts, corpus, cfg).finished) == [0, 2]
    # Another config: no shard is reused.
    assert plan_download(parts, corpus, DownloadConfig(rows_per_input_shard=ROWS_PER_SHARD)).finished == {}


def _refuse(*args, **kwargs):
    raise AssertionError("the driver read rows of selected/")
