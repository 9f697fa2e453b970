"""download against a real HTTP server on 127.0.0.1: every selected row accounted for, reasons right."""

from __future__ import annotations

import glob
import hashlib
import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.config import DownloadConfig
from pipeline.download import download
from pipeline.download_shard import failure_reason
from pipeline.match import pair_key
from tests.pipeline.helpers import image_bytes
from wit.artifacts import mark_done, read_provenance, write_parquet
from wit.loopback import LoopbackServer, Response

JPEG = image_bytes(640, 480)
PNG = image_bytes(300, 600, "PNG", (10, 200, 10))
ROUTES = {
    "/good.jpg": Response(200, JPEG, "image/jpeg"),
    "/good.png": Response(200, PNG, "image/png"),
    "/missing.jpg": Response(404, b"not found", "text/plain"),
    "/broken.jpg": Response(500, b"oops", "text/plain"),
    "/page.jpg": Response(200, b"<html><body>not an image</body></html>", "text/html"),
    "/truncated.jpg": Response(200, JPEG[: len(JPEG) // 3], "image/jpeg"),
    "/noai.jpg": Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "noai"}),
    "/slow.jpg": Response(200, JPEG, "image/jpeg", delay_s=3.0),
}
EXPECTED = {  # path -> failure reason, None for a stored image
    "/good.jpg": None,
    "/good.png": None,
    "/missing.jpg": "http_404",
    "/broken.jpg": "http_5xx",
    "/page.jpg": "decode_error",
    "/truncated.jpg": "decode_error",
    "/noai.jpg": "robots_disallowed",
    "/slow.jpg": "timeout",
}


def app(path: str) -> Response:
    return ROUTES.get(path.split("?")[0], Response(404, b"", "text/plain"))


def make_selected(out_dir, base_url: str, paths: list[str]) -> list[str]:
    urls = [f"{base_url}{p}" for p in paths]
    keys = [pair_key(u, f"caption of {u}") for u in urls]
    table = pa.table(
        {
            "key": keys,
            "url": urls,
            "text": [f"caption of {u}" for u in urls],
            "query_ids": pa.array([[i % 3] for i in range(len(urls))], pa.list_(pa.int32())),
            "claimed_by": pa.array([[i % 3] for i in range(len(urls))], pa.list_(pa.int32())),
        }
    ).sort_by("key")
    write_parquet(table, out_dir / "part-00000.parquet", {"stage": "test"})
    mark_done(out_dir, {"stage": "test"})
    return keys


def corpus_parts(corpus) -> list[str]:
    return sorted(glob.glob(f"{corpus}/part-*.parquet"))


@pytest.mark.slow
def test_download_accounts_for_every_row_and_resumes(ray_local, tmp_path):
    cfg = DownloadConfig(image_size=64, timeout_s=1, thread_count=8, rows_per_input_shard=6)
    with LoopbackServer(app) as server:
        paths = list(EXPECTED) + ["/good.jpg?copy=2", "/good.png?copy=2"]
        make_selected(tmp_path / "selected", server.url, paths)
        corpus = tmp_path / "corpus"
        manifest = download(str(tmp_path / "selected"), str(corpus), cfg)

        counts = manifest["counts"]
        assert counts["selected"] == len(paths)
        assert counts["downloaded"] == 4 and counts["failed"] == 6
        assert counts["downloaded"] + counts["failed"] == counts["selected"]
        assert len(manifest["shards"]) == 2  # 10 rows, 6 per shard

        images = pa.concat_tables([pq.read_table(f) for f in corpus_parts(corpus)])
        assert images.schema.names == [
            "key",
            "url",
            "caption",
            "query_ids",
            "jpg",
            "width",
            "height",
            "original_width",
            "original_height",
            "sha256",
        ]
        assert images.schema.field("query_ids").type == pa.list_(pa.int32())
        for row in images.to_pylist():
            assert row["sha256"] == hashlib.sha256(row["jpg"]).hexdigest()
            decoded = Image.open(io.BytesIO(row["jpg"]))
            assert decoded.format == "JPEG" and decoded.size == (row["width"], row["height"])
            assert row["key"] == pair_key(row["url"], row["caption"])  # our key, not img2dataset's
            if "/good.jpg" in row["url"]:  # 640x480, shorter side -> 64
                assert (row["original_width"], row["original_height"], row["width"], row["height"]) == (
                    640,
                    480,
                    85,
                    64,
                )
            else:  # 300x600
                assert (row["original_width"], row["original_height"], row["width"], row["height"]) == (
                    300,
                    600,
                    64,
                    128,
                )

        failures = pa.concat_tables(
            [pq.read_table(f) for f in sorted(glob.glob(f"{corpus}/failures/part-*.parquet"))]
        )
        got = {r["url"].removeprefix(server.url): r["reason"] for r in failures.to_pylist()}
        assert got == {p: r for p, r in EXPECTED.items() if r is not None}
        assert all(r["error_message"] for r in failures.to_pylist())
        assert manifest["failures"] == {
            "decode_error": 2,
            "http_404": 1,
            "http_5xx": 1,
            "robots_disallowed": 1,
            "timeout": 1,
        }
        assert (
            set(manifest["failure_examples"])
            == set(manifest["failures"])
            == set(manifest["download"]["dropped"])
        )
        on_disk = json.loads((corpus / "manifest.json").read_text())
        assert on_disk["counts"] == counts
        assert read_provenance(corpus_parts(corpus)[0])["stage"] == "download"
        for shard in manifest["shards"]:
            assert (
                hashlib.sha256((corpus / shard["corpus_file"]).read_bytes()).hexdigest()
                == shard["corpus_sha256"]
            )

        # Readers: pyarrow.dataset, Polars (lazy) and Ray Data all read the corpus parts.
        assert pads.dataset(corpus_parts(corpus), format="parquet").count_rows() == 4
        assert pl.scan_parquet(f"{corpus}/part-*.parquet").select(pl.len()).collect().item() == 4
        assert ray_local.data.read_parquet(corpus_parts(corpus)).count() == 4

        # Rerun: a finished corpus is reused without a request.
        requests = server.requests
        assert download(str(tmp_path / "selected"), str(corpus), cfg)["counts"] == counts
        assert server.requests == requests
        # Lose shard 1 (as if killed mid-way): only that shard is downloaded again.
        (corpus / "_SUCCESS.json").unlink()
        (corpus / "_shards" / "00001.json").unlink()
        again = download(str(tmp_path / "selected"), str(corpus), cfg)
        assert again["download"]["shards_skipped"] == 1
        assert server.requests - requests == 4  # the 4 rows of shard 1
        assert again["counts"] == counts


def test_failure_reasons_from_img2dataset_messages():
    assert failure_reason("failed_to_download", "HTTP Error 404: Not Found") == "http_404"
    assert failure_reason("failed_to_download", "HTTP Error 503: Service Unavailable") == "http_5xx"
    assert failure_reason("failed_to_download", "HTTP Error 403: Forbidden") == "http_4xx"
    assert failure_reason("failed_to_download", "<urlopen error timed out>") == "timeout"
    assert failure_reason("failed_to_download", "The read operation timed out") == "timeout"
    assert (
        failure_reason("failed_to_download", "Use of image disallowed by X-Robots-Tag directive")
        == "robots_disallowed"
    )
    assert failure_reason("failed_to_resize", "Image decoding error") == "decode_error"
    assert failure_reason("failed_to_resize", "image too small") == "too_small"
    assert (
        failure_reason("failed_to_download", "<urlopen error [Errno 111] Connection refused>")
        == "connection_error"
    )
    assert failure_reason("lost", "img2dataset wrote no row for this URL") == "lost"
    assert failure_reason("failed_to_download", "something new") == "other"
