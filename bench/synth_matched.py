"""A synthetic matched/ directory of any size, for benchmarks of balance (and of the stages after it).

    write_synth_matched(out_dir, rows, queries=500_000, zipf_a=1.0, max_ids=3, files=16, seed=0) -> dict

Rows look like match's output: `key` (32 hex digits, unique), `url`, `text`, `query_ids` (1..max_ids
distinct ids per row, drawn from a Zipf law of exponent zipf_a over `queries` ids, as query
frequencies are), split by key range into `files` sorted parts, with _SUCCESS.json. Everything is
vectorized (4M rows in seconds) and fixed by `seed`. Returns what it wrote (rows, pairs, per-query
counts summary). `python bench/synth_matched.py OUT --rows N` writes one from the shell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.artifacts import mark_done, write_parquet  # noqa: E402

HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_keys(rng: np.random.Generator, rows: int) -> pa.Array:
    """`rows` random 32-hex-digit keys (128 random bits: unique in practice), sorted."""
    raw = rng.integers(0, 256, size=(rows, 16), dtype=np.uint8)
    chars = np.empty((rows, 32), np.uint8)
    chars[:, 0::2], chars[:, 1::2] = HEX[raw >> 4], HEX[raw & 15]
    offsets = np.arange(0, 32 * rows + 1, 32, dtype=np.int32)
    keys = pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())]
    )
    return keys.take(pc.sort_indices(keys))


def zipf_query_ids(
    rng: np.random.Generator, rows: int, queries: int, zipf_a: float, max_ids: int
) -> pa.Array:
    """list<int32> of 1..max_ids distinct query ids per row; id k has weight (k+1)**-zipf_a."""
    weights = np.cumsum(np.arange(1, queries + 1, dtype=np.float64) ** -zipf_a)
    drawn = np.searchsorted(weights, rng.random((rows, max_ids)) * weights[-1]).astype(np.int64)
    wanted = rng.integers(1, max_ids + 1, size=rows)
    drawn[np.arange(max_ids)[None, :] >= wanted[:, None]] = queries  # unused slots: a sentinel
    drawn.sort(axis=1)
    keep = drawn < queries
    keep[:, 1:] &= drawn[:, 1:] != drawn[:, :-1]  # a query counted once per pair
    offsets = np.zeros(rows + 1, np.int32)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(drawn[keep].astype(np.int32)), type=pa.list_(pa.int32())
    )


def write_synth_matched(
    out_dir: str | Path,
    rows: int,
    queries: int = 500_000,
    zipf_a: float = 1.0,
    max_ids: int = 3,
    files: int = 16,
    seed: int = 0,
) -> dict:
    rng = np.random.default_rng(seed)
    keys = hex_keys(rng, rows)
    query_ids = zipf_query_ids(rng, rows, queries, zipf_a, max_ids)
    short = pc.utf8_slice_codeunits(keys, 0, 12)
    table = pa.table(
        {
            "key": keys,
            "url": pc.binary_join_element_wise("https://upload.example.org/", short, ".jpg", ""),
            "text": pc.binary_join_element_wise("a synthetic caption about item ", short, ""),
            "query_ids": query_ids,
        }
    )
    out = Path(out_dir)
    record = {"stage": "synth_matched", "rows": rows, "queries": queries, "zipf_a": zipf_a, "seed": seed}
    for i, start in enumerate(range(0, rows, -(-rows // files))):
        write_parquet(table.slice(start, -(-rows // files)), out / f"part-{i:05d}.parquet", record)
    ids, counts = np.unique(pc.list_flatten(query_ids).to_numpy(), return_counts=True)
    summary = {
        **record,
        "pairs": int(counts.sum()),
        "queries_matched": len(ids),
        "max_count": int(counts.max()),
    }
    mark_done(out, {**record, "stats": summary})
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--queries", type=int, default=500_000)
    p.add_argument("--zipf-a", type=float, default=1.0)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(write_synth_matched(a.out, a.rows, a.queries, a.zipf_a, files=a.files, seed=a.seed)))


if __name__ == "__main__":
    main()
