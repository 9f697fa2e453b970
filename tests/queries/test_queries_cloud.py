"""`wit queries build` with its dumps, multistream index, WordNet and output in a bucket (a real S3 API on
loopback, moto's server): Ray tasks read byte ranges of the dump from the bucket, and the query list
equals the one built from the same files on a local disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from queries.build import build
from queries.schema import read_queries
from queries.dump import index_for, plan_units
from queries.synth import generate
from core import storage
from core.artifacts import read_provenance
from wit.cli import main


@pytest.fixture(scope="module")
def ray_after_s3(s3, ray_local):
    """Ray started after the S3 fixture set the environment, so its tasks reach the same endpoint."""
    return s3


@pytest.mark.slow
def test_build_reads_and_writes_a_bucket(ray_after_s3, demo, excerpt, tmp_path, capsys):
    s3 = ray_after_s3
    local_dumps = generate(tmp_path / "synth", excerpt, total_mb=1.5, files=1, pages_per_stream=10)
    local_files = [*local_dumps, *(str(i) for d in local_dumps if (i := index_for(d)) is not None)]
    for path in local_files:
        storage.write_bytes(f"{s3}/dumps/{Path(path).name}", Path(path).read_bytes())
    storage.copy_tree(demo.wordnet_dir, f"{s3}/wordnet")
    remote_dumps = tuple(f"{s3}/dumps/{Path(d).name}" for d in local_dumps)
    remote = dataclasses.replace(
        demo, dumps=remote_dumps, wordnet_dir=f"{s3}/wordnet", stream_range_bytes=30_000
    )
    local = dataclasses.replace(remote, dumps=tuple(local_dumps), wordnet_dir=demo.wordnet_dir)

    units = plan_units(remote.dumps, remote.stream_range_bytes)  # the index is found beside the dump
    assert sum(u.is_range for u in units) >= 3 and all(storage.is_uri(u.path) for u in units)
    out = f"{s3}/queries/queries.parquet"
    assert build(remote, out, use_ray=True, progress=False) == out
    expected = build(local, tmp_path / "queries.parquet", use_ray=False, progress=False)
    assert (
        read_queries(out)
        .replace_schema_metadata(None)
        .equals(read_queries(expected).replace_schema_metadata(None))
    )
    assert [f["path"] for f in read_provenance(out)["inputs"]][0] == remote_dumps[0]

    # The CLI: the same query list (however the dump is split), and a rerun reuses it (no new upload).
    argv = [
        "queries",
        "build",
        "--demo",
        "--no-ray",
        "--wordnet",
        f"{s3}/wordnet",
        "--out",
        f"{s3}/cli/q.parquet",
    ]
    for dump in remote_dumps:
        argv += ["--dump", dump]
    assert main(argv) == 0
    assert f"queries -> {s3}/cli/q.parquet" in capsys.readouterr().out
    assert (
        read_queries(f"{s3}/cli/q.parquet")
        .replace_schema_metadata(None)
        .equals(read_queries(expected).replace_schema_metadata(None))
    )
    before = storage.stat(f"{s3}/cli/q.parquet")
    assert main(argv) == 0 and storage.stat(f"{s3}/cli/q.parquet") == before
