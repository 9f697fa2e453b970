"""download against a hostile web on 127.0.0.1: every selected row accounted for, reasons right.

One loopback server answers each way a real host can misbehave; the test counts the requests per
path, so a loop that never ends (a redirect to itself) would show up as a number, not a hang.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
from collections import Counter

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.config import DownloadConfig
from pipeline.download import download
from pipeline.download_shard import CORPUS_SCHEMA, download_shard, failure_reason
from pipeline.match import pair_key
from tests.pipeline.helpers import image_bytes
from core.artifacts import mark_done, read_provenance, write_parquet
from core.loopback import LoopbackServer, Response

LOOPBACK = ("127.0.0.0/8",)  # the guard refuses loopback unless a test opens it
JPEG = image_bytes(640, 480)
PNG = image_bytes(300, 600, "PNG", (10, 200, 10))
WEBP = image_bytes(400, 200, "WEBP", (10, 10, 200))
HUGE = image_bytes(6000, 5000)  # 30 megapixels (a flat colour: ~0.5 MB on the wire, 90 MB decoded)
ROUTES = {
    "/good.jpg": Response(200, JPEG, "image/jpeg"),
    "/good.png": Response(200, PNG, "image/png"),
    "/good.webp": Response(200, WEBP, "image/webp"),
    "/huge.jpg": Response(200, HUGE, "image/jpeg"),
    "/missing.jpg": Response(404, b"not found", "text/plain"),
    "/broken.jpg": Response(500, b"oops", "text/plain"),
    "/page.jpg": Response(200, b"<html><body>not an image</body></html>", "text/html"),
    # Cut inside the headers (before the scan data): no decoder can make an image of it. A cut inside
    # the scan data instead decodes, with the missing rows grey, and is stored like a good image.
    "/truncated.jpg": Response(200, JPEG[:300], "image/jpeg"),
    "/noai.jpg": Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "noai"}),
    "/other-bot-noai.jpg": Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "otherbot: noai"}),
    "/ours-noai.jpg": Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "wit-clip: noimageai"}),
    "/slow.jpg": Response(200, JPEG, "image/jpeg", delay_s=8.0),  # well past the 3 s timeout below
    "/loop.jpg": Response(302, b"", "text/plain", {"Location": "/loop.jpg"}),
}
SIZES = {  # stored images: (original w, h) -> (w, h) with the shorter side resized to 64
    "/good.jpg": ((640, 480), (85, 64)),
    "/good.png": ((300, 600), (64, 128)),
    "/good.webp": ((400, 200), (128, 64)),
    "/huge.jpg": ((6000, 5000), (77, 64)),
    "/other-bot-noai.jpg": ((640, 480), (85, 64)),  # a directive for another bot does not bind us
}
FAILED = {
    "/missing.jpg": "http_404",
    "/broken.jpg": "http_5xx",
    "/page.jpg": "decode_error",
    "/truncated.jpg": "decode_error",
    "/noai.jpg": "robots_disallowed",
    "/ours-noai.jpg": "robots_disallowed",
    "/slow.jpg": "timeout",
    "/loop.jpg": "redirect_loop",
}


def route(path: str) -> Response:
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
def test_hostile_web_every_row_accounted_for(ray_local, tmp_path):
    # A tiny part target: the 10 stored images (~1 kB each) make several corpus parts.
    cfg = DownloadConfig(
        # 3 s: a fetch on a loaded 2-core CI machine can take over 1 s; /slow.jpg answers after 8 s.
        image_size=64, timeout_s=3, thread_count=8, rows_per_input_shard=6, part_target_bytes=2_500,
        allow_networks=LOOPBACK,
    )
    with LoopbackServer(route, max_requests=500) as server:
        paths = list(SIZES) + list(FAILED)
        paths += [f"{p}?copy=2" for p in SIZES]  # the same image under another URL is another pair
        make_selected(tmp_path / "selected", server.url, paths)
        corpus = tmp_path / "corpus"
        manifest = download(str(tmp_path / "selected"), str(corpus), cfg)

        counts = manifest["counts"]
        assert counts["selected"] == len(paths) == 18
        assert counts["downloaded"] == 10 and counts["failed"] == 8, manifest
        assert len(manifest["download_shards"]) == 3  # 18 rows, 6 per shard

        # One request per URL, except the redirect loop, stopped after 4 visits of one URL (as urllib
        # does); and robots.txt and tdmrep.json once per origin per shard task.
        assert server.hits["/loop.jpg"] == 5
        assert server.hits["/robots.txt"] == server.hits["/.well-known/tdmrep.json"] == 3
        assert sum(server.hits.values()) == len(paths) + 4 + 2 * 3 == server.requests
        assert manifest["download"]["requests"] == {"image": len(paths) + 4, "robots": 3, "tdmrep": 3}

        parts = corpus_parts(corpus)
        assert len(parts) >= 3 and [s["file"] for s in manifest["shards"]] == [
            p.split("/")[-1] for p in parts
        ]
        images = pa.concat_tables([pq.read_table(f) for f in parts])
        assert images.schema.remove_metadata() == CORPUS_SCHEMA
        assert images["key"].to_pylist() == sorted(images["key"].to_pylist())  # selected's key order
        for row in images.to_pylist():
            assert row["sha256"] == hashlib.sha256(row["jpg"]).hexdigest()
            decoded = Image.open(io.BytesIO(row["jpg"]))
            assert decoded.format == "JPEG" and decoded.size == (row["width"], row["height"])
            assert row["key"] == pair_key(row["url"], row["caption"])  # our key, not img2dataset's
            original, resized = SIZES[row["url"].removeprefix(server.url).split("?")[0]]
            assert (row["original_width"], row["original_height"]) == original
            assert (row["width"], row["height"]) == resized

        failures = pa.concat_tables(
            [pq.read_table(f) for f in sorted(glob.glob(f"{corpus}/failures/part-*"))]
        )
        rows = failures.to_pylist()
        assert {r["url"].removeprefix(server.url): r["reason"] for r in rows} == FAILED
        assert all(r["error_message"] and r["status"] for r in rows)
        assert set(images["key"].to_pylist()).isdisjoint(failures["key"].to_pylist())
        assert manifest["failures"] == dict(sorted(Counter(FAILED.values()).items()))
        assert set(manifest["failure_examples"]) == set(manifest["failures"])

        on_disk = json.loads((corpus / "manifest.json").read_text())
        assert on_disk["counts"] == counts
        for part in manifest["shards"] + manifest["failure_shards"]:
            path = corpus / part["file"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"]
            assert pq.ParquetFile(path).metadata.num_rows == part["rows"]
            meta = read_provenance(path)
            assert meta["stage"] == "download" and meta["config"]["part_target_bytes"] == 2_500
            assert {"pyarrow", "img2dataset", "ray"} <= set(meta["versions"])
        assert not (corpus / "_shards").exists() and not (corpus / "_tmp").exists()

        # Readers: pyarrow.dataset, Polars (lazy) and Ray Data read the parts with the documented schema.
        assert pads.dataset(parts, format="parquet").schema.remove_metadata() == CORPUS_SCHEMA
        lazy = pl.scan_parquet(f"{corpus}/part-*.parquet")
        assert lazy.collect_schema()["query_ids"] == pl.List(pl.Int32)
        assert lazy.select(pl.len()).collect().item() == 10
        ds = ray_local.data.read_parquet(parts)
        assert ds.count() == 10 and ds.schema().names == CORPUS_SCHEMA.names

        # Rerun: a finished corpus is reused without a request.
        before = server.requests
        assert download(str(tmp_path / "selected"), str(corpus), cfg)["counts"] == counts
        assert server.requests == before


def test_area_limit_refuses_a_huge_image_in_process(tmp_path):
    """One shard, run in this process (no Ray): the 30 MP image is refused when the limit says so."""
    with LoopbackServer(route, max_requests=10) as server:
        make_selected(tmp_path / "selected", server.url, ["/huge.jpg", "/good.jpg"])
        part = str(tmp_path / "selected" / "part-00000.parquet")
        cfg = DownloadConfig(
            image_size=64, timeout_s=5, thread_count=2, max_image_area=20_000_000, allow_networks=LOOPBACK
        )
        from core.config import to_dict

        marker = download_shard(0, [(part, 0, 2)], "test", str(tmp_path / "corpus"), to_dict(cfg))
    assert (marker["corpus_rows"], marker["failure_reasons"]) == (1, {"too_large": 1})
    staged = pq.read_table(tmp_path / "corpus" / "_shards" / "00000.failures.parquet").to_pylist()
    assert staged[0]["url"].endswith("/huge.jpg") and staged[0]["error_message"] == "image area too large"


def test_failure_reasons_from_img2dataset_messages():
    assert failure_reason("failed_to_download", "HTTP Error 404: Not Found") == "http_404"
    assert failure_reason("failed_to_download", "HTTP Error 503: Service Unavailable") == "http_5xx"
    assert failure_reason("failed_to_download", "HTTP Error 403: Forbidden") == "http_4xx"
    assert failure_reason("failed_to_download", "HTTP Error 429: Too Many Requests") == "http_429"
    assert failure_reason("failed_to_download", "[blocked_address] x resolves to 10.0.0.5 (private)") == "blocked_address"
    assert failure_reason("failed_to_download", "[robots_txt] timed out, said the robots.txt") == "robots_txt"
    assert failure_reason("failed_to_download", "<urlopen error timed out>") == "timeout"
    assert failure_reason("failed_to_download", "The read operation timed out") == "timeout"
    assert (
        failure_reason("failed_to_download", "Use of image disallowed by X-Robots-Tag directive")
        == "robots_disallowed"
    )
    assert (
        failure_reason(
            "failed_to_download",
            "HTTP Error 302: The HTTP server returned a redirect error that would lead to an infinite loop.",
        )
        == "redirect_loop"
    )
    assert failure_reason("failed_to_resize", "Image decoding error") == "decode_error"
    assert failure_reason("failed_to_resize", "image too small") == "too_small"
    assert failure_reason("failed_to_resize", "image area too large") == "too_large"
    assert (
        failure_reason("failed_to_download", "<urlopen error [Errno 111] Connection refused>")
        == "connection_error"
    )
    assert failure_reason("lost", "img2dataset wrote no row for this URL") == "lost"
    assert failure_reason("failed_to_download", "something new") == "other"
