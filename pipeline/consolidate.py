"""consolidate: the download shards' staged files -> corpus parts of a target size, with checksums.

Download shards are sized for work (rows per Ray task); corpus parts are sized for readers (about
`DownloadConfig.part_target_bytes` each, 256 MB by default: few enough files for a listing to be
cheap, many enough for every training worker to read its own). Rows keep the order of the download
shards, which are fixed slices of selected/ in key order, so the corpus is the same row for row
whatever was interrupted and resumed on the way. The driver streams the staged files a row group at
a time (cut points from a cumulative sum of row sizes), so it holds one row group, never the corpus. Each part is written under a temporary name with
the stage's provenance in its key-value metadata, then renamed (at a cloud URI: written to its
final key, one object, no rename); the manifest lists parts, row counts, bytes and sha256.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from core import storage
from core.artifacts import METADATA_KEY

ROW_GROUP_ROWS = 64  # ~1 MB of 256 px JPEGs: a training step reads whole row groups (trainer/data.py read_groups)
_ROW_OVERHEAD = 64  # bytes per row besides its strings and image: ids, sizes, offsets


def row_bytes(table: pa.Table) -> pa.Array:
    """The bytes each row adds to a part (uncompressed; JPEG bytes do not compress further)."""
    total = pa.array([_ROW_OVERHEAD] * table.num_rows, pa.int64())
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_binary(column.type) or pa.types.is_string(column.type):
            total = pc.add(total, pc.fill_null(pc.binary_length(column), 0).cast(pa.int64()))
    return total


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with storage.open_input_stream(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _PartWriter:
    """Writes part-00000.parquet, part-00001.parquet, ... each closed once it reaches target_bytes."""

    def __init__(self, out_dir: str, schema: pa.Schema, record: dict, target_bytes: int, label: str):
        self.out_dir, self.target_bytes, self.label = out_dir, target_bytes, label
        meta = dict(schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(record, sort_keys=True, default=str).encode()
        self.schema = schema.with_metadata(meta)
        self.parts: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._output = ExitStack()        # the open part's storage.atomic_output: closing it publishes the part
        self._rows = self._bytes = 0
        storage.makedirs(out_dir)

    def write(self, table: pa.Table) -> None:
        ends = np.cumsum(row_bytes(table).to_numpy())  # bytes of rows 0..i, per i
        start, before = 0, 0  # before: bytes of the rows ahead of `start`
        while start < table.num_rows:
            # Take rows until the open part reaches its target (at least one row per part).
            room = self.target_bytes - self._bytes
            end = min(int(np.searchsorted(ends[start:] - before, room, side="left")) + 1 + start, table.num_rows)
            self._open().write_table(table.slice(start, end - start), row_group_size=ROW_GROUP_ROWS)
            self._rows += end - start
            self._bytes += int(ends[end - 1]) - before
            start, before = end, int(ends[end - 1])
            if self._bytes >= self.target_bytes:
                self._close()

    def finish(self) -> list[dict[str, Any]]:
        if self._writer is not None or not self.parts:  # an empty corpus still gets one (empty) part
            self._open()
            self._close()
        return self.parts

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            path = storage.join(self.out_dir, f"part-{len(self.parts):05d}.parquet")
            fs, target = self._output.enter_context(storage.atomic_output(path))
            self._writer = pq.ParquetWriter(target, self.schema, filesystem=fs)
        return self._writer

    def _close(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._output.close()              # locally: the temporary file renamed into place
        name = f"part-{len(self.parts):05d}.parquet"
        path = storage.join(self.out_dir, name)
        self.parts.append(
            {
                "file": f"{storage.name(self.out_dir)}/{name}" if self.label == "failures" else name,
                "rows": self._rows,
                "bytes": storage.size(path),
                "sha256": sha256_file(path),
            }
        )
        self._writer, self._rows, self._bytes = None, 0, 0


def _staged(files: list[str], desc: str) -> Iterator[pa.Table]:
    """The staged files' rows, one row group at a time: the driver holds one row group, not a shard."""
    for path in tqdm(files, desc=desc, unit="shard", disable=len(files) < 2):
        with storage.open_input_file(path) as f:
            parquet = pq.ParquetFile(f)
            for group in range(parquet.metadata.num_row_groups):
                yield parquet.read_row_group(group).replace_schema_metadata(None)


def _remove_beyond(out_dir: str, count: int) -> None:
    """Parts left by an earlier consolidation that made more of them, and ones a kill left half-written."""
    for path in storage.glob(out_dir, "part-*.parquet.tmp-*"):
        storage.remove(path)
    for path in storage.glob(out_dir, "part-*.parquet"):
        number = storage.name(path).removesuffix(".parquet").removeprefix("part-")
        if number.isdigit() and int(number) >= count:
            storage.remove(path)


def consolidate(
    root: str,
    images: list[str],
    failures: list[str],
    schemas: tuple[pa.Schema, pa.Schema],
    record: dict,
    target_bytes: int,
) -> tuple[list[dict], list[dict]]:
    """Staged images/failures files (in shard order) -> root/part-*.parquet and root/failures/part-*."""
    corpus_schema, failure_schema = schemas
    parts = _PartWriter(root, corpus_schema, record, target_bytes, "corpus")
    for table in _staged(images, "consolidate corpus"):
        parts.write(table.cast(corpus_schema))
    failures_dir = storage.join(root, "failures")
    failure_parts = _PartWriter(failures_dir, failure_schema, record, target_bytes, "failures")
    for table in _staged(failures, "consolidate failures"):
        failure_parts.write(table.cast(failure_schema))
    done, failed = parts.finish(), failure_parts.finish()
    _remove_beyond(root, len(done))
    _remove_beyond(storage.join(root, "failures"), len(failed))
    return done, failed
