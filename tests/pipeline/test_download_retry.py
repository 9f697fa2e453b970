"""--retry-failures against a web whose routes fail the first time and succeed the second: exactly
the transient failures are fetched again and recovered, into the same corpus, every row in one place;
a SIGKILL during the retry (or a crash while its results are moved in) and a rerun lose nothing."""

from __future__ import annotations

import glob
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import DownloadConfig
from pipeline.download import download
from pipeline.retry import retry_failures
from tests.pipeline.helpers import image_bytes
from tests.pipeline.test_download import make_selected
from tests.pipeline.test_download_resume import run_env, session_processes, wait_quiet
from core.loopback import LoopbackServer, Response

JPEG = image_bytes(80, 60)
LOOPBACK = ("127.0.0.0/8",)
# What each kind answers the first time; every later request gets the image.
FIRST = {
    "t5xx": Response(503, b"busy", "text/plain"),
    "t429": Response(429, b"slow down", "text/plain", {"Retry-After": "3600"}),  # past the cap: not waited
    "slow": Response(200, JPEG, "image/jpeg", delay_s=4.0),  # past the 2 s timeout
    "gone": Response(404, b"", "text/plain"),
    "page": Response(200, b"<html>not an image</html>", "text/html"),
    "noai": Response(200, JPEG, "image/jpeg", {"X-Robots-Tag": "noai"}),
    "ok": Response(200, JPEG, "image/jpeg"),
}
REASON = {"t5xx": "http_5xx", "t429": "http_429", "slow": "timeout", "gone": "http_404",
          "page": "decode_error", "noai": "robots_disallowed"}
TRANSIENT = {"t5xx", "t429", "slow"}


class FlakyWeb:
    """Routes /<kind>-<n>.jpg: FIRST[kind] on the first request, the image afterwards (slowly, if asked)."""

    def __init__(self, later_delay_s: float = 0.0):
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.later_delay_s = later_delay_s

    def __call__(self, path: str) -> Response:
        name = path.strip("/").split(".")[0]
        kind = name.split("-")[0]
        if kind not in FIRST:
            return Response(404, b"", "text/plain")  # robots.txt, tdmrep.json: none
        with self.lock:
            self.seen[path] += 1
            first = self.seen[path] == 1
        return FIRST[kind] if first else Response(200, JPEG, "image/jpeg", delay_s=self.later_delay_s)


def paths_of(per_kind: int) -> list[str]:
    return [f"/{kind}-{i}.jpg" for kind in FIRST for i in range(per_kind)]


def closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening: connections are refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus_state(corpus: Path) -> tuple[list[str], dict[str, str]]:
    """(corpus keys in part order, failure key -> reason), checking each part against the manifest."""
    import json

    manifest = json.loads((corpus / "manifest.json").read_text())
    for part in manifest["shards"] + manifest["failure_shards"]:
        path = corpus / part["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"], part
        assert pq.ParquetFile(path).metadata.num_rows == part["rows"]
    listed = {p["file"] for p in manifest["shards"]}
    assert listed == {Path(p).name for p in glob.glob(f"{corpus}/part-*.parquet")}
    assert {p["file"] for p in manifest["failure_shards"]} == {
        f"failures/{Path(p).name}" for p in glob.glob(f"{corpus}/failures/part-*.parquet")
    }
    images = pa.concat_tables([pq.read_table(corpus / p["file"]) for p in manifest["shards"]])
    failures = pa.concat_tables([pq.read_table(corpus / p["file"]) for p in manifest["failure_shards"]])
    assert manifest["counts"]["downloaded"] == images.num_rows
    assert manifest["counts"]["failed"] == failures.num_rows
    assert manifest["failures"] == dict(sorted(Counter(failures["reason"].to_pylist()).items()))
    return images["key"].to_pylist(), dict(zip(failures["key"].to_pylist(), failures["reason"].to_pylist()))


def check_accounted(corpus: Path, keys_by_url: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """Every selected row exactly once, in the corpus or in failures; returns (image urls, url -> reason)."""
    images, failures = corpus_state(corpus)
    assert len(images) == len(set(images))  # none twice
    assert not set(images) & set(failures)  # none in both
    assert set(images) | set(failures) == set(keys_by_url.values())  # none lost
    url_of = {k: u for u, k in keys_by_url.items()}
    return {url_of[k] for k in images}, {url_of[k]: r for k, r in failures.items()}


def selected_keys(selected: Path) -> dict[str, str]:
    table = pq.read_table(selected / "part-00000.parquet", columns=["url", "key"])
    return dict(zip(table["url"].to_pylist(), table["key"].to_pylist()))


@pytest.mark.slow
def test_retry_recovers_exactly_the_transient_failures(ray_local, tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=2, thread_count=8, rows_per_input_shard=8,
                         part_target_bytes=4_000, allow_networks=LOOPBACK, max_retry_after_s=1.0)
    web = FlakyWeb()
    with LoopbackServer(web) as server:
        refused = f"http://127.0.0.1:{closed_port()}/refused.jpg"  # fails the same way every time
        make_selected(tmp_path / "selected", "", [f"{server.url}{p}" for p in paths_of(3)] + [refused])
        keys = selected_keys(tmp_path / "selected")
        corpus = tmp_path / "corpus"
        first = download(str(tmp_path / "selected"), str(corpus), cfg)
        ok, failed = check_accounted(corpus, keys)
        assert {u.rsplit("/", 1)[1].split("-")[0] for u in ok} == {"ok"}
        assert {u: r for u, r in failed.items() if u != refused} == {
            f"{server.url}{p}": REASON[p.strip("/").split("-")[0]] for p in paths_of(3) if "/ok-" not in p
        }
        assert failed[refused] == "connection_error"
        before = Counter(web.seen)

        manifest = retry_failures(str(tmp_path / "selected"), str(corpus), cfg)
        again = Counter(web.seen)
        again.subtract(before)
        retried = {p for p, n in again.items() if n}
        assert retried == {p for p in paths_of(3) if p.strip("/").split("-")[0] in TRANSIENT}
        assert all(again[p] == 1 for p in retried)  # once each; permanent failures never asked again
        ok, failed = check_accounted(corpus, keys)
        assert {u.rsplit("/", 1)[1].split("-")[0] for u in ok} == {"ok"} | TRANSIENT
        assert {r for u, r in failed.items()} == {"http_404", "decode_error", "robots_disallowed", "connection_error"}
        rounds = manifest["retries"]
        assert [(r["round"], r["retried"], r["recovered"]) for r in rounds] == [(1, 10, 9)]
        assert rounds[0]["failed_again"] == {"connection_error": 1}
        assert len(manifest["shards"]) > len(first["shards"])  # new parts, the old ones kept
        assert manifest["shards"][: len(first["shards"])] == first["shards"]
        assert not (corpus / "_retry").exists() and (corpus / "_SUCCESS.json").exists()

        # A second round retries only the row still failing for a transient reason.
        seen = sum(web.seen.values())
        manifest = retry_failures(str(tmp_path / "selected"), str(corpus), cfg)
        assert sum(web.seen.values()) == seen and [r["retried"] for r in manifest["retries"]] == [10, 1]
        check_accounted(corpus, keys)
        # A plain rerun of the download reuses the corpus as it now is.
        assert download(str(tmp_path / "selected"), str(corpus), cfg)["counts"] == manifest["counts"]


@pytest.mark.slow
def test_a_crash_while_moving_the_retry_in_is_finished_by_the_rerun(ray_local, tmp_path, monkeypatch):
    cfg = DownloadConfig(image_size=32, timeout_s=2, thread_count=8, rows_per_input_shard=4,
                         part_target_bytes=1_500, allow_networks=LOOPBACK, max_retry_after_s=1.0)
    with LoopbackServer(FlakyWeb()) as server:
        make_selected(tmp_path / "selected", server.url, paths_of(2))
        keys = selected_keys(tmp_path / "selected")
        corpus = tmp_path / "corpus"
        download(str(tmp_path / "selected"), str(corpus), cfg)
        import pipeline.retry as retry

        moved = []
        real_move = retry._move

        def move_then_crash(source, target):
            if len(moved) == 2:
                raise KeyboardInterrupt("killed while moving the retry in")
            moved.append(target)
            real_move(source, target)

        monkeypatch.setattr(retry, "_move", move_then_crash)
        with pytest.raises(KeyboardInterrupt):
            retry_failures(str(tmp_path / "selected"), str(corpus), cfg)
        assert not (corpus / "_SUCCESS.json").exists() and (corpus / "_retry" / "commit.json").exists()
        monkeypatch.setattr(retry, "_move", real_move)
        requests = server.requests
        manifest = retry_failures(str(tmp_path / "selected"), str(corpus), cfg)
        assert server.requests == requests  # the rerun only finished the moves
    ok, _ = check_accounted(corpus, keys)
    assert {u.rsplit("/", 1)[1].split("-")[0] for u in ok} == {"ok"} | TRANSIENT
    assert [r["recovered"] for r in manifest["retries"]] == [6]


def retry_cmd(selected: Path, corpus: Path) -> list[str]:
    return [sys.executable, "-m", "wit.cli", "pipeline", "download", "--selected", str(selected),
            "--out", str(corpus), "--rows-per-shard", "3", "--threads", "1", "--image-size", "32",
            "--timeout", "2", "--part-target-mb", "0.002", "--allow-network", "127.0.0.0/8", "--retry-failures"]


@pytest.mark.slow
def test_sigkill_during_the_retry_then_rerun_loses_nothing(ray_local, tmp_path):
    cfg = DownloadConfig(image_size=32, timeout_s=2, thread_count=8, rows_per_input_shard=3,
                         part_target_bytes=2_000, allow_networks=LOOPBACK, max_retry_after_s=1.0)
    web = FlakyWeb()
    with LoopbackServer(web) as server:
        make_selected(tmp_path / "selected", server.url, paths_of(3))
        keys = selected_keys(tmp_path / "selected")
        corpus = tmp_path / "corpus"
        download(str(tmp_path / "selected"), str(corpus), cfg)
        web.later_delay_s = 0.5  # retried images come slowly: 9 rows, 3 per shard, one thread
        first = subprocess.Popen(retry_cmd(tmp_path / "selected", corpus), env=run_env(), start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while not glob.glob(f"{corpus}/_retry/_shards/*.json") and time.time() < deadline:
                assert first.poll() is None, "the retry ended before it could be killed"
                time.sleep(0.05)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        for _ in range(50):
            if not session_processes(first.pid):
                break
            time.sleep(0.1)
        wait_quiet(server)
        assert not (corpus / "_retry" / "commit.json").exists()  # killed while fetching
        rerun = subprocess.run(retry_cmd(tmp_path / "selected", corpus), env=run_env(), capture_output=True)
        assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    ok, failed = check_accounted(corpus, keys)
    assert {u.rsplit("/", 1)[1].split("-")[0] for u in ok} == {"ok"} | TRANSIENT
    assert set(failed.values()) == {"http_404", "decode_error", "robots_disallowed"}
    assert not (corpus / "_retry").exists()
