"""Deterministic output files from Ray Data blocks, without a shuffle.

Ray Data blocks come in whatever layout the reader and the autoscaler chose, so files written per
block would differ from run to run. Instead, every block stages its rows into key ranges
(`_staging/b=00003/<content-hash>.parquet`), and one task per range merges, sorts by key and writes
`part-00003.parquet`. Keys are hex hashes, so the ranges are balanced, and reading the parts in name
order reads the whole stage sorted by key: the same output whatever the block layout. A stage picks
the number of ranges from the size of its input (`num_key_ranges`), so a merge task holds about a
fixed number of bytes however large the run. The cost: every batch writes one staged file per range
it has rows in, so with thousands of ranges the staged files get small (batches would need to grow
with the range count, or stage through a two-level fan-out).

Staged files are named by a hash of their content, so a Ray task that is retried overwrites its own
earlier files instead of adding rows. `out_dir` may be a local path or a cloud URI (core.storage).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from core import storage
from core.artifacts import write_parquet

STAGING = "_staging"
MAX_RANGES = 1 << 16  # a range is picked by the first 4 hex digits of the key
_HEX = np.full(256, -1, np.int64)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def uncompressed_bytes(path: str, columns: set[str] | None = None) -> int:
    """Uncompressed bytes of a Parquet file's top-level columns (all when None), from its footer alone."""
    with storage.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        chunks = (group.column(c) for c in range(group.num_columns))
        total += sum(c.total_uncompressed_size for c in chunks
                     if columns is None or c.path_in_schema.split(".")[0] in columns)
    return total


def num_key_ranges(input_bytes: int, target_bytes: int) -> int:
    """Enough ranges that each holds about `target_bytes` of the input (at least 1)."""
    return int(min(MAX_RANGES, max(1, -(-input_bytes // target_bytes))))


def key_range(keys: pa.Array | pa.ChunkedArray, num_ranges: int) -> np.ndarray:
    """The range (0..num_ranges-1) of each hex key, from its first 4 hex digits."""
    prefix = pc.utf8_slice_codeunits(keys, 0, 4)
    prefix = prefix.combine_chunks() if isinstance(prefix, pa.ChunkedArray) else prefix
    if len(prefix) == 0:
        return np.zeros(0, np.int64)
    _, offsets, data = prefix.buffers()
    offsets = np.frombuffer(offsets, np.int32)[prefix.offset : prefix.offset + len(prefix) + 1]
    if prefix.null_count or (np.diff(offsets) != 4).any():
        raise ValueError("keys must start with 4 hex digits")
    digits = _HEX[np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]].reshape(-1, 4)
    if (digits < 0).any():
        raise ValueError("keys must start with 4 hex digits")
    value = (digits[:, 0] << 12) | (digits[:, 1] << 8) | (digits[:, 2] << 4) | digits[:, 3]
    return (value * num_ranges) >> 16


def stage_rows(table: pa.Table, out_dir: str, num_ranges: int) -> None:
    """Write `table`'s rows into the staging files of their key ranges."""
    if table.num_rows == 0:
        return
    ranges = key_range(table["key"], num_ranges)
    order = np.argsort(ranges, kind="stable")  # one take, then a slice per range present
    table, ranges = table.take(pa.array(order)), ranges[order]
    starts = np.flatnonzero(np.diff(ranges, prepend=-1))
    for r, start, end in zip(ranges[starts], starts, [*starts[1:], len(ranges)]):
        part = table.slice(start, end - start)
        path = storage.join(out_dir, STAGING, f"b={r:05d}", f"{_digest(part['key'])}.parquet")
        with storage.atomic_output(path) as (fs, target):
            pq.write_table(part, target, filesystem=fs)


def _digest(keys: pa.ChunkedArray) -> str:
    """A name from the keys' content: a retried task writes the same names, so it replaces, not adds."""
    keys = keys.combine_chunks()
    _, offsets, data = keys.buffers()
    offsets = np.frombuffer(offsets, np.int32)[keys.offset : keys.offset + len(keys) + 1]
    digest = hashlib.sha1((offsets - offsets[0]).tobytes())
    digest.update(memoryview(data)[offsets[0] : offsets[-1]])
    return digest.hexdigest()[:20]


def _sort_and_dedupe(table: pa.Table, dedupe: bool) -> pa.Table:
    # Sort on every column that has an order (not lists), so which duplicate survives is fixed too.
    sortable = [n for n, t in zip(table.column_names, table.schema.types) if not pa.types.is_list(t)]
    order = ["key"] + [n for n in sortable if n != "key"]
    table = table.sort_by([(n, "ascending") for n in order])
    if not dedupe or table.num_rows < 2:
        return table
    keys = table["key"].combine_chunks()
    first = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), first.fill_null(True)]))


@ray.remote
def _merge_range(files: list[str], out_path: str, record: dict[str, Any], dedupe: bool) -> dict[str, Any]:
    table = pa.concat_tables([storage.read_table(f) for f in files], promote_options="permissive")
    table = _sort_and_dedupe(table, dedupe)
    write_parquet(table, out_path, record)
    return {"file": storage.name(out_path), "rows": table.num_rows, "bytes": storage.size(out_path)}


def merge_staged(out_dir: str, record: dict[str, Any], dedupe: bool) -> list[dict[str, Any]]:
    """Merge every staged key range into `out_dir/part-NNNNN.parquet`; returns the parts, in key order."""
    staging = storage.join(out_dir, STAGING)
    refs = []
    for r in storage.glob(staging, "b=*", dirs=True):
        files = storage.glob(r, "*.parquet")
        out_path = storage.join(out_dir, f"part-{int(storage.name(r)[2:]):05d}.parquet")
        refs.append(_merge_range.remote(files, out_path, record, dedupe))
    parts = ray.get(refs)
    storage.remove_tree(staging)
    return parts


def clear_outputs(out_dir: str) -> None:
    """Remove what an earlier (finished, interrupted or differently configured) run of a stage left."""
    for pattern in ("part-*.parquet", "*.tmp-*", "stats.json", "_SUCCESS.json"):
        for path in storage.glob(out_dir, pattern):
            storage.remove(path)
    storage.remove_tree(storage.join(out_dir, STAGING))


def input_fingerprint(paths: list[str]) -> list[dict[str, Any]]:
    """What a stage read, for deciding whether its finished output still answers the same question."""
    found = []
    for path in paths:
        size, mtime_ns = storage.stat(path)
        found.append({"path": storage.display(path), "bytes": size, "mtime_ns": mtime_ns})
    return found
