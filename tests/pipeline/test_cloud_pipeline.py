"""`wit pipeline match|balance|download` and `wit inspect` with inputs and outputs in a bucket: a real S3
API on loopback (moto's server), images from a loopback web server. The bucket run must produce what a
local run produces, leave no temporary objects, and resume from the bucket alone."""

from __future__ import annotations

import json

import pytest

from pipeline.balance import balance
from pipeline.config import BalanceConfig, MatchConfig
from pipeline.match import match
from tests.pipeline.helpers import SMALL_IMAGES, cat_pool, cat_web, write_pool, write_queries
from core import storage
from wit.cli import main
from core.loopback import LoopbackServer



@pytest.fixture(scope="module")
def ray_after_s3(s3, ray_local):
    """Ray started after the S3 fixture set the environment, so its workers reach the same endpoint."""
    return s3


def _upload(local: str, uri: str) -> str:
    storage.write_bytes(uri, open(local, "rb").read())
    return uri


def _tables(stage_dir: str) -> list[dict]:
    return [
        storage.read_table(p).replace_schema_metadata(None).to_pydict()
        for p in storage.glob(stage_dir, "part-*.parquet")
    ]


@pytest.mark.slow
def test_pipeline_reads_and_writes_a_bucket(ray_after_s3, tmp_path, capsys):
    s3 = ray_after_s3
    root = f"{s3}/pipeline"
    with LoopbackServer(cat_web) as server:
        queries, pool = cat_pool(tmp_path, server.url)
        q_uri = _upload(queries, f"{root}/queries.parquet")
        _upload(pool, f"{root}/pool/part-0.parquet")
        work = f"{root}/work"

        assert (
            main(["pipeline", "match", f"{root}/pool", "--queries", q_uri, "--out", f"{work}/matched"]) == 0
        )
        assert (
            main(
                [
                    "pipeline",
                    "balance",
                    "--matched",
                    f"{work}/matched",
                    "--out",
                    f"{work}/selected",
                    "--cap",
                    "5",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "pipeline",
                    "download",
                    "--selected",
                    f"{work}/selected",
                    "--out",
                    f"{work}/corpus",
                    *SMALL_IMAGES,
                ]
            )
            == 0
        )
        capsys.readouterr()

        # The same stages on a local disk write the same rows.
        match((pool,), queries, str(tmp_path / "matched"), MatchConfig())
        balance(str(tmp_path / "matched"), str(tmp_path / "selected"), BalanceConfig(cap_per_query=5))
    assert _tables(f"{work}/matched") == _tables(str(tmp_path / "matched"))
    assert _tables(f"{work}/selected") == _tables(str(tmp_path / "selected"))

    # Every stage is complete, with nothing staged or temporary left in the bucket.
    every_key = [p for p, _ in storage.walk_files(work)]
    assert all(
        storage.is_file(f"{work}/{stage}/_SUCCESS.json") for stage in ("matched", "selected", "corpus")
    )
    assert not [k for k in every_key if "_staging" in k or "_shards" in k or ".tmp-" in k or "_urls" in k]
    manifest = json.loads(storage.read_text(f"{work}/corpus/manifest.json"))
    assert manifest["counts"] == {"pool": 15, "matched": 14, "selected": 7, "downloaded": 6, "failed": 1}
    for part in manifest["shards"] + manifest["failure_shards"]:
        assert storage.size(f"{work}/corpus/{part['file']}") == part["bytes"]
    assert storage.read_table(f"{work}/corpus/part-00000.parquet").column("jpg").null_count == 0

    # A rerun reuses every finished stage from the bucket: no stage writes its marker again.
    marker = f"{work}/corpus/_SUCCESS.json"
    before = storage.stat(marker)
    assert (
        main(
            [
                "pipeline",
                "run",
                f"{root}/pool",
                "--queries",
                q_uri,
                "--out",
                work,
                "--cap",
                "5",
                *SMALL_IMAGES,
            ]
        )
        == 0
    )
    assert storage.stat(marker) == before and storage.stat(f"{work}/matched/_SUCCESS.json")[0] > 0
    capsys.readouterr()

    # inspect reads the bucket (query names from the queries.parquet two levels up) and writes a sheet.
    assert main(["inspect", f"{work}/selected", "--json"]) == 0
    selected = json.loads(capsys.readouterr().out)
    assert {r["query"]: r["pairs"] for r in selected["per_query"]["top"]} == {
        "cat": 5,
        "dog": 2,
        "red car": 1,
    }
    assert main(["inspect", f"{work}/corpus", "--json", "--html", f"{root}/sheet.html"]) == 0
    corpus = json.loads(capsys.readouterr().out)
    assert (corpus["rows"], corpus["failures"], corpus["failure_reasons"]) == (6, 1, {"http_404": 1})
    assert storage.read_text(f"{root}/sheet.html").count('<img src="data:image/jpeg;base64,') == 6


@pytest.mark.slow
def test_missing_bucket_fails_before_work(ray_after_s3, tmp_path, capsys):
    s3 = ray_after_s3
    _upload(write_queries(tmp_path / "queries.parquet", ["cat"]), f"{s3}/missing/queries.parquet")
    _upload(
        write_pool(tmp_path / "pool.parquet", ["http://127.0.0.1/cat.jpg"], ["cat"]),
        f"{s3}/missing/pool/part-0.parquet",
    )
    assert main(["pipeline", "balance", "--matched", f"{s3}/missing/nothing", "--out", f"{s3}/x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "pipeline",
                "match",
                f"{s3}/missing/pool",
                "--queries",
                f"{s3}/missing/queries.parquet",
                "--out",
                "s3://no-such-bucket/matched",
            ]
        )
        == 2
    )
    assert "bucket s3://no-such-bucket does not exist" in capsys.readouterr().err
