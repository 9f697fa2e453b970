"""Training ingest: bytes read from storage per trained sample, the whole-part reader vs the row-group reader.

A corpus as `wit pipeline download` writes it (pipeline/consolidate.py's part writer, its row groups,
staged shards of 10,000 rows), with random, incompressible "JPEG" bytes of 10-20 kB per row, in parts
of >= 200 MB. Both readers then play the data plan of a paper-size run (32 workers x 1,024 rows: a
global batch spans several parts) in this one process, every file opened through core.storage wrapped
in a counter of the bytes read:

- whole-part (the reference: trainer/data.py before the change, kept here verbatim in spirit): each
  row's part read whole (key, jpg, caption) and kept in a 2-part LRU cache per worker process; each
  worker's steps run in one process, in order (the most favourable case for its cache);
- row groups (trainer.data.step_rows + read_groups, what step_batch runs): the row groups a step's
  rows are in, no cache.

Decoding is left out (it reads nothing). Figures: bytes read per trained sample, as a multiple of the
corpus's stored bytes per row (files / rows: footers, keys and captions included).

    python bench/ingest.py                              # 5 parts x 210 MB, 32 x 1024, one epoch
    python bench/ingest.py --parts 3 --part-mb 64 --world 8 --batch 256    # smaller
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.consolidate import ROW_GROUP_ROWS, _PartWriter   # noqa: E402
from trainer.data import SHUFFLE_WINDOW, corpus_parts, read_groups, step_rows  # noqa: E402
from core import storage                                         # noqa: E402

SCHEMA = pa.schema([("key", pa.string()), ("url", pa.string()), ("caption", pa.string()),
                    ("jpg", pa.binary())])
STAGED_ROWS = 10_000      # DownloadConfig.rows_per_input_shard: what consolidation receives at a time


# ---------------------------------------------------------------------------------------------
# Counting what is read


class _Counted(io.RawIOBase):
    """A file that adds the length of every read to a shared counter."""

    def __init__(self, f, counter: collections.Counter):
        self._f, self._counter = f, counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._counter["bytes"] += len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def count_reads():
    """Counts the bytes and opens of every file read through core.storage.open_input_file (Parquet
    footers and row groups, core.storage.read_table) while the block runs."""
    real, counter = storage.open_input_file, collections.Counter()

    def open_counted(path):
        counter["opens"] += 1
        return pa.PythonFile(_Counted(real(path), counter), mode="r")

    storage.open_input_file = open_counted
    try:
        yield counter
    finally:
        storage.open_input_file = real


# ---------------------------------------------------------------------------------------------
# A paper-like corpus


def write_corpus(root: Path, parts: int, part_mb: float, row_kb: tuple[int, int], seed: int = 0) -> Path:
    """`parts` parts of about part_mb MB, cut and row-grouped by the corpus writer itself."""
    rng = np.random.default_rng(seed)
    target = int(part_mb * 2**20)
    writer = _PartWriter(str(root), SCHEMA, {"stage": "bench/ingest"}, target, "corpus")
    mean = sum(row_kb) / 2 * 1024
    rows = int(0.99 * parts * target / (mean + 150))     # row_bytes: JPEG, 64, key, url, caption
    for start in range(0, rows, STAGED_ROWS):
        n = min(STAGED_ROWS, rows - start)
        sizes = rng.integers(row_kb[0] * 1024, row_kb[1] * 1024, n)
        blob = rng.bytes(int(sizes.sum()))
        ends = np.cumsum(sizes)
        jpgs = [blob[e - s:e] for s, e in zip(sizes.tolist(), ends.tolist())]
        keys = [f"{start + i:012d}" for i in range(n)]
        table = {"key": keys, "url": [f"https://example.org/{k}.jpg" for k in keys],
                 "caption": [f"a photo of thing number {k}" for k in keys], "jpg": jpgs}
        writer.write(pa.table(table, schema=SCHEMA))
    writer.finish()
    return root


# ---------------------------------------------------------------------------------------------
# The two readers


@functools.lru_cache(maxsize=2)
def _old_order(rows: tuple[int, ...], seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The previous epoch order: parts in a seeded order, each part's rows permuted."""
    rng = np.random.default_rng([seed, epoch])
    shards, positions = [], []
    for s in rng.permutation(len(rows)):
        shards.append(np.full(rows[s], s, np.int64))
        positions.append(rng.permutation(rows[s]))
    return np.concatenate(shards), np.concatenate(positions)


def whole_part_rank(paths: list[str], rows: tuple[int, ...], steps: int, batch: int, world: int, rank: int,
                    seed: int = 0) -> int:
    """One worker's steps with the previous reader; returns the rows it handed out."""
    cache: collections.OrderedDict[str, dict] = collections.OrderedDict()    # lru_cache(maxsize=2)
    steps_per_epoch = sum(rows) // (batch * world)
    handed = 0
    for step in range(steps):
        epoch, j = divmod(step, steps_per_epoch)
        shard_of, row_of = _old_order(rows, seed, epoch)
        first = j * batch * world + rank * batch
        for position in range(first, first + batch):
            path = paths[int(shard_of[position])]
            if path not in cache:
                cache[path] = storage.read_table(path, columns=["key", "jpg", "caption"]).to_pydict()
                if len(cache) > 2:
                    cache.popitem(last=False)
            cache.move_to_end(path)
            handed += cache[path]["jpg"][int(row_of[position])] is not None
    return handed


def row_group_rank(parts, steps: int, batch: int, world: int, rank: int, seed: int = 0) -> int:
    handed = 0
    for step in range(steps):
        _, _, groups, rows = step_rows(step, shards=parts, batch_size=batch, world=world, rank=rank,
                                       seed=seed)
        tables = read_groups(parts, groups)
        handed += sum(tables[g]["jpg"][r] is not None for g, r in zip(groups.tolist(), rows.tolist()))
    return handed


def measure(name: str, run_rank, world: int, ranks: int) -> dict:
    with count_reads() as counted:
        tick = time.perf_counter()
        samples = sum(run_rank(rank) for rank in range(ranks))
        seconds = time.perf_counter() - tick
    print(f"{name}: {counted['bytes'] / 2**30:.2f} GiB for {samples} samples in {seconds:.1f} s", flush=True)
    return {"bytes_read": counted["bytes"], "files_opened": counted["opens"], "samples": samples,
            "bytes_read_per_sample": counted["bytes"] / samples, "seconds": round(seconds, 2),
            "ranks_played": ranks, "world": world}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=5)
    parser.add_argument("--part-mb", type=float, default=210)
    parser.add_argument("--row-kb", type=int, nargs=2, default=(10, 20))
    parser.add_argument("--world", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024, help="rows per worker and step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--ranks", type=int, default=0, help="workers to play (0: all); each is independent")
    parser.add_argument("--dir", default=None, help="where to write the corpus (default: a temporary dir)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from bench.common import write_result

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tick = time.perf_counter()
        corpus = write_corpus(Path(tmp) / "corpus", args.parts, args.part_mb, tuple(args.row_kb))
        written_s = time.perf_counter() - tick
        with count_reads() as plan_read:
            parts = corpus_parts(corpus)
        rows, stored = sum(p.rows for p in parts), sum(p.bytes for p in parts)
        steps = args.epochs * (rows // (args.batch * args.world))
        ranks = args.ranks or args.world
        groups = [n for p in parts for n in p.group_rows]
        print(f"{len(parts)} parts, {rows} rows, {stored / 2**20:.0f} MiB, {len(groups)} row groups; "
              f"{steps} steps x {ranks} ranks", flush=True)
        paths, part_rows = [p.path for p in parts], tuple(p.rows for p in parts)
        old = measure("whole-part", lambda r: whole_part_rank(paths, part_rows, steps, args.batch, args.world,
                                                              r), args.world, ranks)
        new = measure("row groups", lambda r: row_group_rank(parts, steps, args.batch, args.world, r),
                      args.world, ranks)
    stored_per_row = stored / rows
    for figures in (old, new):
        figures["x_stored_bytes_per_row"] = round(figures["bytes_read_per_sample"] / stored_per_row, 4)
    write_result("ingest", {
        "corpus": {"parts": len(parts), "rows": rows, "stored_bytes": stored,
                   "part_mb": [round(p.bytes / 2**20, 1) for p in parts], "row_groups": len(groups),
                   "row_group_rows": ROW_GROUP_ROWS,
                   "row_group_rows_median": int(np.median(groups)), "row_kb": list(args.row_kb),
                   "stored_bytes_per_row": round(stored_per_row, 1), "written_s": round(written_s, 1)},
        "plan": {"world": args.world, "batch_per_worker": args.batch, "global_batch": args.batch * args.world,
                 "steps": steps, "epochs": args.epochs, "shuffle_window_groups": SHUFFLE_WINDOW,
                 "footer_bytes_read_by_driver": plan_read["bytes"]},
        "whole_part": old, "row_groups": new,
        "ratio_whole_part_over_row_groups": round(old["bytes_read"] / new["bytes_read"], 2),
        "goal": "row_groups.x_stored_bytes_per_row <= 1.25",
        "met": new["x_stored_bytes_per_row"] <= 1.25,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "versions": {"pyarrow": pa.__version__, "numpy": np.__version__},
    }, out_dir=args.out)


if __name__ == "__main__":
    main()
